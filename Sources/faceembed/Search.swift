import FaceEmbed
import Foundation

// `faceembed enroll` and `faceembed search`: 1:N identification on one machine through the library's `Gallery`.
// enroll streams JSON Lines records (those of `embed --files-from`) or a folder of faces into a `GalleryWriter`;
// search embeds its queries through the batch pipeline and answers each with the gallery's top k.

extension Commands {
    static let enrollUsage = """
        usage: faceembed enroll --gallery G.feg [options] (RECORDS.jsonl | - | FOLDER)

        Builds a gallery file (.feg, Models/GALLERY.md) for `faceembed search`, streaming:

        From JSON Lines (the records of `faceembed embed --files-from`, a file or - for standard input):
        one row per face record, id = its path, or path#N for face N > 0. Error records are skipped and
        counted; every other line must be a record with the same model and dim as the first, and a line
        that is not is an error naming it (exit status 2, no gallery written).

        From a folder: every .jpg, .jpeg, .png and .ppm under it (recursively, in sorted order, hidden
        files skipped) is embedded as `embed --files-from` does (an aligned 112x112 face for now), id = its
        path relative to the folder. A file that fails is named on standard error and left out; the
        gallery is written with the others and the exit status is 2.

        options:
          --gallery G.feg     the gallery file to write (required; it appears when complete)
          --int8              also store the int8 copy of every row: an exact first pass about four times
                              faster to search, for a quarter more bytes
          --model PATH        for a folder: FaceEmbed weight file (default: $FACEEMBED_MODEL, then \(ModelLookup.candidates.joined(separator: ", ")))
          --threads N         for a folder: worker threads, each decoding and embedding a batch at a time
                              (default: all cores)
          --batch N           for a folder: files per batch (default 8)
          -h, --help          show this help
        """

    static func enroll(_ argv: [String]) throws -> Int32 {
        let a = try Arguments(
            argv, valued: batchValued.subtracting(["--files-from"]).union(["--gallery"]), flags: ["--int8"])
        if a.flags.contains("--help") { print(enrollUsage); return 0 }
        guard let gallery = a.options["--gallery"] else { throw UsageError("--gallery G.feg is required") }
        guard a.positional.count == 1 else { throw UsageError("give one JSON Lines file (or -) or one folder") }
        let input = a.positional[0], quantized = a.flags.contains("--int8")
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory), isDirectory.boolValue {
            return try enrollFolder(a, folder: input, gallery: gallery, quantized: quantized)
        }
        let enroller = RecordEnroller(gallery: gallery, quantized: quantized)
        try enroller.read(try LineReader(path: input, maxLine: 1 << 24))
        print(
            "\(gallery): \(enroller.rows) faces of model \(enroller.model ?? "?"), \(enroller.dimension) values each"
                + "\(quantized ? ", with the int8 copy" : ""); \(enroller.skipped) error records skipped")
        return 0
    }

    private static func enrollFolder(_ a: Arguments, folder: String, gallery: String, quantized: Bool) throws -> Int32 {
        let model = try batchModel(a)
        let walk = try FolderWalk(root: folder)
        let sink = GallerySink(
            try GalleryWriter(path: gallery, dimension: model.embeddingSize, quantized: quantized), walk: walk)
        let counts = try runBatch(a, model: model, source: walk, sink: sink)
        guard sink.writer.count > 0 else { throw FaceEmbedError.io(file: folder, reason: "no face to enroll") }
        try sink.writer.finish()
        print(
            "\(gallery): \(sink.writer.count) faces of \(counts.files - counts.errors) files, model \(model.name), "
                + "\(model.embeddingSize) values each\(quantized ? ", with the int8 copy" : "")")
        return reportFailures(counts, of: "files")
    }

    static let searchUsage = """
        usage: faceembed search --gallery G.feg [options] IMAGE [IMAGE ...]
               faceembed search --gallery G.feg [options] --files-from LIST

        Embeds each query image as `embed --files-from` does (an aligned 112x112 face for now) and prints
        the K most similar faces of the gallery, exactly (cosine similarity, highest first, ties by
        enrolment order):
          q.jpg
            1  0.812345  George_W_Bush/George_W_Bush_0001.jpg
        With --json, one JSON Lines record per query face:
          {"path":"q.jpg","face":0,"matches":[{"id":"...","index":12,"similarity":0.812345}, ...]}
        A query that fails is named on standard error (with --json: an error record on standard output,
        {"path":...,"error":...}) and the others go on; exit status 2 then.

        options:
          --gallery G.feg     the gallery to search (made by `faceembed enroll`; required)
          --top K             matches per query (default 5)
          --json              JSON Lines instead of text
          --files-from LIST   the query paths, one a line (- for standard input), instead of arguments
          --model PATH        FaceEmbed weight file, the one the gallery was made with (default: \
        $FACEEMBED_MODEL, then \(ModelLookup.candidates.joined(separator: ", ")))
          --threads N         worker threads (each decoding and embedding a batch of queries at a time) and
                              search threads (default: all cores)
          --batch N           query files per batch: embedded in one call, searched together (default 8)
          -h, --help          show this help
        """

    static func search(_ argv: [String]) throws -> Int32 {
        let a = try Arguments(argv, valued: batchValued.union(["--gallery", "--top"]), flags: ["--json"])
        if a.flags.contains("--help") { print(searchUsage); return 0 }
        guard let path = a.options["--gallery"] else { throw UsageError("--gallery G.feg is required") }
        let top = try a.int("--top", default: 5, in: 1...100_000)
        let list = a.options["--files-from"]
        guard (list == nil) != a.positional.isEmpty else {
            throw UsageError(list == nil ? "no query image given" : "give the queries as arguments or --files-from")
        }
        let model = try batchModel(a), threads = try batchWorkers(a)
        let gallery = try Gallery(contentsOf: path, threads: threads)
        guard gallery.dimension == model.embeddingSize else {
            throw FaceEmbedError.invalidArgument(
                "\(path) holds \(gallery.dimension)-value embeddings but \(model.path) gives \(model.embeddingSize)")
        }
        let source: PathSource = try list.map { try PathList(path: $0) } ?? ArrayPaths(a.positional)
        let sink = SearchSink(gallery, top: top, threads: threads, json: a.flags.contains("--json"))
        return reportFailures(try runBatch(a, model: model, source: source, sink: sink), of: "queries")
    }
}

