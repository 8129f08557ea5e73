import Foundation
import Testing

@testable import FaceEmbed
@testable import FaceEmbedImport

#if canImport(Glibc)
import Glibc
#endif

// Hostile and mistaken input on the way from a photo to faces: files that are not detectors (or detectors given as
// the model), photos that are empty, broken, tiny, extreme in shape or huge by their header, and detection options
// out of range. Each ends in a typed FaceEmbedError (the CLI: one line on stderr naming the file or the option,
// exit 2) or in a correct answer (no face), never a trap; and detection on a 12-megapixel JPEG stays under the
// issue's 200 MiB of peak resident memory.

enum DetectionHostile {
    /// A photo file in the hostile scratch folder.
    static func photo(_ name: String, _ image: RGBImage) -> String { Hostile.file(name, PPM.encode(image)) }

    /// A `width` × `height` image whose pixels change along both axes.
    static func gradient(width: Int, height: Int) throws -> RGBImage {
        var px = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                px[(y * width + x) * 3] = UInt8(x & 255); px[(y * width + x) * 3 + 1] = UInt8(y & 255)
                px[(y * width + x) * 3 + 2] = 128
            }
        }
        return try RGBImage(width: width, height: height, pixels: px)
    }

    /// A baseline JPEG of `width` × `height` mid-grey pixels, Y'CbCr 4:2:0 as cameras write them, in a few kB:
    /// quantization steps of 1 and Huffman tables whose only codes are `0` (DC difference 0, then end of block), so
    /// every block is two zero bits. The decoder still allocates and fills every plane and pixel of the frame.
    static func flatJPEG(width: Int, height: Int) -> [UInt8] {
        func segment(_ marker: UInt8, _ payload: [UInt8]) -> [UInt8] {
            [0xFF, marker, UInt8((payload.count + 2) >> 8), UInt8((payload.count + 2) & 255)] + payload
        }
        let sof: [UInt8] =
            [8, UInt8(height >> 8), UInt8(height & 255), UInt8(width >> 8), UInt8(width & 255), 3]
            + [1, 0x22, 0, 2, 0x11, 0, 3, 0x11, 0]
        let oneCode: [UInt8] = [1] + [UInt8](repeating: 0, count: 15) + [0]
        let blocks = (width + 15) / 16 * ((height + 15) / 16) * 6
        return [0xFF, 0xD8] + segment(0xDB, [0] + [UInt8](repeating: 1, count: 64)) + segment(0xC0, sof)
            + segment(0xC4, [0x00] + oneCode + [0x10] + oneCode)
            + segment(0xDA, [3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0])
            + [UInt8](repeating: 0, count: (blocks * 2 + 7) / 8) + [0xFF, 0xD9]
    }

    /// j420.jpg with its frame header claiming `width` × `height`.
    static func jpegClaiming(width: Int, height: Int) throws -> [UInt8] {
        var jpeg = try Hostile.bytes("images/j420.jpg")
        let sof = (0..<(jpeg.count - 8)).first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 }!
        jpeg.replaceSubrange(
            (sof + 5)..<(sof + 9),
            with: [UInt8(height >> 8), UInt8(height & 255), UInt8(width >> 8), UInt8(width & 255)])
        return jpeg
    }

    /// Runs faceembed with stdout to `output` (stderr to /dev/null) and returns its exit status and peak resident
    /// set (`ru_maxrss`, KiB) from `wait4`. That is an upper bound of the child's own peak: Linux folds in the
    /// high-water mark of the memory the child had before its exec, which after posix_spawn's vfork is this test
    /// process's. `exact` says the figure is above this process's own peak, so that it is the child's.
    static func peakResidentKiB(_ args: [String], output: String) throws -> (status: Int32, kib: Int, exact: Bool)? {
        #if canImport(Glibc)
        let path = faceembedExecutable()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = ([path] + args).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard spawned == 0 else { Issue.record("posix_spawn \(path): \(spawned)"); return nil }
        var status: Int32 = 0, usage = rusage()
        while wait4(pid, &status, 0, &usage) == -1 && errno == EINTR {}
        let own =
            try String(contentsOfFile: "/proc/self/status", encoding: .utf8).split(separator: "\n")
            .first { $0.hasPrefix("VmHWM:") }.flatMap { Int($0.dropFirst(6).split(separator: " ")[0]) } ?? Int.max
        let kib = Int(usage.ru_maxrss)
        return (status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F), kib, kib > own)
        #else
        return nil
        #endif
    }

    /// Expects a peak from ``peakResidentKiB(_:output:)`` under `limit` KiB; a figure that is only this test
    /// process's own peak (a full test run holds large models) proves nothing either way and is reported as skipped.
    static func expectPeak(_ peak: (status: Int32, kib: Int, exact: Bool), under limit: Int, _ what: String) {
        if peak.kib < limit || peak.exact {
            #expect(peak.kib < limit, "\(what): peak RSS \(peak.kib) KiB")
            print("\(what): peak RSS \(peak.kib / 1024) MiB (limit \(limit / 1024) MiB)")
        } else {
            print("skipped: \(what): the child's peak is hidden by this test process's own (\(peak.kib / 1024) MiB)")
        }
    }
}

