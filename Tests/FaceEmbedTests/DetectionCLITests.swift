import FaceEmbed
import Foundation
import Testing

@testable import FaceEmbed
@testable import FaceEmbedImport

// The faceembed executable on real photos with no landmarks from elsewhere: detect, align, embed and compare go
// through the SCRFD detector; its faces are insightface's (Fixtures/detection/expected.json), its crops and
// embeddings the library's, and a photo with no face is one line on stderr and exit 2 (detect: not an error).

/// The models the CLI tests run, each converted once per test process (a static let is initialised once, whatever
/// the test threads) into its own file, so that no test reads a file another is still writing.
enum DetectionCLIModels {
    private static let detectorFile = Result { () throws -> String in
        let out = TestModels.folder.appendingPathComponent("cli-scrfd_500m_bnkps.feb").path
        try ModelConverter.convertONNX(TestPaths.local.appendingPathComponent(DetectorFixture.onnx).path, to: out)
        return out
    }
    private static let w600kFile = Result { () throws -> String in
        let out = TestModels.folder.appendingPathComponent("cli-w600k_mbf.feb").path
        try ModelConverter.convertONNX(TestPaths.local.appendingPathComponent("onnx/w600k_mbf.onnx").path, to: out)
        return out
    }
    private static let y1File = Result { () throws -> String in
        let out = TestModels.folder.appendingPathComponent("cli-y1.feb").path
        let dir = TestPaths.shared.appendingPathComponent("models/mobilefacenet-arcface")
        try ModelConverter.convertMXNet(
            symbol: dir.appendingPathComponent("model-symbol.json").path,
            params: dir.appendingPathComponent("model-0000.params").path, to: out)
        return out
    }

    /// SCRFD converted from `Fixtures-local/detection/scrfd_500m_bnkps.onnx`, or nil (skipped or failed).
    static func detector() throws -> String? {
        guard TestPaths.local(DetectorFixture.onnx) != nil else { return nil }
        return try detectorFile.get()
    }

    /// A recognition model by name: "w600k_mbf" (the default model, from `Fixtures-local/onnx`) or "y1" (the
    /// MXNet MobileFaceNet in `../shared`).
    static func model(_ name: String) throws -> String? {
        switch name {
        case "w600k_mbf":
            guard TestPaths.local("onnx/w600k_mbf.onnx") != nil else { return nil }
            return try w600kFile.get()
        default:
            guard TestPaths.shared("models/mobilefacenet-arcface/model-0000.params") != nil else { return nil }
            return try y1File.get()
        }
    }

    /// A photo of `Fixtures-local/detection/photos`.
    static func photo(_ name: String) -> String? { TestPaths.local("detection/photos/\(name)") }

    /// A scratch folder of its own for one test.
    static func scratch(_ name: String) -> URL {
        let u = TestModels.folder.appendingPathComponent("cli-\(name)")
        try? FileManager.default.removeItem(at: u)
        try? FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }
}

/// Parses the CLI's stdout as JSON.
func parsedJSON(_ r: CLIResult, sourceLocation: SourceLocation = #_sourceLocation) -> Any? {
    guard let o = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) else {
        Issue.record("not JSON (status \(r.status), \(r.stderr)): \(r.stdout)", sourceLocation: sourceLocation)
        return nil
    }
    return o
}

@Suite struct DetectionCLITests {
    typealias M = DetectionCLIModels

    static let portraits = ["person_a_1", "person_a_2", "person_b_1", "person_b_2", "impostor_1", "impostor_2"]

