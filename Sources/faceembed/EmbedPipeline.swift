import FaceEmbed
import Foundation

// The worker side of the batch commands. Each worker thread claims the next `batch` paths of the list, decodes
// them and finds their faces (`FaceFinder`), embeds all those faces in one call of a single-threaded model, and
// leaves the batch for the consumer, which takes the batches back in list order. With one worker per core, one
// core decodes while the other embeds, and no core waits for another inside a batch. A worker does not claim a batch
// more than `ahead` batches past the one the consumer waits for, so memory stays flat however long the list.

/// A face with its unit-length embedding.
struct EmbeddedFace: Sendable {
    let face: FoundFace
    let embedding: Embedding
}

/// One listed file after decoding and embedding: its faces, or why it gave none.
struct EmbeddedFile: Sendable {
    let path: String
    let faces: Result<[EmbeddedFace], FaceEmbedError>
}

/// Decodes and embeds a list of files on worker threads, batch by batch, and hands the batches back in list order.
final class EmbedPipeline: @unchecked Sendable {
    // Every mutable field below is guarded by `condition`.
    private let condition = NSCondition()
    private let source: PathSource
    private let finder: any FaceFinder
    private let model: FaceModel
    private let batch: Int
    private let ahead: Int
    /// Batches claimed by workers so far; the next batch's position.
    private var issued = 0
    /// Batches handed back to the consumer so far.
    private var taken = 0
    private var ready: [Int: [EmbeddedFile]] = [:]
    /// The number of batches, once the source has ended (or failed).
    private var total: Int?
    private var failure: FaceEmbedError?

    /// Starts `workers` threads reading `source`, each embedding `batch` files per call of `model` (which should
    /// run single-threaded: the workers are the parallelism).
    init(source: PathSource, finder: any FaceFinder, model: FaceModel, workers: Int, batch: Int) {
        self.source = source
        self.finder = finder
        self.model = model
        self.batch = max(1, batch)
        ahead = 2 * max(1, workers)
        for _ in 0..<max(1, workers) {
            let thread = Thread { [self] in work() }
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    /// The next batch of files in list order, or nil after the last; throws when the list itself cannot be read
    /// (after handing back every file before the fault).
    func next() throws(FaceEmbedError) -> [EmbeddedFile]? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let files = ready.removeValue(forKey: taken) {
                taken += 1
                condition.broadcast()
                return files
            }
            if let total, taken == total {
                if let failure { throw failure }
                return nil
            }
            condition.wait()
        }
    }

    private func work() {
        condition.lock()
        while let (position, paths) = claim() {
            condition.unlock()
            let files = embed(paths)
            condition.lock()
            ready[position] = files
            condition.broadcast()
        }
        condition.unlock()
    }

    /// The next batch of paths and its position, waiting while the workers are `ahead` batches in front of the
    /// consumer; nil at the end of the list. Called with the lock held.
    private func claim() -> (Int, [String])? {
        while total == nil, issued - taken >= ahead { condition.wait() }
        guard total == nil else { return nil }
        var paths: [String] = []
        do {
            while paths.count < batch, let path = try source.next() { paths.append(path) }
        } catch {
            failure = error
        }
        if !paths.isEmpty { issued += 1 }
        if failure != nil || paths.count < batch {
            total = issued
            condition.broadcast()
        }
        return paths.isEmpty ? nil : (issued - 1, paths)
    }

    /// Decodes the files, finds their faces and embeds them all in one call.
    private func embed(_ paths: [String]) -> [EmbeddedFile] {
        let found = paths.map { path -> Result<[FoundFace], FaceEmbedError> in
            do throws(FaceEmbedError) { return .success(try finder.faces(atPath: path)) } catch {
                return .failure(error)
            }
        }
        let crops: [RGBImage] = found.flatMap { (try? $0.get()) ?? [] }.map { $0.aligned }
        var embeddings: [Embedding] = []
        do throws(FaceEmbedError) {
            if !crops.isEmpty { embeddings = try model.embeddings(for: crops).map { $0.normalized } }
        } catch {
            return paths.map { EmbeddedFile(path: $0, faces: .failure(error)) }
        }
        var next = 0
        var files: [EmbeddedFile] = []
        for (path, result) in zip(paths, found) {
            switch result {
            case .failure(let error): files.append(EmbeddedFile(path: path, faces: .failure(error)))
            case .success(let faces):
                let mine = zip(faces, embeddings[next..<next + faces.count]).map {
                    EmbeddedFace(face: $0.0, embedding: $0.1)
                }
                next += faces.count
                files.append(EmbeddedFile(path: path, faces: EmbedPipeline.checked(path, mine)))
            }
        }
        return files
    }

    /// The faces of a file, or why they give no records: no face at all, or a value that is not finite.
    private static func checked(_ path: String, _ faces: [EmbeddedFace]) -> Result<[EmbeddedFace], FaceEmbedError> {
        if faces.isEmpty { return .failure(.invalidImage(file: path, reason: "no face found")) }
        if faces.contains(where: { !$0.embedding.values.allSatisfy(\.isFinite) }) {
            return .failure(.invalidImage(file: path, reason: "the model gave an embedding that is not finite"))
        }
        return .success(faces)
    }
}
