import FaceEmbedTestSupport
import Foundation
import Testing

@testable import FaceEmbed
@testable import FaceEmbedEvaluation
@testable import FaceEmbedImport

// Five-point alignment against insightface's own (skimage SimilarityTransform + cv2.warpAffine, made by
// Tools/make_alignment_fixtures.py), and real portraits from photo to verdict.

struct AlignmentTests {
    static func fixture() throws -> [[String: Any]] {
        try loadJSON(TestPaths.fixtures.appendingPathComponent("alignment.json").path)["portraits"] as! [[String: Any]]
    }

    static func landmarks(_ row: [String: Any]) throws -> FaceLandmarks {
        let v = (row["landmarks"] as! [Double])
        return try FaceLandmarks((0..<5).map { SIMD2(v[2 * $0], v[2 * $0 + 1]) })
    }

    @Test func transformEqualsSkimageUmeyama() throws {
        for row in try Self.fixture() {
            let t = try SimilarityTransform(from: try Self.landmarks(row).points, to: FaceLandmarks.arcFaceTemplate)
            let m = row["transform"] as! [Double]  // [a, -b, tx, b, a, ty]
            let ours = [t.a, -t.b, t.tx, t.b, t.a, t.ty]
            for i in 0..<6 {
                #expect(
                    abs(ours[i] - m[i]) <= 1e-4 * max(1, abs(m[i])), "\(row["image"]!) [\(i)]: \(ours[i]) vs \(m[i])")
            }
            let back = t.inverse.apply(t.apply(SIMD2(10, 20)))
            #expect(abs(back.x - 10) < 1e-9 && abs(back.y - 20) < 1e-9)
        }
    }

    @Test func landmarksAreParsedAndCheckedStrictly() throws {
        let l = try FaceLandmarks(parsing: "1,2,3,4,5,6,7,8,9,10")
        #expect(l.points[4] == SIMD2(9, 10))
        for bad in ["", "1,2,3", "1,2,3,4,5,6,7,8,9,x", "1,2,3,4,5,6,7,8,9,10,11", "nan,2,3,4,5,6,7,8,9,10"] {
            #expect(throws: FaceEmbedError.self, "\(bad)") { try FaceLandmarks(parsing: bad) }
        }
        let same = try FaceLandmarks(parsing: "5,5,5,5,5,5,5,5,5,5")
        let img = try RGBImage(width: 10, height: 10, pixels: [UInt8](repeating: 9, count: 300))
        #expect(throws: FaceEmbedError.self) { try img.alignedFace(landmarks: same) }
    }

    @Test func cropsMatchInsightfaceWithinOneLevel() throws {
        guard TestPaths.local("aligned") != nil else { return }
        for row in try Self.fixture() {
            let name = row["image"] as! String
            guard let photo = TestPaths.shared("images/portraits/\(name)") else { return }
            let ours = try ImageDecoder.load(path: photo).alignedFace(landmarks: try Self.landmarks(row))
            let theirs = try ImageDecoder.load(
                path: TestPaths.local.appendingPathComponent("aligned/\(name.dropLast(4)).ppm").path)
            var sum = 0, worst = 0
            for (a, b) in zip(ours.pixels, theirs.pixels) {
                let d = abs(Int(a) - Int(b)); sum += d; worst = max(worst, d)
            }
            let mean = Double(sum) / Double(ours.pixels.count)
            #expect(mean <= 1, "\(name): mean absolute difference \(mean)")
            print(
                "align \(name): mean abs difference from insightface's crop \(String(format: "%.3f", mean)), max \(worst)"
            )
        }
    }

    @Test func realPortraitsGetTheRightVerdicts() throws {
        guard let symbol = TestPaths.shared("models/mobilefacenet-arcface/model-symbol.json"),
            let params = TestPaths.shared("models/mobilefacenet-arcface/model-0000.params")
        else { return }
        let model = try TestModels.load("y1", symbol: symbol, params: params)
        var embeddings: [String: Embedding] = [:]
        for row in try Self.fixture() {
            let name = row["image"] as! String
            guard let photo = TestPaths.shared("images/portraits/\(name)") else { return }
            let face = try ImageDecoder.load(path: photo).alignedFace(landmarks: try Self.landmarks(row))
            embeddings[String(name.dropLast(4))] = try model.embedding(for: face)
        }
        let names = embeddings.keys.sorted()
        for (i, a) in names.enumerated() {
            for b in names[(i + 1)...] {
                let same = a.dropLast(2) == b.dropLast(2) && a.hasPrefix("person")
                let sim = embeddings[a]!.cosineSimilarity(to: embeddings[b]!)
                print("portraits \(a) ~ \(b): \(String(format: "%.4f", sim)) \(same ? "(same person)" : "")")
                if same {
                    #expect(sim >= FaceModel.defaultThreshold, "\(a) ~ \(b) is the same person: \(sim)")
                } else {
                    #expect(sim < FaceModel.defaultThreshold, "\(a) ~ \(b) are different people: \(sim)")
                }
            }
        }
    }
}
