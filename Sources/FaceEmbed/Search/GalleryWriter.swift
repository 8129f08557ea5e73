#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Writing galleries (layout in GalleryFile.swift and Models/GALLERY.md). `GalleryWriter` streams: it holds one
// panel of 16 rows, the per-row scales and errors (8 bytes a row) and the ids, writes float rows to
// `<path>.partial` as they come and int8 panels to `<path>.int8.partial`, and on `finish` appends the int8 section,
// scales, errors and ids, writes the header and renames the file into place. `RowEncoder` is shared with the
// in-memory build.

/// Turns one embedding into a stored row and its int8 copy.
enum RowEncoder {
    /// Checks `e` (size, finite, not zero) and writes it normalised (in Double) to `row`, zero padded to `lanes`.
    static func normalize(
        _ e: Embedding, dimension: Int, lanes: Int, into row: UnsafeMutablePointer<Float>,
        what: String
    ) throws(FaceEmbedError) {
        guard e.values.count == dimension else {
            throw .invalidArgument("\(what) has \(e.values.count) values; the gallery's dimension is \(dimension)")
        }
        var squares = 0.0
        for x in e.values {
            guard x.isFinite else { throw .invalidArgument("\(what) holds NaN or infinity") }
            squares += Double(x) * Double(x)
        }
        guard squares > 0 else { throw .invalidArgument("\(what) is all zero and has no direction") }
        let n = squares.squareRoot()
        for j in 0..<lanes { row[j] = j < dimension ? Float(Double(e.values[j]) / n) : 0 }
    }

    /// Quantises a row into lane `lane` of `panel` (bytes are value + 128) and returns its scale and error bound.
    static func quantize(
        _ row: UnsafePointer<Float>, lanes: Int, into panel: UnsafeMutableRawPointer,
        lane: Int
    ) -> (scale: Float, error: Float) {
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: lanes) { q in
            let r = Quantizer.quantize(row, count: lanes, into: q.baseAddress!)
            for j in 0..<lanes {
                panel.storeBytes(
                    of: UInt8(Int(q[j]) + 128), toByteOffset: (j >> 2) * 64 + lane * 4 + (j & 3),
                    as: UInt8.self)
            }
            return r
        }
    }

    /// The id table: (n + 1) little-endian u64 offsets, then the text.
    static func idTable(offsets: [UInt64], text: [UInt8]) -> [UInt8] {
        var b: [UInt8] = []
        b.reserveCapacity(offsets.count * 8 + text.count)
        for o in offsets { withUnsafeBytes(of: o.littleEndian) { b += $0 } }
        return b + text
    }

    static func checkId(_ id: String, what: String) throws(FaceEmbedError) {
        guard id.utf8.count <= GalleryFile.maxIdBytes else {
            throw .invalidArgument("\(what)'s id is \(id.utf8.count) bytes, more than \(GalleryFile.maxIdBytes)")
        }
    }
}

/// Writes a gallery file row by row, holding only one panel of 16 rows, the ids and 8 bytes per row in memory.
///
/// ```swift
/// let writer = try GalleryWriter(path: "staff.feg", dimension: 512)
/// for (name, embedding) in people { try writer.append(id: name, embedding: embedding) }
/// try writer.finish()
/// ```
/// The file appears at `path` only when `finish` succeeds; until then the rows go to `<path>.partial`.
public final class GalleryWriter {
    /// The file being written.
    public let path: String
    /// Values per embedding.
    public let dimension: Int
    /// Rows appended so far.
    public private(set) var count = 0
    private let quantized: Bool
    private let lanes: Int
    private var main: Int32
    private var side: Int32
    private let rows: UnsafeMutablePointer<Float>
    private let panel: UnsafeMutableRawPointer
    private var scales: [Float] = [], errors: [Float] = []
    private var idOffsets: [UInt64] = [0], idText: [UInt8] = []
    private var finished = false

    private var partial: String { path + ".partial" }
    private var sidePartial: String { path + ".int8.partial" }

    /// Starts a gallery of `dimension`-value embeddings at `path`; `quantized` adds the int8 copy that makes search
    /// about four times faster (a quarter more bytes).
    public init(path: String, dimension: Int, quantized: Bool = true) throws(FaceEmbedError) {
        guard dimension >= 1, dimension <= GalleryFile.maxDimension else {
            throw .invalidArgument("gallery dimension \(dimension) is out of range 1...\(GalleryFile.maxDimension)")
        }
        self.path = path
        self.dimension = dimension
        self.quantized = quantized
        lanes = (dimension + 15) / 16 * 16
        main = -1
        side = -1
        rows = .allocate(capacity: 16 * lanes)
        panel = .allocate(byteCount: 16 * lanes, alignment: 64)
        panel.initializeMemory(as: UInt8.self, repeating: 128, count: 16 * lanes)
        main = try GalleryWriter.create(partial)
        if quantized { side = try GalleryWriter.create(sidePartial) }
        try GalleryWriter.writeAll(main, [UInt8](repeating: 0, count: GalleryFile.headerSize), partial)
    }

