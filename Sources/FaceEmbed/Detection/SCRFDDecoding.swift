// SCRFD's outputs to faces, exactly as insightface's SCRFD.detect (Models/SCRFD.md "insightface's post-processing",
// steps 3-6), in float32 with numpy's order of operations so that the faces are identical, not just close.
//
// Layout of one level (stride s; the head convolutions' NCHW outputs, before the ONNX Transpose/Reshape):
//   scores    [2][h][w]       probabilities (sigmoid applied), plane a = anchor a
//   distances [2 * 4][h][w]   plane a * 4 + j: left, top, right, bottom, in units of s
//   keypoints [2 * 10][h][w]  plane a * 10 + 2i (x) and a * 10 + 2i + 1 (y) of landmark i, in units of s
// Candidates are visited in insightface's row order, (y * w + x) * 2 + a, levels 8, 16, 32 one after the other, so
// that the stable sort by score keeps its ties in the same order.

/// One stride level of the detector's output, as three NCHW maps of `height` × `width` (see the layout above).
package struct DetectionLevel {
    /// The level's stride in input pixels (8, 16 or 32).
    package var stride: Int
    /// Map height and width: the input's height and width divided by `stride`.
    package var height: Int, width: Int
    /// 2 planes of scores, 8 of box distances, 20 of landmark offsets.
    package var scores: UnsafePointer<Float>, distances: UnsafePointer<Float>, keypoints: UnsafePointer<Float>

    /// A level from its stride, map size and three maps.
    package init(
        stride: Int, height: Int, width: Int, scores: UnsafePointer<Float>, distances: UnsafePointer<Float>,
        keypoints: UnsafePointer<Float>
    ) {
        self.stride = stride; self.height = height; self.width = width
        self.scores = scores; self.distances = distances; self.keypoints = keypoints
    }
}

/// insightface's SCRFD post-processing: decode, threshold, back to photo pixels, NMS, `max_num`.
package enum SCRFDDecoding {
    /// Anchors per map location.
    static let anchors = 2

    /// The faces in a photo of `photoWidth` × `photoHeight` from the detector's levels (strides 8, 16, 32 in that
    /// order) for an input made by `letterbox`: most confident first, or `options.maxFaces` of them in
    /// ``select(_:count:photoWidth:photoHeight:)``'s order.
    package static func faces(
        levels: [DetectionLevel], letterbox: Letterbox, photoWidth: Int, photoHeight: Int, options: DetectionOptions
    ) -> [DetectedFace] {
        let found = candidates(levels, scale: Float(letterbox.scale), threshold: options.scoreThreshold)
        let kept = nonMaximumSuppression(found, threshold: options.nmsThreshold)
        return select(kept, count: options.maxFaces, photoWidth: photoWidth, photoHeight: photoHeight)
    }

    /// Every anchor scoring at least `threshold`, decoded and divided by `scale`, in row order level by level.
    /// A candidate with a non-finite coordinate (only a broken network makes one) is left out.
    package static func candidates(_ levels: [DetectionLevel], scale: Float, threshold: Float) -> [DetectedFace] {
        var faces: [DetectedFace] = []
        for level in levels {
            let plane = level.height * level.width, s = Float(level.stride)
            for location in 0..<plane {
                for a in 0..<anchors where level.scores[a * plane + location] >= threshold {
                    let centre = SIMD2(
                        Float(location % level.width * level.stride),
                        Float(location / level.width * level.stride))
                    if let face = decode(level, anchor: a, at: location, centre: centre, stride: s, scale: scale) {
                        faces.append(face)
                    }
                }
            }
        }
        return faces
    }

    /// `distance2bbox` and `distance2kps` for one anchor: offsets times the stride, from the anchor's centre, then
    /// divided by the letterbox scale (each step rounded to float32, as numpy does).
    private static func decode(
        _ level: DetectionLevel, anchor a: Int, at location: Int, centre: SIMD2<Float>, stride s: Float, scale: Float
    ) -> DetectedFace? {
        let plane = level.height * level.width
        func distance(_ j: Int) -> Float { level.distances[(a * 4 + j) * plane + location] * s }
        func offset(_ j: Int) -> Float { level.keypoints[(a * 10 + j) * plane + location] * s }
        let box = FaceBox(
            x1: (centre.x - distance(0)) / scale, y1: (centre.y - distance(1)) / scale,
            x2: (centre.x + distance(2)) / scale, y2: (centre.y + distance(3)) / scale)
        let points = (0..<5).map { i in
            SIMD2(Double((centre.x + offset(2 * i)) / scale), Double((centre.y + offset(2 * i + 1)) / scale))
        }
        guard [box.x1, box.y1, box.x2, box.y2].allSatisfy(\.isFinite), let landmarks = try? FaceLandmarks(points)
        else { return nil }
        return DetectedFace(box: box, score: level.scores[a * plane + location], landmarks: landmarks)
    }

    /// insightface's greedy NMS: faces sorted by descending score (stable: ties keep their order), then each face
    /// kept removes every later one whose IoU with it is above `threshold` (not `<=`, so a NaN IoU removes too).
    /// Areas and intersections count pixels inclusively: `(x2 − x1 + 1) × (y2 − y1 + 1)`.
    package static func nonMaximumSuppression(_ faces: [DetectedFace], threshold: Float) -> [DetectedFace] {
        let order = faces.indices.sorted {
            faces[$0].score > faces[$1].score || (faces[$0].score == faces[$1].score && $0 < $1)
        }
        let boxes = order.map { faces[$0].box }
        let areas = boxes.map { (($0.x2 - $0.x1) + 1) * (($0.y2 - $0.y1) + 1) }
        var removed = [Bool](repeating: false, count: boxes.count)
        var kept: [DetectedFace] = []
        for i in boxes.indices where !removed[i] {
            kept.append(faces[order[i]])
            for j in (i + 1)..<boxes.count where !removed[j] {
                let (a, b) = (boxes[i], boxes[j])
                let w = max(0, (min(a.x2, b.x2) - max(a.x1, b.x1)) + 1)
                let h = max(0, (min(a.y2, b.y2) - max(a.y1, b.y1)) + 1)
                let intersection = w * h
                removed[j] = !(intersection / ((areas[i] + areas[j]) - intersection) <= threshold)
            }
        }
        return kept
    }

    /// insightface's `max_num`: when `count` is positive and below the number of faces, the `count` faces with the
    /// largest `area − 2 × |centre − (photoWidth / 2, photoHeight / 2)|²` (integer halves, float32), largest first;
    /// equal values come later face first, as numpy's `argsort(values)[::-1]` orders them. Otherwise `faces` as given.
    package static func select(_ faces: [DetectedFace], count: Int, photoWidth: Int, photoHeight: Int) -> [DetectedFace]
    {
        guard count > 0, count < faces.count else { return faces }
        let cx = Float(photoWidth / 2), cy = Float(photoHeight / 2)
        let values = faces.map { face -> Float in
            let d = face.box.center - SIMD2(cx, cy)
            return face.box.area - (d.x * d.x + d.y * d.y) * 2
        }
        let order = faces.indices.sorted { values[$0] > values[$1] || (values[$0] == values[$1] && $0 > $1) }
        return order.prefix(count).map { faces[$0] }
    }
}
