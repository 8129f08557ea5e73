import FaceEmbed
import Foundation

// The consumer side of the batch commands: takes the embedded batches of an `EmbedPipeline` in list order and hands
// every file's result to a `BatchSink`, in list order.

/// Where a batch run's results go, file by file in list order.
protocol BatchSink: AnyObject {
    /// The faces of the file at `path` with their unit-length embeddings, in face order.
    func record(_ path: String, _ faces: [EmbeddedFace]) throws
    /// The file at `path` gave no faces, because of `error`.
    func failed(_ path: String, _ error: FaceEmbedError) throws
    /// The end of a batch: every result so far has been handed over.
    func endBatch() throws
}

/// What a batch run has done so far.
struct BatchCounts {
    var files = 0, faces = 0, errors = 0
}

extension EmbedPipeline {
    /// Runs the whole list through `sink`, updating `progress` after every batch.
    func run(into sink: BatchSink, progress: BatchProgress?) throws -> BatchCounts {
        var counts = BatchCounts()
        while let files = try next() {
            for file in files {
                counts.files += 1
                switch file.faces {
                case .failure(let error):
                    counts.errors += 1
                    try sink.failed(file.path, error)
                case .success(let faces):
                    counts.faces += faces.count
                    try sink.record(file.path, faces)
                }
            }
            try sink.endBatch()
            progress?.update(counts)
        }
        progress?.finish(counts)
        return counts
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
