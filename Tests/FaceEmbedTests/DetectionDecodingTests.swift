import FaceEmbedTestSupport
import Foundation
import Testing

@testable import FaceEmbed

// SCRFD's post-processing against a plain transcription of Tools/make_detection_fixtures.py's numpy (decode on the
// ONNX [rows, k] layout, NMS by filtering the order, max_num by a reversed ascending sort) on synthetic outputs, and
// against the faces insightface found in t1.jpg from onnxruntime's nine raw outputs (Fixtures-local/detection/t1-640).

/// One level's outputs in the ONNX layout: rows `(y * w + x) * 2 + a`, `k` values a row (1, 4, 10).
private struct RawLevel {
    var stride: Int, height: Int, width: Int
    var scores: [Float], boxes: [Float], points: [Float]

    /// The ONNX `[rows, k]` tensor back in the network's NCHW planes: plane `a * k + j`, location `y * w + x`.
    static func planes(_ raw: [Float], k: Int, locations: Int) -> [Float] {
        var out = [Float](repeating: 0, count: raw.count)
        for l in 0..<locations {
            for a in 0..<2 {
                for j in 0..<k { out[(a * k + j) * locations + l] = raw[(l * 2 + a) * k + j] }
            }
        }
        return out
    }
}

/// The decoder run on raw levels, transposed to NCHW as the network leaves them.
private func decodeRaw(
    _ raw: [RawLevel], letterbox: Letterbox, photoWidth: Int, photoHeight: Int, options: DetectionOptions
) -> [DetectedFace] {
    var all: [Float] = [], offsets: [(Int, Int, Int)] = []
    for level in raw {
        let n = level.height * level.width
        let s = all.count
        all += RawLevel.planes(level.scores, k: 1, locations: n)
        let d = all.count
        all += RawLevel.planes(level.boxes, k: 4, locations: n)
        let p = all.count
        all += RawLevel.planes(level.points, k: 10, locations: n)
        offsets.append((s, d, p))
    }
    return all.withUnsafeBufferPointer { base in
        let levels = zip(raw, offsets).map { level, o in
            DetectionLevel(
                stride: level.stride, height: level.height, width: level.width, scores: base.baseAddress! + o.0,
                distances: base.baseAddress! + o.1, keypoints: base.baseAddress! + o.2)
        }
        return SCRFDDecoding.faces(
            levels: levels, letterbox: letterbox, photoWidth: photoWidth, photoHeight: photoHeight, options: options)
    }
}

/// A face as the numpy code holds it: x1, y1, x2, y2, score; landmarks x, y × 5.
private struct ReferenceFace: Equatable {
    var det: [Float]
    var points: [Float]
}

/// Tools/make_detection_fixtures.py's decode, element by element on the ONNX layout.
private func referenceDecode(_ raw: [RawLevel], scale: Double, threshold: Float) -> [ReferenceFace] {
    var faces: [ReferenceFace] = []
    for level in raw {
        let s = Float(level.stride)
        for row in 0..<(level.height * level.width * 2) where level.scores[row] >= threshold {
            let location = row / 2
            let cx = Float(location % level.width) * s, cy = Float(location / level.width) * s
            let d = (0..<4).map { level.boxes[row * 4 + $0] * s }
            let box = [cx - d[0], cy - d[1], cx + d[2], cy + d[3]].map { $0 / Float(scale) }
            let points = (0..<10).map { j in
                ((j % 2 == 0 ? cx : cy) + level.points[row * 10 + j] * s) / Float(scale)
            }
            faces.append(ReferenceFace(det: box + [level.scores[row]], points: points))
        }
    }
    return faces
}

/// Stable insertion sort of the indices by `before`.
private func stableOrder(_ n: Int, _ before: (Int, Int) -> Bool) -> [Int] {
    var order: [Int] = []
    for i in 0..<n {
        var at = order.count
        while at > 0 && before(i, order[at - 1]) { at -= 1 }
        order.insert(i, at: at)
    }
    return order
}