    @Test(arguments: ["w600k_mbf", "y1"])
    func comparePortraitsStraightFromTheJPEGs(model name: String) throws {
        guard let detector = try M.detector(), let model = try M.model(name),
            TestPaths.shared("images/portraits/person_a_1.jpg") != nil
        else { return }
        let folder = TestPaths.shared.appendingPathComponent("images/portraits")
        for (i, a) in Self.portraits.enumerated() {
            for b in Self.portraits[(i + 1)...] {
                let r = try faceembed([
                    "compare", "--model", model, "--detector", detector,
                    folder.appendingPathComponent("\(a).jpg").path, folder.appendingPathComponent("\(b).jpg").path,
                ])
                let same = a.dropLast(2) == b.dropLast(2) && a.hasPrefix("person")
                #expect(r.status == (same ? 0 : 1), "\(name) \(a) \(b): \(r.stdout) \(r.stderr)")
                #expect(r.stdout.hasSuffix(same ? ": same\n" : ": different\n"), "\(name) \(a) \(b): \(r.stdout)")
                print("compare \(name) \(a) \(b): \(r.stdout.dropLast()) (exit \(r.status))")
            }
        }
    }

    /// t1.jpg's runs in expected.json: det_size, max_num and the faces (box, score, landmarks).
    static func t1Runs() throws -> [(size: [Int], maxFaces: Int, faces: [[String: Any]])] {
        let url = TestPaths.fixtures.appendingPathComponent("detection/expected.json")
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        let t1 = (root["photos"] as! [[String: Any]]).first { $0["file"] as? String == "t1.jpg" }!
        return (t1["runs"] as! [[String: Any]]).map {
            ($0["det_size"] as! [Int], $0["max_num"] as! Int, $0["faces"] as! [[String: Any]])
        }
    }

    @Test func detectJSONOnT1GivesInsightfacesFacesAtEveryRunsOptions() throws {
        guard let detector = try M.detector(), let t1 = M.photo("t1.jpg") else { return }
        let runs = try Self.t1Runs()
        #expect(runs.count == 4)
        for run in runs {
            var args = ["detect", "--json", "--detector", detector, t1]
            if run.size != [640, 640] { args += ["--det-size", "\(run.size[0])x\(run.size[1])"] }
            if run.maxFaces != 0 { args += ["--max-faces", "\(run.maxFaces)"] }
            let r = try faceembed(args)
            let label = "t1 at \(run.size), max \(run.maxFaces)"
            #expect(r.status == 0, "\(label): \(r.stderr)")
            guard let j = parsedJSON(r) as? [String: Any], let faces = j["faces"] as? [[String: Any]] else { continue }
            #expect(j["file"] as? String == t1 && j["width"] as? Int == 1280 && j["height"] as? Int == 886)
            guard faces.count == run.faces.count else {
                Issue.record("\(label): \(faces.count) faces, insightface finds \(run.faces.count)")
                continue
            }
            var worst = (box: 0.0, landmark: 0.0, score: 0.0)
            for (got, want) in zip(faces, run.faces) {
                let box = zip(got["box"] as! [Double], want["box"] as! [Double]).map { abs($0 - $1) }.max()!
                let marks = zip(
                    (got["landmarks"] as! [[Double]]).flatMap { $0 }, (want["landmarks"] as! [[Double]]).flatMap { $0 }
                )
                .map { abs($0 - $1) }.max()!
                let score = abs((got["score"] as! Double) - (want["score"] as! Double))
                worst = (max(worst.box, box), max(worst.landmark, marks), max(worst.score, score))
            }
            #expect(worst.box <= 0.5 && worst.landmark <= 0.5 && worst.score <= 0.005, "\(label): \(worst)")
            print("detect --json \(label): \(faces.count) faces, worst \(worst)")
        }
        let text = try faceembed(["detect", "--detector", detector, t1])
        #expect(text.status == 0 && text.stdout.hasPrefix("\(t1): 1280x886, 6 faces\n"), "\(text.stdout)")
        #expect(text.stdout.split(separator: "\n").count == 7)
    }

