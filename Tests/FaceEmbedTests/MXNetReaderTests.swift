import FaceEmbedTestSupport
import Foundation
import Testing

@testable import FaceEmbed
@testable import FaceEmbedEvaluation
@testable import FaceEmbedImport

// The `.params` and `model-symbol.json` readers: every array header version, dtype conversion, names looked up,
// and clear errors for broken files.

struct MXNetReaderTests {
    static let dtypes = TestPaths.fixtures.appendingPathComponent("dtypes.ndarray").path

    /// Bytes at a stable address for as long as the object lives.
    final class Buffer {
        let bytes: UnsafeMutableRawBufferPointer
        init(_ b: [UInt8]) { bytes = .allocate(byteCount: b.count, alignment: 16); bytes.copyBytes(from: b) }
        deinit { bytes.deallocate() }
    }

    /// Parses `bytes`; the reader is valid while the returned buffer lives.
    func parse(_ bytes: [UInt8]) throws(FaceEmbedError) -> (MXNetParams, Buffer) {
        let buffer = Buffer(bytes)
        return (try MXNetParams(bytes: UnsafeRawBufferPointer(buffer.bytes), file: "test.params"), buffer)
    }

    @Test func float16AndFloat64AreConvertedToFloat32() throws {
        let file = try MappedFile(path: Self.dtypes)
        let p = try MXNetParams(bytes: file.bytes, file: Self.dtypes)
        let f32 = p.floats(try p.array("f32")), f64 = p.floats(try p.array("f64")), f16 = p.floats(try p.array("f16"))
        #expect(try p.array("f16").dtype == 2 && p.array("f64").dtype == 1)
        #expect(try p.array("f16").element == .float16 && p.array("f64").element == .double)
        #expect(f64 == f32)
        expectClose(f16, f32, maxAbs: 4e-3, cosine: 0.99999, "float16")
    }

    /// Rewrites an MXNet-written V2 file's single-array headers into another header version.
    func rewrite(_ v2: [UInt8], to version: String) -> [UInt8] {
        // V2 array header: magic u32, stype i32, ndim u32, dims i64…, dev i32 i32, dtype i32, data.
        var out = Array(v2[0..<24])
        var i = 24
        func u32(_ at: Int) -> UInt32 { v2[at..<at + 4].reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        let n = Int(v2[16])
        for _ in 0..<n {
            let ndim = Int(u32(i + 8))
            let dims = (0..<ndim).map { Int(u32(i + 12 + 8 * $0)) }
            let headerEnd = i + 12 + 8 * ndim
            let dtype = u32(headerEnd + 8)
            let size = [4, 8, 2][Int(dtype)] * dims.reduce(1, *)
            switch version {
            case "legacy":
                out += le32(UInt32(ndim)); for d in dims { out += le32(UInt32(d)) }
            case "v1":
                out += le32(0xF993_FAC8); out += Array(v2[(i + 8)..<headerEnd])
            default:
                out += le32(0xF993_FACA); out += Array(v2[(i + 4)..<headerEnd])
            }
            out += Array(v2[headerEnd..<(headerEnd + 12 + size)])
            i = headerEnd + 12 + size
        }
        return out + Array(v2[i...])
    }

    @Test("every array header version reads the same values", arguments: ["legacy", "v1", "v3"])
    func headerVersions(_ version: String) throws {
        let v2 = try readFile(Self.dtypes)
        let (ref, b1) = try parse(v2)
        let (p, b2) = try parse(rewrite(v2, to: version))
        for name in ["f16", "f32", "f64"] {
            #expect(try p.array(name).shape == ref.array(name).shape)
            #expect(p.floats(try p.array(name)) == ref.floats(try ref.array(name)))
        }
        withExtendedLifetime((b1, b2)) {}
    }

    @Test func brokenParamsFilesAreRefusedWithAReason() throws {
        let good = try readFile(Self.dtypes)
        func reason(_ bytes: [UInt8]) -> String? {
            do { _ = try parse(bytes); return nil } catch { return error.description }
        }
        #expect(reason([])?.contains("truncated") == true)
        #expect(reason([UInt8](repeating: 7, count: 64))?.contains("not an MXNet .params file") == true)
        for cut in stride(from: 1, to: good.count, by: 7) {
            #expect(reason(Array(good[0..<cut])) != nil, "cut at \(cut)")
        }
        var huge = good; huge[16] = 0xFF; huge[17] = 0xFF; huge[18] = 0xFF
        #expect(reason(huge)?.contains("array count") == true)
        var sparse = good; sparse[28] = 1
        #expect(reason(sparse)?.contains("sparse") == true)
        var int8 = good
        let dtypeAt = 24 + 12 + 8 * 4 + 8  // first array: 4 dims
        int8[dtypeAt] = 5
        #expect(reason(int8)?.contains("dtype 5") == true)
    }

    @Test func symbolAttributesInAllThreeSpellingsAndDefaults() throws {
        for key in ["attrs", "attr", "param"] {
            let json = """
                {"nodes": [{"op": "null", "name": "data", "inputs": []},
                 {"op": "null", "name": "w", "\(key)": {"kernel": "(3, 3)"}, "inputs": []},
                 {"op": "Convolution", "name": "c", "\(key)": {"kernel": "(3, 3)", "num_filter": "8", "no_bias": "True"},
                  "inputs": [[0, 0, 0], [1, 0, 0]]}], "arg_nodes": [0, 1], "heads": [[2, 0, 0]]}
                """
            let s = try MXNetSymbol(json: Array(json.utf8), file: "x.json")
            let c = s.nodes[2]
            #expect(try c.tuple("kernel", default: [0, 0]) == [3, 3])
            #expect(try c.int("num_group", default: 1) == 1)
            #expect(try c.tuple("pad", default: [0, 0]) == [0, 0])
            #expect(try c.bool("no_bias", default: false))
            #expect(s.head == 2)
        }
    }

    @Test func brokenSymbolFilesAreRefused() {
        for text in [
            "", "{", "{\"nodes\": 3}", "{\"nodes\": [], \"heads\": []}",
            "{\"nodes\": [{\"op\": \"X\", \"name\": \"a\", \"inputs\": [[5, 0, 0]]}], \"heads\": [[0, 0, 0]]}",
            String(repeating: "[", count: 10_000),
        ] {
            #expect(throws: FaceEmbedError.self, "\(text.prefix(30))") {
                try MXNetSymbol(json: Array(text.utf8), file: "s.json")
            }
        }
    }

