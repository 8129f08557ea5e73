import FaceEmbedTestSupport
import Foundation
import Testing

@testable import FaceEmbed
@testable import FaceEmbedEvaluation
@testable import FaceEmbedImport

// LFW evaluation: the insightface protocol on synthetic distances with known answers, the pairs-file parser, the
// flip, and the real y1 model against MXNet's recorded LFW run (Fixtures/lfw-mxnet.json, made by
// `Tools/lfw_mxnet.py --fixture`). The full 6000-pair run is `faceembed eval-lfw` (about 15,400 forward passes,
// minutes on two cores); the test embeds the first fold's 600 pairs and checks every MXNet number it can.

struct LFWTests {
    // MARK: protocol

    /// 10 folds of `perFold` pairs, alternating same/different, with distances from `distance(index, same)`.
    func synthetic(perFold: Int = 60, _ distance: (Int, Bool) -> Double) -> (d: [Double], same: [Bool]) {
        var d: [Double] = [], s: [Bool] = []
        for i in 0..<(10 * perFold) {
            let same = i % 2 == 0
            s.append(same)
            d.append(distance(i, same))
        }
        return (d, s)
    }

    @Test func perfectlySeparableGivesHundredPercent() throws {
        // Same pairs at 0.50, 0.52, ..., 0.58, different ones at 1.51, ..., 1.59: every threshold in (0.58, 1.51]
        // separates them; the first best on the grid is 0.59 (strictly greater than the largest same distance).
        let (d, s) = synthetic { i, same in (same ? 0.5 : 1.5) + Double(i % 10) * 0.01 }
        let r = try LFWProtocol.evaluate(distances: d, same: s)
        #expect(r.foldAccuracies == Array(repeating: 1.0, count: 10))
        #expect(r.mean == 1 && r.standardDeviation == 0)
        #expect(r.foldThresholds.allSatisfy { $0 == 59 * 0.01 }, "\(r.foldThresholds)")
        #expect(abs(r.meanCosineThreshold - 0.705) < 1e-12)
        #expect(r.decisions(distances: d) == s)
    }

    @Test func thresholdIsStrictAndFirstBest() throws {
        // A same pair exactly on a grid value (0.6) is only called same by the next threshold, 0.61.
        let (d, s) = synthetic { _, same in same ? 0.6 : 1.0 }
        let r = try LFWProtocol.evaluate(distances: d, same: s)
        #expect(r.foldThresholds.allSatisfy { $0 == 61 * 0.01 }, "\(r.foldThresholds)")
        #expect(r.mean == 1)
        // Nothing separable (all distances equal): every threshold ≤ d gives 50 %, the first, 0, wins.
        let flat = try LFWProtocol.evaluate(distances: Array(repeating: 1.0, count: 600), same: s)
        #expect(flat.foldThresholds.allSatisfy { $0 == 0 } && flat.mean == 0.5)
    }

    @Test func heldOutFoldUsesTheOtherFoldsThreshold() throws {
        // Folds 0-8: same at 0.2, different at 0.4 (best thresholds 0.21...0.40, first 0.21). Fold 9: its same
        // pairs sit at 0.3, so it alone would prefer 0.31, but its threshold comes from the other nine: 0.21,
        // which calls all its same pairs different: 50 % on fold 9. Folds 0-8 see fold 9 in training, where
        // 0.31 is best overall (0.31 separates every fold), so they get 0.31 and 100 %.
        let (d, s) = synthetic { i, same in same ? (i >= 540 ? 0.3 : 0.2) : 0.4 }
        let r = try LFWProtocol.evaluate(distances: d, same: s)
        #expect(r.foldThresholds[9] == 21 * 0.01)
        #expect(r.foldAccuracies[9] == 0.5)
        #expect(r.foldThresholds[0..<9].allSatisfy { $0 == 31 * 0.01 }, "\(r.foldThresholds)")
        #expect(r.foldAccuracies[0..<9].allSatisfy { $0 == 1 })
        #expect(abs(r.mean - 0.95) < 1e-12)
        #expect(abs(r.standardDeviation - 0.15) < 1e-12, "population std: sqrt((9 * 0.05² + 0.45²) / 10) = 0.15")
    }