/// insightface's nms, as numpy runs it: keep the first of the order, then filter the rest by IoU <= threshold.
private func referenceNMS(_ faces: [ReferenceFace], threshold: Float) -> [ReferenceFace] {
    var order = stableOrder(faces.count) { faces[$0].det[4] > faces[$1].det[4] }
    func area(_ d: [Float]) -> Float { (d[2] - d[0] + 1) * (d[3] - d[1] + 1) }
    var keep: [ReferenceFace] = []
    while let best = order.first {
        keep.append(faces[best])
        let b = faces[best].det
        order = order.dropFirst().filter { i in
            let o = faces[i].det
            let w = max(0, min(b[2], o[2]) - max(b[0], o[0]) + 1)
            let h = max(0, min(b[3], o[3]) - max(b[1], o[1]) + 1)
            return w * h / (area(b) + area(o) - w * h) <= threshold
        }
    }
    return keep
}

/// insightface's max_num: `np.argsort(values)[::-1][:count]` with an ascending sort stable on ties.
private func referenceSelect(_ faces: [ReferenceFace], count: Int, width: Int, height: Int) -> [ReferenceFace] {
    guard count > 0, count < faces.count else { return faces }
    let values = faces.map { f -> Float in
        let d = f.det
        let dx = (d[0] + d[2]) / 2 - Float(width / 2), dy = (d[1] + d[3]) / 2 - Float(height / 2)
        return (d[2] - d[0]) * (d[3] - d[1]) - (dx * dx + dy * dy) * 2
    }
    return stableOrder(faces.count) { values[$0] < values[$1] }.reversed().prefix(count).map { faces[$0] }
}

private func reference(_ face: DetectedFace) -> ReferenceFace {
    let b = face.box
    return ReferenceFace(
        det: [b.x1, b.y1, b.x2, b.y2, face.score], points: face.landmarks.points.flatMap { [Float($0.x), Float($0.y)] })
}

private func face(_ x1: Float, _ y1: Float, _ x2: Float, _ y2: Float, score: Float) throws -> DetectedFace {
    let points = (0..<5).map { SIMD2(Double(x1) + Double($0), Double(y1)) }
    return DetectedFace(
        box: FaceBox(x1: x1, y1: y1, x2: x2, y2: y2), score: score, landmarks: try FaceLandmarks(points))
}

/// Random faces clustered so that many overlap, with scores on a coarse grid so that many tie.
private func randomFaces(_ n: Int, seed: UInt64) throws -> [DetectedFace] {
    var random = SeededRandom(seed: seed)
    return try (0..<n).map { _ in
        let x = Float(Int.random(in: 0..<8, using: &random) * 40) + Float.random(in: 0..<20, using: &random)
        let y = Float(Int.random(in: 0..<4, using: &random) * 40) + Float.random(in: 0..<20, using: &random)
        let w = Float.random(in: 8..<60, using: &random), h = Float.random(in: 8..<60, using: &random)
        return try face(x, y, x + w, y + h, score: Float(Int.random(in: 10...20, using: &random)) / 20)
    }
}

private func randomLevels(size: Int, seed: UInt64) -> [RawLevel] {
    var random = SeededRandom(seed: seed)
    return [8, 16, 32].map { s in
        let rows = (size / s) * (size / s) * 2
        return RawLevel(
            stride: s, height: size / s, width: size / s,
            scores: random.floats(rows, 0...1).map { $0 * $0 }, boxes: random.floats(rows * 4, 0.5...4),
            points: random.floats(rows * 10, -3...3))
    }
}

struct DetectionDecodingTests {
    @Test(
        arguments: [(0, 0.5, 0.4), (0, 0.3, 0.4), (3, 0.5, 0.4), (500, 0.6, 0.7), (1, 0.9, 0.2)]
            as [(Int, Float, Float)])
    func decodingEqualsTheNumpyTranscription(maxFaces: Int, scoreThreshold: Float, nmsThreshold: Float) {
        let raw = randomLevels(size: 96, seed: UInt64(maxFaces) + 11)
        let box = Letterbox(photoWidth: 300, photoHeight: 257, width: 96, height: 96)
        let options = DetectionOptions(
            inputWidth: 96, inputHeight: 96, scoreThreshold: scoreThreshold, nmsThreshold: nmsThreshold,
            maxFaces: maxFaces)
        let got = decodeRaw(raw, letterbox: box, photoWidth: 300, photoHeight: 257, options: options).map(reference)
        let found = referenceDecode(raw, scale: box.scale, threshold: scoreThreshold)
        let want = referenceSelect(
            referenceNMS(found, threshold: nmsThreshold), count: maxFaces, width: 300, height: 257)
        #expect(!want.isEmpty)
        #expect(got == want, "\(got.count) faces, the numpy transcription keeps \(want.count)")
    }

