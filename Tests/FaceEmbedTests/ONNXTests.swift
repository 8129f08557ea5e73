import FaceEmbedTestSupport
import Foundation
import Testing

@testable import FaceEmbed
@testable import FaceEmbedEvaluation
@testable import FaceEmbedImport

/// The committed ONNX fixtures (Tools/make_onnx_fixtures.py) and the local real model.
enum ONNXFixtures {
    static let folder = TestPaths.fixtures.appendingPathComponent("onnx")

    static func path(_ name: String) -> String { folder.appendingPathComponent("\(name).onnx.bin").path }

    /// 112x112 RGB of xorshift32 bytes, as the fixture script makes them.
    static func image(seed: UInt32) throws -> RGBImage {
        var x = seed
        var bytes = [UInt8](repeating: 0, count: 112 * 112 * 3)
        for k in bytes.indices {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5
            bytes[k] = UInt8(x >> 24)
        }
        return try RGBImage(width: 112, height: 112, pixels: bytes)
    }

    /// Converts (once per test process) and loads an ONNX file.
    static func load(_ onnx: String, as name: String) throws -> FaceModel {
        let out = TestModels.folder.appendingPathComponent("onnx-\(name).feb").path
        if !FileManager.default.fileExists(atPath: out) {
            try ModelConverter.convertONNX(onnx, to: out)
        }
        return try FaceModel(contentsOf: out)
    }
}

@Suite struct ONNXTests {
    // MARK: Protobuf wire format

    private func reader(_ bytes: [UInt8], _ body: (inout ProtoReader) throws -> Void) throws {
        try bytes.withUnsafeBytes { p in
            var r = ProtoReader(p) { .invalidWeights(file: nil, reason: $0) }
            try body(&r)
        }
    }