    @Test func realSymbolFilesParse() throws {
        for (model, convs) in [("mobilefacenet-arcface", 49), ("resnet100-arcface", 103)] {
            guard let path = TestPaths.shared("models/\(model)/model-symbol.json") else { continue }
            let s = try MXNetSymbol(json: try readFile(path), file: path)
            #expect(s.nodes.filter { $0.op == "Convolution" }.count == convs)
            #expect(s.nodes[s.head].name == "fc1")
        }
    }

    /// The tiny MobileFaceNet's symbol with `edits` applied, converted with its params; the error it ends in.
    func conversionError(_ edits: [(String, String)]) throws -> FaceEmbedError? {
        let dir = TestPaths.fixtures.appendingPathComponent("tiny-mobilefacenet")
        var text = try String(contentsOf: dir.appendingPathComponent("model-symbol.json"), encoding: .utf8)
        for (a, b) in edits { text = text.replacingOccurrences(of: a, with: b) }
        // Tests run in parallel: each call gets its own files.
        let name = "edited-\(UUID().uuidString)"
        let symbol = TestModels.folder.appendingPathComponent("\(name)-symbol.json").path
        try text.write(toFile: symbol, atomically: true, encoding: .utf8)
        let params = dir.appendingPathComponent("model-0000.ndarray").path
        let out = TestModels.folder.appendingPathComponent("\(name).feb").path
        defer { for f in [symbol, out] { try? FileManager.default.removeItem(atPath: f) } }
        return thrown { try ModelConverter.convertMXNet(symbol: symbol, params: params, to: out) }
    }

    @Test func unknownOperatorsAreListedTogetherByName() throws {
        let e = try conversionError([
            ("\"op\": \"BatchNorm\"", "\"op\": \"InstanceNorm\""),
            ("\"op\": \"elemwise_add\"", "\"op\": \"broadcast_mul\""),
        ])
        expectError(
            e, "unsupportedModel", "unsupported MXNet operators: InstanceNorm (26 nodes, first ",
            ", broadcast_mul (4 nodes, first ", "FaceEmbed supports BatchNorm, Convolution")
    }

    @Test func convolutionsBeyondThePlanLimitsAreRefused() throws {
        let e = try conversionError([("\"kernel\": \"(3, 3)\"", "\"kernel\": \"(\(PlanLimits.maxKernel + 2), 3)\"")])
        expectError(e, "unsupportedModel", "kernel [17, 3]", "kernels up to 15, strides up to 8, pads up to 15")
    }
}
