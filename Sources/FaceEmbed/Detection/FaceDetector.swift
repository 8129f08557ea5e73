import Synchronization

// The face detector: insightface's SCRFD converted to a `.feb` (`faceembed convert scrfd_500m_bnkps.onnx`), run on
// the same kernels as the recognition models. The file holds the plan at the size it was converted at (640 × 640);
// each input size a caller asks for gets its own plan (`ModelPlan.resized`) and `Network`, made once and kept, all
// on the same mapped weights.

/// A face detector loaded from a FaceEmbed weight file made from insightface's SCRFD (`scrfd_500m_bnkps.onnx`).
///
/// It finds every face in a photo with its box, score and five landmarks, exactly as insightface's
/// `SCRFD.detect` does with ONNX Runtime. Safe to share between threads.
public final class FaceDetector: Sendable {
    /// The file the detector was loaded from (`"<memory>"` for one loaded from bytes).
    public let path: String
    /// Threads one call may use.
    public let threads: Int
    private let storage: MappedFile
    private let plan: ModelPlan
    private let offsets: [Int]
    /// Where the output maps are: the same values at every input size (resizing keeps the value numbering).
    private let layout: DetectorLayout
    /// A network per input size (height, width), made when first asked for.
    private let networks = Mutex<[SIMD2<Int32>: Network]>([:])

    /// Loads a detector from a FaceEmbed weight file (made by `faceembed convert` from SCRFD's ONNX file).
    /// - Parameters:
    ///   - path: the `.feb` file; it is mapped, not copied.
    ///   - threads: threads a call may use (default: all cores).
    public convenience init(contentsOf path: String, threads: Int? = nil) throws(FaceEmbedError) {
        try self.init(file: try MappedFile(path: path), name: path, threads: threads)
    }

    /// Loads a detector from the bytes of a FaceEmbed weight file already in memory, which are copied once.
    /// - Parameters:
    ///   - bytes: the whole `.feb` file.
    ///   - threads: threads a call may use (default: all cores).
    public convenience init(bytes: some Collection<UInt8>, threads: Int? = nil) throws(FaceEmbedError) {
        try self.init(file: MappedFile(copying: bytes), name: nil, threads: threads)
    }

    private init(file: MappedFile, name: String?, threads: Int?) throws(FaceEmbedError) {
        #if _endian(big)
        throw .io(file: name, reason: "big-endian hosts are not supported")
        #else
        let (plan, offsets) = try FlatFile.read(file.bytes, file: name)
        guard plan.kind == .faceDetector else {
            throw .unsupportedModel(
                file: name, reason: "this is a \(plan.kind) (a recognition model), not a face detector")
        }
        let layout = try DetectorLayout(plan) { .invalidWeights(file: name, reason: $0) }
        // The letterbox writes SCRFD's own preprocessing, and the decoding reads two anchors per location.
        guard plan.inputMean == 127.5, plan.inputScale == 1 / 128, plan.channelOrder == .rgb, layout.anchors == 2
        else {
            throw .unsupportedModel(
                file: name, reason: "a detector must take RGB (x - 127.5) / 128 and predict two anchors per location")
        }
        path = file.path
        storage = file
        self.plan = plan
        self.offsets = offsets
        self.layout = layout
        self.threads = max(1, threads ?? ProcessInfoLite.activeProcessorCount)
        #endif
    }

    /// The network for a `height` × `width` input, made once per size.
    func network(height: Int, width: Int) throws(FaceEmbedError) -> Network {
        let key = SIMD2(Int32(height), Int32(width))
        if let n = networks.withLock({ $0[key] }) { return n }
        let resized = try plan.resized(height: height, width: width) {
            .invalidArgument("a \(width)x\(height) detector input: \($0)")
        }
        _ = try DetectorLayout(resized) { .invalidArgument("a \(width)x\(height) detector input: \($0)") }
        let n = Network(plan: resized, storage: storage, tensorOffsets: offsets, threads: threads)
        return networks.withLock { cache in
            if let existing = cache[key] { return existing }
            cache[key] = n
            return n
        }
    }

