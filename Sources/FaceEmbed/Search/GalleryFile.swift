// The gallery file (`.feg`): enrolled face embeddings, laid out so that a search maps the file and reads the rows
// in place. Byte by byte in Models/GALLERY.md. In short (n rows of dimension d, L = d rounded up to 16 lanes):
//
//   [0, 128)            header: magic "FACEGAL\0", version, dimension, flags, count, file size, section offsets,
//                       checksum
//   rows                n × L float32, unit length, lanes d..<L zero (row i at rowsOffset + i·4L)
//   int8 panels         (flag 1) ⌈n/16⌉ panels of 16 rows, [L/4][16 rows][4 bytes]: row r's quantised value at
//                       dimension j, plus 128, is byte (j/4)·64 + r·4 + j%4 of its panel (one 64-byte vector per
//                       four dimensions of 16 rows, the operand of one VNNI multiply-add)
//   scales, errors      (flag 1) ⌈n/16⌉·16 float32 each: row ≈ scale × int8 row; error ≥ ‖row − scale × int8 row‖
//   ids                 (n + 1) u64 offsets into the UTF-8 bytes that follow, then the bytes, zero padded to 64
//   checksum            FNV-1a 64 over everything except the checksum itself and the two row sections, which are
//                       checked by content when the file is loaded (finite, unit length, quantisation bound)

/// Offsets and sizes of every section of a gallery of `count` rows of `dimension` floats.
package struct GalleryLayout: Equatable, Sendable {
    package var dimension: Int
    package var count: Int
    package var quantized: Bool
    /// Bytes of id text (the last id offset).
    package var idBytes: Int

    /// Float lanes per row: the dimension rounded up to 16.
    package var lanes: Int { (dimension + 15) / 16 * 16 }
    package var rowStride: Int { lanes * 4 }
    package var rowsOffset: Int { GalleryFile.headerSize }
    package var panels: Int { (count + 15) / 16 }
    /// Bytes of one int8 panel: 16 rows × `lanes` bytes.
    package var panelBytes: Int { lanes * 16 }
    package var int8Offset: Int { rowsOffset + count * rowStride }
    package var scalesOffset: Int { int8Offset + (quantized ? panels * panelBytes : 0) }
    package var errorsOffset: Int { scalesOffset + (quantized ? panels * 64 : 0) }
    package var idsOffset: Int { errorsOffset + (quantized ? panels * 64 : 0) }
    package var idsSize: Int { GalleryFile.aligned((count + 1) * 8 + idBytes) }
    package var fileSize: Int { idsOffset + idsSize }
    /// Where the checksummed tail (everything after the row sections) starts.
    package var checkedOffset: Int { quantized ? scalesOffset : idsOffset }
}

