// JPEGHostileTests.swift — hand-made progressive JPEGs and EXIF blocks that are malformed, truncated or built to
// make the decoder work too hard: each is refused with FaceEmbedError.invalidImage naming the fault (or, for EXIF,
// ignored: the picture is intact), never a trap or a hang.

import Foundation
import Testing

@testable import FaceEmbed

/// A tiny progressive JPEG writer: quantization steps of 1, a DC table whose only code is `0` (category 0) and an AC
/// table with `0` = EOB, `10` = EOB14 (an end-of-band run of 2^14 + 14 more bits) and `11` = run 15, size 1.
enum TinyProgressive {
    static func segment(_ marker: UInt8, _ payload: [UInt8]) -> [UInt8] {
        [0xFF, marker, UInt8((payload.count + 2) >> 8), UInt8((payload.count + 2) & 255)] + payload
    }

    /// SOI, DQT, SOF2 (`components` components, 1×1 sampling), DHT.
    static func header(width: Int, height: Int, components: Int = 1) -> [UInt8] {
        var sof: [UInt8] = [
            8, UInt8(height >> 8), UInt8(height & 255), UInt8(width >> 8), UInt8(width & 255), UInt8(components),
        ]
        for c in 0..<components { sof += [UInt8(c + 1), 0x11, 0] }
        let dc: [UInt8] = [0x00, 1] + [UInt8](repeating: 0, count: 15) + [0]
        let ac: [UInt8] = [0x10, 1, 2] + [UInt8](repeating: 0, count: 14) + [0x00, 0xE0, 0xF1]
        return [0xFF, 0xD8] + segment(0xDB, [0] + [UInt8](repeating: 1, count: 64)) + segment(0xC2, sof)
            + segment(0xC4, dc + ac)
    }

    /// An SOS header for `components` (ids 1…) with band `ss`…`se` and successive approximation `ah`, `al`.
    static func scan(_ components: [UInt8] = [1], ss: UInt8, se: UInt8, ah: UInt8 = 0, al: UInt8 = 0) -> [UInt8] {
        segment(0xDA, [UInt8(components.count)] + components.flatMap { [$0, 0x00] } + [ss, se, ah << 4 | al])
    }

    /// A DC first scan in which every one of `blocks` blocks has difference 0 (one `0` bit each).
    static func dcScan(blocks: Int, components: [UInt8] = [1]) -> [UInt8] {
        scan(components, ss: 0, se: 0) + [UInt8](repeating: 0, count: (blocks + 7) / 8)
    }

    static let eoi: [UInt8] = [0xFF, 0xD9]
}

@Suite struct JPEGHostileTests {
    typealias T = TinyProgressive

    @Test func wellFormedTinyProgressiveDecodes() throws {
        let image = try ImageDecoder.decode(
            T.header(width: 16, height: 8) + T.dcScan(blocks: 2)
                + T.scan(ss: 1, se: 63) + [0x00] + T.eoi)
        #expect(image.width == 16 && image.pixels.allSatisfy { $0 == 128 })
    }

    @Test func badScanParametersAreRefusedByName() {
        let h = T.header(width: 8, height: 8, components: 3)
        let dc = T.dcScan(blocks: 1, components: [1, 2, 3])
        func refused(_ scan: [UInt8], _ words: String...) {
            let error = thrown { try JPEG.decode(h + dc + scan + [0x00] + T.eoi) }
            for w in words { expectError(error, "invalidImage", w) }
        }
        refused(T.scan(ss: 1, se: 5, ah: 2, al: 0), "invalid successive approximation", "Ah=2 Al=0")
        refused(T.scan(ss: 1, se: 5, ah: 0, al: 14), "invalid successive approximation", "Al=14")
        refused(T.scan(ss: 5, se: 3), "invalid spectral band", "Ss=5 Se=3")
        refused(T.scan(ss: 1, se: 64), "invalid spectral band")
        refused(T.scan(ss: 0, se: 5), "DC scan has a spectral band")
        refused(T.scan([1, 2], ss: 1, se: 5), "AC scan has 2 components")
        refused(T.scan([9], ss: 1, se: 5), "unknown component 9")
    }

