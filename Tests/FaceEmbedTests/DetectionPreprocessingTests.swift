import FaceEmbedTestSupport
import Foundation
import Testing

@testable import FaceEmbed

// The detector's input: OpenCV's integer INTER_LINEAR letterbox, bit for bit. Fast against a plain reference written
// from Models/SCRFD.md on synthetic photos; against the input tensors insightface made for every fixture run
// (Tools/make_detection_fixtures.py, their sha256 in expected.json) on the real photos.

/// The detection fixtures: expected.json (committed) and the photos (Fixtures-local).
enum DetectionFixtures {
    static func expected() throws -> [[String: Any]] {
        let path = TestPaths.fixtures.appendingPathComponent("detection/expected.json").path
        return try loadJSON(path)["photos"] as! [[String: Any]]
    }

    /// A photo of the fixture set, or nil (skipped or failed as TestPaths says) when they were not fetched.
    static func photo(_ name: String) -> String? {
        TestPaths.require(
            "detection/photos/\(name)", in: TestPaths.local,
            how: "run `bash Tools/fetch_detection_photos.sh` (or Tools/make_local_fixtures.sh) to fetch it")
    }
}

/// OpenCV's INTER_LINEAR, one output value at a time, straight from Models/SCRFD.md "Resize, exactly".
private func referenceResize(_ image: RGBImage, width: Int, height: Int) -> [UInt8] {
    func taps(_ d: Int, _ n: Int, _ source: Int, clamp: Bool) -> (Int, Int, Int, Int) {
        let f = Float((Double(d) + 0.5) * (Double(source) / Double(n)) - 0.5)
        let i = Int(f.rounded(.down))
        let t: Float = clamp && (i < 0 || i >= source - 1) ? 0 : f - Float(i)
        let w0 = Int(((1 - t) * 2048).rounded(.toNearestOrEven)), w1 = Int((t * 2048).rounded(.toNearestOrEven))
        return (min(max(i, 0), source - 1), min(max(i + 1, 0), source - 1), w0, w1)
    }
    var out = [UInt8](repeating: 0, count: width * height * 3)
    for y in 0..<height {
        let (y0, y1, b0, b1) = taps(y, height, image.height, clamp: false)
        for x in 0..<width {
            let (x0, x1, a0, a1) = taps(x, width, image.width, clamp: true)
            for c in 0..<3 {
                func row(_ r: Int) -> Int {
                    Int(image.pixels[(r * image.width + x0) * 3 + c]) * a0
                        + Int(image.pixels[(r * image.width + x1) * 3 + c]) * a1
                }
                let v = ((((row(y0) >> 4) * b0) >> 16) + (((row(y1) >> 4) * b1) >> 16) + 2) >> 2
                out[(y * width + x) * 3 + c] = UInt8(min(max(v, 0), 255))
            }
        }
    }
    return out
}

/// The plain letterbox: the reference resize on a zero canvas, then `(p - 127.5) / 128` plane by plane.
private func referenceLetterbox(_ image: RGBImage, width: Int, height: Int) -> [Float] {
    let box = Letterbox(photoWidth: image.width, photoHeight: image.height, width: width, height: height)
    let resized = referenceResize(image, width: box.resizedWidth, height: box.resizedHeight)
    var out = [Float](repeating: (0 - 127.5) / 128, count: 3 * width * height)
    for y in 0..<box.resizedHeight {
        for x in 0..<box.resizedWidth {
            for c in 0..<3 {
                out[(c * height + y) * width + x] = (Float(resized[(y * box.resizedWidth + x) * 3 + c]) - 127.5) / 128
            }
        }
    }
    return out
}

private func randomImage(width: Int, height: Int, seed: UInt64) throws -> RGBImage {
    var random = SeededRandom(seed: seed)
    return try RGBImage(
        width: width, height: height,
        pixels: (0..<width * height * 3).map { _ in UInt8.random(in: 0...255, using: &random) })
}

private func letterboxed(_ image: RGBImage, width: Int, height: Int) -> ([Float], Letterbox) {
    var out = [Float](repeating: .nan, count: 3 * width * height)
    let box = out.withUnsafeMutableBufferPointer {
        image.letterbox(width: width, height: height, into: $0.baseAddress!)
    }
    return (out, box)
}