@Suite struct DetectionHostileTests {
    typealias M = DetectionCLIModels
    typealias H = DetectionHostile

    /// Expects the CLI to exit 2 with one line on stderr holding every one of `words`.
    func expectOneLineError(_ args: [String], _ words: [String], sourceLocation: SourceLocation = #_sourceLocation)
        throws
    {
        let r = try faceembed(args)
        let lines = r.stderr.split(separator: "\n")
        #expect(r.status == 2, "\(args): status \(r.status)", sourceLocation: sourceLocation)
        #expect(
            lines.count == 1 && r.stderr.hasPrefix("faceembed: "), "\(args): \(r.stderr)",
            sourceLocation: sourceLocation)
        for w in words {
            #expect(r.stderr.contains(w), "\(args): \"\(w)\" not in \(r.stderr)", sourceLocation: sourceLocation)
        }
    }

    @Test func filesThatAreNotDetectorsAreRefusedAsTheDetector() throws {
        guard let detector = try M.detector(), let portrait = M.photo("person_a_1.jpg") else { return }
        let recognition = try Hostile.feb()
        var random = SeededRandom(seed: 15)
        let noise = Hostile.file("det-random.bin", (0..<100_000).map { _ in UInt8.random(in: 0...255, using: &random) })
        let truncated = Hostile.file("det-truncated.feb", Array(try readFile(detector).prefix(300_000)))
        let onnx = TestPaths.local.appendingPathComponent(DetectorFixture.onnx).path
        let cases: [(String, [String])] = [
            (recognition, ["not a face detector", "recognition model"]), (noise, ["bad magic"]),
            (truncated, ["truncated"]), (onnx, ["bad magic", "faceembed convert"]),
            ("/nonexistent/det.feb", ["cannot open"]), (Hostile.folder.path, ["not a regular file"]),
        ]
        let model = try Hostile.feb()
        for (file, words) in cases {
            try expectOneLineError(["detect", "--detector", file, portrait], [file] + words)
            try expectOneLineError(
                ["compare", "--model", model, "--detector", file, portrait, portrait], [file] + words)
            try expectOneLineError(["align", "--detector", file, portrait, "-o", "/dev/null"], [file] + words)
            try expectOneLineError(["embed", "--model", model, "--detector", file, portrait], [file] + words)
        }
    }

    @Test func aDetectorGivenAsTheModelIsRefused() throws {
        guard let detector = try M.detector() else { return }
        try expectOneLineError(
            ["embed", "--model", detector, Hostile.face], [detector, "face detector", "FaceDetector"])
        try expectOneLineError(
            ["compare", "--model", detector, Hostile.face, Hostile.face], [detector, "not a recognition model"])
    }

