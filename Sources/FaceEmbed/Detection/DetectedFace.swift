// What face detection returns (a box, a score and five landmarks per face, in photo pixels) and the settings it
// takes, with insightface's defaults (SCRFD.detect: 640 × 640 input, score 0.5, NMS IoU 0.4, every face).

/// A face's bounding box in photo pixels: `(x1, y1)` top-left, `(x2, y2)` bottom-right.
///
/// The corners are the detector's float32 values and may lie a little outside the photo for a face at its edge.
public struct FaceBox: Sendable, Equatable {
    /// Left edge.
    public var x1: Float
    /// Top edge.
    public var y1: Float
    /// Right edge.
    public var x2: Float
    /// Bottom edge.
    public var y2: Float

    /// A box from its corners.
    public init(x1: Float, y1: Float, x2: Float, y2: Float) {
        self.x1 = x1; self.y1 = y1; self.x2 = x2; self.y2 = y2
    }

    /// `x2 - x1`.
    public var width: Float { x2 - x1 }
    /// `y2 - y1`.
    public var height: Float { y2 - y1 }
    /// `width * height` (the measure "largest face" uses).
    public var area: Float { width * height }
    /// The centre, `((x1 + x2) / 2, (y1 + y2) / 2)`.
    public var center: SIMD2<Float> { SIMD2((x1 + x2) / 2, (y1 + y2) / 2) }
}

/// One face found in a photo: where it is, how sure the detector is, and its five landmarks for alignment.
///
/// ```swift
/// for face in faces where face.score >= 0.7 {
///     let crop = try photo.alignedFace(landmarks: face.landmarks)
/// }
/// ```
public struct DetectedFace: Sendable, Equatable {
    /// The bounding box, in photo pixels.
    public var box: FaceBox
    /// The detector's confidence, a probability in 0...1.
    public var score: Float
    /// Left eye, right eye, nose tip, left and right mouth corners (as seen), in photo pixels; ready for
    /// ``RGBImage/alignedFace(landmarks:size:)``.
    public var landmarks: FaceLandmarks

    /// A face from its parts.
    public init(box: FaceBox, score: Float, landmarks: FaceLandmarks) {
        self.box = box; self.score = score; self.landmarks = landmarks
    }
}

/// How face detection runs: the size of the detector's input, the score and overlap thresholds, and how many faces
/// to keep. The defaults are insightface's (`FaceAnalysis` with `det_size=(640, 640)`).
public struct DetectionOptions: Sendable, Equatable {
    /// The smallest and largest input side accepted (multiples of 32).
    public static let inputSides = 32...2048

    /// Width of the detector's input in pixels, a multiple of 32 (default 640). The photo is resized, keeping its
    /// aspect ratio, to fit `inputWidth` × `inputHeight`; a larger input finds smaller faces, more slowly.
    public var inputWidth: Int
    /// Height of the detector's input in pixels, a multiple of 32 (default 640).
    public var inputHeight: Int
    /// The lowest score a face may have, in (0, 1] (default 0.5).
    public var scoreThreshold: Float
    /// Of two faces whose boxes overlap by more than this intersection-over-union, only the more confident is kept;
    /// in (0, 1] (default 0.4).
    public var nmsThreshold: Float
    /// How many faces to return at most, preferring large faces near the photo's centre (insightface's `max_num`);
    /// 0 returns every face, most confident first (default 0).
    public var maxFaces: Int

    /// Options with insightface's defaults unless given.
    public init(
        inputWidth: Int = 640, inputHeight: Int = 640, scoreThreshold: Float = 0.5, nmsThreshold: Float = 0.4,
        maxFaces: Int = 0
    ) {
        self.inputWidth = inputWidth; self.inputHeight = inputHeight
        self.scoreThreshold = scoreThreshold; self.nmsThreshold = nmsThreshold
        self.maxFaces = maxFaces
    }

    /// Throws ``FaceEmbedError/invalidArgument(_:)`` naming the first setting out of range: an input side that is
    /// not a multiple of 32 in ``inputSides``, a threshold outside (0, 1], or a negative `maxFaces`.
    public func validate() throws(FaceEmbedError) {
        for (name, side) in [("width", inputWidth), ("height", inputHeight)] {
            guard Self.inputSides.contains(side), side % 32 == 0 else {
                throw .invalidArgument(
                    "detection input \(name) \(side) must be a multiple of 32 in "
                        + "\(Self.inputSides.lowerBound)...\(Self.inputSides.upperBound)")
            }
        }
        for (name, value) in [("score", scoreThreshold), ("NMS", nmsThreshold)] {
            guard value > 0, value <= 1 else {
                throw .invalidArgument("detection \(name) threshold \(value) must lie in (0, 1]")
            }
        }
        guard maxFaces >= 0 else {
            throw .invalidArgument("maximum number of faces \(maxFaces) must be 0 (all) or more")
        }
    }
}
