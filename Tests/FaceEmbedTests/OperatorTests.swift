import FaceEmbedTestSupport
import Foundation
import Testing

@testable import FaceEmbed
@testable import FaceEmbedEvaluation
@testable import FaceEmbedImport

// The reference operators against MXNet 1.9.1's own outputs (Fixtures/ops.ndarray, made by Tools/make_fixtures.py).
// The fast kernels are in turn tested against these references (KernelTests).

struct OperatorTests {
    /// The fixture arrays, by "case/array" name, as (shape, values).
    static func arrays() throws -> [String: ([Int], [Float])] {
        let file = try MappedFile(path: TestPaths.fixtures.appendingPathComponent("ops.ndarray").path)
        let params = try MXNetParams(bytes: file.bytes, file: file.path)
        var out: [String: ([Int], [Float])] = [:]
        for a in params.ordered { out[a.name] = (a.shape, params.floats(a)) }
        return out
    }

    static func cases() throws -> [[String: Any]] {
        try loadJSON(TestPaths.fixtures.appendingPathComponent("ops.json").path)["cases"] as! [[String: Any]]
    }

    static func tensor(_ a: ([Int], [Float])) -> Tensor {
        let s = a.0 + [Int](repeating: 1, count: max(0, 4 - a.0.count))
        return Tensor(n: s[0], c: s[1], h: s[2], w: s[3], data: a.1)
    }

    @Test func everyOperatorCaseMatchesMXNet() throws {
        let arrays = try Self.arrays()
        let cases = try Self.cases()
        #expect(cases.count >= 15)
        for c in cases {
            let name = c["name"] as! String, op = c["op"] as! String
            let attrs = c["attrs"] as! [String: Any]
            func a(_ k: String) -> ([Int], [Float]) { arrays["\(name)/\(k)"]! }
            let x = arrays["\(name)/x"].map(Self.tensor)
            let expected = a("y").1
            let got: [Float]
            switch op {
            case "Convolution":
                let k = attrs["kernel"] as! [Int], s = attrs["stride"] as! [Int], p = attrs["pad"] as! [Int]
                got =
                    Reference.convolution(
                        x!, weight: a("weight").1, bias: arrays["\(name)/bias"]?.1 ?? [],
                        outC: attrs["num_filter"] as! Int, kernel: (k[0], k[1]), stride: (s[0], s[1]),
                        pad: (p[0], p[1]), groups: attrs["num_group"] as! Int
                    ).data
            case "BatchNorm":
                got =
                    Reference.batchNorm(
                        x!, gamma: a("gamma").1, beta: a("beta").1, mean: a("mean").1, variance: a("var").1,
                        eps: (attrs["eps"] as? Double).map(Float.init) ?? 1e-3,
                        fixGamma: attrs["fix_gamma"] as! Bool
                    ).data
            case "LeakyReLU":
                got = Reference.prelu(x!, slope: a("gamma").1).data
            case "FullyConnected":
                got =
                    Reference.fullyConnected(
                        x!, weight: a("weight").1, bias: a("bias").1, outFeatures: attrs["num_hidden"] as! Int
                    ).data
            case "elemwise_add":
                got = Reference.add(Self.tensor(a("a")), Self.tensor(a("b"))).data
            default:
                got = Reference.inputScaling(x!, mean: 127.5, scale: 0.0078125).data
            }
            expectClose(got, expected, maxAbs: 1e-5, cosine: 0.999999, "\(name) (\(op))")
        }
    }

    @Test func inputScalingIsBitExactWithMXNet() throws {
        let arrays = try Self.arrays()
        let got = Reference.inputScaling(Self.tensor(arrays["input_scaling/x"]!), mean: 127.5, scale: 0.0078125).data
        #expect(got == arrays["input_scaling/y"]!.1)
        // 1/127.5 instead of MXNet's 1/128 would be a visible error, not a rounding difference.
        let wrong = Reference.inputScaling(Self.tensor(arrays["input_scaling/x"]!), mean: 127.5, scale: 1 / 127.5).data
        #expect(Closeness(wrong, got).maxAbs > 1e-3)
    }
}
