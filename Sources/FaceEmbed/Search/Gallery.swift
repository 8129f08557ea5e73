#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// The public face of 1:N search: a gallery of (id, unit embedding) rows, mapped from a `.feg` file or built in
// memory, searched exactly for the k most similar rows (GallerySearch.swift).

/// One row found by `Gallery.search`.
public struct Match: Sendable, Equatable, CustomStringConvertible {
    /// The row's id, as enrolled.
    public let id: String
    /// The row's position in the gallery (0-based, in enrolment order).
    public let index: Int
    /// Cosine similarity between the query and the row, in -1...1.
    public let similarity: Float

    /// Creates a match.
    public init(id: String, index: Int, similarity: Float) {
        self.id = id
        self.index = index
        self.similarity = similarity
    }

    /// `id (#index) similarity`.
    public var description: String { "\(id) (#\(index)) \(similarity)" }
}

/// The bytes behind a gallery: a mapped file or a buffer it owns.
final class GalleryStorage: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer
    private let file: MappedFile?

    init(file: MappedFile) {
        self.file = file
        bytes = file.bytes
    }

    init(owning buffer: UnsafeMutableRawBufferPointer) {
        file = nil
        bytes = UnsafeRawBufferPointer(buffer)
    }

    deinit { if file == nil { bytes.baseAddress?.deallocate() } }
}

/// Enrolled face embeddings searched exactly for the rows most similar to a query (1:N identification).
///
/// Rows are stored as unit float32 vectors (and, by default, an int8 copy for a fast first pass whose candidates
/// are re-ranked in float32: results are identical to a float32 brute-force scan). A gallery is immutable and
/// safe to search from several threads at once.
///
/// ```swift
/// let gallery = try Gallery(contentsOf: "staff.feg")          // mapped, checked
/// let best = try gallery.search(probe, top: 5)                  // [Match], most similar first
/// let many = try gallery.search(probes, top: 10, threads: 2)    // batches are much faster per query
/// ```
public final class Gallery: Sendable {
    let storage: GalleryStorage
    let layout: GalleryLayout
    /// The file the gallery was loaded from, or nil when built in memory.
    public let path: String?

    /// Rows in the gallery.
    public var count: Int { layout.count }
    /// Values per embedding.
    public var dimension: Int { layout.dimension }
    /// True when the gallery holds the int8 copy used by the fast first pass.
    public var isQuantized: Bool { layout.quantized }
    /// Threads a search uses unless told otherwise: the processors online.
    public static var defaultThreads: Int { ProcessInfoLite.activeProcessorCount }

    /// Maps a `.feg` gallery file and checks it: header, checksum, ids, and every row (finite, unit length, int8
    /// copy within its bound), reading the file once with `threads` threads. A damaged or hostile file throws
    /// `FaceEmbedError.invalidWeights` naming the file and the fault.
    public init(contentsOf path: String, threads: Int = Gallery.defaultThreads) throws(FaceEmbedError) {
        let file = try MappedFile(path: path)
        layout = try GalleryFile.read(file.bytes, file: path, threads: max(1, threads))
        storage = GalleryStorage(file: file)
        self.path = path
    }

    /// Builds a gallery in memory from `entries` (each embedding is normalised; ids need not be unique).
    /// Throws `.invalidArgument` for an embedding of another size, non-finite or all zero.
    public init(
        dimension: Int, entries: [(id: String, embedding: Embedding)],
        quantized: Bool = true
    ) throws(FaceEmbedError) {
        let buffer = try Gallery.encode(dimension: dimension, entries: entries, quantized: quantized)
        storage = GalleryStorage(owning: buffer)
        do {
            layout = try GalleryFile.read(storage.bytes, file: nil, threads: Gallery.defaultThreads)
        } catch {
            throw .invalidArgument("the gallery built in memory is inconsistent: \(error)")
        }
        path = nil
    }

    /// The id of row `index` (0 ≤ index < count).
    public func id(at index: Int) -> String {
        precondition(index >= 0 && index < count, "row \(index) is outside a gallery of \(count)")
        let table = layout.idsOffset, text = table + (count + 1) * 8
        let b = storage.bytes
        let start = Int(UInt64(littleEndian: b.loadUnaligned(fromByteOffset: table + index * 8, as: UInt64.self)))
        let end = Int(UInt64(littleEndian: b.loadUnaligned(fromByteOffset: table + index * 8 + 8, as: UInt64.self)))
        return String(decoding: UnsafeRawBufferPointer(rebasing: b[(text + start)..<(text + end)]), as: UTF8.self)
    }

