// Photo to recognised faces in one call: detect, align each face to the ArcFace crop, embed, as insightface's
// `FaceAnalysis.get` does with its detector and recognition model.

/// A face found in a photo, with its embedding.
public struct RecognizedFace: Sendable {
    /// Where the detector found the face: box, score, five landmarks.
    public var face: DetectedFace
    /// The embedding of the face aligned from its landmarks.
    public var embedding: Embedding

    /// A face and its embedding.
    public init(face: DetectedFace, embedding: Embedding) {
        self.face = face
        self.embedding = embedding
    }
}

/// A face detector and a recognition model used together: every face of a photo with its embedding, in one call.
///
/// ```swift
/// let analyzer = FaceAnalyzer(
///     detector: try FaceDetector(contentsOf: "Models/scrfd_500m_bnkps.feb"),
///     model: try FaceModel(contentsOf: "Models/w600k_mbf.feb"))
/// let faces = try analyzer.faces(in: try ImageDecoder.load(path: "group.jpg"))
/// ```
public struct FaceAnalyzer: Sendable {
    /// Finds the faces.
    public let detector: FaceDetector
    /// Embeds them.
    public let model: FaceModel
    /// How faces are found (input size, thresholds, how many).
    public var options: DetectionOptions

    /// An analyzer with `options` (insightface's defaults unless given).
    public init(detector: FaceDetector, model: FaceModel, options: DetectionOptions = DetectionOptions()) {
        self.detector = detector
        self.model = model
        self.options = options
    }

    /// Every face in `photo` with its embedding, in the detector's order (most confident first).
    public func faces(in photo: RGBImage) throws(FaceEmbedError) -> [RecognizedFace] {
        let found = try detector.faces(in: photo, options: options)
        guard !found.isEmpty else { return [] }
        let embeddings = try model.embeddings(
            for: [RGBImage](repeating: photo, count: found.count), landmarks: found.map(\.landmarks))
        return zip(found, embeddings).map { RecognizedFace(face: $0, embedding: $1) }
    }

    /// Every face in a photo held in a caller's pixel buffer of any size and `PixelFormat`, with its embedding.
    public func faces(in photo: PixelBuffer) throws(FaceEmbedError) -> [RecognizedFace] {
        let found = try detector.faces(in: photo, options: options)
        guard !found.isEmpty else { return [] }
        let embeddings = try model.embeddings(
            for: [PixelBuffer](repeating: photo, count: found.count), landmarks: found.map(\.landmarks))
        return zip(found, embeddings).map { RecognizedFace(face: $0, embedding: $1) }
    }

    /// The largest face in `photo` (the most confident when two are as large) with its embedding, or nil when the
    /// photo has none: what a one-face-per-photo comparison wants.
    public func largestFace(in photo: RGBImage) throws(FaceEmbedError) -> RecognizedFace? {
        guard let face = try detector.faces(in: photo, options: options).max(by: { $1.isLarger(than: $0) }) else {
            return nil
        }
        return RecognizedFace(face: face, embedding: try model.embedding(for: photo, landmarks: face.landmarks))
    }
}

extension DetectedFace {
    /// Whether this face's box is larger than `other`'s, or as large and more confident.
    public func isLarger(than other: DetectedFace) -> Bool {
        box.area != other.box.area ? box.area > other.box.area : score > other.score
    }
}
