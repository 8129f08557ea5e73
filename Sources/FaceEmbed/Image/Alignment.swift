// Five-point face alignment to the 112 × 112 ArcFace crop, as insightface does it:
// a least-squares similarity transform (rotation, uniform scale, translation; no reflection) from the detected
// landmarks to the reference template, then bilinear sampling of the photo through its inverse, border 0.
//
// For 2-D points the least-squares similarity has a closed form (the same answer as Umeyama's method): with both
// point sets centred, a = Σ(p·q) / Σ|p|², b = Σ(p × q) / Σ|p|², and (x, y) ↦ (a·x − b·y + tx, b·x + a·y + ty).

/// Five facial landmarks in image pixels: left eye, right eye, nose tip, left and right mouth corners
/// (left and right as seen in the image).
public struct FaceLandmarks: Sendable, Equatable {
    /// The five points, in the order above.
    public var points: [SIMD2<Double>]

    /// Five points; anything else, or a non-finite coordinate, is an error.
    public init(_ points: [SIMD2<Double>]) throws(FaceEmbedError) {
        guard points.count == 5, points.allSatisfy({ $0.x.isFinite && $0.y.isFinite }) else {
            throw .invalidArgument("landmarks must be five finite points (x, y), got \(points.count)")
        }
        self.points = points
    }

    /// Parses `"x1,y1,x2,y2,…,x5,y5"` (commas or spaces).
    public init(parsing text: String) throws(FaceEmbedError) {
        let numbers = text.split(whereSeparator: { $0 == "," || $0 == " " }).compactMap { Double($0) }
        guard numbers.count == 10, text.split(whereSeparator: { $0 == "," || $0 == " " }).count == 10 else {
            throw .invalidArgument(
                "landmarks must be ten numbers x1,y1,…,x5,y5 (left eye, right eye, nose, left and right mouth corners)")
        }
        try self.init((0..<5).map { SIMD2(numbers[2 * $0], numbers[2 * $0 + 1]) })
    }

    /// Where the five points lie in insightface's 112 × 112 ArcFace crop.
    public static let arcFaceTemplate: [SIMD2<Double>] = [
        SIMD2(38.2946, 51.6963), SIMD2(73.5318, 51.5014), SIMD2(56.0252, 71.7366),
        SIMD2(41.5493, 92.3655), SIMD2(70.7299, 92.2041),
    ]
}

/// A 2-D similarity transform `(x, y) ↦ (a·x − b·y + tx, b·x + a·y + ty)`.
public struct SimilarityTransform: Sendable, Equatable {
    /// Scale times cosine and scale times sine of the rotation; translation.
    public var a: Double, b: Double, tx: Double, ty: Double

    /// The least-squares similarity mapping `source` points onto `target` points.
    public init(from source: [SIMD2<Double>], to target: [SIMD2<Double>]) throws(FaceEmbedError) {
        guard source.count == target.count, source.count >= 2 else {
            throw .invalidArgument("a similarity transform needs matching point lists of at least two points")
        }
        let n = Double(source.count)
        let ms = source.reduce(SIMD2<Double>(), +) / n, mt = target.reduce(SIMD2<Double>(), +) / n
        var dot = 0.0, cross = 0.0, norm = 0.0
        for (p, q) in zip(source, target) {
            let u = p - ms, v = q - mt
            dot += u.x * v.x + u.y * v.y
            cross += u.x * v.y - u.y * v.x
            norm += u.x * u.x + u.y * u.y
        }
        guard norm > 1e-9 else { throw .invalidArgument("the landmarks coincide: no alignment is possible") }
        a = dot / norm; b = cross / norm
        tx = mt.x - (a * ms.x - b * ms.y)
        ty = mt.y - (b * ms.x + a * ms.y)
    }

    /// Applies the transform to a point.
    public func apply(_ p: SIMD2<Double>) -> SIMD2<Double> {
        SIMD2(a * p.x - b * p.y + tx, b * p.x + a * p.y + ty)
    }

    /// The inverse transform.
    public var inverse: SimilarityTransform {
        let d = a * a + b * b
        let ia = a / d, ib = -b / d
        return SimilarityTransform(a: ia, b: ib, tx: -(ia * tx - ib * ty), ty: -(ib * tx + ia * ty))
    }

    private init(a: Double, b: Double, tx: Double, ty: Double) { self.a = a; self.b = b; self.tx = tx; self.ty = ty }
}

extension RGBImage {
    /// The 112 × 112 ArcFace crop of the face with these landmarks: similarity transform onto
    /// `FaceLandmarks.arcFaceTemplate`, bilinear sampling, black outside the photo.
    public func alignedFace(landmarks: FaceLandmarks, size: Int = 112) throws(FaceEmbedError) -> RGBImage {
        guard size >= 1, size <= 4096 else { throw .invalidArgument("aligned face size \(size) is outside 1...4096") }
        let inverse = try landmarks.cropToPhoto(size: size)
        var out = [UInt8](repeating: 0, count: size * size * 3)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                warpCrop(
                    from: CheckedPixels(rgb: src, width: width, height: height), through: inverse, size: size, into: dst
                )
            }
        }
        return try RGBImage(width: size, height: size, pixels: out)
    }
}

extension FaceLandmarks {
    /// The transform from a pixel of the `size` × `size` crop to where it lies in the photo.
    func cropToPhoto(size: Int) throws(FaceEmbedError) -> SimilarityTransform {
        let scale = Double(size) / 112
        return try SimilarityTransform(from: points, to: FaceLandmarks.arcFaceTemplate.map { $0 * scale }).inverse
    }
}

/// Samples the `size` × `size` crop out of `src` (any pixel format) through `inverse` (crop to photo) into `out`,
/// interleaved RGB, `size * size * 3` bytes: bilinear, black outside the photo. Every byte of `out` is written.
func warpCrop(
    from src: CheckedPixels, through inverse: SimilarityTransform, size: Int,
    into out: UnsafeMutableBufferPointer<UInt8>
) {
    let colors = [src.format.red, src.format.green, src.format.blue]
    let width = src.width, height = src.height
    for y in 0..<size {
        for x in 0..<size {
            let s = inverse.apply(SIMD2(Double(x), Double(y)))
            guard s.x > -1, s.y > -1, s.x < Double(width), s.y < Double(height) else {
                for c in 0..<3 { out[(y * size + x) * 3 + c] = 0 }
                continue
            }
            let x0 = Int(s.x.rounded(.down)), y0 = Int(s.y.rounded(.down))
            let fx = s.x - Double(x0), fy = s.y - Double(y0)
            for (c, ch) in colors.enumerated() {
                func at(_ xx: Int, _ yy: Int) -> Double {
                    xx >= 0 && yy >= 0 && xx < width && yy < height
                        ? Double(src.pixels[src.offset(x: xx, y: yy, channel: ch)]) : 0
                }
                let v =
                    (at(x0, y0) * (1 - fx) + at(x0 + 1, y0) * fx) * (1 - fy)
                    + (at(x0, y0 + 1) * (1 - fx) + at(x0 + 1, y0 + 1) * fx) * fy
                out[(y * size + x) * 3 + c] = UInt8(max(0, min(255, v.rounded())))
            }
        }
    }
}