    @Test func detectBGRReadsAChannelSwappedFileAsItsRGBOriginal() throws {
        guard let detector = try M.detector(), let t1 = M.photo("t1.jpg") else { return }
        let photo = try ImageDecoder.load(path: t1)
        var swapped = photo.pixels
        for p in stride(from: 0, to: swapped.count, by: 3) { swapped.swapAt(p, p + 2) }
        let bgr = TestModels.folder.appendingPathComponent("t1-bgr.ppm").path
        try Data(PPM.encode(RGBImage(width: photo.width, height: photo.height, pixels: swapped)))
            .write(to: URL(fileURLWithPath: bgr))
        let original = try faceembed(["detect", "--json", "--detector", detector, t1])
        let asBGR = try faceembed(["detect", "--json", "--bgr", "--detector", detector, bgr])
        let asRGB = try faceembed(["detect", "--json", "--detector", detector, bgr])
        #expect(original.status == 0 && asBGR.status == 0 && asRGB.status == 0, "\(asBGR.stderr)")
        func faces(_ r: CLIResult) -> String { String(r.stdout.drop { $0 != "[" }) }
        #expect(faces(asBGR) == faces(original))
        #expect(faces(asRGB) != faces(original))
    }

    @Test func detectFindsTheDetectorThroughTheEnvironment() throws {
        guard let detector = try M.detector(), let t1 = M.photo("t1.jpg") else { return }
        let r = try faceembed(["detect", t1], environment: ["FACEEMBED_DETECTOR": detector])
        #expect(r.status == 0 && r.stdout.contains("6 faces"), "\(r.stdout) \(r.stderr)")
        let missing = try faceembed(["detect", t1], environment: ["FACEEMBED_DETECTOR": "/nonexistent/det.feb"])
        #expect(missing.status == 2 && missing.stderr.contains("/nonexistent/det.feb"), "\(missing.stderr)")
    }

