import Foundation
import Testing

@testable import FaceEmbed

// 1:N search: the int8 first pass and the float32 scan against a plain reference (every similarity in Double,
// sorted), the file round trip, hostile files, and threads. `GalleryBenchmark` at the end runs only for
// Tools/bench_gallery.py.

/// Rows: `people` random directions, each enrolled `count / people` times with a little noise (near ties, as in a
/// real gallery), in a seeded order.
func galleryEntries(
    count: Int, dimension: Int, seed: UInt64,
    people: Int? = nil
) -> [(id: String, embedding: Embedding)] {
    var rng = SeededRandom(seed: seed)
    let centres = (0..<max(1, people ?? count)).map { _ in rng.floats(dimension) }
    return (0..<count).map { i in
        let c = centres[i % centres.count]
        let noise: Float = people == nil ? 0 : 0.05
        let values = c.map { $0 + noise * Float.random(in: -1...1, using: &rng) }
        return (id: "person \(i % centres.count) #\(i)", embedding: Embedding(values))
    }
}

/// Every similarity in Double, sorted (highest first, then lower index), the top k.
func referenceSearch(_ entries: [(id: String, embedding: Embedding)], _ query: Embedding, k: Int) -> [(Int, Double)] {
    func unit(_ v: [Float]) -> [Double] {
        let n = v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        return v.map { Double($0) / n }
    }
    let q = unit(query.values)
    let sims = entries.enumerated().map { i, e in
        (i, zip(unit(e.embedding.values), q).reduce(0.0) { $0 + $1.0 * $1.1 })
    }
    return Array(sims.sorted { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }.prefix(k))
}

func tempPath(_ name: String) -> String {
    // Unique per call: the cases of a parameterized test run at once and may write files of the same name.
    FileManager.default.temporaryDirectory.appendingPathComponent(
        "faceembed-gallery-\(getpid())-\(UUID().uuidString)-\(name)"
    ).path
}

struct GalleryTests {
    struct Shape: Sendable, CustomTestStringConvertible {
        let count: Int, dimension: Int, k: Int, people: Int?
        var testDescription: String { "\(count) rows × \(dimension), top \(k)\(people.map { ", \($0) people" } ?? "")" }
    }

    static let shapes = [
        Shape(count: 0, dimension: 128, k: 5, people: nil), Shape(count: 3, dimension: 128, k: 10, people: nil),
        Shape(count: 17, dimension: 128, k: 1, people: nil), Shape(count: 200, dimension: 128, k: 0, people: nil),
        Shape(count: 1000, dimension: 512, k: 10, people: nil), Shape(count: 333, dimension: 100, k: 7, people: nil),
        Shape(count: 500, dimension: 37, k: 50, people: nil), Shape(count: 1200, dimension: 512, k: 10, people: 40),
        Shape(count: 64, dimension: 1, k: 64, people: nil),
    ]

    @Test(arguments: shapes, [true, false])
    func searchEqualsSortingEverySimilarity(_ shape: Shape, quantized: Bool) throws {
        let entries = galleryEntries(count: shape.count, dimension: shape.dimension, seed: 7, people: shape.people)
        let gallery = try Gallery(dimension: shape.dimension, entries: entries, quantized: quantized)
        let probes =
            galleryEntries(count: 12, dimension: shape.dimension, seed: 99).map(\.embedding)
            + entries.prefix(4).map(\.embedding)
        let batch = try gallery.search(probes, top: shape.k)
        for (q, probe) in probes.enumerated() {
            let expected = referenceSearch(entries, probe, k: shape.k)
            let got = try gallery.search(probe, top: shape.k)
            #expect(got == batch[q], "query \(q): a single search differs from the batch")
            #expect(got.map(\.index) == expected.map(\.0), "query \(q)")
            for (m, e) in zip(got, expected) {
                #expect(abs(Double(m.similarity) - e.1) < 1e-5)
                #expect(m.id == entries[m.index].id)
            }
        }
    }

    @Test(arguments: [128, 512, 100])
    func int8PassEqualsFloat32ScanBitForBit(_ dimension: Int) throws {
        // Near-duplicate rows and exact duplicates: the first pass must keep every row that could tie.
        var entries = galleryEntries(count: 3000, dimension: dimension, seed: 3, people: 30)
        entries += entries.prefix(50)
        let gallery = try Gallery(dimension: dimension, entries: entries)
        let probes = galleryEntries(count: 40, dimension: dimension, seed: 5, people: 30).map(\.embedding)
        let batch = try QueryBatch(probes, lanes: gallery.layout.lanes, dimension: dimension)
        for k in [1, 10, 100] {
            let fast = gallery.rank(batch, k: k, threads: 2, quantized: true)
            let exact = gallery.rank(batch, k: k, threads: 1, quantized: false)
            for q in probes.indices {
                #expect(fast[q].map(\.index) == exact[q].map(\.index), "k \(k), query \(q)")
                #expect(fast[q].map(\.score) == exact[q].map(\.score), "k \(k), query \(q)")
            }
        }
    }

