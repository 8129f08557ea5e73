import FaceEmbedTestSupport
import Testing

@testable import FaceEmbed

// Sibling convolutions (Runtime/SiblingConvolutions.swift): three 3×3 convolutions of one input (2, 8 and 20 output
// channels, as SCRFD's heads) with a 1×1 convolution of the same input between them, run by a network built on a
// small plan: the three run as one merged Winograd convolution, the 1×1 apart, and every output matches
// Reference.convolution. Winograd's tolerance (WinogradTests.swift): 5e-4 absolute, cosine ≥ 0.999999.

struct SiblingConvolutionTests {
    static let input = ValueShape(c: 16, h: 24, w: 40)
    static let heads = [2, 8, 20]

    /// Layers: head 0 (value 1), the 1×1 (value 2), heads 1 and 2 (values 3, 4); tensors weight, bias per layer.
    static func plan() -> ModelPlan {
        let (x, outputs) = (input, [1, 3, 4])
        var layers: [Layer] = zip(heads, outputs).enumerated().map { i, head in
            .convolution(
                ConvLayer(input: 0, output: head.1, geometry: geometry(head.0, k: 3), weight: 2 * i, bias: 2 * i + 1))
        }
        layers.insert(
            .convolution(ConvLayer(input: 0, output: 2, geometry: geometry(5, k: 1), weight: 6, bias: 7)), at: 1)
        let values = [x] + [2, 5, 8, 20].map { ValueShape(c: $0, h: x.h, w: x.w) }
        let tensors = (0..<8).map { TensorInfo(name: "t\($0)", shape: [$0]) }
        return ModelPlan(
            kind: .faceDetector, name: "siblings", channelOrder: .rgb, inputMean: 0, inputScale: 1, values: values,
            layers: layers, tensors: tensors, outputs: (1...4).map { PlanOutput(name: "y\($0)", value: $0) })
    }

    static func geometry(_ outC: Int, k: Int) -> ConvGeometry {
        ConvGeometry(
            inC: input.c, inH: input.h, inW: input.w, outC: outC, kH: k, kW: k, strideH: 1, strideW: 1,
            padH: k / 2, padW: k / 2, groups: 1)
    }

    @Test("convolutions of one input run as one, each output as the reference computes it", arguments: [1, 2])
    func siblingsMatchTheReference(threads: Int) {
        let plan = SiblingConvolutionTests.plan()
        var rng = SeededRandom(seed: 31 + UInt64(threads))
        let x = rng.floats(SiblingConvolutionTests.input.count)
        let convolutions = plan.layers.map { layer -> ConvLayer in
            guard case let .convolution(c) = layer else { preconditionFailure() }
            return c
        }
        let weights = convolutions.map { c in
            rng.floats(c.geometry.outC * c.geometry.k).map { $0 / Float(c.geometry.k).squareRoot() }
        }
        let biases = convolutions.map { rng.floats($0.geometry.outC) }
        // The flat file's layout: lane-packed weights, each tensor at a 64-byte boundary.
        var bytes: [UInt8] = [], offsets: [Int] = []
        for i in convolutions.indices.sorted(by: { convolutions[$0].weight < convolutions[$1].weight }) {
            for tensor in [lanePackedWeights(weights[i], convolutions[i].geometry), biases[i]] {
                offsets.append(bytes.count)
                bytes += tensor.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
                bytes += [UInt8](repeating: 0, count: (64 - bytes.count % 64) % 64)
            }
        }
        for winograd in [true, false] {
            let network = Network(
                plan: plan, storage: MappedFile(copying: bytes), tensorOffsets: offsets, threads: threads,
                winograd: winograd)
            #expect(network.siblings.map(\.layers) == (winograd ? [[0, 2, 3]] : []))
            let w = network.checkout(threads: threads)
            network.input(w).update(from: x, count: x.count)
            network.run(w, threads: threads)
            for (c, (weight, bias)) in zip(convolutions, zip(weights, biases)) {
                let g = c.geometry
                let expected = Reference.convolution(
                    Tensor(n: 1, c: g.inC, h: g.inH, w: g.inW, data: x), weight: weight, bias: bias, outC: g.outC,
                    kernel: (g.kH, g.kW), stride: (1, 1), pad: (g.padH, g.padW), groups: 1)
                let got = Array(UnsafeBufferPointer(start: network.value(c.output, in: w), count: g.outC * g.pixels))
                expectClose(
                    got, expected.data, maxAbs: 5e-4, cosine: 0.999999, "value \(c.output), winograd \(winograd)")
            }
            network.checkin(w)
        }
    }
}