    @Test func matchesABruteForceGridSearch() throws {
        // Random overlapping distances: the counting implementation equals the obvious 400-threshold search.
        var rng = SystemRandomNumberGenerator()
        var d: [Double] = [], s: [Bool] = []
        for i in 0..<1003 {  // 1003 pairs: KFold gives the first three folds 101 pairs
            let same = Bool.random(using: &rng)
            s.append(same)
            d.append(
                i % 50 == 0
                    ? Double(Int.random(in: 0...400, using: &rng)) * 0.01
                    : (same ? 1.0 : 1.5) + Double.random(in: -0.6...0.6, using: &rng))
        }
        let r = try LFWProtocol.evaluate(distances: d, same: s)
        let sizes = LFWProtocol.foldSizes(count: 1003, folds: 10)
        #expect(sizes == [101, 101, 101, 100, 100, 100, 100, 100, 100, 100] && r.foldSizes == sizes)
        var start = 0
        for f in 0..<10 {
            let test = start..<(start + sizes[f])
            func correct(_ t: Double, _ idx: [Int]) -> Int { idx.filter { (d[$0] < t) == s[$0] }.count }
            let train = d.indices.filter { !test.contains($0) }
            var best = 0, bestC = -1
            for i in 0..<400 where correct(Double(i) * 0.01, train) > bestC {
                bestC = correct(Double(i) * 0.01, train); best = i
            }
            #expect(r.foldThresholds[f] == Double(best) * 0.01)
            #expect(r.foldAccuracies[f] == Double(correct(Double(best) * 0.01, Array(test))) / Double(sizes[f]))
            start += sizes[f]
        }
    }