    @Test func oneAndTwoThreadsGiveIdenticalResults() throws {
        let entries = galleryEntries(count: 5000, dimension: 512, seed: 11, people: 100)
        for quantized in [true, false] {
            let gallery = try Gallery(dimension: 512, entries: entries, quantized: quantized)
            let probes = Array(entries.prefix(20).map(\.embedding))
            #expect(try gallery.search(probes, top: 10, threads: 1) == gallery.search(probes, top: 10, threads: 2))
            let one = try gallery.search(probes[0], top: 25, threads: 1)
            #expect(try one == gallery.search(probes[0], top: 25, threads: 2))
        }
    }

    @Test(arguments: [true, false])
    func streamedFileEqualsTheInMemoryGalleryAndSearchesTheSame(_ quantized: Bool) throws {
        let entries = galleryEntries(count: 77, dimension: 100, seed: 13)
        let memory = try Gallery(dimension: 100, entries: entries, quantized: quantized)
        let streamed = tempPath("streamed-\(quantized).feg"), written = tempPath("written-\(quantized).feg")
        defer { unlink(streamed); unlink(written) }
        let writer = try GalleryWriter(path: streamed, dimension: 100, quantized: quantized)
        for e in entries { try writer.append(id: e.id, embedding: e.embedding) }
        try writer.finish()
        try memory.write(to: written)
        #expect(try readFile(streamed) == readFile(written))
        #expect(!FileManager.default.fileExists(atPath: streamed + ".partial"))
        #expect(!FileManager.default.fileExists(atPath: streamed + ".int8.partial"))
        let mapped = try Gallery(contentsOf: streamed)
        #expect(mapped.count == 77 && mapped.dimension == 100 && mapped.isQuantized == quantized)
        #expect(mapped.id(at: 5) == entries[5].id)
        #expect(mapped.embedding(at: 5) == memory.embedding(at: 5))
        let probes = entries.prefix(10).map(\.embedding)
        #expect(try mapped.search(probes, top: 5) == memory.search(probes, top: 5))
        #expect(try mapped.search(probes[3], top: 1).first?.index == 3)
    }

    @Test func emptyWriterWritesAnEmptyGallery() throws {
        let path = tempPath("empty.feg")
        defer { unlink(path) }
        let writer = try GalleryWriter(path: path, dimension: 512)
        try writer.finish()
        let g = try Gallery(contentsOf: path)
        #expect(g.count == 0)
        #expect(try g.search(Embedding([Float](repeating: 1, count: 512)), top: 3).isEmpty)
    }

    @Test func badEmbeddingsAndQueriesAreRefusedWithReasons() throws {
        let entries = galleryEntries(count: 10, dimension: 8, seed: 1)
        let g = try Gallery(dimension: 8, entries: entries)
        func reason(_ body: () throws -> Void) -> FaceEmbedError? {
            do { try body(); return nil } catch { return error as? FaceEmbedError }
        }
        #expect(reason { _ = try g.search(Embedding([1, 2]), top: 1) } != nil)
        #expect(reason { _ = try g.search(Embedding([Float](repeating: 0, count: 8)), top: 1) } != nil)
        #expect(reason { _ = try g.search(entries[0].embedding, top: -1) } != nil)
        let nan = Embedding([.nan] + [Float](repeating: 1, count: 7))
        #expect(reason { _ = try Gallery(dimension: 8, entries: [(id: "x", embedding: nan)]) } != nil)
        let long = String(repeating: "x", count: 5000)
        #expect(reason { _ = try Gallery(dimension: 8, entries: [(id: long, embedding: entries[0].embedding)]) } != nil)
        #expect(reason { _ = try Gallery(dimension: 0, entries: []) } != nil)
    }
}

/// Damaged and hostile gallery files: each is refused with `invalidWeights` naming the file, never a crash.
struct HostileGalleryTests {
    let entries = galleryEntries(count: 40, dimension: 24, seed: 21)

    func bytes(quantized: Bool = true) throws -> [UInt8] {
        let g = try Gallery(dimension: 24, entries: entries, quantized: quantized)
        return [UInt8](g.storage.bytes)
    }

