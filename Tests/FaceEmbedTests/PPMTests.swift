import FaceEmbedTestSupport
import Testing

@testable import FaceEmbed
@testable import FaceEmbedEvaluation
@testable import FaceEmbedImport

// PPM/PGM reading: binary and ASCII, 8- and 16-bit, comments, and clear errors for damaged files.

struct PPMTests {
    @Test func binaryAsciiAndSixteenBitAgree() throws {
        let p6 = try PPM.decode(Array("P6\n# comment\n2 1\n255\n".utf8) + [10, 20, 30, 40, 50, 60])
        #expect(p6.width == 2 && p6.height == 1 && p6.pixels == [10, 20, 30, 40, 50, 60])
        let p3 = try PPM.decode(Array("P3 2 1 255\n10 20 30\n40 50 60\n".utf8))
        #expect(p3 == p6)
        // 16-bit samples are big-endian and scale to 8 bits by rounding.
        let p16 = try PPM.decode(
            Array("P6 2 1 65535\n".utf8) + [0x0A, 0x0A, 0x14, 0x14, 0x1E, 0x1E, 0x28, 0x28, 0x32, 0x32, 0x3C, 0x3C])
        #expect(p16 == p6)
        let gray = try PPM.decode(Array("P5 1 1 255\n".utf8) + [77])
        #expect(gray.pixels == [77, 77, 77])
        #expect(try PPM.decode(PPM.encode(p6)) == p6)
    }

    @Test func damagedFilesAreRefused() {
        let cases: [[UInt8]] = [
            [], Array("P6".utf8), Array("P7 1 1 255\n".utf8), Array("P6 0 1 255\n".utf8), Array("P6 1 1 0\n".utf8),
            Array("P6 1 1 70000\n".utf8), Array("P6 99999999 99999999 255\n".utf8),
            Array("P6 2 2 255\n".utf8) + [1, 2, 3],
            Array("P3 1 1 255\n1 2\n".utf8), Array("P3 1 1 100\n1 2 300\n".utf8), Array("P6 1 1 255".utf8),
        ]
        for bytes in cases {
            #expect(throws: FaceEmbedError.self, "\(String(decoding: bytes.prefix(24), as: UTF8.self))") {
                try PPM.decode(bytes)
            }
        }
    }
}