struct DetectionPreprocessingTests {
    @Test func sha256MatchesTheStandardTestVectors() {
        let vectors = [
            ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (
                "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
            ),
            (
                String(repeating: "a", count: 1_000_000),
                "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
            ),
        ]
        for (text, digest) in vectors {
            #expect(SHA256.hex(of: Array(text.utf8)) == digest, "sha256 of \(text.prefix(10))… (\(text.count) bytes)")
        }
    }

    @Test func sizesFollowInsightfaceTruncation() {
        let t1 = Letterbox(photoWidth: 1280, photoHeight: 886, width: 640, height: 640)
        #expect(t1.resizedWidth == 640 && t1.resizedHeight == 443 && t1.scale == 0.5)
        let tall = Letterbox(photoWidth: 300, photoHeight: 1000, width: 640, height: 640)
        #expect(tall.resizedWidth == 192 && tall.resizedHeight == 640 && tall.scale == 0.64)
        let sliver = Letterbox(photoWidth: 1, photoHeight: 5000, width: 640, height: 640)
        #expect(sliver.resizedWidth == 1 && sliver.resizedHeight == 640)
        let strip = Letterbox(photoWidth: 5000, photoHeight: 1, width: 640, height: 480)
        #expect(strip.resizedWidth == 640 && strip.resizedHeight == 1 && strip.scale == 1)
    }

    @Test(arguments: [
        (97, 61, 64, 64), (640, 443, 640, 640), (1280, 886, 640, 640), (112, 112, 640, 640), (33, 700, 96, 64),
        (1, 1, 32, 32), (640, 1, 64, 32), (5, 3, 32, 96), (401, 299, 128, 96),
    ])
    func letterboxEqualsThePlainReference(photoWidth: Int, photoHeight: Int, width: Int, height: Int) throws {
        let image = try randomImage(
            width: photoWidth, height: photoHeight, seed: UInt64(photoWidth * 1000 + photoHeight))
        let (fast, _) = letterboxed(image, width: width, height: height)
        let want = referenceLetterbox(image, width: width, height: height)
        let wrong = zip(fast, want).filter { $0.0 != $0.1 }.count
        #expect(wrong == 0, "\(photoWidth)x\(photoHeight) into \(width)x\(height): \(wrong) values differ")
    }

    @Test func everyPixelLayoutGivesTheSameInput() throws {
        let image = try randomImage(width: 53, height: 41, seed: 7)
        let (want, _) = letterboxed(image, width: 64, height: 64)
        let p = image.pixels
        let bgra: [UInt8] = (0..<53 * 41).flatMap { (i: Int) -> [UInt8] in [p[3 * i + 2], p[3 * i + 1], p[3 * i], 9] }
        let planar: [UInt8] = (0..<3).flatMap { (c: Int) -> [UInt8] in (0..<53 * 41).map { p[3 * $0 + c] } }
        for (bytes, format) in [(bgra, PixelFormat.bgra), (planar, PixelFormat.planarRGB)] {
            var got = [Float](repeating: .nan, count: want.count)
            try bytes.withUnsafeBufferPointer { p in
                let pixels = try PixelBuffer(p, width: 53, height: 41, format: format).checked()
                _ = got.withUnsafeMutableBufferPointer {
                    letterbox(pixels, width: 64, height: 64, into: $0.baseAddress!)
                }
            }
            #expect(got == want, "\(format)")
        }
    }

    @Test func inputTensorsEqualInsightfaceOnEveryFixtureRun() throws {
        var runs = 0
        for entry in try DetectionFixtures.expected() {
            let name = entry["file"] as! String
            guard let path = DetectionFixtures.photo(name) else { return }
            let image = try ImageDecoder.load(path: path)
            #expect(image.width == entry["width"] as! Int && image.height == entry["height"] as! Int, "\(name)")
            for run in entry["runs"] as! [[String: Any]] {
                let size = run["det_size"] as! [Int], resized = run["resized"] as! [Int]
                let (input, box) = letterboxed(image, width: size[0], height: size[1])
                let label = "\(name) at \(size[0])x\(size[1])"
                // Within an ulp or two: Foundation's JSON reader on Linux does not always round decimals correctly.
                #expect(abs(box.scale - (run["scale"] as! Double)) <= 1e-15, "\(label): scale")
                #expect([box.resizedWidth, box.resizedHeight] == resized, "\(label): resized size")
                #expect(SHA256.hex(of: input) == run["input_sha256"] as! String, "\(label): input tensor differs")
                runs += 1
            }
        }
        print("detection input tensors: \(runs) fixture runs compared by sha256")
        #expect(runs == 36)
    }
}