    deinit {
        if main >= 0 { close(main) }
        if side >= 0 { close(side) }
        if !finished {
            unlink(partial)
            unlink(sidePartial)
        }
        rows.deallocate()
        panel.deallocate()
    }

    /// Adds one row: `embedding` is normalised; `id` (at most 4096 bytes of UTF-8) need not be unique.
    public func append(id: String, embedding: Embedding) throws(FaceEmbedError) {
        guard !finished else { throw .invalidArgument("\(path): the gallery is already finished") }
        guard count < GalleryFile.maxCount else { throw .invalidArgument("\(path): a gallery holds at most 2³¹ rows") }
        let what = "embedding \(count) (\(id))"
        try RowEncoder.checkId(id, what: what)
        let lane = count % 16, row = rows + lane * lanes
        try RowEncoder.normalize(embedding, dimension: dimension, lanes: lanes, into: row, what: what)
        if quantized {
            let (scale, error) = RowEncoder.quantize(row, lanes: lanes, into: panel, lane: lane)
            scales.append(scale)
            errors.append(error)
        }
        idText += id.utf8
        idOffsets.append(UInt64(idText.count))
        count += 1
        if lane == 15 { try flush(rowCount: 16) }
    }

    /// Writes the rest of the file and moves it to `path`.
    public func finish() throws(FaceEmbedError) {
        guard !finished else { return }
        if count % 16 != 0 { try flush(rowCount: count % 16) }
        let layout = GalleryLayout(dimension: dimension, count: count, quantized: quantized, idBytes: idText.count)
        if quantized { try copySide(layout) }
        var tail: [UInt8] = []
        if quantized {
            let pad = [Float](repeating: 0, count: layout.panels * 16 - count)
            for v in scales + pad + errors + pad { withUnsafeBytes(of: v.bitPattern.littleEndian) { tail += $0 } }
        }
        tail += RowEncoder.idTable(offsets: idOffsets, text: idText)
        tail += [UInt8](repeating: 0, count: layout.fileSize - layout.checkedOffset - tail.count)
        try GalleryWriter.writeAll(main, tail, partial)
        var header = GalleryFile.header(layout)
        let sum = GalleryWriter.checksum(header, tail, layout)
        withUnsafeBytes(of: sum.littleEndian) { header.replaceSubrange(88..<96, with: $0) }
        guard header.withUnsafeBytes({ pwrite(main, $0.baseAddress, $0.count, 0) }) == header.count else {
            throw .io(file: partial, reason: "cannot write the header: \(String(cString: strerror(errno)))")
        }
        guard close(main) == 0 else { throw .io(file: partial, reason: "close failed") }
        main = -1
        guard rename(partial, path) == 0 else {
            throw .io(file: path, reason: "cannot rename \(partial): \(String(cString: strerror(errno)))")
        }
        finished = true
    }

    private func flush(rowCount: Int) throws(FaceEmbedError) {
        try GalleryWriter.writeAll(main, UnsafeRawBufferPointer(start: rows, count: rowCount * lanes * 4), partial)
        guard quantized else { return }
        try GalleryWriter.writeAll(side, UnsafeRawBufferPointer(start: panel, count: 16 * lanes), sidePartial)
        panel.initializeMemory(as: UInt8.self, repeating: 128, count: 16 * lanes)
    }

    /// Appends the int8 panels from the side file to the main file, a megabyte at a time.
    private func copySide(_ layout: GalleryLayout) throws(FaceEmbedError) {
        guard lseek(side, 0, SEEK_SET) == 0 else { throw .io(file: sidePartial, reason: "cannot seek") }
        let size = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        defer { buffer.deallocate() }
        var left = layout.panels * layout.panelBytes
        while left > 0 {
            let n = read(side, buffer, min(size, left))
            guard n > 0 else { throw .io(file: sidePartial, reason: "read failed with \(left) bytes left") }
            try GalleryWriter.writeAll(main, UnsafeRawBufferPointer(start: buffer, count: n), partial)
            left -= n
        }
        close(side)
        side = -1
        unlink(sidePartial)
    }

    private static func checksum(_ header: [UInt8], _ tail: [UInt8], _ layout: GalleryLayout) -> UInt64 {
        var h = FlatFile.fnvOffset
        header.withUnsafeBytes { b in
            FlatFile.hash(UnsafeRawBufferPointer(rebasing: b[0..<GalleryFile.checksumOffset]), into: &h)
            FlatFile.hash(UnsafeRawBufferPointer(rebasing: b[(GalleryFile.checksumOffset + 8)...]), into: &h)
        }
        tail.withUnsafeBytes { FlatFile.hash($0, into: &h) }
        return h
    }

    static func create(_ path: String) throws(FaceEmbedError) -> Int32 {
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .io(file: path, reason: "cannot create: \(String(cString: strerror(errno)))") }
        return fd
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], _ path: String) throws(FaceEmbedError) {
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 64)
        defer { b.deallocate() }
        b.copyBytes(from: bytes)
        try writeAll(fd, UnsafeRawBufferPointer(b), path)
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, _ path: String) throws(FaceEmbedError) {
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            guard n > 0 else { throw .io(file: path, reason: "write failed: \(String(cString: strerror(errno)))") }
            done += n
        }
    }
}