    /// Loads `bytes` from a file; the error, or nil when it loads.
    func loadError(_ bytes: [UInt8], _ name: String) -> FaceEmbedError? {
        let path = tempPath(name)
        defer { unlink(path) }
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        do {
            _ = try Gallery(contentsOf: path)
            return nil
        } catch {
            if case let .invalidWeights(file, _) = error { #expect(file == path) } else { Issue.record("\(error)") }
            return error
        }
    }

    /// `bytes` with its checksum recomputed, so that a check behind the checksum is reached.
    func resealed(_ bytes: [UInt8]) throws -> [UInt8] {
        var b = bytes
        let layout = try b.withUnsafeBytes { buffer in
            try GalleryFile.readHeader(buffer) { FaceEmbedError.invalidWeights(file: nil, reason: $0) }
        }
        let sum = b.withUnsafeBytes { GalleryFile.checksum($0, layout) }
        withUnsafeBytes(of: sum.littleEndian) { b.replaceSubrange(88..<96, with: $0) }
        return b
    }

    func setU64(_ b: inout [UInt8], _ offset: Int, _ v: UInt64) {
        withUnsafeBytes(of: v.littleEndian) { b.replaceSubrange(offset..<(offset + 8), with: $0) }
    }

    @Test func everyTruncationIsRefused() throws {
        let b = try bytes()
        for cut in stride(from: 0, to: b.count, by: 7) {
            #expect(loadError(Array(b[0..<cut]), "cut.feg") != nil, "cut at \(cut)")
        }
    }

    @Test func everyHeaderByteFlipIsRefused() throws {
        let b = try bytes()
        for i in 0..<GalleryFile.headerSize {
            var d = b
            d[i] ^= 0x41
            #expect(loadError(d, "flip.feg") != nil, "byte \(i)")
        }
    }

    @Test func hugeCountsAndDimensionsAreRefusedBeforeAnyRowIsRead() throws {
        // The header is checked before the checksum: no resealing needed.
        for count in [UInt64(1) << 40, UInt64(1) << 31, 41, 39, UInt64.max] {
            var d = try bytes()
            setU64(&d, 24, count)
            #expect(loadError(d, "count.feg") != nil, "count \(count)")
        }
        var d = try bytes()
        d.replaceSubrange(16..<20, with: [0xFF, 0xFF, 0xFF, 0x7F])
        #expect(loadError(d, "dimension.feg") != nil)
    }

    @Test func damagedIdsAreRefused() throws {
        let b = try bytes()
        let layout = try b.withUnsafeBytes { try GalleryFile.readHeader($0) { .invalidWeights(file: nil, reason: $0) } }
        let table = layout.idsOffset, text = table + (layout.count + 1) * 8
        var flipped = b
        flipped[text + 3] ^= 1
        #expect(loadError(flipped, "checksum.feg").map { "\($0)".contains("checksum") } == true)
        var overlap = b
        setU64(&overlap, table + 8 * 5, 2)
        #expect(loadError(try resealed(overlap), "overlap.feg").map { "\($0)".contains("id 4") } == true)
        var utf8 = b
        utf8[text] = 0xFF
        #expect(loadError(try resealed(utf8), "utf8.feg").map { "\($0)".contains("UTF-8") } == true)
        var first = b
        setU64(&first, table, 1)
        #expect(loadError(try resealed(first), "first.feg") != nil)
    }

    @Test(arguments: [Float.nan, .infinity, 0.5])
    func badRowsAreRefused(_ value: Float) throws {
        for quantized in [true, false] {
            var b = try bytes(quantized: quantized)
            let at = 128 + 128 * 3 + 8  // row 3 (24 values in 32 lanes), value 2
            withUnsafeBytes(of: value.bitPattern.littleEndian) { b.replaceSubrange(at..<(at + 4), with: $0) }
            #expect(loadError(b, "row.feg").map { "\($0)".contains("row 3") } == true)
        }
        var padding = try bytes()
        padding[128 + 128 * 2 + 24 * 4 + 1] = 0x3F  // row 2, padding lane 24
        #expect(loadError(padding, "padding.feg") != nil)
    }

    @Test func anInt8CopyOutsideItsBoundIsRefused() throws {
        let b = try bytes()
        let layout = try b.withUnsafeBytes { try GalleryFile.readHeader($0) { .invalidWeights(file: nil, reason: $0) } }
        var d = b
        d[layout.int8Offset + 64 * 2 + 4 * 6 + 1] &+= 9
        #expect(loadError(d, "int8.feg").map { "\($0)".contains("row 6") } == true)
        var scale = b
        withUnsafeBytes(of: Float(1).bitPattern.littleEndian) {
            scale.replaceSubrange((layout.scalesOffset + 4 * 6)..<(layout.scalesOffset + 4 * 6 + 4), with: $0)
        }
        #expect(loadError(try resealed(scale), "scale.feg") != nil)
        var bound = b
        bound.replaceSubrange((layout.errorsOffset + 4 * 6)..<(layout.errorsOffset + 4 * 6 + 4), with: [0, 0, 0, 0])
        #expect(loadError(try resealed(bound), "bound.feg") != nil)
    }

    @Test func otherFilesAreRefused() throws {
        #expect(loadError([], "empty.feg") != nil)
        #expect(loadError([UInt8](repeating: 0, count: 4096), "zeros.feg") != nil)
        var b = try bytes()
        b += [UInt8](repeating: 0, count: 64)
        #expect(loadError(b, "padded.feg") != nil)
        do {
            _ = try Gallery(contentsOf: "/nonexistent/x.feg")
            Issue.record("a missing file loaded")
        } catch {
            #expect(error == .io(file: "/nonexistent/x.feg", reason: "cannot open: No such file or directory"))
        }
    }
}

/// Timings for Tools/bench_gallery.py, which sets FACEEMBED_GALLERY_BENCH to a folder holding `params.txt`
/// ("rows dimension queries k singles seed"), `rows.f32` and `queries.f32` (little-endian float32, row-major). Builds
/// `gallery.feg` there with `GalleryWriter` when absent, then writes `faceembed.txt`: one `time` line per
/// (threads, mode) with queries per second, and one `ids` line per query (batch search, 2 threads).
struct GalleryBenchmark {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["FACEEMBED_GALLERY_BENCH"] != nil))
    func measuresSearchOnTheBenchmarkFolder() throws {
        let dir = ProcessInfo.processInfo.environment["FACEEMBED_GALLERY_BENCH"]!
        let params = try String(contentsOfFile: dir + "/params.txt", encoding: .utf8)
            .split(whereSeparator: \.isWhitespace).map { Int($0)! }
        let (n, d, m, k, singles) = (params[0], params[1], params[2], params[3], params[4])
        let path = dir + "/gallery.feg"
        var out = ""
        if !FileManager.default.fileExists(atPath: path) {
            let rows = try MappedFile(path: dir + "/rows.f32")
            let start = Date()
            let writer = try GalleryWriter(path: path, dimension: d)
            let f = UnsafeBufferPointer(
                start: rows.bytes.baseAddress!.assumingMemoryBound(to: Float.self),
                count: n * d)
            for i in 0..<n {
                try writer.append(id: "row \(i)", embedding: Embedding(Array(f[(i * d)..<((i + 1) * d)])))
            }
            try writer.finish()
            out += "write \(Date().timeIntervalSince(start))\n"
        }
        var start = Date()
        let gallery = try Gallery(contentsOf: path)
        out += "load \(Date().timeIntervalSince(start))\n"
        let floats = try readFile(dir + "/queries.f32").withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        let queries = (0..<m).map { Embedding(Array(floats[($0 * d)..<(($0 + 1) * d)])) }
        var ids: [[Match]] = []
        for threads in [1, 2] {
            for round in 0..<2 {
                start = Date()
                ids = try gallery.search(queries, top: k, threads: threads)
                out += "time \(threads) batch \(round) \(Double(m) / Date().timeIntervalSince(start))\n"
                start = Date()
                for q in queries.prefix(singles) { _ = try gallery.search(q, top: k, threads: threads) }
                out += "time \(threads) single \(round) \(Double(singles) / Date().timeIntervalSince(start))\n"
            }
        }
        // Rows the first pass could not rule out (re-ranked in float32), mean over the first 10 queries.
        let batch = try QueryBatch(Array(queries.prefix(10)), lanes: gallery.layout.lanes, dimension: d)
        let states = gallery.firstPass(batch, k: k, panels: 0..<gallery.layout.panels)
        let kept = states.map { s in s.candidates.filter { $0.upper >= s.bounds.threshold }.count }
        out += "candidates \(Double(kept.reduce(0, +)) / Double(kept.count))\n"
        for (q, matches) in ids.enumerated() {
            out += "ids \(q) " + matches.map { "\($0.index)" }.joined(separator: " ") + "\n"
        }
        try out.write(toFile: dir + "/faceembed.txt", atomically: true, encoding: .utf8)
    }
}
