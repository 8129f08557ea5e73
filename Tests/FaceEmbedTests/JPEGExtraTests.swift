// JPEGExtraTests.swift — progressive, CMYK/YCCK and EXIF-oriented JPEGs (and PNGs with eXIf) decoded bit-identical to
// Pillow (libjpeg-turbo) with `ImageOps.exif_transpose(...).convert("RGB")`.
//
// Fixtures: Tests/FaceEmbedTests/Fixtures/images/extra (small synthetic files, committed) and
// Fixtures-local/jpeg-extra (re-encodes of the portraits and a few LFW photos, with a 12-megapixel progressive JPEG),
// both made by Tools/make_jpeg_fixtures.py; `manifest.txt` lists `file width height pillow-rgb`.

import Foundation
import Testing

@testable import FaceEmbed

@Suite struct JPEGExtraTests {
    struct Entry {
        let file: String, width: Int, height: Int, rgb: String
    }

    static func manifest(_ dir: String) -> [Entry] {
        guard let text = try? String(contentsOfFile: dir + "/manifest.txt", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ").map(String.init)
            guard f.count == 4, !line.hasPrefix("#"), let w = Int(f[1]), let h = Int(f[2]) else { return nil }
            return Entry(file: f[0], width: w, height: h, rgb: f[3])
        }
    }

    static func bytes(_ path: String) -> [UInt8] {
        (try? Data(contentsOf: URL(fileURLWithPath: path))).map { [UInt8]($0) } ?? []
    }

    /// Decodes every listed file and compares it with Pillow's pixels; returns how many were identical.
    static func compareAll(_ dir: String) -> Int {
        var identical = 0
        for e in manifest(dir) {
            let expected = bytes(dir + "/" + e.rgb)
            do {
                let image = try ImageDecoder.load(path: dir + "/" + e.file)
                #expect(image.width == e.width && image.height == e.height, "\(e.file): \(image.width)x\(image.height)")
                if image.pixels == expected {
                    identical += 1
                } else {
                    let d = zip(image.pixels, expected).map { abs(Int($0) - Int($1)) }
                    Issue.record(
                        "\(e.file): differs from Pillow in \(d.filter { $0 > 0 }.count) values, max \(d.max() ?? -1)")
                }
            } catch {
                Issue.record("\(e.file): \(error)")
            }
        }
        return identical
    }

    @Test func committedProgressiveCMYKAndOrientedFilesMatchPillowExactly() {
        let dir = TestPaths.fixtures.appendingPathComponent("images/extra").path
        let n = Self.manifest(dir).count
        #expect(n >= 20)
        let identical = Self.compareAll(dir)
        print("images/extra: \(identical) of \(n) identical to Pillow")
        #expect(identical == n)
    }

    @Test func photoReencodesMatchPillowExactly() {
        guard
            let dir = TestPaths.local("jpeg-extra/manifest.txt").map({
                URL(fileURLWithPath: $0).deletingLastPathComponent().path
            })
        else { return }
        let n = Self.manifest(dir).count
        let identical = Self.compareAll(dir)
        print("Fixtures-local/jpeg-extra: \(identical) of \(n) identical to Pillow")
        #expect(identical == n && n > 100)
    }
}