    @Test func overlappingBoxesKeepTheMostConfident() throws {
        let a = try face(0, 0, 10, 10, score: 0.9), b = try face(1, 1, 11, 11, score: 0.8)
        let c = try face(20, 20, 30, 30, score: 0.7), d = try face(5, 0, 15, 10, score: 0.85)
        // IoU(a, b) = 100 / 142 is above 0.4; IoU(a, d) = 66 / 176 (the +1 convention) is not.
        #expect(SCRFDDecoding.nonMaximumSuppression([c, b, a, d], threshold: 0.4) == [a, d, c])
        let half = try face(0, 0, 9, 4, score: 0.5), whole = try face(0, 0, 9, 9, score: 0.6)
        // IoU exactly 0.5 = threshold: kept (only an IoU above the threshold removes).
        #expect(SCRFDDecoding.nonMaximumSuppression([half, whole], threshold: 0.5) == [whole, half])
        #expect(SCRFDDecoding.nonMaximumSuppression([half, whole], threshold: 0.49) == [whole])
        #expect(SCRFDDecoding.nonMaximumSuppression([], threshold: 0.4).isEmpty)
    }

    @Test func equalScoresKeepTheirOrder() throws {
        let first = try face(0, 0, 10, 10, score: 0.7), second = try face(1, 0, 11, 10, score: 0.7)
        let apart = try face(50, 50, 60, 60, score: 0.7)
        #expect(SCRFDDecoding.nonMaximumSuppression([first, second, apart], threshold: 0.4) == [first, apart])
        #expect(SCRFDDecoding.nonMaximumSuppression([second, first, apart], threshold: 0.4) == [second, apart])
        #expect(SCRFDDecoding.nonMaximumSuppression([apart, second], threshold: 0.4) == [apart, second])
    }

    @Test(arguments: [1, 2, 3, 4])
    func nmsEqualsTheNumpyTranscription(seed: UInt64) throws {
        let faces = try randomFaces(300, seed: seed)
        for threshold: Float in [0.2, 0.4, 0.7, 1] {
            let got = SCRFDDecoding.nonMaximumSuppression(faces, threshold: threshold).map(reference)
            #expect(got == referenceNMS(faces.map(reference), threshold: threshold), "threshold \(threshold)")
        }
    }

