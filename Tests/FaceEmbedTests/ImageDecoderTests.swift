// ImageDecoderTests.swift — JPEG, PNG and zlib decoding against Pillow, refusal of unsupported files, and
// robustness against truncated and corrupted input.
//
// Fixtures: Tests/FaceEmbedTests/Fixtures/images (made by Tools/make_image_fixtures.py; `index.txt` lists
// `file width height pillow-rgb expect`), and Fixtures-local/pillow (made by the same script with --local).

import FaceEmbedTestSupport
import Foundation
import Testing

@testable import FaceEmbed
@testable import FaceEmbedEvaluation
@testable import FaceEmbedImport

@Suite struct ImageDecoderTests {
    struct Fixture {
        let file: String, width: Int, height: Int, rgb: String, ok: Bool
    }

    static let dir = TestPaths.fixtures.appendingPathComponent("images")

    static func fixtures() -> [Fixture] {
        guard let text = try? String(contentsOf: dir.appendingPathComponent("index.txt"), encoding: .utf8) else {
            return []
        }
        return text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ").map(String.init)
            guard f.count == 5, !line.hasPrefix("#"), let w = Int(f[1]), let h = Int(f[2]) else { return nil }
            return Fixture(file: f[0], width: w, height: h, rgb: f[3], ok: f[4] == "ok")
        }
    }

    static func bytes(_ url: URL) -> [UInt8] { (try? Data(contentsOf: url)).map { [UInt8]($0) } ?? [] }

    /// Mean and maximum absolute difference per channel value.
    static func difference(_ a: [UInt8], _ b: [UInt8]) -> (mean: Double, max: Int) {
        guard a.count == b.count, !a.isEmpty else { return (.infinity, 255) }
        var sum = 0, mx = 0
        for i in a.indices {
            let d = abs(Int(a[i]) - Int(b[i]))
            sum += d
            mx = max(mx, d)
        }
        return (Double(sum) / Double(a.count), mx)
    }

    @Test func fixturesArePresent() {
        #expect(Self.fixtures().count >= 20)
    }

    @Test func syntheticFixturesMatchPillow() throws {
        for f in Self.fixtures() where f.ok {
            let data = Self.bytes(Self.dir.appendingPathComponent(f.file))
            let expected = Self.bytes(Self.dir.appendingPathComponent(f.rgb))
            let image: RGBImage
            do {
                image = try ImageDecoder.decode(data)
            } catch {
                Issue.record("\(f.file): \(error)")
                continue
            }
            #expect(image.width == f.width && image.height == f.height, "\(f.file)")
            let (mean, mx) = Self.difference(image.pixels, expected)
            print(String(format: "%@: %dx%d mean %.4f max %d", f.file, f.width, f.height, mean, mx))
            if f.file.hasSuffix(".png") {
                #expect(image.pixels == expected, "\(f.file) differs from Pillow (mean \(mean), max \(mx))")
            } else {
                #expect(mean <= 0.5 && mx <= 4, "\(f.file): mean \(mean), max \(mx) vs Pillow")
            }
        }
    }

    @Test func progressiveDecodesExactlyAsPillow() throws {
        let image = try ImageDecoder.decode(Self.bytes(Self.dir.appendingPathComponent("jprogressive.jpg")))
        #expect(image.pixels == Self.bytes(Self.dir.appendingPathComponent("jprogressive_jpg.rgb")))
    }

    @Test func unknownAndEmptyInputsAreRefused() {
        #expect(throws: FaceEmbedError.self) { try ImageDecoder.decode([]) }
        #expect(throws: FaceEmbedError.self) { try ImageDecoder.decode(Array("GIF89a....".utf8)) }
        #expect(throws: FaceEmbedError.self) { try ImageDecoder.decode([0xFF, 0xD8]) }
        #expect(throws: FaceEmbedError.self) { try ImageDecoder.decode(PNG.signature) }
    }

    /// Every prefix of every fixture (sampled for the larger ones) must throw, except a baseline JPEG that lacks
    /// only its EOI marker, and must never trap or hang (a progressive JPEG cut between scans is truncated too).
    @Test(.timeLimit(.minutes(5))) func truncatedInputsThrow() {
        for f in Self.fixtures() where f.ok {
            let data = Self.bytes(Self.dir.appendingPathComponent(f.file))
            let step = max(1, data.count / 400)
            var cut = 0
            while cut < data.count {
                let prefix = Array(data[0..<cut])
                let result = Result { () throws(FaceEmbedError) -> RGBImage in try ImageDecoder.decode(prefix) }
                if case .success = result, !(f.file.hasSuffix(".jpg") && cut >= data.count - 2) {
                    Issue.record("\(f.file) cut at \(cut) of \(data.count) decoded without error")
                }
                cut += cut < 64 || cut > data.count - 64 ? 1 : step
            }
        }
    }

    /// Random byte changes must give an image or a FaceEmbedError, never a trap or a hang.
    @Test(.timeLimit(.minutes(5))) func corruptedInputsNeverTrap() {
        var rng = SeededRandom(seed: 42)
        var failures = 0, successes = 0
        for f in Self.fixtures() where f.ok {
            let data = Self.bytes(Self.dir.appendingPathComponent(f.file))
            for trial in 0..<150 {
                var d = data
                let flips = 1 + trial % 4
                for _ in 0..<flips {
                    let i = Int(rng.next() % UInt64(d.count))
                    d[i] = trial % 3 == 0 ? d[i] ^ UInt8(1 << (rng.next() % 8)) : UInt8(truncatingIfNeeded: rng.next())
                }
                do {
                    let im = try ImageDecoder.decode(d)
                    #expect(im.pixels.count == im.width * im.height * 3)
                    successes += 1
                } catch {
                    failures += 1
                }
            }
        }
        print("corrupted inputs: \(successes) decoded, \(failures) refused")
    }

    /// The zlib stream of a fixture, corrupted, never traps; with a too-small limit it is refused.
    @Test func inflateLimitsAndChecksums() throws {
        let png = Self.bytes(Self.dir.appendingPathComponent("prgb_big_fast.png"))
        let zlib = Self.idat(png)
        #expect(!zlib.isEmpty)
        let full = try Inflate.zlib(zlib, limit: 1 << 20)
        #expect(full.count == 45 * (1 + 61 * 3))
        #expect(throws: FaceEmbedError.self) { try Inflate.zlib(zlib, limit: full.count - 1) }
        var badSum = zlib
        badSum[badSum.count - 1] ^= 1
        #expect(
            throws: FaceEmbedError.invalidImage(file: nil, reason: "zlib Adler-32 checksum mismatch (data is corrupt)")
        ) {
            try Inflate.zlib(badSum, limit: 1 << 20)
        }
        var rng = SeededRandom(seed: 7)
        for trial in 0..<2000 {
            var d = zlib
            let i = 2 + Int(rng.next() % UInt64(d.count - 2))
            d[i] ^= UInt8(1 << (trial % 8))
            _ = try? Inflate.zlib(d, limit: full.count)
            _ = try? Inflate.zlib(Array(d[0..<(i + 1)]), limit: full.count)
        }
    }

    @Test func inflateStoredBlock() throws {
        // zlib header, one final stored block of "abc", Adler-32.
        let stream: [UInt8] = [0x78, 0x01, 0x01, 0x03, 0x00, 0xFC, 0xFF, 0x61, 0x62, 0x63, 0x02, 0x4D, 0x01, 0x27]
        #expect(try Inflate.zlib(stream, limit: 3) == Array("abc".utf8))
        #expect(throws: FaceEmbedError.self) { try Inflate.zlib(stream, limit: 2) }
    }

    /// Concatenated IDAT payloads of a PNG.
    static func idat(_ png: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var p = 8
        while p + 12 <= png.count {
            let len = Int(png[p]) << 24 | Int(png[p + 1]) << 16 | Int(png[p + 2]) << 8 | Int(png[p + 3])
            if String(decoding: png[(p + 4)..<(p + 8)], as: UTF8.self) == "IDAT" {
                out += png[(p + 8)..<(p + 8 + len)]
            }
            p += 12 + len
        }
        return out
    }

    @Test func loadReportsIOErrorsAndAttributesDecodeErrors() throws {
        let missing = "/nonexistent/dir/face.jpg"
        #expect(throws: FaceEmbedError.io(file: missing, reason: "no such file")) {
            try ImageDecoder.load(path: missing)
        }
        let dir = FileManager.default.temporaryDirectory.path
        #expect(throws: FaceEmbedError.self) { try ImageDecoder.load(path: dir) }
        do {
            _ = try ImageDecoder.load(path: dir)
        } catch {
            if case .io(let file, _) = error {
                #expect(file == dir)
            } else {
                Issue.record("expected .io, got \(error)")
            }
        }
        let junk = FileManager.default.temporaryDirectory.appendingPathComponent("faceembed-junk-\(getpid()).jpg")
        try Data([0xFF, 0xD8, 0xFF, 0xC2, 0x00]).write(to: junk)
        defer { try? FileManager.default.removeItem(at: junk) }
        do {
            _ = try ImageDecoder.load(path: junk.path)
            Issue.record("junk decoded")
        } catch {
            if case .invalidImage(let file, _) = error {
                #expect(file == junk.path)
            } else {
                Issue.record("got \(error)")
            }
        }
        let good = Self.dir.appendingPathComponent("j420.jpg").path
        let image = try ImageDecoder.load(path: good)
        #expect(image.width == 33 && image.height == 17)
    }

    // MARK: Hand-built files

    /// A zlib stream of stored blocks holding `raw`.
    static func storedZlib(_ raw: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var i = 0
        repeat {
            let n = min(65535, raw.count - i)
            let final: UInt8 = i + n == raw.count ? 1 : 0
            out += [final, UInt8(n & 255), UInt8(n >> 8), UInt8(~n & 255), UInt8((~n >> 8) & 255)]
            out += raw[i..<(i + n)]
            i += n
        } while i < raw.count
        let a = Inflate.adler32(raw)
        return out + [UInt8(a >> 24), UInt8((a >> 16) & 255), UInt8((a >> 8) & 255), UInt8(a & 255)]
    }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        let crc = body.withUnsafeBufferPointer { PNG.crc32($0[...]) }
        let n = data.count
        return [UInt8(n >> 24), UInt8((n >> 16) & 255), UInt8((n >> 8) & 255), UInt8(n & 255)] + body
            + [UInt8(crc >> 24), UInt8((crc >> 16) & 255), UInt8((crc >> 8) & 255), UInt8(crc & 255)]
    }

    /// A PNG from IHDR fields and the raw (filter byte + row) image data.
    static func png(width: Int, height: Int, depth: UInt8, colorType: UInt8, raw: [UInt8], before: [UInt8] = [])
        -> [UInt8]
    {
        func be(_ v: Int) -> [UInt8] {
            [UInt8(v >> 24), UInt8((v >> 16) & 255), UInt8((v >> 8) & 255), UInt8(v & 255)]
        }
        return PNG.signature + chunk("IHDR", be(width) + be(height) + [depth, colorType, 0, 0, 0]) + before
            + chunk("IDAT", storedZlib(raw)) + chunk("IEND", [])
    }

    @Test func pngSixteenBitGrayKeepsHighByte() throws {
        let file = Self.png(width: 2, height: 1, depth: 16, colorType: 0, raw: [0, 0x12, 0x34, 0xAB, 0xCD])
        let image = try ImageDecoder.decode(file)
        #expect(image.pixels == [0x12, 0x12, 0x12, 0xAB, 0xAB, 0xAB])
    }

    @Test func pngPaletteIndexBeyondPaletteIsBlack() throws {
        let file = Self.png(
            width: 2, height: 1, depth: 8, colorType: 3, raw: [0, 0, 5],
            before: Self.chunk("PLTE", [10, 20, 30]))
        #expect(try ImageDecoder.decode(file).pixels == [10, 20, 30, 0, 0, 0])
    }

    @Test func pngMalformedFilesAreRefused() {
        // Bad filter type, unknown critical chunk, palette image without PLTE, too little data, bad depth.
        #expect(throws: FaceEmbedError.invalidImage(file: nil, reason: "unknown row filter type 5")) {
            try ImageDecoder.decode(Self.png(width: 1, height: 1, depth: 8, colorType: 0, raw: [5, 0]))
        }
        #expect(throws: FaceEmbedError.invalidImage(file: nil, reason: "unknown critical chunk ABCD")) {
            try ImageDecoder.decode(
                Self.png(width: 1, height: 1, depth: 8, colorType: 0, raw: [0, 0], before: Self.chunk("ABCD", [])))
        }
        #expect(throws: FaceEmbedError.invalidImage(file: nil, reason: "palette image without PLTE chunk")) {
            try ImageDecoder.decode(Self.png(width: 1, height: 1, depth: 8, colorType: 3, raw: [0, 0]))
        }
        #expect(throws: FaceEmbedError.self) {
            try ImageDecoder.decode(Self.png(width: 2, height: 2, depth: 8, colorType: 2, raw: [0, 1, 2, 3]))
        }
        #expect(throws: FaceEmbedError.invalidImage(file: nil, reason: "invalid bit depth 4 for color type 2")) {
            try ImageDecoder.decode(Self.png(width: 1, height: 1, depth: 4, colorType: 2, raw: [0, 0]))
        }
    }

    /// Headers that claim huge images in small files are refused before any large allocation.
    @Test func hugeDimensionsInSmallFilesAreRefused() {
        let big = Self.png(width: 30000, height: 30000, depth: 8, colorType: 2, raw: [0, 1, 2, 3])
        #expect(throws: FaceEmbedError.self) { try ImageDecoder.decode(big) }
        let tooWide = Self.png(width: 40000, height: 1, depth: 8, colorType: 0, raw: [0])
        #expect(throws: FaceEmbedError.self) { try ImageDecoder.decode(tooWide) }
        var jpeg = Self.bytes(Self.dir.appendingPathComponent("j420.jpg"))
        guard let sof = (0..<(jpeg.count - 1)).first(where: { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 }) else {
            Issue.record("no SOF0 in j420.jpg")
            return
        }
        for (h, w) in [(16000, 16000), (0x7FFF, 0x2000), (1, 32768)] {
            jpeg[sof + 5] = UInt8(h >> 8); jpeg[sof + 6] = UInt8(h & 255)
            jpeg[sof + 7] = UInt8(w >> 8); jpeg[sof + 8] = UInt8(w & 255)
            #expect(throws: FaceEmbedError.self) { try ImageDecoder.decode(jpeg) }
        }
        jpeg[sof + 5] = 0; jpeg[sof + 6] = 0
        #expect(
            throws: FaceEmbedError.invalidImage(
                file: nil, reason: "height 0 (defined by a DNL marker) is not supported")
        ) {
            try ImageDecoder.decode(jpeg)
        }
    }

    /// The six portraits and the first 200 LFW images against Pillow's decodes (Fixtures-local/pillow).
    @Test func realImagesMatchPillow() throws {
        guard let manifest = TestPaths.local("pillow/manifest.txt") else { return }
        let text = try String(contentsOfFile: manifest, encoding: .utf8)
        let pillowDir = URL(fileURLWithPath: manifest).deletingLastPathComponent()
        var count = 0, sum = 0.0, worstMean = 0.0, worstMax = 0, worstFile = ""
        var seconds = 0.0
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ").map(String.init)
            guard f.count == 4, let w = Int(f[1]), let h = Int(f[2]) else { continue }
            guard let src = TestPaths.shared(f[0]) else { return }
            let data = Self.bytes(URL(fileURLWithPath: src))
            let expected = Self.bytes(pillowDir.appendingPathComponent(f[3]))
            let start = DispatchTime.now().uptimeNanoseconds
            let image: RGBImage
            do {
                image = try ImageDecoder.decode(data)
            } catch {
                Issue.record("\(f[0]): \(error)")
                continue
            }
            seconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            #expect(image.width == w && image.height == h, "\(f[0])")
            let (mean, mx) = Self.difference(image.pixels, expected)
            #expect(mean <= 0.5 && mx <= 4, "\(f[0]): mean \(mean), max \(mx) vs Pillow")
            count += 1
            sum += mean
            if mean > worstMean || worstFile.isEmpty { worstMean = mean; worstFile = f[0] }
            worstMax = max(worstMax, mx)
        }
        #expect(count == 206)
        print(
            String(
                format:
                    "real images vs Pillow: %d images, average mean %.5f, worst mean %.5f (%@), max %d; decode %.1f ms total",
                count, sum / Double(max(count, 1)), worstMean, worstFile, worstMax, seconds * 1000))
    }
}
