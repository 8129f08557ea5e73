import Dispatch
import Synchronization

// Batches: every public call of FaceModel ends in `embed(count:crops:stop:_:)`, which takes the images from a
// `FaceSource` (the caller's RGBImages or pixel buffers), aligns photos through their crop transforms, and runs the
// network. One image, or one thread: the images run one after another with all threads inside each layer. Otherwise
// the images are shared out in contiguous chunks, one chunk per thread, each image single-threaded (the fastest way
// to embed many faces). Everything that can fail is checked before the work starts, so the workers never throw.

extension FaceModel {
    /// Embeddings of several aligned 112 × 112 faces. With more than one thread the images are shared out across
    /// threads, each image running single-threaded, which is the fastest way to embed many faces.
    public func embeddings(for faces: [RGBImage]) throws(FaceEmbedError) -> [Embedding] {
        try checkAllAligned(faces.map { ($0.width, $0.height) })
        return embed(count: faces.count, crops: nil, stop: nil, RGBSource(faces: faces))!
    }

    /// Embeddings of several aligned 112 × 112 faces, like the synchronous `embeddings(for:)`, in a task that can
    /// be cancelled.
    ///
    /// Cancellation is checked before each image (between images, never inside one): once the task is cancelled,
    /// the images not yet started are skipped and the call throws `CancellationError`. Other failures are
    /// `FaceEmbedError`s. The work runs on the calling thread and the model's worker threads without suspending, so
    /// a long batch occupies its task's thread until it ends or is cancelled.
    public func embeddings(for faces: [RGBImage]) async throws -> [Embedding] {
        try Task.checkCancellation()
        try checkAllAligned(faces.map { ($0.width, $0.height) })
        let stop = StopFlag()
        let result = await withTaskCancellationHandler {
            embed(count: faces.count, crops: nil, stop: stop, RGBSource(faces: faces))
        } onCancel: {
            stop.set()
        }
        guard let result else { throw CancellationError() }
        return result
    }

    /// Embeddings of several aligned 112 × 112 faces in caller's pixel buffers (each in its own format and
    /// stride), shared out across threads like `embeddings(for:)` of `RGBImage`s.
    public func embeddings(for faces: [PixelBuffer]) throws(FaceEmbedError) -> [Embedding] {
        try checkAllAligned(faces.map { ($0.width, $0.height) })
        return embed(count: faces.count, crops: nil, stop: nil, BufferSource(buffers: try checked(faces)))!
    }

    /// Embeddings of the faces with these landmarks in photos, one set of landmarks per photo (repeat a photo for
    /// several faces in it): each is aligned to the 112 × 112 ArcFace crop as `alignedFace(landmarks:)` does, then
    /// embedded. Shared out across threads, alignment included, like `embeddings(for:)`.
    public func embeddings(for photos: [RGBImage], landmarks: [FaceLandmarks]) throws(FaceEmbedError) -> [Embedding] {
        let crops = try cropTransforms(landmarks, photos: photos.count)
        return embed(count: photos.count, crops: crops, stop: nil, RGBSource(faces: photos))!
    }

    /// Embeddings of the faces with these landmarks in photos held in caller's pixel buffers of any size and format,
    /// one set of landmarks per photo: aligned, then embedded, shared out across threads.
    public func embeddings(for photos: [PixelBuffer], landmarks: [FaceLandmarks]) throws(FaceEmbedError) -> [Embedding]
    {
        let crops = try cropTransforms(landmarks, photos: photos.count)
        return embed(count: photos.count, crops: crops, stop: nil, BufferSource(buffers: try checked(photos)))!
    }

    // MARK: checks

    /// Throws unless every size is the aligned input size, naming the first face that is not.
    private func checkAllAligned(_ sizes: [(width: Int, height: Int)]) throws(FaceEmbedError) {
        let s = FaceModel.inputSize
        for (i, f) in sizes.enumerated() where f.width != s || f.height != s {
            throw .invalidImage(file: nil, reason: "face \(i) is \(f.width)x\(f.height), not \(s)x\(s)")
        }
    }

    /// Each buffer checked against its layout; the first bad one is named.
    private func checked(_ buffers: [PixelBuffer]) throws(FaceEmbedError) -> [CheckedPixels] {
        var out: [CheckedPixels] = []
        out.reserveCapacity(buffers.count)
        for (i, b) in buffers.enumerated() {
            do { out.append(try b.checked()) } catch { throw error.prefixed(buffers.count > 1 ? "face \(i): " : "") }
        }
        return out
    }

    /// The crop-to-photo transform of every set of landmarks, one per photo.
    private func cropTransforms(_ landmarks: [FaceLandmarks], photos: Int) throws(FaceEmbedError)
        -> [SimilarityTransform]
    {
        guard landmarks.count == photos else {
            throw .invalidArgument("give one set of landmarks per photo (\(photos) photos, \(landmarks.count) sets)")
        }
        var out: [SimilarityTransform] = []
        out.reserveCapacity(landmarks.count)
        for (i, l) in landmarks.enumerated() {
            do { out.append(try l.cropToPhoto(size: FaceModel.inputSize)) } catch {
                throw error.prefixed(photos > 1 ? "face \(i): " : "")
            }
        }
        return out
    }

