import FaceEmbed
import Foundation

// `faceembed embed --files-from LIST`: the streaming batch mode. Paths come from a list (or standard input), the
// files are decoded on background threads while the model embeds batches, and each face's record goes out as one
// JSON Lines record (or one row of a .npy matrix) as soon as its batch is done.

extension Commands {
    static let batchEmbedUsage = """
        usage: faceembed embed --files-from LIST [options]

        Embeds every image listed in LIST (one path a line, - for standard input; blank lines are
        skipped), streaming: one worker per core decodes a batch of files and embeds it while the others
        do the same with the next batches, and memory stays flat however long the list. For now each
        image must be an aligned 112x112 face (face 0).

        Standard output gets one JSON Lines record per face, written whole as its batch finishes:
          {"path":"a.jpg","face":0,"box":null,"score":null,"landmarks":null,"model":"MobileFaceNet",\
        "dim":128,"embedding":[...]}
        box [x1,y1,x2,y2], score and landmarks [[x,y],...] (five points) are null unless the face was
        detected; the embedding has unit length; every float is printed in its shortest form that reads
        back as the same float32. A file that fails (missing, unreadable, not an image, no face) gives
          {"path":"b.jpg","error":"<message naming the fault>"}
        and the run goes on. Exit status: 0 when every file gave records, 2 when any failed (the count is
        on standard error) or the run could not start. Progress goes to standard error when it is a terminal.

        options:
          --files-from LIST   the list of image paths (- for standard input)
          --format F          jsonl (default) or npy: a float32 matrix (n, dim), numpy's .npy format, with
                              the ids (path TAB face, one a line) beside it; error records still go to
                              standard output
          -o, --output FILE   with --format npy: the matrix file, FILE.npy (the ids go to FILE.ids.txt);
                              the header's row count is updated after every batch
          --model PATH        FaceEmbed weight file (default: $FACEEMBED_MODEL, then \(ModelLookup.candidates.joined(separator: ", ")))
          --threads N         worker threads, each decoding and embedding a batch at a time (default: all
                              cores)
          --batch N           files per batch: decoded, then embedded in one call (default 8)
        \(detectionHelp)
                           (a 112x112 image is embedded as an aligned face; any other goes through the
                           detector, every face found a record, "no face found" an error record)
          -h, --help          show this help
        """

    /// The options every batch command shares (embed --files-from, enroll from a folder, search).
    static let batchValued: Set<String> = detectionOptionNames.union([
        "--files-from", "--model", "--threads", "--batch",
    ])

    /// True when `argv` asks `embed` for the batch mode.
    static func wantsBatch(_ argv: [String]) -> Bool {
        argv.contains { $0 == "--files-from" || $0.hasPrefix("--files-from=") }
    }

    static func batchEmbed(_ argv: [String]) throws -> Int32 {
        let a = try Arguments(argv, valued: batchValued.union(["--format", "--output"]), flags: [])
        if a.flags.contains("--help") { print(batchEmbedUsage); return 0 }
        guard a.positional.isEmpty else {
            throw UsageError("give the images in the --files-from list, not as arguments (\(a.positional[0]))")
        }
        guard let list = a.options["--files-from"] else { throw UsageError("--files-from LIST is required") }
        let format = a.options["--format"] ?? "jsonl"
        guard format == "jsonl" || format == "npy" else { throw UsageError("--format must be jsonl or npy") }
        let output = a.options["--output"]
        if format == "npy", output == nil { throw UsageError("--format npy needs -o FILE.npy") }
        if format == "jsonl", output != nil { throw UsageError("-o is for --format npy; JSON Lines go to stdout") }
        let model = try batchModel(a)
        let source = try PathList(path: list)
        let sink: BatchSink =
            try output.map { try NPYSink(path: $0, dimension: model.embeddingSize) } ?? JSONLSink(model: model)
        let counts = try runBatch(a, model: model, source: source, sink: sink)
        return reportFailures(counts, of: "files")
    }

    /// The model of a batch command, single-threaded: the batch workers are the parallelism.
    static func batchModel(_ a: Arguments) throws -> FaceModel {
        try FaceModel(contentsOf: try ModelLookup.path(a.options["--model"]), threads: 1)
    }

    /// Worker threads of a batch command: --threads, or all cores.
    static func batchWorkers(_ a: Arguments) throws -> Int {
        let threads = try a.int("--threads", default: 0, in: 0...256)
        return threads == 0 ? ProcessInfo.processInfo.activeProcessorCount : threads
    }

    /// Runs `model` over the files of `source` into `sink`, with the batch options of `a`.
    static func runBatch(_ a: Arguments, model: FaceModel, source: PathSource, sink: BatchSink) throws -> BatchCounts {
        let pipeline = EmbedPipeline(
            source: source, finder: try batchFinder(a), model: model, workers: try batchWorkers(a),
            batch: try a.int("--batch", default: 8, in: 1...4096))
        return try pipeline.run(into: sink, progress: BatchProgress.ifTerminal())
    }

    /// The per-file step of a batch command: detection when a detector is named or found (single-threaded, like the
    /// model), else aligned 112x112 images only.
    static func batchFinder(_ a: Arguments) throws -> any FaceFinder {
        let path: String
        if let explicit = a.options["--detector"] {
            path = explicit
        } else if let found = try? DetectorLookup.path(nil) {
            path = found
        } else {
            return AlignedFaceFinder()
        }
        return DetectingFaceFinder(
            detector: try FaceDetector(contentsOf: path, threads: 1), options: try detectionOptions(a))
    }