    @Test func theLibraryRefusesEachKindOfFileAsTheOther() throws {
        guard let detector = try M.detector() else { return }
        let recognition = try Hostile.feb()
        expectError(
            thrown { try FaceModel(contentsOf: detector) }, "unsupportedModel", file: detector, "face detector",
            "not a recognition model")
        expectError(
            thrown { try FaceDetector(contentsOf: recognition) }, "unsupportedModel", file: recognition,
            "not a face detector")
        expectError(
            thrown { try FaceDetector(bytes: try readFile(recognition)) }, "unsupportedModel", "not a face detector")
        expectError(
            thrown { try FaceDetector(bytes: [UInt8](repeating: 7, count: 4096)) }, "invalidWeights", "bad magic")
        expectError(
            thrown { try FaceDetector(bytes: Array(try readFile(detector).prefix(300_000))) }, "invalidWeights",
            "truncated")
        if let onnx = TestPaths.local(DetectorFixture.onnx) {
            expectError(thrown { try FaceDetector(contentsOf: onnx) }, "invalidWeights", file: onnx, "bad magic")
        }
    }

    /// Photos that are broken or hold no face: detect says "no face found" (exit 0) or fails in one line; compare,
    /// align and embed fail in one line naming the file.
    @Test func brokenTinyExtremeAndHugePhotosEndInAClearAnswer() throws {
        guard let detector = try M.detector(), let portrait = M.photo("person_a_1.jpg") else { return }
        let model = try Hostile.feb()
        let j420 = try Hostile.bytes("images/j420.jpg")
        let noFace = ["no face found"]
        let photos: [(file: String, detect: [String]?, others: [String])] = [
            (Hostile.file("det-empty.jpg", []), ["the file is empty"], ["the file is empty"]),
            (Hostile.file("det-truncated.jpg", Array(j420.prefix(j420.count / 2))), ["truncated"], ["truncated"]),
            (H.photo("det-1x1.ppm", try H.gradient(width: 1, height: 1)), nil, noFace),
            (H.photo("det-4x4.ppm", try H.gradient(width: 4, height: 4)), nil, noFace),
            (H.photo("det-8000x16.ppm", try H.gradient(width: 8000, height: 16)), nil, noFace),
            (H.photo("det-16x8000.ppm", try H.gradient(width: 16, height: 8000)), nil, noFace),
            (
                Hostile.file("det-huge.jpg", try H.jpegClaiming(width: 30000, height: 30000)), ["30000x30000"],
                ["30000x30000"]
            ),
            (Hostile.file("det-huge.ppm", Array("P6\n30000 30000\n255\n".utf8)), ["30000x30000"], ["30000x30000"]),
        ]
        for p in photos {
            for json in [[], ["--json"]] {
                let args = ["detect", "--detector", detector, p.file] + json
                if let words = p.detect {
                    try expectOneLineError(args, [p.file] + words)
                    continue
                }
                let r = try faceembed(args)
                let answer = json.isEmpty ? ", no face found\n" : "\"faces\": []}\n"
                #expect(r.status == 0 && r.stdout.hasSuffix(answer), "\(args): \(r.stdout) \(r.stderr)")
            }
            let out = Hostile.folder.appendingPathComponent("det-crop.ppm").path
            for args in [
                ["compare", "--model", model, p.file, portrait], ["align", p.file, "-o", out],
                ["align", "--all", p.file, "-o", out], ["embed", "--model", model, p.file],
            ] {
                try expectOneLineError(args + ["--detector", detector], [p.file] + p.others)
            }
        }
    }

    @Test func photosSmallerThanAFaceOrOfExtremeShapeHaveNoFaceInTheLibrary() throws {
        guard let path = try M.detector() else { return }
        let detector = try FaceDetector(contentsOf: path)
        for (w, h) in [(1, 1), (4, 4), (31, 33), (8000, 16), (16, 8000), (32768, 1), (1, 32768)] {
            let photo = try H.gradient(width: w, height: h)
            #expect(try detector.faces(in: photo).isEmpty, "\(w)x\(h)")
            #expect(try detector.faces(in: photo, options: DetectionOptions(inputWidth: 32, inputHeight: 32)).isEmpty)
        }
    }

