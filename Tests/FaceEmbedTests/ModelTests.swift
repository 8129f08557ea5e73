import FaceEmbedTestSupport
import Foundation
import Testing

@testable import FaceEmbed
@testable import FaceEmbedEvaluation
@testable import FaceEmbedImport

// Whole models against MXNet's own fc1 on the same weights and pixels.
// Tolerances (raw fc1): MobileFaceNet max abs ≤ 1e-4, LResNet-IR ≤ 1e-3; cosine ≥ 0.99999 for every image.
// Cosine alone proves little: a 1/127.5 input scale instead of 1/128 keeps cosine above 0.99999.

/// Converted test models, made once per test run in a temporary folder.
enum TestModels {
    static let folder: URL = {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("faceembed-tests-\(getpid())")
        try? FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }()

    /// Converts `symbol` + `params` (once) and loads the result.
    static func load(_ name: String, symbol: String, params: String, threads: Int? = nil) throws -> FaceModel {
        let out = folder.appendingPathComponent("\(name).feb").path
        if !FileManager.default.fileExists(atPath: out) {
            try ModelConverter.convertMXNet(symbol: symbol, params: params, to: out)
        }
        return try FaceModel(contentsOf: out, threads: threads)
    }

    /// A committed tiny model (Fixtures/NAME/model-symbol.json + model-0000.ndarray).
    static func tiny(_ name: String, threads: Int? = nil) throws -> FaceModel {
        let dir = TestPaths.fixtures.appendingPathComponent(name)
        return try load(
            name, symbol: dir.appendingPathComponent("model-symbol.json").path,
            params: dir.appendingPathComponent("model-0000.ndarray").path, threads: threads)
    }
}

/// Checks every image listed in `folder/expected.json` against MXNet's fc1.
func expectMatchesMXNet(
    _ model: FaceModel, folder: String, maxAbs: Float, sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let expected = try loadJSON(folder + "/expected.json")
    let images = expected["images"] as! [String]
    let fc1 = floatRows(expected["fc1"])
    #expect(images.count == fc1.count && !images.isEmpty)
    let faces = try images.map { try ImageDecoder.load(path: folder + "/" + $0) }
    let batch = try model.embeddings(for: faces)
    for (i, face) in faces.enumerated() {
        let e = try model.embedding(for: face)
        #expect(e.values.count == model.embeddingSize)
        expectClose(e.values, fc1[i], maxAbs: maxAbs, "\(folder)/\(images[i])", sourceLocation: sourceLocation)
        #expect(batch[i] == e, "batch and single embeddings agree exactly", sourceLocation: sourceLocation)
        print("\(model.name) \(images[i]): \(Closeness(e.values, fc1[i]))")
    }
}

struct ModelTests {
    @Test func tinyMobileFaceNetMatchesMXNet() throws {
        let m = try TestModels.tiny("tiny-mobilefacenet")
        #expect(m.kind == .mobileFaceNet && m.embeddingSize == 128)
        try expectMatchesMXNet(
            m, folder: TestPaths.fixtures.appendingPathComponent("tiny-mobilefacenet").path, maxAbs: 1e-4)
    }

    @Test func tinyIResNetMatchesMXNet() throws {
        let m = try TestModels.tiny("tiny-iresnet")
        #expect(m.kind == .iresnet && m.name == "LResNet12E-IR" && m.embeddingSize == 64)
        try expectMatchesMXNet(m, folder: TestPaths.fixtures.appendingPathComponent("tiny-iresnet").path, maxAbs: 1e-4)
    }

    @Test func fixtureQuirksArePresent() throws {
        // The tiny MobileFaceNet's backbone batch norms omit eps (MXNet's default 1e-3 applies) and its fc1 stores a
        // gamma of 3.7 that fix_gamma must ignore: the match above is only possible if both are honoured.
        let dir = TestPaths.fixtures.appendingPathComponent("tiny-mobilefacenet")
        let symbol = try MXNetSymbol(
            json: try readFile(dir.appendingPathComponent("model-symbol.json").path), file: nil)
        let bns = symbol.nodes.filter { $0.op == "BatchNorm" }
        #expect(bns.dropLast().allSatisfy { $0.attrs["eps"] == nil })
        #expect(bns.last?.attrs["fix_gamma"] == "True")
        let file = try MappedFile(path: dir.appendingPathComponent("model-0000.ndarray").path)
        let params = try MXNetParams(bytes: file.bytes, file: nil)
        #expect(params.floats(try params.array("fc1_gamma")).allSatisfy { $0 == 3.7 })
    }

    @Test func threadCountsGiveIdenticalEmbeddings() throws {
        let one = try TestModels.tiny("tiny-iresnet", threads: 1), two = try TestModels.tiny("tiny-iresnet", threads: 2)
        let face = try ImageDecoder.load(
            path: TestPaths.fixtures.appendingPathComponent("tiny-iresnet/input0.ppm").path)
        expectClose(
            try one.embedding(for: face).values, try two.embedding(for: face).values, maxAbs: 1e-6, cosine: 0.9999999,
            "1 vs 2 threads")
    }