    @Test func maxFacesPrefersLargeCentredFacesAndKeepsAllWhenThereAreFewer() throws {
        let faces = try randomFaces(40, seed: 9)
        for count in [0, 1, 5, 39, 40, 41, 100] {
            let got = SCRFDDecoding.select(faces, count: count, photoWidth: 331, photoHeight: 180).map(reference)
            let want = referenceSelect(faces.map(reference), count: count, width: 331, height: 180)
            #expect(got == want, "maxFaces \(count)")
            #expect(got.count == (count == 0 ? 40 : min(count, 40)))
        }
        let twin = try face(10, 10, 20, 20, score: 0.9), other = try face(10, 10, 20, 20, score: 0.6)
        let small = try face(0, 0, 2, 2, score: 0.99)
        // Equal values: numpy's reversed ascending sort puts the later face first.
        #expect(
            SCRFDDecoding.select([twin, small, other], count: 2, photoWidth: 30, photoHeight: 30) == [other, twin])
        #expect(SCRFDDecoding.select([], count: 2, photoWidth: 30, photoHeight: 30).isEmpty)
    }

    @Test func brokenOutputsGiveNoFaceRatherThanANonFiniteOne() {
        var raw = randomLevels(size: 64, seed: 5)
        raw[0].scores = raw[0].scores.map { _ in 0 }
        raw[1].scores = raw[1].scores.map { _ in 0 }
        raw[2].scores = [.nan, 0.9, 0.8, 0.7, 0.6, 0.55, 0.52, 0.51]
        raw[2].boxes[1 * 4 + 2] = .infinity
        raw[2].points[2 * 10 + 7] = .nan
        let box = Letterbox(photoWidth: 64, photoHeight: 64, width: 64, height: 64)
        let options = DetectionOptions(inputWidth: 64, inputHeight: 64, nmsThreshold: 1)
        let got = decodeRaw(raw, letterbox: box, photoWidth: 64, photoHeight: 64, options: options)
        // Row 0 has a NaN score, row 1 an infinite distance, row 2 a NaN landmark: rows 3 to 7 remain.
        #expect(got.map(\.score) == [0.7, 0.6, 0.55, 0.52, 0.51])
    }

    @Test func optionsOutOfRangeAreRejected() throws {
        try DetectionOptions().validate()
        try DetectionOptions(inputWidth: 32, inputHeight: 2048, scoreThreshold: 1, nmsThreshold: 1, maxFaces: 3)
            .validate()
        let bad = [
            DetectionOptions(inputWidth: 650), DetectionOptions(inputHeight: 0), DetectionOptions(inputWidth: 4096),
            DetectionOptions(scoreThreshold: 0), DetectionOptions(scoreThreshold: 1.5),
            DetectionOptions(nmsThreshold: .nan), DetectionOptions(nmsThreshold: -0.1), DetectionOptions(maxFaces: -1),
        ]
        for options in bad {
            #expect(throws: FaceEmbedError.self, "\(options)") { try options.validate() }
        }
    }

    @Test func t1FacesEqualInsightfaceFromOnnxRuntimeOutputs() throws {
        guard let manifest = TestPaths.local("detection/t1-640/tensors.json") else { return }
        let folder = URL(fileURLWithPath: manifest).deletingLastPathComponent()
        func tensor(_ name: String) throws -> [Float] {
            let data = try Data(contentsOf: folder.appendingPathComponent("\(name).f32"))
            let values = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            #expect(SHA256.hex(of: values) == (try loadJSON(manifest)[name] as! [String: Any])["sha256"] as! String)
            return values
        }
        let raw = try [8, 16, 32].map { s in
            RawLevel(
                stride: s, height: 640 / s, width: 640 / s, scores: try tensor("score_\(s)"),
                boxes: try tensor("bbox_\(s)"), points: try tensor("kps_\(s)"))
        }
        let t1 = try DetectionFixtures.expected().first { $0["file"] as! String == "t1.jpg" }!
        let runs = (t1["runs"] as! [[String: Any]]).filter { $0["det_size"] as! [Int] == [640, 640] }
        #expect(runs.count == 2)
        for run in runs {
            let box = Letterbox(photoWidth: 1280, photoHeight: 886, width: 640, height: 640)
            let options = DetectionOptions(maxFaces: run["max_num"] as! Int)
            let got = decodeRaw(raw, letterbox: box, photoWidth: 1280, photoHeight: 886, options: options)
            let want = run["faces"] as! [[String: Any]]
            try #require(got.count == want.count, "max_num \(options.maxFaces): \(got.count) faces, want \(want.count)")
            var worstCorner: Float = 0, worstPoint: Float = 0, worstScore: Float = 0
            for (face, w) in zip(got, want) {
                let corners = (w["box"] as! [Double]).map(Float.init)
                let points = (w["landmarks"] as! [[Double]]).flatMap { $0.map(Float.init) }
                let r = reference(face)
                worstCorner = max(worstCorner, zip(r.det.prefix(4), corners).map { abs($0 - $1) }.max()!)
                worstPoint = max(worstPoint, zip(r.points, points).map { abs($0 - $1) }.max()!)
                worstScore = max(worstScore, abs(face.score - Float(w["score"] as! Double)))
            }
            #expect(worstCorner <= 0.5 && worstPoint <= 0.5 && worstScore <= 0.005)
            print(
                "t1.jpg 640x640 max_num \(options.maxFaces): \(got.count) faces; worst |difference| box \(worstCorner) px,"
                    + " landmarks \(worstPoint) px, score \(worstScore)")
        }
    }
}
