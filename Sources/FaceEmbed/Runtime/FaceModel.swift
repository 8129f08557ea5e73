/// A loaded face-recognition model: turns faces into embeddings.
///
/// ```swift
/// let model = try FaceModel(contentsOf: "Models/mobilefacenet.feb")
/// let a = try model.embedding(for: try ImageDecoder.load(path: "a.ppm"))           // an aligned 112 × 112 face
/// let b = try model.embedding(for: try ImageDecoder.load(path: "photo.jpg"),       // a photo, aligned first
///                             landmarks: try FaceLandmarks(parsing: "84.9,90,118.8,85.7,105,104.9,93.5,126.6,120.2,122.8"))
/// print(a.cosineSimilarity(to: b) >= FaceModel.defaultThreshold ? "same" : "different")
/// ```
///
/// Faces come as `RGBImage`s or as `PixelBuffer`s in any `PixelFormat`; each call takes one face or a batch (the
/// batch calls share the images out across threads). The weights are mapped from the file (or copied once from
/// memory) and never modified; each call uses its own pooled workspace, so one model may serve many threads or
/// tasks at once.
public final class FaceModel: Sendable {
    /// Cosine similarity at or above which two faces are called the same person (insightface's default
    /// verification threshold, squared distance 1.24 between unit vectors, is cosine 0.38).
    public static let defaultThreshold: Float = 0.38
    /// Side of the aligned input image.
    public static let inputSize = 112

    let network: Network
    /// The file the model was loaded from, or `"<memory>"` for a model loaded from bytes.
    public let path: String

    /// The model family.
    public var kind: ModelKind { network.plan.kind }
    /// A readable name ("MobileFaceNet", "LResNet100E-IR").
    public var name: String { network.plan.name }
    /// Length of the embeddings this model produces.
    public var embeddingSize: Int { network.plan.embeddingSize }
    /// The color order the network itself expects (pixels are reordered for it automatically).
    public var channelOrder: ChannelOrder { network.plan.channelOrder }
    /// Multiply-adds per image.
    public var multiplyAdds: Int { network.plan.macs }
    /// Number of weights.
    public var parameterCount: Int { network.plan.parameterCount }
    /// The precision of the weights (`faceembed convert --precision`): float32, or int8 for most layers.
    public var precision: ModelPrecision { network.plan.precision }
    /// Threads one call may use.
    public var threads: Int { network.threads }

    /// Loads a FaceEmbed weight file (made by `faceembed convert`). The header says which model it is.
    /// - Parameters:
    ///   - path: the `.feb` file; it is mapped, not copied.
    ///   - threads: threads a call may use (default: all cores).
    public convenience init(contentsOf path: String, threads: Int? = nil) throws(FaceEmbedError) {
        try self.init(file: try MappedFile(path: path), name: path, threads: threads)
    }

    /// Loads a model from the bytes of a FaceEmbed weight file already in memory (a bundled resource, a download),
    /// which are copied once. Errors name no file (`file` is nil; `attributed(to:)` names one), and `path` is
    /// `"<memory>"`.
    /// - Parameters:
    ///   - bytes: the whole `.feb` file.
    ///   - threads: threads a call may use (default: all cores).
    public convenience init(bytes: some Collection<UInt8>, threads: Int? = nil) throws(FaceEmbedError) {
        try self.init(file: MappedFile(copying: bytes), name: nil, threads: threads)
    }

    /// Reads the plan from `file`; errors name `name`.
    private init(file: MappedFile, name: String?, threads: Int?) throws(FaceEmbedError) {
        #if _endian(big)
        throw .io(file: name, reason: "big-endian hosts are not supported")
        #else
        let (plan, offsets) = try FlatFile.read(file.bytes, file: name)
        guard plan.kind != .faceDetector else {
            throw .unsupportedModel(
                file: name, reason: "this is a face detector, not a recognition model: load it with FaceDetector")
        }
        path = file.path
        network = Network(
            plan: plan, storage: file, tensorOffsets: offsets,
            threads: threads ?? ProcessInfoLite.activeProcessorCount)
        #endif
    }

    /// The embedding of an aligned 112 × 112 RGB face.
    public func embedding(for face: RGBImage) throws(FaceEmbedError) -> Embedding {
        try checkAligned(face.width, face.height)
        return embed(count: 1, crops: nil, stop: nil, RGBSource(faces: [face]))![0]
    }

    /// The embedding of an aligned 112 × 112 face in a caller's pixel buffer (`.bgr` for an OpenCV `Mat`, `.bgra`
    /// for a camera frame, planar, padded rows, …).
    public func embedding(for face: PixelBuffer) throws(FaceEmbedError) -> Embedding {
        try checkAligned(face.width, face.height)
        return embed(count: 1, crops: nil, stop: nil, BufferSource(buffers: [try face.checked()]))![0]
    }

    /// The embedding of an aligned 112 × 112 face given as raw 8-bit pixels in any `PixelFormat`
    /// (`.bgr` for an OpenCV buffer, `.rgba` for a bitmap, planar, …). `rowStride` is in bytes and defaults to
    /// tightly packed rows. The same as `embedding(for: PixelBuffer(pixels, …))`.
    public func embedding(
        pixels: UnsafeBufferPointer<UInt8>, width: Int, height: Int, format: PixelFormat,
        rowStride: Int? = nil
    ) throws(FaceEmbedError) -> Embedding {
        try embedding(for: PixelBuffer(pixels, width: width, height: height, format: format, rowStride: rowStride))
    }

    /// The embedding of the face with these landmarks in a photo: the photo is aligned to the 112 × 112 ArcFace crop
    /// (exactly as `photo.alignedFace(landmarks:)` does), which is then embedded.
    public func embedding(for photo: RGBImage, landmarks: FaceLandmarks) throws(FaceEmbedError) -> Embedding {
        try embeddings(for: [photo], landmarks: [landmarks])[0]
    }

    /// The embedding of the face with these landmarks in a photo held in a caller's pixel buffer of any size and
    /// format: aligned to the 112 × 112 ArcFace crop, then embedded.
    public func embedding(for photo: PixelBuffer, landmarks: FaceLandmarks) throws(FaceEmbedError) -> Embedding {
        try embeddings(for: [photo], landmarks: [landmarks])[0]
    }

    /// Throws unless `width` × `height` is the aligned input size.
    private func checkAligned(_ width: Int, _ height: Int) throws(FaceEmbedError) {
        let s = FaceModel.inputSize
        guard width == s, height == s else {
            throw .invalidImage(
                file: nil, reason: "an aligned face must be \(s)x\(s), got \(width)x\(height) (align photos first)")
        }
    }
}