    @Test func undefinedTablesAreRefused() {
        // The AC scan names table 1, which the header does not define.
        let scan = T.segment(0xDA, [1, 1, 0x01, 1, 63, 0])
        expectError(
            thrown { try JPEG.decode(T.header(width: 8, height: 8) + T.dcScan(blocks: 1) + scan + T.eoi) },
            "invalidImage", "undefined AC Huffman table 1")
    }

    @Test func truncatedProgressiveScansAreRefused() throws {
        // 64 blocks need 8 bytes of DC codes; 3 are present before the EOI.
        let short = T.header(width: 64, height: 64) + T.scan(ss: 0, se: 0) + [0, 0, 0] + T.eoi
        expectError(thrown { try JPEG.decode(short) }, "invalidImage", "truncated in progressive scan data")
        // Complete scans but no EOI: Pillow calls it truncated, and so do we.
        let noEnd = T.header(width: 8, height: 8) + T.dcScan(blocks: 1)
        expectError(thrown { try JPEG.decode(noEnd) }, "invalidImage", "ends before its EOI marker")
        // Every prefix of a real progressive file with restart markers.
        let real = JPEGExtraTests.bytes(TestPaths.fixtures.appendingPathComponent("images/extra/p420_rst3.jpg").path)
        #expect(real.count > 1000)
        for cut in stride(from: 0, to: real.count - 2, by: 7) {
            #expect(throws: FaceEmbedError.self) { try ImageDecoder.decode(Array(real[0..<cut])) }
        }
    }

    @Test func coefficientIndexBeyond63IsRefused() {
        // Band 60…63, then `11` = run 15 / size 1: index 75.
        let file = T.header(width: 8, height: 8) + T.dcScan(blocks: 1) + T.scan(ss: 60, se: 63) + [0xE0] + T.eoi
        expectError(thrown { try JPEG.decode(file) }, "invalidImage", "coefficient index beyond 63")
    }

    @Test func hugeProgressiveFramesInSmallFilesAreRefusedBeforeAllocating() {
        expectError(
            thrown { try JPEG.decode(T.header(width: 16000, height: 16000) + T.dcScan(blocks: 8) + T.eoi) },
            "invalidImage", "16000x16000", "cannot fit")
    }

    @Test func endlessScanScriptsAreCutShort() {
        // 1000 one-byte DC refinement scans of an 8×8 image: the 65th is refused.
        var many = T.header(width: 8, height: 8) + T.dcScan(blocks: 1)
        for _ in 0..<1000 { many += T.scan(ss: 0, se: 0, ah: 1, al: 0) + [0x00] }
        expectError(thrown { try JPEG.decode(many + T.eoi) }, "invalidImage", "more than 64 times")
        // A 512×512 image (4096 blocks) revisited by 64 AC scans that each end every block with one EOB14 run: each
        // scan costs 2 bytes of data but walks the whole image.
        var revisits = T.header(width: 512, height: 512) + T.dcScan(blocks: 4096)
        for _ in 0..<64 { revisits += T.scan(ss: 1, se: 1) + [0x80, 0x00] }
        expectError(thrown { try JPEG.decode(revisits + T.eoi) }, "invalidImage", "more than 64 times")
    }

    @Test func refinementWithoutAFirstScanDecodesAsLibjpegDoes() throws {
        // libjpeg only warns about a refinement of bits never sent; the coefficients stay as they are (zero).
        let file =
            T.header(width: 8, height: 8) + T.dcScan(blocks: 1) + T.scan(ss: 1, se: 63, ah: 1, al: 0) + [0x00] + T.eoi
        #expect(try JPEG.decode(file).pixels.allSatisfy { $0 == 128 })
    }

    @Test func twoComponentJPEGsAreRefused() {
        expectError(
            thrown { try JPEG.decode(T.header(width: 8, height: 8, components: 2) + T.eoi) }, "invalidImage",
            "2-component JPEG is not supported")
    }

    // MARK: EXIF