    @Test func alignWithoutLandmarksCutsTheLargestFaceAndAllCutsEveryFace() throws {
        guard let detector = try M.detector(), let t1 = M.photo("t1.jpg") else { return }
        let photo = try ImageDecoder.load(path: t1)
        let faces = try FaceDetector(contentsOf: detector).faces(in: photo)
        #expect(faces.count == 6)
        let dir = M.scratch("align")
        let one = dir.appendingPathComponent("largest.ppm").path
        let r = try faceembed(["align", "--detector", detector, t1, "-o", one])
        #expect(r.status == 0, "\(r.stderr)")
        let largest = faces.max { $1.isLarger(than: $0) }!
        let crop = try ImageDecoder.load(path: one)
        #expect(crop.width == 112 && crop.height == 112)
        #expect(crop == (try photo.alignedFace(landmarks: largest.landmarks)))

        let all = try faceembed([
            "align", "--all", "--detector", detector, t1, "-o", dir.appendingPathComponent("f.ppm").path,
        ])
        #expect(all.status == 0, "\(all.stderr)")
        let written = all.stdout.split(separator: "\n").map(String.init)
        #expect(written == (0..<6).map { dir.appendingPathComponent("f-\($0).ppm").path })
        for (path, face) in zip(written, faces.sorted { $0.score > $1.score }) {
            #expect(
                (try ImageDecoder.load(path: path)) == (try photo.alignedFace(landmarks: face.landmarks)), "\(path)")
        }
    }

    @Test func alignLandmarksOverrideDetectionAndNeedNoDetector() throws {
        guard let portrait = TestPaths.shared("images/portraits/person_a_2.jpg") else { return }
        let marks = "272.26,323.18,410.90,317.46,328.62,401.07,286.26,467.23,407.93,462.20"
        let out = M.scratch("align-landmarks").appendingPathComponent("a.ppm").path
        let r = try faceembed(
            ["align", portrait, "--landmarks", marks, "-o", out], environment: ["FACEEMBED_DETECTOR": "/nonexistent"])
        #expect(r.status == 0, "\(r.stderr)")
        let expected = try ImageDecoder.load(path: portrait).alignedFace(landmarks: try FaceLandmarks(parsing: marks))
        #expect((try ImageDecoder.load(path: out)) == expected)
    }

    @Test func embedGivesOneRecordPerFaceWithItsBoxAndTheLibrarysEmbeddings() throws {
        guard let detector = try M.detector(), let model = try M.model("w600k_mbf"), let t1 = M.photo("t1.jpg")
        else { return }
        let r = try faceembed(["embed", "--json", "--model", model, "--detector", detector, t1])
        #expect(r.status == 0, "\(r.stderr)")
        guard let records = parsedJSON(r) as? [[String: Any]] else { return }
        let analyzer = FaceAnalyzer(
            detector: try FaceDetector(contentsOf: detector), model: try FaceModel(contentsOf: model))
        let expected = try analyzer.faces(in: try ImageDecoder.load(path: t1))
        #expect(records.count == 6 && expected.count == 6)
        for (i, (record, face)) in zip(records, expected).enumerated() {
            let b = face.face.box
            #expect(record["file"] as? String == t1 && record["face"] as? Int == i)
            #expect((record["box"] as? [Double])?.map(Float.init) == [b.x1, b.y1, b.x2, b.y2], "face \(i)")
            #expect((record["score"] as? Double).map(Float.init) == face.face.score, "face \(i)")
            let values = (record["embedding"] as? [Double] ?? []).map(Float.init)
            #expect(values.count == 512)
            expectClose(values, face.embedding.values, maxAbs: 1e-5, "t1 face \(i)")
        }
        let text = try faceembed(["embed", "--model", model, "--detector", detector, t1])
        #expect(
            text.stdout.split(separator: "\n").map { $0.split(separator: " ")[0] } == (0..<6).map { "\(t1)#\($0)"[...] }
        )
    }

    @Test func anAligned112x112FaceIsEmbeddedAsItIsWithoutADetector() throws {
        guard let model = try M.model("w600k_mbf"), let face = TestPaths.local("aligned/person_a_1.ppm") else { return }
        let r = try faceembed(
            ["embed", "--json", "--model", model, face], environment: ["FACEEMBED_DETECTOR": "/nonexistent"])
        #expect(r.status == 0, "\(r.stderr)")
        guard let records = parsedJSON(r) as? [[String: Any]], records.count == 1 else { return }
        #expect(records[0]["box"] == nil && records[0]["face"] == nil)
        let expected = try FaceModel(contentsOf: model).embedding(for: try ImageDecoder.load(path: face))
        expectClose((records[0]["embedding"] as! [Double]).map(Float.init), expected.values, maxAbs: 1e-5, "aligned")
        let text = try faceembed(
            ["embed", "--model", model, face], environment: ["FACEEMBED_DETECTOR": "/nonexistent"])
        #expect(text.status == 0 && text.stdout.hasPrefix(face + " "), "\(text.stderr)")
    }

    @Test func aPhotoWithoutAFaceIsOneLineAndExit2ButDetectSaysSo() throws {
        guard let detector = try M.detector(), let model = try M.model("w600k_mbf"), let cat = M.photo("chelsea.png"),
            let portrait = M.photo("person_a_1.jpg")
        else { return }
        let out = M.scratch("noface").appendingPathComponent("face.ppm").path
        for args in [
            ["compare", "--model", model, portrait, cat], ["compare", "--model", model, cat, portrait],
            ["align", cat, "-o", out], ["align", "--all", cat, "-o", out], ["embed", "--model", model, cat],
            ["embed", "--json", "--model", model, portrait, cat],
        ] {
            let r = try faceembed(args + ["--detector", detector])
            let lines = r.stderr.split(separator: "\n")
            #expect(r.status == 2, "\(args): \(r.status)")
            #expect(lines.count == 1 && r.stderr.hasPrefix("faceembed: "), "\(args): \(r.stderr)")
            #expect(r.stderr.contains(cat) && r.stderr.contains("no face found"), "\(args): \(r.stderr)")
            #expect(r.stdout.isEmpty, "\(args): \(r.stdout)")
        }
        #expect(!FileManager.default.fileExists(atPath: out))
        let text = try faceembed(["detect", "--detector", detector, cat])
        #expect(text.status == 0 && text.stdout == "\(cat): 451x300, no face found\n", "\(text.stdout)")
        let json = try faceembed(["detect", "--json", "--detector", detector, cat])
        #expect(json.status == 0)
        #expect((parsedJSON(json) as? [String: Any])?["faces"] as? [Any] != nil)
        #expect(((parsedJSON(json) as? [String: Any])?["faces"] as? [Any])?.isEmpty == true)
    }
}