    @Test func detectionOptionsOutOfRangeAreNamed() throws {
        guard let detector = try M.detector(), let portrait = M.photo("person_a_1.jpg") else { return }
        let model = try Hostile.feb()
        let cases: [([String], String)] = [
            (["--det-size", "100"], "--det-size"), (["--det-size", "0"], "--det-size"),
            (["--det-size", "99999"], "--det-size"), (["--det-size", "640x100"], "--det-size"),
            (["--det-size", "640x"], "--det-size"), (["--det-size", "-640"], "--det-size"),
            (["--det-size", "abc"], "--det-size"), (["--det-threshold", "0"], "--det-threshold"),
            (["--det-threshold", "2"], "--det-threshold"), (["--det-threshold", "-0.5"], "--det-threshold"),
            (["--det-threshold", "nan"], "--det-threshold"), (["--max-faces", "-1"], "--max-faces"),
            (["--max-faces", "1.5"], "--max-faces"), (["--max-faces", "99999999999999999999"], "--max-faces"),
        ]
        for (option, name) in cases {
            try expectOneLineError(["detect", "--detector", detector] + option + [portrait], [name])
            try expectOneLineError(
                ["compare", "--model", model, "--detector", detector] + option + [portrait, portrait], [name])
            try expectOneLineError(["align", "--detector", detector] + option + [portrait, "-o", "/dev/null"], [name])
            try expectOneLineError(["embed", "--model", model, "--detector", detector] + option + [portrait], [name])
        }
    }

    @Test func theLibraryRefusesDetectionOptionsOutOfRange() throws {
        let bad = [
            DetectionOptions(inputWidth: 100), DetectionOptions(inputWidth: 0), DetectionOptions(inputHeight: 99999),
            DetectionOptions(inputWidth: -32), DetectionOptions(inputWidth: 4096), DetectionOptions(scoreThreshold: 0),
            DetectionOptions(scoreThreshold: 2), DetectionOptions(scoreThreshold: .nan),
            DetectionOptions(nmsThreshold: 0),
            DetectionOptions(nmsThreshold: .infinity), DetectionOptions(maxFaces: -1),
        ]
        for options in bad { expectError(thrown { try options.validate() }, "invalidArgument") }
        guard let path = try M.detector() else { return }
        let detector = try FaceDetector(contentsOf: path)
        let photo = try H.gradient(width: 64, height: 48)
        for options in bad {
            expectError(thrown { try detector.faces(in: photo, options: options) }, "invalidArgument")
        }
    }

    @Test func detectOnA12MegapixelJPEGPeaksUnder200MiB() throws {
        guard let detector = try M.detector() else { return }
        let photo = Hostile.file("det-12mp.jpg", H.flatJPEG(width: 4000, height: 3000))
        let output = Hostile.folder.appendingPathComponent("det-12mp.txt").path
        guard let peak = try H.peakResidentKiB(["detect", "--detector", detector, photo], output: output) else {
            return
        }
        let printed = String(decoding: try readFile(output), as: UTF8.self)
        #expect(peak.status == 0 && printed == "\(photo): 4000x3000, no face found\n", "\(peak): \(printed)")
        H.expectPeak(peak, under: 200 * 1024, "faceembed detect on a 4000x3000 JPEG")
        // A 30000x30000 frame header in a 1 kB file is refused before its 2.7 GB of pixels are allocated (the bound
        // leaves room for the test process's own peak, which the figure may carry).
        let huge = Hostile.file("det-huge-rss.jpg", try H.jpegClaiming(width: 30000, height: 30000))
        guard let refused = try H.peakResidentKiB(["detect", "--detector", detector, huge], output: output) else {
            return
        }
        #expect(refused.status == 2)
        H.expectPeak(refused, under: 150 * 1024, "faceembed detect on a 30000x30000 JPEG header")
    }
}