    /// A TIFF block: byte order, IFD0 at `ifd`, `count` entries as given (tag, type, count, value), then padding.
    static func tiff(
        big: Bool = true, ifd: UInt32 = 8, count: UInt16? = nil,
        _ entries: [(UInt16, UInt16, UInt32, UInt32)]
    ) -> [UInt8] {
        func u16(_ v: UInt16) -> [UInt8] { big ? [UInt8(v >> 8), UInt8(v & 255)] : [UInt8(v & 255), UInt8(v >> 8)] }
        func u32(_ v: UInt32) -> [UInt8] {
            big ? u16(UInt16(v >> 16)) + u16(UInt16(v & 0xFFFF)) : u16(UInt16(v & 0xFFFF)) + u16(UInt16(v >> 16))
        }
        var out: [UInt8] =
            (big ? [0x4D, 0x4D] : [0x49, 0x49]) + u16(42) + u32(ifd) + u16(count ?? UInt16(entries.count))
        for (tag, type, n, value) in entries {
            // A SHORT value sits in the first two bytes of the 4-byte field.
            out += u16(tag) + u16(type) + u32(n) + (type == 3 ? u16(UInt16(value)) + [0, 0] : u32(value))
        }
        return out + u32(8)  // next IFD: IFD0 itself, a loop that must not be followed
    }

    @Test func exifOrientationIsReadFromEitherByteOrderAndEveryIntegerType() {
        #expect(EXIF.orientation(tiff: Self.tiff([(0x0112, 3, 1, 6)])[...]) == 6)
        #expect(EXIF.orientation(tiff: Self.tiff(big: false, [(0x0100, 4, 1, 640), (0x0112, 3, 1, 8)])[...]) == 8)
        #expect(EXIF.orientation(tiff: Self.tiff([(0x0112, 4, 1, 3)])[...]) == 3)
    }

    @Test func malformedExifMeansNoOrientation() {
        let cases: [[UInt8]] = [
            [], Array("MM\0*".utf8), Array("XX\0*\0\0\0\u{8}\0\0".utf8),
            Self.tiff(ifd: 0xFFFF_FFF0, [(0x0112, 3, 1, 6)]),  // IFD0 beyond the data
            Self.tiff(count: 0xFFFF, [(0x0112 + 1, 3, 1, 6)]),  // more entries claimed than present
            Self.tiff([(0x0112, 3, 1, 9)]), Self.tiff([(0x0112, 3, 1, 0)]),  // values outside 1…8
            Self.tiff([(0x0112, 3, 2, 6)]),  // two values
            Self.tiff([(0x0112, 2, 1, 6)]),  // ASCII
        ]
        for c in cases { #expect(EXIF.orientation(tiff: c[...]) == 1, "\(c)") }
    }

    @Test func jpegAndPngWithBrokenExifDecodeAsStored() throws {
        let dir = TestPaths.fixtures.appendingPathComponent("images/extra")
        for name in ["exif6.jpg", "exif6.png"] {
            var b = JPEGExtraTests.bytes(dir.appendingPathComponent(name).path)
            let stored = try ImageDecoder.decode(b, applyingOrientation: false)
            let upright = try ImageDecoder.decode(b)
            #expect(upright.width == stored.height && upright == stored.oriented(6), "\(name)")
            // Point IFD0 far away ("MM\0*" is followed by its offset); a PNG chunk's CRC is then repaired.
            guard
                let at = (0..<(b.count - 4)).first(where: {
                    b[$0] == 0x4D && b[$0 + 1] == 0x4D && b[$0 + 2] == 0 && b[$0 + 3] == 42
                })
            else { Issue.record("\(name): no TIFF header"); continue }
            b.replaceSubrange((at + 4)..<(at + 8), with: [0x7F, 0xFF, 0xFF, 0xFF])
            if name.hasSuffix(".png") {
                let start = at - 4,
                    length =
                        Int(b[start - 4]) << 24 | Int(b[start - 3]) << 16 | Int(b[start - 2]) << 8 | Int(b[start - 1])
                let crc = b.withUnsafeBufferPointer { PNG.crc32($0[start..<(start + 4 + length)]) }
                b.replaceSubrange(
                    (start + 4 + length)..<(start + 8 + length),
                    with: [UInt8(crc >> 24), UInt8(crc >> 16 & 255), UInt8(crc >> 8 & 255), UInt8(crc & 255)])
            }
            #expect(try ImageDecoder.decode(b) == stored, "\(name)")
        }
    }
}