    /// Runs the network on a preprocessed `height` × `width` input (planar RGB, already normalised) and hands
    /// `body` the output maps while the workspace is held.
    package func withOutputs<R>(
        input: UnsafePointer<Float>, height: Int, width: Int,
        _ body: (DetectorLayout, (Int) -> UnsafePointer<Float>) throws(FaceEmbedError) -> R
    ) throws(FaceEmbedError) -> R {
        let n = try network(height: height, width: width)
        let w = n.checkout(threads: threads)
        defer { n.checkin(w) }
        n.input(w).update(from: input, count: 3 * height * width)
        n.run(w, threads: threads)
        return try body(layout, { n.value($0, in: w) })
    }
}

extension FaceDetector {
    /// Every face in `photo`, most confident first (or, with `options.maxFaces`, the largest and most central
    /// ones), in photo pixels: insightface's `SCRFD.detect` on the same photo gives the same faces.
    ///
    /// ```swift
    /// let detector = try FaceDetector(contentsOf: "Models/scrfd_500m_bnkps.feb")
    /// for face in try detector.faces(in: try ImageDecoder.load(path: "group.jpg")) {
    ///     print(face.box, face.score)
    /// }
    /// ```
    public func faces(in photo: RGBImage, options: DetectionOptions = DetectionOptions()) throws(FaceEmbedError)
        -> [DetectedFace]
    {
        try photo.pixels.withUnsafeBufferPointer { (p) throws(FaceEmbedError) in
            try detect(CheckedPixels(rgb: p, width: photo.width, height: photo.height), options: options)
        }
    }

    /// Every face in a photo held in a caller's pixel buffer of any size and `PixelFormat` (`.bgr` for an OpenCV
    /// `Mat`, `.bgra` for a camera frame, …); the same faces as ``faces(in:options:)-(RGBImage,_)`` on its RGB copy.
    public func faces(in photo: PixelBuffer, options: DetectionOptions = DetectionOptions()) throws(FaceEmbedError)
        -> [DetectedFace]
    {
        try detect(try photo.checked(), options: options)
    }

    /// Letterboxes the photo into the network's input, runs it and decodes its maps.
    private func detect(_ photo: CheckedPixels, options: DetectionOptions) throws(FaceEmbedError) -> [DetectedFace] {
        try options.validate()
        let (h, w) = (options.inputHeight, options.inputWidth)
        let n = try network(height: h, width: w)
        let ws = n.checkout(threads: threads)
        defer { n.checkin(ws) }
        let box = letterbox(photo, width: w, height: h, into: n.input(ws))
        n.run(ws, threads: threads)
        let levels = layout.levels.map { l in
            DetectionLevel(
                stride: l.stride, height: h / l.stride, width: w / l.stride, scores: n.value(l.scores, in: ws),
                distances: n.value(l.boxes, in: ws), keypoints: n.value(l.landmarks, in: ws))
        }
        return SCRFDDecoding.faces(
            levels: levels, letterbox: box, photoWidth: photo.width, photoHeight: photo.height, options: options)
    }

    /// The detector's name as recorded in its file ("SCRFD").
    public var name: String { plan.name }

    /// Weights of the detector, not counting the zero lanes that pad lane-packed blocks.
    public var parameterCount: Int { plan.parameterCount }

    /// Multiply-adds of one run of the network on a `height` × `width` input.
    public func multiplyAdds(height: Int, width: Int) throws(FaceEmbedError) -> Int {
        try network(height: height, width: width).plan.macs
    }

    /// Each layer's median time on a synthetic `height` × `width` input.
    package func profile(height: Int, width: Int, iterations: Int, warmup: Int) throws(FaceEmbedError)
        -> [LayerProfile]
    {
        try network(height: height, width: width).profile(iterations: iterations, warmup: warmup, threads: threads) {
            Self.fillSynthetic($0, count: 3 * height * width)
        }
    }

    /// Values in the range of a normalised photo, different from pixel to pixel.
    package static func fillSynthetic(_ p: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { p[i] = Float(Int((i &* 2_654_435_761) >> 13) & 255) / 128 - 1 }
    }
}