    /// Says on standard error how many inputs failed, if any: exit status 2 then, else 0.
    static func reportFailures(_ counts: BatchCounts, of what: String) -> Int32 {
        guard counts.errors > 0 else { return 0 }
        FileHandle.standardError.write(Data("faceembed: \(counts.errors) of \(counts.files) \(what) failed\n".utf8))
        return 2
    }
}

/// JSON Lines text for the batch records.
enum JSONLines {
    /// A float in its shortest form that reads back as the same float32; null when it is not finite.
    static func number(_ v: Float) -> String { v.isFinite ? v.description : "null" }

    static func numbers(_ values: [Float]) -> String { "[" + values.map(number).joined(separator: ",") + "]" }

    /// The record of one embedded face.
    static func face(_ path: String, _ face: FoundFace, model: String, _ embedding: Embedding) -> String {
        let box = face.box.map(numbers) ?? "null"
        let score = face.score.map(number) ?? "null"
        let landmarks = face.landmarks.map { "[" + $0.map { numbers([$0.x, $0.y]) }.joined(separator: ",") + "]" }
        return "{\"path\":\(Commands.jsonString(path)),\"face\":\(face.index),\"box\":\(box),\"score\":\(score),"
            + "\"landmarks\":\(landmarks ?? "null"),\"model\":\(Commands.jsonString(model)),"
            + "\"dim\":\(embedding.values.count),\"embedding\":\(numbers(embedding.values))}"
    }

    /// The record of a file that failed.
    static func error(_ path: String, _ error: FaceEmbedError) -> String {
        "{\"path\":\(Commands.jsonString(path)),\"error\":\(Commands.jsonString(error.description))}"
    }
}

/// Writes whole lines to standard output, each with one `write` call (repeated only if the system takes part of
/// it), so a run cut short leaves only complete lines behind it.
enum StandardOutput {
    static func writeLine(_ line: String) throws(FaceEmbedError) {
        var bytes = Array(line.utf8)
        bytes.append(0x0A)
        try writeAll(1, bytes, name: "standard output")
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], name: String) throws(FaceEmbedError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw .io(file: name, reason: "write failed: \(String(cString: strerror(errno)))") }
            done += n
        }
    }
}

/// One JSON Lines record per face, and one per failed file, on standard output.
final class JSONLSink: BatchSink {
    private let modelName: String

    init(model: FaceModel) { modelName = model.name }

    func record(_ path: String, _ faces: [EmbeddedFace]) throws {
        for f in faces { try StandardOutput.writeLine(JSONLines.face(path, f.face, model: modelName, f.embedding)) }
    }

    func failed(_ path: String, _ error: FaceEmbedError) throws {
        try StandardOutput.writeLine(JSONLines.error(path, error))
    }

    func endBatch() {}
}

/// A float32 .npy matrix (format 1.0, little-endian, C order, shape (n, dim)) and its id list (path TAB face, one a
/// line), appended batch by batch; the header, 128 bytes with room for any row count, is rewritten after every
/// batch, so the files always agree on the rows written. Failed files go to standard output as error records.
final class NPYSink: BatchSink {
    static let headerSize = 128
    let path: String
    let idsPath: String
    private let dimension: Int
    private let matrix: Int32
    private let ids: Int32
    private var rows = 0

    init(path: String, dimension: Int) throws(FaceEmbedError) {
        self.path = path
        self.dimension = dimension
        idsPath = (path.hasSuffix(".npy") ? String(path.dropLast(4)) : path) + ".ids.txt"
        matrix = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard matrix >= 0 else { throw .io(file: path, reason: "cannot create: \(String(cString: strerror(errno)))") }
        ids = open(idsPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard ids >= 0 else { throw .io(file: idsPath, reason: "cannot create: \(String(cString: strerror(errno)))") }
        try StandardOutput.writeAll(matrix, NPYSink.header(rows: 0, dimension: dimension), name: path)
    }

    deinit {
        close(matrix)
        close(ids)
    }

    /// The 128-byte .npy 1.0 header of a (rows, dimension) little-endian float32 matrix in C order.
    static func header(rows: Int, dimension: Int) -> [UInt8] {
        var text = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(rows), \(dimension)), }"
        text += String(repeating: " ", count: headerSize - 10 - text.utf8.count - 1) + "\n"
        let length = UInt16(text.utf8.count)
        return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(length & 0xFF), UInt8(length >> 8)] + Array(text.utf8)
    }

    func record(_ path: String, _ faces: [EmbeddedFace]) throws {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(faces.count * dimension * 4)
        for f in faces {
            for v in f.embedding.values { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
        }
        try StandardOutput.writeAll(matrix, bytes, name: self.path)
        let lines = faces.map { "\(path)\t\($0.face.index)\n" }.joined()
        try StandardOutput.writeAll(ids, Array(lines.utf8), name: idsPath)
        rows += faces.count
    }

    func failed(_ path: String, _ error: FaceEmbedError) throws {
        try StandardOutput.writeLine(JSONLines.error(path, error))
    }

    func endBatch() throws {
        let header = NPYSink.header(rows: rows, dimension: dimension)
        guard header.withUnsafeBytes({ pwrite(matrix, $0.baseAddress, $0.count, 0) }) == header.count else {
            throw FaceEmbedError.io(file: path, reason: "cannot update the header (is it a regular file?)")
        }
    }
}