/// The id of face `index` of the file `path`: the path, with `#index` after it for every face but the first.
func faceID(_ path: String, _ index: Int) -> String { index > 0 ? "\(path)#\(index)" : path }

/// Adds every embedded face of a folder to a gallery; failed files are named on standard error.
final class GallerySink: BatchSink {
    let writer: GalleryWriter
    private let walk: FolderWalk

    init(_ writer: GalleryWriter, walk: FolderWalk) {
        self.writer = writer
        self.walk = walk
    }

    func record(_ path: String, _ faces: [EmbeddedFace]) throws {
        for f in faces { try writer.append(id: faceID(walk.relative(path), f.face.index), embedding: f.embedding) }
    }

    func failed(_ path: String, _ error: FaceEmbedError) throws {
        FileHandle.standardError.write(Data("faceembed: \(error)\n".utf8))
    }

    func endBatch() {}
}

/// Searches the gallery for each batch of query faces and prints the answers in query order.
final class SearchSink: BatchSink {
    private enum Query {
        case face(path: String, index: Int, Embedding)
        case failed(path: String, FaceEmbedError)
    }

    private let gallery: Gallery
    private let top: Int, threads: Int
    private let json: Bool
    private var pending: [Query] = []

    init(_ gallery: Gallery, top: Int, threads: Int, json: Bool) {
        self.gallery = gallery
        self.top = top
        self.threads = threads
        self.json = json
    }

    func record(_ path: String, _ faces: [EmbeddedFace]) throws {
        for f in faces { pending.append(.face(path: path, index: f.face.index, f.embedding)) }
    }

    func failed(_ path: String, _ error: FaceEmbedError) throws { pending.append(.failed(path: path, error)) }

    func endBatch() throws {
        let queries = pending.compactMap { q -> Embedding? in
            if case .face(_, _, let e) = q { return e } else { return nil }
        }
        var answers = try gallery.search(queries, top: top, threads: threads)[...]
        for q in pending {
            switch q {
            case .face(let path, let index, _): try answer(path, index, answers.removeFirst())
            case .failed(let path, let error): try fail(path, error)
            }
        }
        pending.removeAll(keepingCapacity: true)
    }