    // MARK: running

    /// Embeds images `0..<count` of `source` (each first cropped through `crops[i]` when given). Returns nil when
    /// `stop` was set before every image was started; never nil without `stop`.
    func embed(count: Int, crops: [SimilarityTransform]?, stop: StopFlag?, _ source: some FaceSource) -> [Embedding]? {
        let parts = min(network.threads, count)
        if parts <= 1 {
            let w = network.checkout(threads: network.threads)
            defer { network.checkin(w) }
            var crop = CropScratch()
            var out: [Embedding] = []
            out.reserveCapacity(count)
            for i in 0..<count {
                if stop?.isSet == true { return nil }
                out.append(embedOne(i, source, crop: crops?[i], scratch: &crop, w, threads: network.threads))
            }
            return out
        }
        let results = Mutex<[Embedding?]>(Array(repeating: nil, count: count))
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let w = network.checkout(threads: 1)
            defer { network.checkin(w) }
            var crop = CropScratch()
            for i in chunk(count, parts: parts, index: part) {
                if stop?.isSet == true { return }
                let e = embedOne(i, source, crop: crops?[i], scratch: &crop, w, threads: 1)
                results.withLock { $0[i] = e }
            }
        }
        let all = results.withLock { $0 }
        return all.contains(where: { $0 == nil }) ? nil : all.map { $0! }
    }

    /// One image of `source` through the network in workspace `w`, cropped first when `crop` is given.
    private func embedOne(
        _ i: Int, _ source: some FaceSource, crop: SimilarityTransform?, scratch: inout CropScratch,
        _ w: Workspace, threads: Int
    ) -> Embedding {
        source.withPixels(i) { pixels in
            guard let crop else { return run(w, pixels, threads: threads) }
            return scratch.crop(pixels, through: crop) { run(w, $0, threads: threads) }
        }
    }

    /// One forward pass in workspace `w` on a checked 112 × 112 pixel buffer.
    private func run(_ w: Workspace, _ pixels: CheckedPixels, threads: Int) -> Embedding {
        let plan = network.plan
        fillInput(
            network.input(w), from: pixels, order: plan.channelOrder, mean: plan.inputMean, scale: plan.inputScale)
        network.run(w, threads: threads)
        return Embedding(Array(UnsafeBufferPointer(start: network.output(w), count: plan.embeddingSize)))
    }
}

/// Where a batch's images come from (read by every worker thread).
protocol FaceSource: Sendable {
    /// Calls `body` with image `i`'s checked pixels.
    func withPixels<R>(_ i: Int, _ body: (CheckedPixels) -> R) -> R
}

/// The caller's `RGBImage`s (whose pixels are always a valid tightly packed RGB buffer).
struct RGBSource: FaceSource {
    let faces: [RGBImage]

    func withPixels<R>(_ i: Int, _ body: (CheckedPixels) -> R) -> R {
        faces[i].pixels.withUnsafeBufferPointer {
            body(CheckedPixels(rgb: $0, width: faces[i].width, height: faces[i].height))
        }
    }
}

/// The caller's pixel buffers, checked. Only read, and only while the batch call that made it runs (it returns
/// after every worker is done), when the caller guarantees the memory is valid and unchanged.
struct BufferSource: FaceSource, @unchecked Sendable {
    let buffers: [CheckedPixels]

    func withPixels<R>(_ i: Int, _ body: (CheckedPixels) -> R) -> R { body(buffers[i]) }
}

/// One worker's 112 × 112 RGB crop buffer, reused from image to image.
struct CropScratch {
    private var bytes = [UInt8](repeating: 0, count: FaceModel.inputSize * FaceModel.inputSize * 3)

    /// Crops `photo` through `transform` into the buffer and calls `body` with the crop.
    mutating func crop<R>(_ photo: CheckedPixels, through transform: SimilarityTransform, _ body: (CheckedPixels) -> R)
        -> R
    {
        let s = FaceModel.inputSize
        return bytes.withUnsafeMutableBufferPointer { out in
            warpCrop(from: photo, through: transform, size: s, into: out)
            return body(CheckedPixels(rgb: UnsafeBufferPointer(out), width: s, height: s))
        }
    }
}

extension FaceEmbedError {
    /// The same error with `prefix` before its reason (to say which image of a batch it is about).
    fileprivate func prefixed(_ prefix: String) -> FaceEmbedError {
        switch self {
        case let .io(f, r): return .io(file: f, reason: prefix + r)
        case let .invalidImage(f, r): return .invalidImage(file: f, reason: prefix + r)
        case let .invalidWeights(f, r): return .invalidWeights(file: f, reason: prefix + r)
        case let .unsupportedModel(f, r): return .unsupportedModel(file: f, reason: prefix + r)
        case let .invalidArgument(r): return .invalidArgument(prefix + r)
        }
    }
}

/// A flag one thread sets and others poll: task cancellation seen from the worker threads, which run outside the
/// task (where `Task.isCancelled` is always false).
final class StopFlag: Sendable {
    private let state = Atomic<Bool>(false)

    /// Raises the flag.
    func set() { state.store(true, ordering: .releasing) }

    /// Whether the flag is up.
    var isSet: Bool { state.load(ordering: .acquiring) }
}