    @Test func rejectsBadInput() {
        #expect(throws: FaceEmbedError.self) { try LFWProtocol.evaluate(distances: [1, 2], same: [true]) }
        #expect(throws: FaceEmbedError.self) {
            try LFWProtocol.evaluate(distances: [1, 2, 3], same: [true, false, true])
        }
        #expect(throws: FaceEmbedError.self) {
            try LFWProtocol.evaluate(
                distances: Array(repeating: .nan, count: 20), same: Array(repeating: true, count: 20))
        }
    }

    @Test func squaredDistanceAndCosine() {
        let a = Embedding([3, 4]), b = Embedding([-4, 3])  // orthogonal: unit distance² = 2, cosine 0
        #expect(abs(LFWProtocol.squaredDistance(a, b) - 2) < 1e-12)
        #expect(abs(LFWProtocol.squaredDistance(a, Embedding([6, 8]))) < 1e-12)
        #expect(LFWProtocol.cosine(forSquaredDistance: 1.24) == 1 - 0.62)
        #expect(LFWProtocol.thresholds.count == 400 && LFWProtocol.thresholds.last == 399 * 0.01)
    }

    // MARK: pairs file

    @Test func parsesPairs() throws {
        let text = "2 1\nAbel_Pacheco\t1\t4\nA_B 2 C_D 10\nX 1 2\r\nY 3 Z 1\n\n"
        let p = try LFWPairs(text: text, file: "pairs.txt")
        #expect(p.folds == 2 && p.pairsPerFold == 1 && p.pairs.count == 4)
        #expect(
            p.pairs[0]
                == LFWPair(
                    first: LFWImage(name: "Abel_Pacheco", number: 1), second: LFWImage(name: "Abel_Pacheco", number: 4),
                    same: true))
        #expect(
            p.pairs[1]
                == LFWPair(
                    first: LFWImage(name: "A_B", number: 2), second: LFWImage(name: "C_D", number: 10), same: false))
        #expect(p.pairs.map(\.same) == [true, false, true, false])
        #expect(p.pairs[1].second.relativePath() == "C_D/C_D_0010.jpg")
        #expect(p.pairs[0].first.relativePath(extension: "ppm") == "Abel_Pacheco/Abel_Pacheco_0001.ppm")
        #expect(
            p.uniqueImages.map { $0.relativePath(extension: "") } == [
                "A_B/A_B_0002.", "Abel_Pacheco/Abel_Pacheco_0001.",
                "Abel_Pacheco/Abel_Pacheco_0004.", "C_D/C_D_0010.", "X/X_0001.", "X/X_0002.", "Y/Y_0003.", "Z/Z_0001.",
            ])
    }

    @Test(arguments: [
        ("", "pairs.txt:1: empty"),
        ("ten 300\n", "pairs.txt:1: expected a header"),
        ("1 1\nA 1\nB 1 C 2\n", "pairs.txt:2: expected a matched pair"),
        ("1 1\nA 1 2\nB 1 2\n", "pairs.txt:3: expected a mismatched pair"),
        ("1 1\nA 1 x\nB 1 C 2\n", "pairs.txt:2: image number \"x\""),
        ("1 1\nA 1 2\nB 0 C 2\n", "pairs.txt:3: image number \"0\""),
        ("1 1\nA 1 2\n", "pairs.txt:2: the header promises 2 pairs"),
        ("1 1\nA 1 2\nB 1 C 2\nD 1 2\n", "pairs.txt:4: more pairs"),
    ])
    func rejectsMalformedPairs(text: String, message: String) {
        do {
            _ = try LFWPairs(text: text, file: "pairs.txt")
            Issue.record("accepted \(text.debugDescription)")
        } catch {
            #expect(error.description.hasPrefix(message), "\(error.description)")
        }
    }

    @Test func missingPairsFileNamesIt() {
        do {
            _ = try LFWPairs(contentsOf: "/nonexistent/pairs.txt")
            Issue.record("no error")
        } catch {
            #expect(error.description.contains("/nonexistent/pairs.txt"), "\(error)")
        }
    }

    @Test func realPairsFileParses() throws {
        guard let path = TestPaths.shared("lfw/pairs.txt") else { return }
        let p = try LFWPairs(contentsOf: path)
        #expect(p.folds == 10 && p.pairsPerFold == 300 && p.pairs.count == 6000)
        #expect(p.pairs.filter(\.same).count == 3000)
        #expect(p.uniqueImages.count == 7701)
    }

    // MARK: flip

    @Test func horizontalFlip() throws {
        let img = try RGBImage(width: 3, height: 2, pixels: Array(0..<18))
        let f = img.horizontallyFlipped()
        #expect(f.width == 3 && f.height == 2)
        #expect(f.pixels == [6, 7, 8, 3, 4, 5, 0, 1, 2, 15, 16, 17, 12, 13, 14, 9, 10, 11])
        #expect(f.horizontallyFlipped() == img)
        let one = try RGBImage(width: 1, height: 1, pixels: [1, 2, 3])
        #expect(one.horizontallyFlipped() == one)
    }

    // MARK: real y1 vs MXNet

    @Test func recordedMXNetRunReproducesWithThisProtocol() throws {
        // The protocol applied to MXNet's own 6000 distances gives MXNet's (numpy's) fold thresholds, accuracies
        // and decisions exactly.
        let fixture = try loadJSON(TestPaths.fixtures.appendingPathComponent("lfw-mxnet.json").path)
        let pairsPath = TestPaths.shared("lfw/pairs.txt")
        for v in ["flip", "plain"] {
            let r = fixture[v] as! [String: Any]
            let d = (r["distances"] as! [NSNumber]).map(\.doubleValue)
            #expect(d.count == 6000)
            let decisions = (r["decisions"] as! String).map { $0 == "1" }
            let same: [Bool]
            if let pairsPath {
                same = try LFWPairs(contentsOf: pairsPath).pairs.map(\.same)
            } else {
                same = (0..<6000).map { ($0 / 300) % 2 == 0 }  // view2 order: 300 matched, then 300 mismatched
            }
            let ours = try LFWProtocol.evaluate(distances: d, same: same)
            #expect(ours.foldThresholds == (r["fold_thresholds"] as! [NSNumber]).map(\.doubleValue), "\(v)")
            // numpy's mean of booleans may differ from count / 600 in the last bit.
            let mxAcc = (r["fold_accuracies"] as! [NSNumber]).map(\.doubleValue)
            #expect(
                zip(ours.foldAccuracies, mxAcc).allSatisfy { abs($0 - $1) < 1e-12 },
                "\(v): \(ours.foldAccuracies) vs \(mxAcc)")
            #expect(abs(ours.mean - (r["accuracy_mean"] as! NSNumber).doubleValue) < 1e-12)
            #expect(abs(ours.standardDeviation - (r["accuracy_std"] as! NSNumber).doubleValue) < 1e-12)
            #expect(ours.decisions(distances: d) == decisions)
        }
    }

    /// The first view2 fold as a two-fold pairs file (150 matched and 150 mismatched pairs each), and where each of
    /// its pairs stands in view2.
    static func firstFold(_ view2: LFWPairs) throws -> (pairs: LFWPairs, view2Index: [Int]) {
        let order = Array(0..<150) + Array(300..<450) + Array(150..<300) + Array(450..<600)
        return (try subset(view2, folds: 2, order), order)
    }

    /// The pairs of `view2` at `indices`, in that order, as a pairs file of `folds` folds.
    static func subset(_ view2: LFWPairs, folds: Int, _ indices: [Int]) throws -> LFWPairs {
        let lines = indices.map { i -> String in
            let p = view2.pairs[i]
            return p.same
                ? "\(p.first.name) \(p.first.number) \(p.second.number)"
                : "\(p.first.name) \(p.first.number) \(p.second.name) \(p.second.number)"
        }
        return try LFWPairs(text: "\(folds) \(indices.count / folds / 2)\n" + lines.joined(separator: "\n"))
    }

    @Test func realModelMatchesMXNetOnTheFirstFold() throws {
        // LFWEvaluation.run, as `faceembed eval-lfw` uses it, on view2's first fold: every distance within 1e-4 of
        // MXNet's, and the same decisions at MXNet's threshold for that fold.
        guard let symbol = TestPaths.shared("models/mobilefacenet-arcface/model-symbol.json"),
            let params = TestPaths.shared("models/mobilefacenet-arcface/model-0000.params"),
            let pairsPath = TestPaths.shared("lfw/pairs.txt"),
            let imagesDir = TestPaths.shared("lfw/lfw-112x112")
        else { return }
        let fixture = try loadJSON(TestPaths.fixtures.appendingPathComponent("lfw-mxnet.json").path)
        let model = try TestModels.load("y1", symbol: symbol, params: params)
        let (pairs, view2Index) = try Self.firstFold(try LFWPairs(contentsOf: pairsPath))
        var reported: [Int] = []
        let run = try LFWEvaluation.run(model: model, pairs: pairs, imagesDirectory: imagesDir) { done, _ in
            reported.append(done)
        }
        #expect(reported.last == run.imageCount && run.forwardPasses == 2 * run.imageCount)
        for (v, scores) in [("plain", run.plain), ("flip", run.flip!)] {
            let r = fixture[v] as! [String: Any]
            let mxd = (r["distances"] as! [NSNumber]).map(\.doubleValue)
            let mxDecisions = (r["decisions"] as! String).map { $0 == "1" }
            let threshold = (r["fold_thresholds"] as! [NSNumber])[0].doubleValue
            var worst = 0.0, disagreements = 0
            for (i, d) in scores.distances.enumerated() {
                worst = max(worst, abs(d - mxd[view2Index[i]]))
                if (d < threshold) != mxDecisions[view2Index[i]] { disagreements += 1 }
            }
            print(
                "y1 LFW fold 1 (\(pairs.pairs.count) pairs, \(run.imageCount) images) \(v): max |distance - MXNet| \(worst), "
                    + "\(disagreements) decisions differ at MXNet's threshold \(threshold)")
            #expect(worst <= 1e-4, "\(v): max distance difference \(worst)")
            #expect(disagreements == 0, "\(v)")
        }
    }

    @Test func evaluationWithoutFlipRunsOnePassPerImage() throws {
        guard let symbol = TestPaths.shared("models/mobilefacenet-arcface/model-symbol.json"),
            let params = TestPaths.shared("models/mobilefacenet-arcface/model-0000.params"),
            let pairsPath = TestPaths.shared("lfw/pairs.txt"),
            let imagesDir = TestPaths.shared("lfw/lfw-112x112")
        else { return }
        let model = try TestModels.load("y1", symbol: symbol, params: params)
        let pairs = try Self.subset(try LFWPairs(contentsOf: pairsPath), folds: 2, [0, 1, 300, 301, 2, 3, 302, 303])
        let plainOnly = try LFWEvaluation.run(
            model: model, pairs: pairs, imagesDirectory: imagesDir, flip: false, batch: 3)
        let both = try LFWEvaluation.run(model: model, pairs: pairs, imagesDirectory: imagesDir)
        #expect(plainOnly.flip == nil && plainOnly.forwardPasses == plainOnly.imageCount)
        #expect(plainOnly.plain.distances == both.plain.distances, "batch size and flip do not change plain distances")
        expectError(
            thrown { try LFWEvaluation.run(model: model, pairs: pairs, imagesDirectory: "/nonexistent") },
            "io", "/nonexistent/")
    }
}
