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
        _ = try DetectorLayout(plan) { .invalidWeights(file: name, reason: $0) }
        path = file.path
        storage = file
        self.plan = plan
        self.offsets = offsets
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
        let layout = try DetectorLayout(n.plan) { .invalidArgument($0) }
        let w = n.checkout(threads: threads)
        defer { n.checkin(w) }
        n.input(w).update(from: input, count: 3 * height * width)
        n.run(w, threads: threads)
        return try body(layout, { n.value($0, in: w) })
    }
}