    private func answer(_ path: String, _ index: Int, _ matches: [Match]) throws {
        if json {
            let items = matches.map { m in
                "{\"id\":\(Commands.jsonString(m.id)),\"index\":\(m.index),"
                    + "\"similarity\":\(JSONLines.number(m.similarity))}"
            }
            try StandardOutput.writeLine(
                "{\"path\":\(Commands.jsonString(path)),\"face\":\(index),\"matches\":[\(items.joined(separator: ","))]}"
            )
        } else {
            let lines = matches.enumerated().map { r, m in
                "\(String(r + 1).leftPadded(to: 5))  \(Commands.format(m.similarity))  \(m.id)"
            }
            try StandardOutput.writeLine(([faceID(path, index)] + lines).joined(separator: "\n"))
        }
    }

    private func fail(_ path: String, _ error: FaceEmbedError) throws {
        if json {
            try StandardOutput.writeLine(JSONLines.error(path, error))
        } else {
            FileHandle.standardError.write(Data("faceembed: \(error)\n".utf8))
        }
    }
}

extension String {
    /// The string with spaces before it to make it `width` characters long.
    func leftPadded(to width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}

/// One JSON Lines record as `enroll` reads it: a face record of `embed --files-from`, or an error record.
private struct EmbeddingRecord: Decodable {
    var path: String?
    var face: Int?
    var error: String?
    var model: String?
    var dim: Int?
    var embedding: [Float]?
}

/// Reads JSON Lines records into a gallery; the first face record fixes the model and dimension.
final class RecordEnroller {
    private let gallery: String
    private let quantized: Bool
    private var writer: GalleryWriter?
    private(set) var model: String?
    private(set) var skipped = 0
    var rows: Int { writer?.count ?? 0 }
    var dimension: Int { writer?.dimension ?? 0 }

    init(gallery: String, quantized: Bool) {
        self.gallery = gallery
        self.quantized = quantized
    }

    /// Adds every record of `reader` and writes the gallery.
    func read(_ reader: LineReader) throws {
        let decoder = JSONDecoder()
        while let line = try reader.next() {
            guard !line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) else { continue }
            let at = "\(reader.name) line \(reader.lineNumber)"
            let record: EmbeddingRecord
            do {
                record = try decoder.decode(EmbeddingRecord.self, from: Data(line))
            } catch {
                throw FaceEmbedError.invalidArgument("\(at): not a record: \(RecordEnroller.describe(error))")
            }
            do { try add(record) } catch { throw FaceEmbedError.invalidArgument("\(at): \(error)") }
        }
        guard let writer, writer.count > 0 else {
            throw FaceEmbedError.invalidArgument("\(reader.name): no face record to enroll (\(skipped) error records)")
        }
        try writer.finish()
    }

    private func add(_ r: EmbeddingRecord) throws {
        if r.error != nil {
            skipped += 1
            return
        }
        guard let path = r.path else { throw FaceEmbedError.invalidArgument("no \"path\"") }
        guard let values = r.embedding else { throw FaceEmbedError.invalidArgument("no \"embedding\" (nor \"error\")") }
        let face = r.face ?? 0
        guard face >= 0 else { throw FaceEmbedError.invalidArgument("\"face\" is \(face), below 0") }
        if let dim = r.dim, dim != values.count {
            throw FaceEmbedError.invalidArgument("\"dim\" is \(dim) but the embedding has \(values.count) values")
        }
        if writer == nil {
            model = r.model
            writer = try GalleryWriter(path: gallery, dimension: values.count, quantized: quantized)
        }
        if let m = r.model, let first = model, m != first {
            throw FaceEmbedError.invalidArgument("model \(m) differs from the first record's \(first)")
        }
        guard values.count == writer!.dimension else {
            throw FaceEmbedError.invalidArgument(
                "\(values.count) values, but the first record has \(writer!.dimension)")
        }
        try writer!.append(id: faceID(path, face), embedding: Embedding(values))
    }

    /// A decoding error in one short sentence: where in the record, and what.
    private static func describe(_ error: Error) -> String {
        guard let e = error as? DecodingError else { return "\(error)" }
        func at(_ c: DecodingError.Context) -> String {
            let path = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return path.isEmpty ? "" : "\(path.hasPrefix(".") ? String(path.dropFirst()) : path): "
        }
        switch e {
        case .dataCorrupted(let c):
            return at(c) + "\(c.debugDescription)"
                + ((c.underlyingError as NSError?).map { " (\($0.localizedDescription))" } ?? "")
        case .keyNotFound(let key, _): return "no \"\(key.stringValue)\""
        case .typeMismatch(_, let c), .valueNotFound(_, let c): return at(c) + c.debugDescription
        @unknown default: return "\(e)"
        }
    }
}