    /// The stored (unit length) embedding of row `index`.
    public func embedding(at index: Int) -> Embedding {
        precondition(index >= 0 && index < count, "row \(index) is outside a gallery of \(count)")
        return Embedding(Array(UnsafeBufferPointer(start: row(index), count: dimension)))
    }

    /// Writes the gallery to `path` as a `.feg` file (through `<path>.partial`, renamed when complete).
    public func write(to path: String) throws(FaceEmbedError) {
        let partial = path + ".partial"
        let fd = try GalleryWriter.create(partial)
        do {
            try GalleryWriter.writeAll(fd, storage.bytes, partial)
        } catch {
            close(fd)
            unlink(partial)
            throw error
        }
        guard close(fd) == 0, rename(partial, path) == 0 else {
            unlink(partial)
            throw .io(file: path, reason: "cannot write: \(String(cString: strerror(errno)))")
        }
    }

    /// Row `index`'s floats (`layout.lanes` of them, zero padded).
    @inline(__always)
    func row(_ index: Int) -> UnsafePointer<Float> {
        (storage.bytes.baseAddress! + layout.rowsOffset + index * layout.rowStride).assumingMemoryBound(to: Float.self)
    }

    /// The whole file image of a gallery built from `entries`.
    static func encode(
        dimension: Int, entries: [(id: String, embedding: Embedding)],
        quantized: Bool
    ) throws(FaceEmbedError) -> UnsafeMutableRawBufferPointer {
        guard dimension >= 1, dimension <= GalleryFile.maxDimension else {
            throw .invalidArgument("gallery dimension \(dimension) is out of range 1...\(GalleryFile.maxDimension)")
        }
        var offsets: [UInt64] = [0], text: [UInt8] = []
        for (i, e) in entries.enumerated() {
            try RowEncoder.checkId(e.id, what: "embedding \(i)")
            text += e.id.utf8
            offsets.append(UInt64(text.count))
        }
        let layout = GalleryLayout(
            dimension: dimension, count: entries.count, quantized: quantized,
            idBytes: text.count)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: layout.fileSize, alignment: 64)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        let base = buffer.baseAddress!
        if quantized {
            (base + layout.int8Offset).initializeMemory(
                as: UInt8.self, repeating: 128,
                count: layout.panels * layout.panelBytes)
        }
        for (i, e) in entries.enumerated() {
            let row = (base + layout.rowsOffset + i * layout.rowStride).assumingMemoryBound(to: Float.self)
            do {
                try RowEncoder.normalize(
                    e.embedding, dimension: dimension, lanes: layout.lanes, into: row,
                    what: "embedding \(i) (\(e.id))")
            } catch {
                buffer.deallocate()
                throw error
            }
            guard quantized else { continue }
            let panel = base + layout.int8Offset + (i / 16) * layout.panelBytes
            let (scale, error) = RowEncoder.quantize(row, lanes: layout.lanes, into: panel, lane: i % 16)
            buffer.storeBytes(
                of: scale.bitPattern.littleEndian, toByteOffset: layout.scalesOffset + i * 4,
                as: UInt32.self)
            buffer.storeBytes(
                of: error.bitPattern.littleEndian, toByteOffset: layout.errorsOffset + i * 4,
                as: UInt32.self)
        }
        let table = RowEncoder.idTable(offsets: offsets, text: text)
        UnsafeMutableRawBufferPointer(rebasing: buffer[layout.idsOffset..<(layout.idsOffset + table.count)])
            .copyBytes(from: table)
        let header = GalleryFile.header(layout)
        UnsafeMutableRawBufferPointer(rebasing: buffer[0..<GalleryFile.headerSize]).copyBytes(from: header)
        let sum = GalleryFile.checksum(UnsafeRawBufferPointer(buffer), layout)
        buffer.storeBytes(of: sum.littleEndian, toByteOffset: GalleryFile.checksumOffset, as: UInt64.self)
        return buffer
    }
}