    @Test func pixelFormatsGiveTheSameEmbedding() throws {
        let m = try TestModels.tiny("tiny-mobilefacenet")
        let face = try ImageDecoder.load(
            path: TestPaths.fixtures.appendingPathComponent("tiny-mobilefacenet/input1.ppm").path)
        let reference = try m.embedding(for: face)
        let n = 112 * 112
        var bgr = face.pixels, rgba = [UInt8](repeating: 255, count: n * 4),
            planarBGR = [UInt8](repeating: 0, count: n * 3)
        var padded = [UInt8](repeating: 0, count: 112 * 400)
        for p in 0..<n {
            let (r, g, b) = (face.pixels[3 * p], face.pixels[3 * p + 1], face.pixels[3 * p + 2])
            bgr[3 * p] = b; bgr[3 * p + 2] = r
            rgba[4 * p] = r; rgba[4 * p + 1] = g; rgba[4 * p + 2] = b
            planarBGR[p] = b; planarBGR[n + p] = g; planarBGR[2 * n + p] = r
            let (y, x) = (p / 112, p % 112)
            padded[y * 400 + 3 * x] = r; padded[y * 400 + 3 * x + 1] = g; padded[y * 400 + 3 * x + 2] = b
        }
        for (bytes, format, stride) in [
            (bgr, PixelFormat.bgr, nil), (rgba, .rgba, nil), (planarBGR, .planarBGR, nil), (padded, .rgb, 400),
        ] {
            let e = try bytes.withUnsafeBufferPointer {
                try m.embedding(pixels: $0, width: 112, height: 112, format: format, rowStride: stride)
            }
            #expect(e == reference, "\(format)")
        }
        #expect(throws: FaceEmbedError.self) {
            try bgr.withUnsafeBufferPointer { try m.embedding(pixels: $0, width: 111, height: 112, format: .bgr) }
        }
        #expect(throws: FaceEmbedError.self) {
            try Array(bgr.prefix(100)).withUnsafeBufferPointer {
                try m.embedding(pixels: $0, width: 112, height: 112, format: .bgr)
            }
        }
    }

    @Test func realMobileFaceNetMatchesMXNetOnLFW() throws {
        guard let symbol = TestPaths.shared("models/mobilefacenet-arcface/model-symbol.json"),
            let params = TestPaths.shared("models/mobilefacenet-arcface/model-0000.params"),
            TestPaths.local("lfw-ppm") != nil
        else { return }
        let m = try TestModels.load("y1", symbol: symbol, params: params)
        #expect(m.kind == .mobileFaceNet && m.embeddingSize == 128 && m.parameterCount == 993_344)
        let expected = try loadJSON(TestPaths.fixtures.appendingPathComponent("y1-lfw.json").path)
        let images = expected["images"] as! [String]
        let fc1 = floatRows(expected["fc1"])
        #expect(images.count >= 16)
        var worstAbs: Float = 0, worstCosine = 1.0
        for (i, name) in images.enumerated() {
            let stem = String(name.dropLast(4))
            // RGB file through the RGB path, and the BGR copy through the library's BGR pixel format.
            let rgb = try m.embedding(
                for: try ImageDecoder.load(path: TestPaths.local.appendingPathComponent("lfw-ppm/\(stem).ppm").path))
            let bgrFile = try ImageDecoder.load(
                path: TestPaths.local.appendingPathComponent("lfw-ppm-bgr/\(stem).ppm").path)
            let bgr = try bgrFile.pixels.withUnsafeBufferPointer {
                try m.embedding(pixels: $0, width: 112, height: 112, format: .bgr)
            }
            for (e, order) in [(rgb, "RGB"), (bgr, "BGR")] {
                expectClose(e.values, fc1[i], maxAbs: 1e-4, "\(name) \(order)")
                let c = Closeness(e.values, fc1[i])
                worstAbs = max(worstAbs, c.maxAbs); worstCosine = min(worstCosine, c.cosine)
            }
        }
        print(
            "y1 on \(images.count) LFW images (RGB and BGR) vs MXNet: worst max abs \(worstAbs), worst cosine \(worstCosine)"
        )
    }

    @Test("deep LResNet-IR with seeded random weights matches MXNet", arguments: ["r34", "r100"])
    func deepIResNetMatchesMXNet(_ name: String) throws {
        guard let symbol = TestPaths.local("\(name)/model-symbol.json"),
            let params = TestPaths.local("\(name)/model-0000.params")
        else {
            print("make it with: python Tools/make_fixtures.py --local")
            return
        }
        let m = try TestModels.load(name, symbol: symbol, params: params)
        #expect(m.kind == .iresnet && m.embeddingSize == 512)
        #expect(m.name == (name == "r100" ? "LResNet100E-IR" : "LResNet34E-IR"))
        if name == "r100" { #expect(m.parameterCount == 65_130_944) }
        try expectMatchesMXNet(m, folder: TestPaths.local.appendingPathComponent(name).path, maxAbs: 1e-3)
    }
}
