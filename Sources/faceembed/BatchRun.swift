import FaceEmbed
import Foundation

// The consumer side of the batch commands: takes decoded files from a `DecodePipeline` in list order, embeds their
// faces `batch` at a time (the model shares each batch across its threads while the decoders work ahead), and hands
// every file's result to a `BatchSink` in list order. Only the files of the current batch are held.

/// Where a batch run's results go, file by file in list order.
protocol BatchSink: AnyObject {
    /// The faces of the file at `path` and their unit-length embeddings, in face order.
    func record(_ path: String, _ faces: [FoundFace], _ embeddings: [Embedding]) throws
    /// The file at `path` gave no faces, because of `error`.
    func failed(_ path: String, _ error: FaceEmbedError) throws
    /// The end of a batch: every result so far has been handed over.
    func endBatch() throws
}

/// What a batch run has done so far.
struct BatchCounts {
    var files = 0, faces = 0, errors = 0
}

/// Embeds the files of a pipeline in batches and passes the results on.
struct BatchRun {
    let model: FaceModel
    /// Faces per model call.
    let batch: Int
    let progress: BatchProgress?

    /// Runs the whole list through `sink`.
    func run(_ pipeline: DecodePipeline, into sink: BatchSink) throws -> BatchCounts {
        var counts = BatchCounts()
        var pending: [DecodedFile] = [], faces = 0
        while let file = try pipeline.next() {
            pending.append(file)
            if case .success(let found) = file.faces { faces += found.count }
            if faces >= batch {
                try flush(pending, sink, &counts)
                pending.removeAll(keepingCapacity: true)
                faces = 0
            }
        }
        try flush(pending, sink, &counts)
        progress?.finish(counts)
        return counts
    }

    /// Embeds the faces of `files` in one call and hands each file's result to `sink`.
    private func flush(_ files: [DecodedFile], _ sink: BatchSink, _ counts: inout BatchCounts) throws {
        guard !files.isEmpty else { return }
        let crops = files.flatMap { file in (try? file.faces.get()) ?? [] }.map(\.aligned)
        let embeddings = crops.isEmpty ? [] : try model.embeddings(for: crops).map(\.normalized)
        var next = 0
        for file in files {
            counts.files += 1
            switch file.faces {
            case .failure(let error):
                counts.errors += 1
                try sink.failed(file.path, error)
            case .success(let found):
                let mine = Array(embeddings[next..<next + found.count])
                next += found.count
                if let error = BatchRun.problem(file.path, mine) {
                    counts.errors += 1
                    try sink.failed(file.path, error)
                } else {
                    counts.faces += found.count
                    try sink.record(file.path, found, mine)
                }
            }
        }
        try sink.endBatch()
        progress?.update(counts)
    }

    /// Why a file's embeddings give no records: no face at all, or a value that is not finite.
    private static func problem(_ path: String, _ embeddings: [Embedding]) -> FaceEmbedError? {
        if embeddings.isEmpty { return .invalidImage(file: path, reason: "no face found") }
        if embeddings.contains(where: { !$0.values.allSatisfy(\.isFinite) }) {
            return .invalidImage(file: path, reason: "the model gave an embedding that is not finite")
        }
        return nil
    }
}

/// Files done, faces, errors and rate on standard error, redrawn in place at most five times a second; made only
/// when standard error is a terminal.
final class BatchProgress {
    private let clock = ContinuousClock()
    private let start: ContinuousClock.Instant
    private var lastDraw: ContinuousClock.Instant

    /// A progress line, or nil when standard error is not a terminal.
    static func ifTerminal() -> BatchProgress? { isatty(2) != 0 ? BatchProgress() : nil }

    private init() {
        start = clock.now
        lastDraw = start
    }

    func update(_ c: BatchCounts) {
        guard (clock.now - lastDraw).inSeconds >= 0.2 else { return }
        lastDraw = clock.now
        draw(c)
    }

    func finish(_ c: BatchCounts) {
        draw(c)
        FileHandle.standardError.write(Data("\n".utf8))
    }

    private func draw(_ c: BatchCounts) {
        let seconds = (clock.now - start).inSeconds
        let rate = seconds > 0 ? Double(c.files) / seconds : 0
        let line = "\r\(c.files) files, \(c.faces) faces, \(c.errors) errors, \(String(format: "%.1f", rate)) files/s  "
        FileHandle.standardError.write(Data(line.utf8))
    }
}