    @Test func varints() throws {
        try reader([0x00, 0x01, 0x96, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]) {
            (r: inout ProtoReader) throws in
            #expect(try r.readVarint() == 0)
            #expect(try r.readVarint() == 1)
            #expect(try r.readVarint() == 150)
            #expect(try r.readVarint() == UInt64.max)
            #expect(r.atEnd)
        }
        // Longer than 64 bits, truncated, and an 11-byte varint are errors, not traps.
        for bad: [UInt8] in [
            [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02], [0x80], [0xFF, 0xFF],
            [UInt8](repeating: 0x80, count: 10) + [0x00],
        ] {
            #expect(throws: FaceEmbedError.self) {
                try reader(bad) { (r: inout ProtoReader) throws in _ = try r.readVarint() }
            }
        }
    }

    @Test func fieldsAndWireTypes() throws {
        // field 1 varint 5, field 2 string "ab", field 3 fixed32 1.5, field 4 fixed64, field 5 packed ints [1, 300]
        var msg: [UInt8] = [0x08, 0x05, 0x12, 0x02, 0x61, 0x62, 0x1D]
        withUnsafeBytes(of: Float(1.5).bitPattern.littleEndian) { msg += $0 }
        msg += [0x21] + [UInt8](repeating: 0, count: 8) + [0x2A, 0x03, 0x01, 0xAC, 0x02]
        try reader(msg) { (r: inout ProtoReader) throws in
            var k = try r.next()!
            #expect(k == ProtoKey(number: 1, wireType: 0))
            #expect(try r.int(k, "a") == 5)
            k = try r.next()!
            #expect(try r.string(k, "b") == "ab")
            k = try r.next()!
            #expect(try r.float(k, "c") == 1.5)
            k = try r.next()!
            try r.skip(k)
            k = try r.next()!
            var list: [Int64] = []
            try r.appendInts(k, to: &list, limit: 10, "e")
            #expect(list == [1, 300])
            #expect(try r.next() == nil)
        }
        // Groups (wire types 3, 4), field number 0, a length past the end, a wrong wire type for a known field.
        for bad: [UInt8] in [[0x0B], [0x0C], [0x00, 0x01], [0x12, 0x05, 0x61], [0x1D, 0x00, 0x00]] {
            #expect(throws: FaceEmbedError.self) {
                try reader(bad) { (r: inout ProtoReader) throws in while let k = try r.next() { try r.skip(k) } }
            }
        }
        #expect(throws: FaceEmbedError.self) {
            try reader([0x08, 0x01]) { (r: inout ProtoReader) throws in
                let k = try r.next()!; _ = try r.string(k, "name")
            }
        }
    }

    @Test func nestingIsLimited() throws {
        // 40 nested length-delimited messages: opening them one inside the other stops at the depth limit.
        var msg: [UInt8] = []
        for _ in 0..<40 { msg = [0x0A, UInt8(msg.count)] + msg }
        var depth = 0
        #expect(throws: FaceEmbedError.self) {
            try reader(msg) { (r: inout ProtoReader) throws in
                var cur = r
                while let k = try cur.next() { cur = try cur.message(k, "nested"); depth += 1 }
            }
        }
        #expect(depth == ProtoReader.maxDepth)
    }

    @Test func halfPrecision() {
        #expect(halfToFloat(0x3C00) == 1)
        #expect(halfToFloat(0xC000) == -2)
        #expect(halfToFloat(0x7BFF) == 65504)
        #expect(halfToFloat(0x0001) == 0x1p-24)
        #expect(halfToFloat(0x8000) == 0 && halfToFloat(0x8000).sign == .minus)
        #expect(halfToFloat(0x7C00) == .infinity && halfToFloat(0x7E00).isNaN)
        #expect(bfloat16ToFloat(0x3FC0) == 1.5 && bfloat16ToFloat(0xC000) == -2)
    }

    #if !(os(macOS) && arch(x86_64))
    @Test func halfPrecisionMatchesFloat16OnEveryBitPattern() {
        // The ONNX and MXNet readers share halfToFloat: bit for bit the platform's conversion (the hardware may quiet
        // a signalling NaN, so NaNs need only be NaNs).
        let differing = (0...0xFFFF).filter {
            let mine = halfToFloat(UInt16($0)), platform = Float(Float16(bitPattern: UInt16($0)))
            return mine.bitPattern != platform.bitPattern && !(mine.isNaN && platform.isNaN)
        }
        #expect(differing.isEmpty, "\(differing.prefix(8))")
    }
    #endif

    // MARK: ONNX reader

    @Test func readsGraphStructure() throws {
        let m = try ONNXModel(path: ONNXFixtures.path("preprocess"))
        #expect(m.irVersion == 7 && m.defaultOpset == 13)
        #expect(m.graph.inputs.first?.name == "data")
        #expect(m.graph.inputs.first.map { $0.dims! } == [nil, 3, 112, 112])
        let ops = m.graph.nodes.map(\.opType)
        #expect(Array(ops.prefix(3)) == ["Constant", "Sub", "Mul"])
        let conv = m.graph.nodes.first { $0.opType == "Conv" }!
        guard case let .ints(k)? = conv.attributes["kernel_shape"] else { Issue.record("no kernel_shape"); return }
        #expect(k == [3, 3])
        // Initializers refer to the file: raw_data ranges, no copies.
        let w = m.graph.initializers.first { $0.name == conv.inputs[1] }!
        #expect(w.dims == [8, 3, 3, 3] && w.dataType == .float)
        guard case let .bytes(ranges) = w.storage else { Issue.record("weights were copied"); return }
        #expect(ranges.reduce(0) { $0 + $1.count } == 8 * 27 * 4)
        #expect(w.floats(m.bytes).count == 216)
    }

    @Test func truncatedAndCorruptedFilesFailCleanly() throws {
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: ONNXFixtures.path("unknown_ops"))))
        func attempt(_ bytes: [UInt8]) {
            bytes.withUnsafeBytes { p in
                do {
                    let m = try ONNXModel(bytes: p, file: nil, owner: nil)
                    _ = try? ONNXImporter.importModel(m, name: "x")
                } catch {}
            }
        }
        for n in 0..<data.count { attempt(Array(data.prefix(n))) }
        var rng = SeededRandom(seed: 7)
        let big = try [UInt8](Data(contentsOf: URL(fileURLWithPath: ONNXFixtures.path("matmul_head"))))
        for _ in 0..<300 {
            var b = Bool.random(using: &rng) ? data : big
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            attempt(b)
        }
        #expect(throws: FaceEmbedError.self) {
            try [UInt8]().withUnsafeBytes { _ = try ONNXModel(bytes: $0, file: nil, owner: nil) }
        }
        #expect(throws: FaceEmbedError.self) {
            try ONNXModel(path: TestPaths.fixtures.appendingPathComponent("onnx/onnx-quirks.json").path)
        }
    }

    // MARK: Import vs onnxruntime

    @Test(
        "quirk graphs match onnxruntime",
        arguments: ["prelu_shapes", "bn_spatial", "gemm_4d", "preprocess", "matmul_head"])
    func quirkGraph(_ name: String) throws {
        let meta = try loadJSON(ONNXFixtures.folder.appendingPathComponent("onnx-quirks.json").path)
        let seeds = (meta["seeds"] as! [NSNumber]).map(\.uint32Value)
        let firstBytes = meta["first_bytes"] as! [String: [NSNumber]]
        let expected = floatRows((meta["cases"] as! [String: Any])[name].flatMap { ($0 as! [String: Any])["outputs"] })
        #expect(expected.count == seeds.count)
        let m = try ONNXFixtures.load(ONNXFixtures.path(name), as: name)
        #expect(m.kind == (name == "preprocess" ? .mobileFaceNet : .arcface))
        #expect(m.embeddingSize == 16)
        let plan = m.network.plan
        if name == "preprocess" {
            #expect(plan.inputMean == 127.5 && plan.inputScale == 0.0078125)
        } else {
            #expect(plan.inputMean == 127.5 && plan.inputScale == 1 / 127.5)
        }
        for (seed, want) in zip(seeds, expected) {
            let image = try ONNXFixtures.image(seed: seed)
            #expect(Array(image.pixels.prefix(8)) == firstBytes["\(seed)"]!.map(\.uint8Value))
            let got = try m.embedding(for: image).values
            expectClose(got, want, maxAbs: 1e-4, "\(name) seed \(seed)")
            print("ONNX \(name) seed \(seed) vs onnxruntime: \(Closeness(got, want))")
        }
    }

    @Test func fusionFoldsBatchNormsAndEpilogues() throws {
        // bn_spatial: conv+BN+PReLU, conv+BN+residual add, standalone BN → next conv's input affine, Gemm+BN.
        let plan = try ONNXFixtures.load(ONNXFixtures.path("bn_spatial"), as: "bn_spatial").network.plan
        #expect(plan.layers.count == 4)
        guard case let .convolution(c0) = plan.layers[0], case let .convolution(c1) = plan.layers[1],
            case let .convolution(c2) = plan.layers[2], case .fullyConnected = plan.layers[3]
        else {
            Issue.record("unexpected layers \(plan.layers)"); return
        }
        #expect(c0.slope != nil && c1.residual != nil && c2.inputScale != nil)
    }

    @Test func unknownOperatorsAreRefusedByName() throws {
        let out = TestModels.folder.appendingPathComponent("onnx-unknown.feb").path
        do {
            try ModelConverter.convertONNX(ONNXFixtures.path("unknown_ops"), to: out)
            Issue.record("a graph with Relu and GlobalAveragePool was accepted")
        } catch {
            let text = error.description
            #expect(
                text.contains("GlobalAveragePool") && text.contains("Relu") && text.contains("unknown_ops.onnx.bin"),
                "\(text)")
            guard case .unsupportedModel = error else { Issue.record("wrong error kind: \(error)"); return }
        }
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test func unsupportedConstructsAreRefusedWithReasons() throws {
        let meta = try loadJSON(ONNXFixtures.folder.appendingPathComponent("onnx-quirks.json").path)
        let cases = meta["refusals"] as! [String: String]
        #expect(cases.count >= 7)
        for (name, phrase) in cases.sorted(by: { $0.key < $1.key }) {
            let out = TestModels.folder.appendingPathComponent("onnx-refuse-\(name).feb").path
            do {
                try ModelConverter.convertONNX(ONNXFixtures.path("refuse_\(name)"), to: out)
                Issue.record("\(name) was accepted")
            } catch {
                #expect(error.description.contains(phrase), "\(name): \(error)")
            }
        }
    }

    // MARK: The real model

    @Test func realW600KMobileFaceNetMatchesOnnxruntimeOnLFW() throws {
        guard let onnx = TestPaths.local("onnx/w600k_mbf.onnx"), let json = TestPaths.local("onnx/w600k_mbf-lfw.json")
        else {
            print("make it with: python Tools/make_onnx_fixtures.py --local")
            return
        }
        let m = try ONNXFixtures.load(onnx, as: "w600k_mbf")
        #expect(m.kind == .mobileFaceNet && m.embeddingSize == 512 && m.name == "MobileFaceNet")
        let expected = try loadJSON(json)
        let images = expected["images"] as! [String]
        let outputs = floatRows(expected["outputs"])
        #expect(images.count >= 16 && outputs.count == images.count)
        var worstAbs: Float = 0, worstCosine = 1.0, jpegWorst = 1.0
        for (i, name) in images.enumerated() {
            let ppm = TestPaths.local.appendingPathComponent("onnx/lfw-ppm/\(name.dropLast(4)).ppm").path
            let e = try m.embedding(for: try ImageDecoder.load(path: ppm)).values
            expectClose(e, outputs[i], maxAbs: 1e-4, name)
            let c = Closeness(e, outputs[i])
            worstAbs = max(worstAbs, c.maxAbs); worstCosine = min(worstCosine, c.cosine)
            // FaceEmbed's own JPEG decoder on the original file: decoder differences only.
            if i < 4, let jpg = TestPaths.shared("lfw/lfw-112x112/\(name)") {
                let j = try m.embedding(for: try ImageDecoder.load(path: jpg)).values
                jpegWorst = min(jpegWorst, Closeness(j, outputs[i]).cosine)
            }
        }
        #expect(jpegWorst >= 0.999)
        print(
            "w600k_mbf on \(images.count) LFW images vs onnxruntime: worst max abs \(worstAbs), worst cosine \(worstCosine); from FaceEmbed's JPEG decode (4 images): worst cosine \(jpegWorst)"
        )
    }
}
