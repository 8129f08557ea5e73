import Dispatch
import FaceEmbed
import Synchronization

// A whole LFW run of a model, as `faceembed eval-lfw` reports it: every image the pairs name is decoded (in
// parallel) and embedded in batches, each also flipped; each pair gets the squared distance of its plain and of its
// flip-summed embeddings (`LFWProtocol.squaredDistance`), and `LFWProtocol.evaluate` scores both.

/// The result of `LFWEvaluation.run`: accuracies, every pair's distance, and how long it took.
public struct LFWEvaluation: Sendable {
    /// The pairs evaluated.
    public var pairs: LFWPairs
    /// Distinct images embedded.
    public var imageCount: Int
    /// Forward passes made: one per image, two with the flip.
    public var forwardPasses: Int
    /// Plain embeddings, `fc1(img)`.
    public var plain: Variant
    /// Flip-summed embeddings, `fc1(img) + fc1(hflip(img))`; nil for a run without the flip.
    public var flip: Variant?
    /// Seconds for the whole run, and for its decoding and embedding parts.
    public var seconds: Double, decodeSeconds: Double, embedSeconds: Double

    /// The results for one kind of embedding.
    public struct Variant: Sendable {
        /// Each pair's squared distance, in pair order.
        public var distances: [Double]
        /// The protocol's folds, thresholds and accuracies on those distances.
        public var accuracy: LFWAccuracy
        /// Each pair's decision at its fold's threshold ("same" below it), in pair order.
        public var decisions: [Bool] { accuracy.decisions(distances: distances) }
    }

    /// Evaluates `model` on `pairs`, with the aligned 112 × 112 images at `imagesDirectory/NAME/NAME_000N.ext`.
    ///
    /// - Parameters:
    ///   - flip: also embed each image mirrored and score the flip-summed embeddings (insightface's default).
    ///   - batch: images per `embeddings(for:)` call (the model's threads share out each batch).
    ///   - progress: called after each batch with the images embedded so far and the seconds since the start.
    /// - Throws: the first image that cannot be read or decoded, or is not 112 × 112, named by its path.
    public static func run(
        model: FaceModel, pairs: LFWPairs, imagesDirectory: String, extension ext: String = "jpg",
        flip: Bool = true, batch: Int = 32,
        progress: (_ embedded: Int, _ seconds: Double) -> Void = { _, _ in }
    )
        throws(FaceEmbedError) -> LFWEvaluation
    {
        let images = pairs.uniqueImages
        let paths = images.map { imagesDirectory + "/" + $0.relativePath(extension: ext) }
        let clock = ContinuousClock(), start = clock.now
        let workers = max(1, min(model.threads, ProcessInfoLite.activeProcessorCount))
        var embedded = Embedded(count: images.count, flip: flip)
        let step = max(1, batch)
        for range in stride(from: 0, to: images.count, by: step).map({ $0..<min(images.count, $0 + step) }) {
            let t0 = clock.now
            let faces = try decode(paths[range], workers: workers)
            let t1 = clock.now
            try embedded.add(faces, at: range.lowerBound, model: model)
            let t2 = clock.now
            embedded.decodeSeconds += (t1 - t0).inSeconds
            embedded.embedSeconds += (t2 - t1).inSeconds
            progress(range.upperBound, (t2 - start).inSeconds)
        }
        let t = (total: (clock.now - start).inSeconds, decode: embedded.decodeSeconds, embed: embedded.embedSeconds)
        return LFWEvaluation(
            pairs: pairs, imageCount: images.count, forwardPasses: (flip ? 2 : 1) * images.count,
            plain: try score(pairs, images, embedded.plain),
            flip: try embedded.flip.map { (e) throws(FaceEmbedError) in try score(pairs, images, e) },
            seconds: t.total, decodeSeconds: t.decode, embedSeconds: t.embed)
    }

    /// The distances of every pair, given the embeddings of `images`, and the protocol on them.
    static func score(_ pairs: LFWPairs, _ images: [LFWImage], _ e: [Embedding]) throws(FaceEmbedError) -> Variant {
        var index: [LFWImage: Int] = [:]
        for (i, im) in images.enumerated() { index[im] = i }
        let d = pairs.pairs.map { LFWProtocol.squaredDistance(e[index[$0.first]!], e[index[$0.second]!]) }
        let same = pairs.pairs.map(\.same)
        return Variant(distances: d, accuracy: try LFWProtocol.evaluate(distances: d, same: same, folds: pairs.folds))
    }

    /// Decodes the aligned faces at `paths` on `workers` threads; the first failure (in path order) is thrown.
    static func decode(_ paths: ArraySlice<String>, workers: Int) throws(FaceEmbedError) -> [RGBImage] {
        let paths = Array(paths), parts = min(workers, paths.count)
        let decoded = Mutex<[Result<RGBImage, FaceEmbedError>?]>(Array(repeating: nil, count: paths.count))
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            for i in stride(from: part, to: paths.count, by: parts) {
                let r = Result { () throws(FaceEmbedError) in try loadAlignedFace(paths[i]) }
                decoded.withLock { $0[i] = r }
            }
        }
        var faces: [RGBImage] = []
        faces.reserveCapacity(paths.count)
        for r in decoded.withLock({ $0 }) { faces.append(try r!.get()) }
        return faces
    }

    /// The image at `path`, which must be an aligned 112 × 112 face.
    static func loadAlignedFace(_ path: String) throws(FaceEmbedError) -> RGBImage {
        let img = try ImageDecoder.load(path: path)
        guard img.width == FaceModel.inputSize, img.height == FaceModel.inputSize else {
            throw .invalidImage(
                file: path,
                reason: "an aligned face must be 112x112, this is \(img.width)x\(img.height)")
        }
        return img
    }
}

/// The embeddings of a run, filled batch by batch, and the time spent.
private struct Embedded {
    var plain: [Embedding]
    var flip: [Embedding]?
    var decodeSeconds = 0.0, embedSeconds = 0.0

    init(count: Int, flip: Bool) {
        plain = Array(repeating: Embedding([]), count: count)
        self.flip = flip ? plain : nil
    }

    /// Embeds `faces` (and their mirror images, with the flip) as images `start...` in one batch call.
    mutating func add(_ faces: [RGBImage], at start: Int, model: FaceModel) throws(FaceEmbedError) {
        let e = try model.embeddings(for: flip == nil ? faces : faces + faces.map { $0.horizontallyFlipped() })
        for k in faces.indices {
            plain[start + k] = e[k]
            flip?[start + k] = e[k] + e[faces.count + k]
        }
    }
}