package enum GalleryFile {
    package static let magic: [UInt8] = Array("FACEGAL".utf8) + [0]
    package static let version: UInt32 = 1
    package static let headerSize = 128
    package static let checksumOffset = 88
    package static let maxDimension = 65_536
    package static let maxCount = 1 << 31
    package static let maxIdBytes = 4096
    package static let quantizedFlag: UInt32 = 1
    /// Rows must have ‖x‖² within this of 1: the first pass's bound uses ‖x‖ ≤ `rowNormBound`.
    package static let squaredNormTolerance = 2e-4
    package static let rowNormBound: Float = 1.0001

    package static func aligned(_ n: Int) -> Int { (n + 63) / 64 * 64 }

    /// FNV-1a 64 over the header (less its checksum field) and the tail from `layout.checkedOffset`.
    package static func checksum(_ bytes: UnsafeRawBufferPointer, _ layout: GalleryLayout) -> UInt64 {
        var h = FlatFile.fnvOffset
        FlatFile.hash(UnsafeRawBufferPointer(rebasing: bytes[0..<checksumOffset]), into: &h)
        FlatFile.hash(UnsafeRawBufferPointer(rebasing: bytes[(checksumOffset + 8)..<headerSize]), into: &h)
        FlatFile.hash(UnsafeRawBufferPointer(rebasing: bytes[layout.checkedOffset..<layout.fileSize]), into: &h)
        return h
    }

    /// The 128 header bytes (checksum field zero).
    package static func header(_ layout: GalleryLayout) -> [UInt8] {
        var b: [UInt8] = magic
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
        func u64(_ v: Int) { withUnsafeBytes(of: UInt64(v).littleEndian) { b += $0 } }
        u32(version); u32(UInt32(headerSize)); u32(UInt32(layout.dimension))
        u32(layout.quantized ? quantizedFlag : 0)
        u64(layout.count); u64(layout.fileSize); u64(layout.rowsOffset)
        let q = layout.quantized
        u64(q ? layout.int8Offset : 0); u64(q ? layout.scalesOffset : 0); u64(q ? layout.errorsOffset : 0)
        u64(layout.idsOffset); u64(layout.idsSize); u64(0)
        return b + [UInt8](repeating: 0, count: headerSize - b.count)
    }

    // MARK: Reading

    /// Checks the header, the checksum, the id table and every row of a whole gallery file, and returns its layout.
    /// Reads every byte once (the rows with `threads` threads).
    package static func read(
        _ bytes: UnsafeRawBufferPointer, file: String?,
        threads: Int
    ) throws(FaceEmbedError) -> GalleryLayout {
        let fail = { (reason: String) in FaceEmbedError.invalidWeights(file: file, reason: "gallery: \(reason)") }
        let layout = try readHeader(bytes, fail: fail)
        let stored = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: checksumOffset, as: UInt64.self))
        guard checksum(bytes, layout) == stored else { throw fail("checksum mismatch: the header or ids are corrupt") }
        try checkIds(bytes, layout, fail: fail)
        try checkRows(bytes, layout, threads: threads, fail: fail)
        return layout
    }

    /// The header's fields, each against the file's real size and the layout its dimension and count imply.
    static func readHeader(
        _ bytes: UnsafeRawBufferPointer,
        fail: @escaping (String) -> FaceEmbedError
    ) throws(FaceEmbedError) -> GalleryLayout {
        var r = ByteReader(bytes, fail: fail)
        try r.need(headerSize, "the header")
        guard (0..<8).allSatisfy({ bytes[$0] == magic[$0] }) else { throw fail("not a FaceEmbed gallery (bad magic)") }
        try r.skip(8, "magic")
        let ver = try r.u32("version")
        guard ver == version else {
            throw fail("format version \(ver) is not supported (this FaceEmbed reads \(version))")
        }
        guard try r.u32("header size") == UInt32(headerSize) else { throw fail("unexpected header size") }
        let dimension = Int(try r.u32("dimension")), flags = try r.u32("flags")
        let count = try r.u64("count"), fileSize = try r.u64("file size")
        guard fileSize == UInt64(bytes.count) else {
            throw fail("the header says \(fileSize) bytes but the file has \(bytes.count): truncated or padded")
        }
        guard dimension >= 1, dimension <= maxDimension else { throw fail("dimension \(dimension) is out of range") }
        guard flags & ~quantizedFlag == 0 else { throw fail("unknown flags \(flags)") }
        guard count <= UInt64(maxCount) else { throw fail("count \(count) is more than \(maxCount)") }
        var fields: [UInt64] = []
        for name in ["rows offset", "int8 offset", "scales offset", "errors offset", "ids offset", "ids size"] {
            fields.append(try r.u64(name))
        }
        var layout = GalleryLayout(
            dimension: dimension, count: Int(count), quantized: flags & quantizedFlag != 0,
            idBytes: 0)
        // Sizes are bounded (2³¹ rows × 2¹⁸ bytes), so the layout's arithmetic cannot overflow.
        guard UInt64(layout.idsOffset) <= fileSize,
            UInt64(layout.idsOffset) + UInt64((layout.count + 1) * 8) <= fileSize
        else { throw fail("\(count) rows of dimension \(dimension) need more than the file's \(fileSize) bytes") }
        let idBytes = UInt64(
            littleEndian: bytes.loadUnaligned(
                fromByteOffset: layout.idsOffset + layout.count * 8,
                as: UInt64.self))
        guard idBytes <= fileSize else { throw fail("the id table claims \(idBytes) bytes of text") }
        layout.idBytes = Int(idBytes)
        let q = layout.quantized
        let expected = [
            layout.rowsOffset, q ? layout.int8Offset : 0, q ? layout.scalesOffset : 0,
            q ? layout.errorsOffset : 0, layout.idsOffset, layout.idsSize,
        ].map(UInt64.init)
        guard fields == expected, layout.fileSize == bytes.count else {
            throw fail("section offsets or sizes disagree with \(count) rows of dimension \(dimension)")
        }
        guard (96..<headerSize).allSatisfy({ bytes[$0] == 0 }) else { throw fail("reserved header bytes are not zero") }
        return layout
    }

    /// Id offsets start at 0, never decrease, end at the text's size; ids are valid UTF-8 of at most `maxIdBytes`.
    static func checkIds(
        _ bytes: UnsafeRawBufferPointer, _ layout: GalleryLayout,
        fail: (String) -> FaceEmbedError
    ) throws(FaceEmbedError) {
        let table = layout.idsOffset, text = table + (layout.count + 1) * 8
        func offset(_ i: Int) -> Int {
            Int(
                truncatingIfNeeded: UInt64(
                    littleEndian: bytes.loadUnaligned(
                        fromByteOffset: table + i * 8,
                        as: UInt64.self)))
        }
        guard offset(0) == 0 else { throw fail("id 0 does not start at offset 0") }
        var start = 0
        for i in 0..<layout.count {
            let end = offset(i + 1)
            guard end >= start, end - start <= maxIdBytes, end <= layout.idBytes else {
                throw fail("id \(i) has offsets \(start)..<\(end): overlapping, too long or outside the text")
            }
            let id = UnsafeRawBufferPointer(rebasing: bytes[(text + start)..<(text + end)])
            guard String(validating: id, as: UTF8.self) != nil else { throw fail("id \(i) is not valid UTF-8") }
            start = end
        }
    }

    /// Every row finite, unit length, zero in its padding lanes; every int8 row within its stored error bound.
    static func checkRows(
        _ bytes: UnsafeRawBufferPointer, _ layout: GalleryLayout, threads: Int,
        fail: (String) -> FaceEmbedError
    ) throws(FaceEmbedError) {
        let parts = max(1, min(threads, layout.panels))
        let faults = UnsafeMutableBufferPointer<String?>.allocate(capacity: parts)
        faults.initialize(repeating: nil)
        defer { faults.deallocate() }
        parallelFor(parts, threads: threads) { part in
            for panel in chunk(layout.panels, parts: parts, index: part) {
                if let fault = panelFault(bytes, layout, panel) { faults[part] = fault; return }
            }
        }
        if let fault = faults.lazy.compactMap({ $0 }).first { throw fail(fault) }
    }

    /// What is wrong with the 16 rows of `panel` (and their int8 copy), or nil.
    static func panelFault(_ bytes: UnsafeRawBufferPointer, _ layout: GalleryLayout, _ panel: Int) -> String? {
        let d = layout.dimension, lanes = layout.lanes
        for lane in 0..<16 {
            let i = panel * 16 + lane
            guard i < layout.count else { return padFault(bytes, layout, panel, lane) }
            let row = (bytes.baseAddress! + layout.rowsOffset + i * layout.rowStride)
                .assumingMemoryBound(to: Float.self)
            var squares = 0.0
            for j in 0..<lanes {
                let x = row[j]
                // Padding compares by bits: a caller's thread may treat denormals as zero (DAZ), where x == 0 holds.
                guard x.isFinite, j < d || x.bitPattern == 0 else {
                    return "row \(i) holds NaN, infinity or non-zero padding"
                }
                squares += Double(x) * Double(x)
            }
            guard abs(squares - 1) <= squaredNormTolerance else { return "row \(i) is not of unit length" }
            guard layout.quantized else { continue }
            let scale = scaleOrError(bytes, layout.scalesOffset, i), bound = scaleOrError(bytes, layout.errorsOffset, i)
            let q = Int8Row(bytes.baseAddress! + layout.int8Offset + panel * layout.panelBytes, lane: lane)
            guard scale.isFinite, scale >= 0, bound.isFinite, (0..<lanes).allSatisfy({ j in j < d || q[j] == 0 }),
                Double(bound) >= Quantizer.error(row, { q[$0] }, scale: scale, count: d)
            else {
                return "row \(i)'s int8 copy is not within its stored error bound"
            }
        }
        return nil
    }

    /// Padding lanes of the last panel: int8 zero (byte 128), scale and error zero.
    static func padFault(
        _ bytes: UnsafeRawBufferPointer, _ layout: GalleryLayout, _ panel: Int,
        _ lane: Int
    ) -> String? {
        guard layout.quantized else { return nil }
        let i = panel * 16 + lane
        let q = Int8Row(bytes.baseAddress! + layout.int8Offset + panel * layout.panelBytes, lane: lane)
        guard scaleOrError(bytes, layout.scalesOffset, i) == 0, scaleOrError(bytes, layout.errorsOffset, i) == 0,
            (0..<layout.lanes).allSatisfy({ q[$0] == 0 })
        else { return "padding of the last int8 panel is not zero" }
        return nil
    }

    static func scaleOrError(_ bytes: UnsafeRawBufferPointer, _ section: Int, _ i: Int) -> Float {
        Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: section + i * 4, as: UInt32.self)))
    }
}

/// One row of an int8 panel, read as signed values (the stored byte less 128).
struct Int8Row {
    let panel: UnsafeRawPointer
    let lane: Int

    init(_ panel: UnsafeRawPointer, lane: Int) { self.panel = panel; self.lane = lane }

    subscript(_ j: Int) -> Int {
        Int(panel.load(fromByteOffset: (j >> 2) * 64 + lane * 4 + (j & 3), as: UInt8.self)) - 128
    }
}
