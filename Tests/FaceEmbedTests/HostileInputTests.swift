import FaceEmbedTestSupport
import Foundation
import Testing

@testable import FaceEmbed
@testable import FaceEmbedEvaluation
@testable import FaceEmbedImport

// Hostile and mistaken input, for the library and the CLI: every one ends in its own FaceEmbedError (the case and
// the key words of the message are asserted), never a trap, a hang or a runaway allocation; the CLI prints one
// line on stderr and exits 2. Inputs found by fuzzing (Fuzz/) live in Fixtures/regressions/.

/// The error `body` throws, or nil (an error of another type is recorded as an issue).
func thrown<T>(_ body: () throws -> T, sourceLocation: SourceLocation = #_sourceLocation) -> FaceEmbedError? {
    do { _ = try body(); return nil } catch let e as FaceEmbedError { return e } catch {
        Issue.record("not a FaceEmbedError: \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Expects `error` to be the case `kind` ("io", "invalidImage", "invalidWeights", "unsupportedModel",
/// "invalidArgument") about `file` (when given), its message holding every one of `words`.
func expectError(
    _ error: FaceEmbedError?, _ kind: String, file: String? = nil, _ words: String...,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    guard let error else { Issue.record("no error; expected \(kind) \(words)", sourceLocation: sourceLocation); return }
    let (k, f): (String, String?) =
        switch error {
        case let .io(f, _): ("io", f)
        case let .invalidImage(f, _): ("invalidImage", f)
        case let .invalidWeights(f, _): ("invalidWeights", f)
        case let .unsupportedModel(f, _): ("unsupportedModel", f)
        case .invalidArgument: ("invalidArgument", nil)
        }
    #expect(k == kind, "\(error)", sourceLocation: sourceLocation)
    if let file { #expect(f == file, "\(error)", sourceLocation: sourceLocation) }
    for w in words {
        #expect(error.description.contains(w), "\"\(w)\" not in: \(error)", sourceLocation: sourceLocation)
    }
}

enum Hostile {
    static let folder: URL = {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("faceembed-hostile-\(getpid())")
        try? FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }()

    /// Writes `bytes` to a scratch file named `name` and returns its path.
    static func file(_ name: String, _ bytes: [UInt8]) -> String {
        let p = folder.appendingPathComponent(name).path
        FileManager.default.createFile(atPath: p, contents: Data(bytes))
        return p
    }

    static func fixture(_ relative: String) -> String { TestPaths.fixtures.appendingPathComponent(relative).path }
    static func bytes(_ relative: String) throws -> [UInt8] { try readFile(fixture(relative)) }

    static let mfnSymbol = fixture("tiny-mobilefacenet/model-symbol.json")
    static let mfnParams = fixture("tiny-mobilefacenet/model-0000.ndarray")
    static let irSymbol = fixture("tiny-iresnet/model-symbol.json")
    static let irParams = fixture("tiny-iresnet/model-0000.ndarray")
    static let face = fixture("tiny-mobilefacenet/input0.ppm")

    /// The tiny MobileFaceNet converted (once).
    static func feb() throws -> String {
        _ = try TestModels.tiny("tiny-mobilefacenet")
        return TestModels.folder.appendingPathComponent("tiny-mobilefacenet.feb").path
    }

    /// A flat file with its header's checksum recomputed (so damage reaches the checks behind it).
    static func rehashed(_ b: [UInt8]) -> [UInt8] {
        var b = b
        var h = FlatFile.fnvOffset
        b.withUnsafeBytes { FlatFile.hash(UnsafeRawBufferPointer(rebasing: $0[FlatFile.headerSize...]), into: &h) }
        withUnsafeBytes(of: h.littleEndian) { for i in 0..<8 { b[96 + i] = $0[i] } }
        return b
    }

    static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    static func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

    /// The tiny MobileFaceNet params with `value` written over element `index` of the parameter `name`.
    static func params(setting name: String, index: Int = 0, to value: Float) throws -> [UInt8] {
        var b = try bytes("tiny-mobilefacenet/model-0000.ndarray")
        let a = try b.withUnsafeBytes { raw in try MXNetParams(bytes: raw, file: nil).array(name) }
        #expect(a.dtype == 0)
        b.replaceSubrange((a.dataOffset + 4 * index)..<(a.dataOffset + 4 * index + 4), with: le32(value.bitPattern))
        return b
    }

    static func convert(_ symbol: String, _ params: String) -> FaceEmbedError? {
        thrown {
            try ModelConverter.convertMXNet(
                symbol: symbol, params: params, to: folder.appendingPathComponent("out.feb").path)
        }
    }
}

struct HostileInputTests {
    // MARK: Empty files, directories, devices, FIFOs, missing and unreadable paths

    @Test func emptyFilesGetTheirOwnErrorEverywhere() throws {
        let empty = Hostile.file("empty", [])
        expectError(thrown { try ImageDecoder.decode([]) }, "invalidImage", file: nil, "empty")
        expectError(thrown { try ImageDecoder.load(path: empty) }, "invalidImage", file: empty, "empty")
        expectError(thrown { try FaceModel(contentsOf: empty) }, "invalidWeights", file: empty, "truncated", "header")
        expectError(
            thrown { try MXNetParams(bytes: UnsafeRawBufferPointer(start: nil, count: 0), file: "p") },
            "invalidWeights", file: "p", "truncated", "list magic")
        expectError(
            Hostile.convert(empty, Hostile.mfnParams), "unsupportedModel", file: empty, "malformed JSON",
            "unexpected end")
        expectError(Hostile.convert(Hostile.mfnSymbol, empty), "invalidWeights", file: empty, "truncated")
        expectError(thrown { try PPM.decode([]) }, "invalidImage", "not a PPM")
        expectError(thrown { try JPEG.decode([]) }, "invalidImage")
        expectError(thrown { try PNG.decode([]) }, "invalidImage", "signature")
    }

    @Test func directoriesAndMissingPathsAreIOErrors() throws {
        let dir = Hostile.folder.path
        expectError(thrown { try ImageDecoder.load(path: dir) }, "io", file: dir, "is a directory")
        expectError(thrown { try FaceModel(contentsOf: dir) }, "io", file: dir, "not a regular file")
        expectError(Hostile.convert(dir, Hostile.mfnParams), "io", file: dir, "not a regular file")
        expectError(Hostile.convert(Hostile.mfnSymbol, dir), "io", file: dir, "not a regular file")
        let missing = "/nonexistent/faceembed/x"
        expectError(thrown { try ImageDecoder.load(path: missing) }, "io", file: missing, "no such file")
        expectError(thrown { try FaceModel(contentsOf: missing) }, "io", file: missing, "cannot open", "No such file")
        expectError(Hostile.convert(missing, Hostile.mfnParams), "io", file: missing, "cannot open")
        // Writing into a directory or a missing folder.
        let model = try TestModels.tiny("tiny-mobilefacenet")
        _ = model
        expectError(
            thrown { try ModelConverter.convertMXNet(symbol: Hostile.mfnSymbol, params: Hostile.mfnParams, to: dir) },
            "io", file: dir, "cannot create")
        expectError(
            thrown {
                try ModelConverter.convertMXNet(symbol: Hostile.mfnSymbol, params: Hostile.mfnParams, to: missing)
            },
            "io", file: missing, "cannot create")
    }

    @Test func devicesAndFIFOsAreRefusedWithoutBlockingOrReadingForever() throws {
        // /dev/zero reads forever and a FIFO with no writer blocks open(2): both must be refused at once.
        expectError(thrown { try ImageDecoder.load(path: "/dev/zero") }, "io", file: "/dev/zero", "not a regular file")
        expectError(thrown { try FaceModel(contentsOf: "/dev/zero") }, "io", file: "/dev/zero", "not a regular file")
        let fifo = Hostile.folder.appendingPathComponent("fifo").path
        unlink(fifo)
        #expect(mkfifo(fifo, 0o600) == 0)
        expectError(thrown { try ImageDecoder.load(path: fifo) }, "io", file: fifo, "not a regular file")
        expectError(thrown { try FaceModel(contentsOf: fifo) }, "io", file: fifo, "not a regular file")
        expectError(Hostile.convert(fifo, Hostile.mfnParams), "io", file: fifo, "not a regular file")
        expectError(Hostile.convert(Hostile.mfnSymbol, fifo), "io", file: fifo, "not a regular file")
    }

    @Test func unreadableFilesAreIOErrorsUnlessRunningAsRoot() throws {
        let image = Hostile.file("unreadable.ppm", try Hostile.bytes("tiny-mobilefacenet/input0.ppm"))
        let model = Hostile.file("unreadable.feb", try readFile(try Hostile.feb()))
        chmod(image, 0); chmod(model, 0)
        defer { chmod(image, 0o644); chmod(model, 0o644) }
        if getuid() == 0 {
            // root reads mode-000 files: the permission cannot fail here, so the files simply load.
            print("running as root: mode 000 does not stop reads; checked that the files load instead")
            #expect(try ImageDecoder.load(path: image).width == 112)
            #expect(try FaceModel(contentsOf: model).embeddingSize == 128)
        } else {
            expectError(
                thrown { try ImageDecoder.load(path: image) }, "io", file: image, "cannot open", "Permission denied")
            expectError(
                thrown { try FaceModel(contentsOf: model) }, "io", file: model, "cannot open", "Permission denied")
        }
    }

    // MARK: Wrong magic, wrong file for the job

    @Test func wrongMagicAndWrongKindsOfFile() throws {
        expectError(
            thrown { try ImageDecoder.decode(Array("GIF89a....".utf8)) }, "invalidImage", "unknown image format")
        expectError(
            thrown { try ImageDecoder.load(path: Hostile.mfnSymbol) }, "invalidImage", file: Hostile.mfnSymbol,
            "unknown image format")
        expectError(thrown { try PPM.decode(Array("P7\n1 1\n255\n".utf8)) }, "invalidImage", "not a PPM")
        expectError(thrown { try PNG.decode([0x89, 0x50, 0x4E, 0x47, 0, 0, 0, 0]) }, "invalidImage", "signature")
        // A .params where a .feb is expected, a .feb where .params are expected, an image as a symbol.
        expectError(
            thrown { try FaceModel(contentsOf: Hostile.mfnParams) }, "invalidWeights", file: Hostile.mfnParams,
            "bad magic", "faceembed convert")
        let feb = try Hostile.feb()
        expectError(Hostile.convert(Hostile.mfnSymbol, feb), "invalidWeights", file: feb, "not an MXNet .params file")
        expectError(
            Hostile.convert(Hostile.face, Hostile.mfnParams), "unsupportedModel", file: Hostile.face, "malformed JSON")
        expectError(
            Hostile.convert(Hostile.mfnParams, Hostile.mfnParams), "unsupportedModel", file: Hostile.mfnParams,
            "malformed JSON")
        expectError(
            thrown { try FaceModel(contentsOf: Hostile.face) }, "invalidWeights", file: Hostile.face, "bad magic")
        // A flat file of a future version.
        var b = try readFile(feb)
        b[8] = 9
        expectError(
            thrown { try FaceModel(contentsOf: Hostile.file("v9.feb", b)) }, "invalidWeights", "format version 9")
        // A file of FaceEmbed 0.1 (format 1, OIHW convolution weights) is refused with what to do.
        b[8] = 1
        expectError(
            thrown { try FaceModel(contentsOf: Hostile.file("v1.feb", b)) }, "invalidWeights", "format version 1",
            "faceembed convert")
    }

    @Test func aSymbolWhoseParamsDoNotMatch() throws {
        // The tiny MobileFaceNet graph with the tiny LResNet's params, and the other way round.
        expectError(
            Hostile.convert(Hostile.mfnSymbol, Hostile.irParams), "invalidWeights", file: Hostile.irParams, "parameter",
            "is missing")
        expectError(
            Hostile.convert(Hostile.irSymbol, Hostile.mfnParams), "invalidWeights", file: Hostile.mfnParams,
            "parameter conv0_weight is missing")
        // The real MobileFaceNet symbol with random r100 params, when the shared data is present.
        let real = TestPaths.shared.appendingPathComponent("models/mobilefacenet-arcface/model-symbol.json").path
        let r100 = TestPaths.local.appendingPathComponent("r100/model-0000.params").path
        if FileManager.default.fileExists(atPath: real), FileManager.default.fileExists(atPath: r100) {
            expectError(Hostile.convert(real, r100), "invalidWeights", file: r100, "parameter", "is missing")
        }
        // The right names with a wrong shape: a params file whose first weight claims another shape.
        var b = try Hostile.bytes("tiny-mobilefacenet/model-0000.ndarray")
        let a = try b.withUnsafeBytes { raw in try MXNetParams(bytes: raw, file: nil).ordered[0] }
        // V2 header: magic, stype, ndim, then i64 dims just before device type/id and dtype (12 bytes) and the data.
        let dim0 = a.dataOffset - 12 - 8 * a.shape.count
        b.replaceSubrange(dim0..<(dim0 + 8), with: Hostile.le64(UInt64(a.shape[0] / 2)))
        b.replaceSubrange((dim0 + 8)..<(dim0 + 16), with: Hostile.le64(UInt64(a.shape[1] * 2)))
        let p = Hostile.file("reshaped.params", b)
        expectError(
            Hostile.convert(Hostile.mfnSymbol, p), "invalidWeights", file: p, "parameter \(a.name)", "has shape",
            "the graph needs")
    }

    // MARK: Truncation

    @Test func truncatedFilesOfEveryKind() throws {
        for name in [
            "images/j420.jpg", "images/pgray.png", "images/e_interlaced_rgb.png", "tiny-mobilefacenet/input0.ppm",
        ] {
            let b = try Hostile.bytes(name)
            // (A JPEG missing only its final EOI marker still decodes, as with libjpeg: cuts stop 13 bytes short.)
            for cut in [1, 2, 8, 20, 33, b.count / 3, b.count / 2, b.count - 13] where cut < b.count {
                expectError(thrown { try ImageDecoder.decode(Array(b[0..<cut])) }, "invalidImage")
            }
        }
        let ppm = try Hostile.bytes("tiny-mobilefacenet/input0.ppm")
        expectError(thrown { try PPM.decode(Array(ppm[0..<1000])) }, "invalidImage", "PPM", "truncated")
        let params = try Hostile.bytes("tiny-mobilefacenet/model-0000.ndarray")
        // Cut anywhere: a header read past the end says "truncated", a count or shape that no longer fits says so.
        for cut in [4, 24, 100, params.count / 2, params.count - 10] {
            expectError(
                thrown {
                    try params.withUnsafeBytes { r in
                        try MXNetParams(bytes: UnsafeRawBufferPointer(rebasing: r[0..<cut]), file: "p")
                    }
                },
                "invalidWeights", file: "p", "MXNet params")
        }
        let symbol = try Hostile.bytes("tiny-mobilefacenet/model-symbol.json")
        for cut in [1, 100, symbol.count / 2, symbol.count - 2] {
            expectError(
                thrown { try MXNetSymbol(json: Array(symbol[0..<cut]), file: "s.json") }, "unsupportedModel",
                file: "s.json", "malformed JSON")
        }
        // A flat file cut anywhere is refused before mapping: the header's size disagrees with fstat.
        let feb = try readFile(try Hostile.feb())
        for cut in [128, 4096, feb.count - 64] {
            expectError(
                thrown { try FaceModel(contentsOf: Hostile.file("cut.feb", Array(feb[0..<cut]))) }, "invalidWeights",
                "the header says \(feb.count) bytes but the file has \(cut)", "truncated")
        }
        // ... and one with its bytes intact but one flipped fails its checksum.
        var flipped = feb
        flipped[feb.count - 100] ^= 0x40
        expectError(
            thrown { try FaceModel(contentsOf: Hostile.file("flip.feb", flipped)) }, "invalidWeights",
            "checksum mismatch")
    }

    // MARK: Huge dimensions, counts and lengths in small files

    @Test func hugeHeadersInSmallFilesAreRefusedBeforeAllocating() throws {
        expectError(
            thrown { try PPM.decode(Array("P6\n100000 100000\n255\n".utf8)) }, "invalidImage", "100000x100000",
            "out of range")
        expectError(
            thrown { try PPM.decode(Array("P6\n16000 16000\n255\n\u{0}".utf8)) }, "invalidImage", "truncated",
            "768000000 bytes")
        expectError(
            thrown { try PPM.decode(Array("P3\n16000 16000\n255\n1 2 3".utf8)) }, "invalidImage", "truncated",
            "samples expected")
        expectError(
            thrown { try PPM.decode(Array("P6\n99999999999 1\n255\n".utf8)) }, "invalidImage", "width is too large")
        // PNG: IHDR of 2^31-1 x 2^31-1 with a valid CRC; a 30000x30000 header over a few compressed bytes.
        func png(width: UInt32, height: UInt32, idat: [UInt8]) -> [UInt8] {
            func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
                let body = Array(type.utf8) + data
                let be = { (v: UInt32) in [UInt8(v >> 24), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)] }
                return be(UInt32(data.count)) + body + be(body.withUnsafeBufferPointer { PNG.crc32($0[...]) })
            }
            let be = { (v: UInt32) in [UInt8(v >> 24), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)] }
            return PNG.signature + chunk("IHDR", be(width) + be(height) + [8, 2, 0, 0, 0]) + chunk("IDAT", idat)
                + chunk("IEND", [])
        }
        expectError(
            thrown {
                try PNG.decode(png(width: 0x7FFF_FFFF, height: 0x7FFF_FFFF, idat: [0x78, 0x9C, 3, 0, 0, 0, 0, 1]))
            }, "invalidImage")
        expectError(
            thrown { try PNG.decode(png(width: 16000, height: 16000, idat: [0x78, 0x9C, 3, 0, 0, 0, 0, 1])) },
            "invalidImage",
            "compressed bytes")
        // JPEG: a 65535x65535 frame in a 1 kB file.
        var jpeg = try Hostile.bytes("images/j420.jpg")
        if let sof = (0..<(jpeg.count - 8)).first(where: { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 }) {
            jpeg.replaceSubrange((sof + 5)..<(sof + 9), with: [0xFF, 0xFF, 0xFF, 0xFF])
            expectError(thrown { try JPEG.decode(jpeg) }, "invalidImage")
        } else {
            Issue.record("no SOF0 in j420.jpg")
        }
        // .params: 2^40 arrays; a dimension of 2^40; a 2^31 x 2^31 array; a 2^60-byte name.
        func params(_ body: [UInt8]) -> FaceEmbedError? {
            let b = Hostile.le64(0x112) + Hostile.le64(0) + body
            return thrown { try b.withUnsafeBytes { r in try MXNetParams(bytes: r, file: "p") } }
        }
        expectError(params(Hostile.le64(1 << 40)), "invalidWeights", "array count 1099511627776 is impossible")
        let v2 = Hostile.le32(0xF993_FAC9) + Hostile.le32(0)
        expectError(
            params(Hostile.le64(1) + v2 + Hostile.le32(1) + Hostile.le64(1 << 40) + [UInt8](repeating: 0, count: 16)),
            "invalidWeights", "dimension 1099511627776 is out of range")
        expectError(
            params(
                Hostile.le64(1) + v2 + Hostile.le32(2) + Hostile.le64(1 << 31 - 1) + Hostile.le64(1 << 31 - 1)
                    + Hostile.le32(1) + Hostile.le32(0) + Hostile.le32(0) + [UInt8](repeating: 0, count: 16)),
            "invalidWeights", "is larger than the file")
        expectError(
            params(
                Hostile.le64(1) + v2 + Hostile.le32(1) + Hostile.le64(1) + Hostile.le32(1) + Hostile.le32(0)
                    + Hostile.le32(0)
                    + [0, 0, 0, 0] + Hostile.le64(1) + Hostile.le64(1 << 60)),
            "invalidWeights", "name 0 is 1152921504606846976 bytes long")
        // Symbol JSON nested 100 deep.
        let deep = Array((String(repeating: "[", count: 100) + String(repeating: "]", count: 100)).utf8)
        expectError(
            thrown { try MXNetSymbol(json: deep, file: "s.json") }, "unsupportedModel", file: "s.json",
            "nesting deeper than 64")
        // Flat file (checksum repaired): a million-plus values; values needing more than 1 GiB of activations.
        let feb = try readFile(try Hostile.feb())
        var many = feb
        many.replaceSubrange(48..<52, with: Hostile.le32(1 << 21))
        expectError(
            thrown { try FaceModel(contentsOf: Hostile.file("many.feb", Hostile.rehashed(many))) }, "invalidWeights",
            "inconsistent header")
        var big = feb
        for v in 1...5 {
            big.replaceSubrange(
                (128 + 12 * v)..<(128 + 12 * v + 12), with: Hostile.le32(1024) + Hostile.le32(256) + Hostile.le32(256))
        }
        expectError(
            thrown { try FaceModel(contentsOf: Hostile.file("big.feb", Hostile.rehashed(big))) }, "invalidWeights",
            "floats per image", "more than the limit")
    }

    // MARK: Numbers

    @Test func nonFiniteParamsAreRefusedByName() throws {
        for (value, words) in [
            (Float.nan, "holds NaN"), (Float.infinity, "holds an infinite value"), (-Float.infinity, "infinite"),
        ] {
            let p = Hostile.file(
                "nonfinite.params", try Hostile.params(setting: "conv_1_conv2d_weight", index: 3, to: value))
            expectError(
                Hostile.convert(Hostile.mfnSymbol, p), "invalidWeights", file: p, "parameter conv_1_conv2d_weight",
                words, "at index 3")
        }
        // A negative moving variance would make the folded weights NaN: named too.
        let p = Hostile.file(
            "negvar.params", try Hostile.params(setting: "conv_1_batchnorm_moving_var", index: 1, to: -1))
        expectError(
            Hostile.convert(Hostile.mfnSymbol, p), "invalidWeights", file: p, "parameter conv_1_batchnorm_moving_var",
            "moving variance + eps is not positive at channel 1")
        // A flat file holding NaN (checksum repaired) is refused at load.
        var feb = try readFile(try Hostile.feb())
        let (_, offsets) = try feb.withUnsafeBytes { r in try FlatFile.read(r, file: nil) }
        feb.replaceSubrange(offsets[0]..<(offsets[0] + 4), with: Hostile.le32(Float.nan.bitPattern))
        expectError(
            thrown { try FaceModel(contentsOf: Hostile.file("nan.feb", Hostile.rehashed(feb))) }, "invalidWeights",
            "NaN or infinity")
        // ... and so is one holding a denormal, which the converter never writes.
        feb.replaceSubrange(offsets[0]..<(offsets[0] + 4), with: Hostile.le32(1))
        expectError(
            thrown { try FaceModel(contentsOf: Hostile.file("denormal.feb", Hostile.rehashed(feb))) }, "invalidWeights",
            "holds a denormal value at 0")
    }

    @Test func denormalWeightsAreFlushedAtConversion() throws {
        let tiny = Float(bitPattern: 1)  // the smallest subnormal
        let p = Hostile.file("denormal.params", try Hostile.params(setting: "conv_1_conv2d_weight", index: 0, to: tiny))
        let out = Hostile.folder.appendingPathComponent("denormal.feb").path
        try ModelConverter.convertMXNet(symbol: Hostile.mfnSymbol, params: p, to: out)
        let b = try readFile(out)
        let (_, offsets) = try b.withUnsafeBytes { r in try FlatFile.read(r, file: nil) }
        var subnormals = 0
        b.withUnsafeBytes { r in
            for i in stride(from: offsets[0], to: b.count, by: 4)
            where Float(bitPattern: r.loadUnaligned(fromByteOffset: i, as: UInt32.self)).isSubnormal {
                subnormals += 1
            }
        }
        #expect(subnormals == 0)
    }

    // MARK: Caller arguments

    @Test func badCallerArgumentsAreInvalidArgumentOrInvalidImage() throws {
        let face = try ImageDecoder.load(path: Hostile.face)
        let marks = try FaceLandmarks(FaceLandmarks.arcFaceTemplate)
        // A size of 0 or below trapped in a range before this was checked; a huge one would allocate gigabytes.
        for size in [0, -5, 100_000] {
            expectError(
                thrown { try face.alignedFace(landmarks: marks, size: size) }, "invalidArgument",
                "aligned face size \(size)")
        }
        expectError(thrown { try FaceLandmarks(parsing: "1,2,3") }, "invalidArgument", "ten numbers")
        expectError(thrown { try FaceLandmarks(parsing: "1,2,3,4,5,6,7,8,9,x") }, "invalidArgument", "ten numbers")
        expectError(
            thrown { try FaceLandmarks([SIMD2(.nan, 0), .zero, .zero, .zero, .zero]) }, "invalidArgument", "finite")
        expectError(
            thrown { try face.alignedFace(landmarks: FaceLandmarks(Array(repeating: SIMD2(5, 5), count: 5))) },
            "invalidArgument", "coincide")
        // Huge but finite landmarks give a black crop, not a trap.
        #expect(
            try face.alignedFace(
                landmarks: FaceLandmarks([SIMD2(1e300, 0), SIMD2(-1e300, 0), .zero, SIMD2(0, 1e300), SIMD2(0, -1e300)])
            ).width == 112)
        let model = try TestModels.tiny("tiny-mobilefacenet")
        let big = try RGBImage(width: 113, height: 112, pixels: [UInt8](repeating: 0, count: 113 * 112 * 3))
        expectError(thrown { try model.embedding(for: big) }, "invalidImage", "must be 112x112", "113x112")
        expectError(thrown { try model.embeddings(for: [face, big]) }, "invalidImage", "face 1 is 113x112")
        let small = [UInt8](repeating: 0, count: 100)
        expectError(
            thrown {
                try small.withUnsafeBufferPointer {
                    try model.embedding(pixels: $0, width: 112, height: 112, format: .rgb)
                }
            },
            "invalidImage", "too small")
        let buffer = [UInt8](repeating: 0, count: 112 * 112 * 4)
        for stride in [Int.max, Int.max / 2, 1 << 40, -1, 0, 335] {
            expectError(
                thrown {
                    try buffer.withUnsafeBufferPointer {
                        try model.embedding(pixels: $0, width: 112, height: 112, format: .rgb, rowStride: stride)
                    }
                },
                "invalidImage", "too small")
        }
        for format in [
            PixelFormat(channels: Int.max, red: 0, green: 1, blue: 2, planar: true),
            PixelFormat(channels: 3, red: 0, green: 1, blue: 3, planar: false),
            PixelFormat(channels: 0, red: 0, green: 0, blue: 0, planar: false),
        ] {
            expectError(
                thrown {
                    try buffer.withUnsafeBufferPointer {
                        try model.embedding(pixels: $0, width: 112, height: 112, format: format)
                    }
                },
                "invalidArgument", "channel indices")
        }
        expectError(thrown { try RGBImage(width: 0, height: 5, pixels: []) }, "invalidImage", "dimensions 0x5")
        expectError(
            thrown { try RGBImage(width: 2, height: 2, pixels: [1, 2, 3]) }, "invalidImage", "expected 12 bytes")
    }

    // MARK: Inputs found by fuzzing

    @Test func fuzzingRegressionsThrow() throws {
        let dir = TestPaths.fixtures.appendingPathComponent("regressions")
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        for name in files.sorted() {
            let path = dir.appendingPathComponent(name).path
            let bytes = try readFile(path)
            // The file name says which parser found it: ppm-, jpeg-, png-, symbol-, params-, flatfile-.
            let error: FaceEmbedError?
            switch name.split(separator: "-").first ?? "" {
            case "ppm", "jpeg", "png": error = thrown { try ImageDecoder.decode(bytes) }
            case "symbol": error = thrown { try MXNetSymbol(json: bytes, file: path) }
            case "params": error = thrown { try bytes.withUnsafeBytes { r in try MXNetParams(bytes: r, file: path) } }
            case "flatfile": error = thrown { try FaceModel(contentsOf: path) }
            default: Issue.record("unknown regression kind: \(name)"); continue
            }
            #expect(error != nil, "\(name) was accepted")
        }
    }

    @Test func flatFileConvolutionWithZeroStrideIsRefused() throws {
        // Found by Fuzz/FlatFileTarget (64 s): a layer's stride field of 0 trapped (division by zero) in
        // ConvGeometry.init, which FlatFile.read called before range-checking the fields. The crash input is a
        // 197 kB mutated model; rebuilt here from the tiny model instead. Every geometry field gets the same test.
        let feb = try readFile(try Hostile.feb())
        let values = Int(feb[48]) | Int(feb[49]) << 8 | Int(feb[50]) << 16 | Int(feb[51]) << 24
        let layer0 = 128 + 12 * values
        #expect(feb[layer0] == 1 && feb[layer0 + 4] == 19, "layer 0 is a convolution with 19 fields")
        for (field, value) in [
            (8, 0), (9, 0), (12, 0), (2, 0), (6, -1), (10, -1), (8, Int(Int32.min)), (12, 7), (6, 100_000),
        ] {
            var b = feb
            let at = layer0 + 8 + 4 * field
            b.replaceSubrange(at..<(at + 4), with: Hostile.le32(UInt32(bitPattern: Int32(value))))
            expectError(
                thrown { try FaceModel(contentsOf: Hostile.file("stride.feb", Hostile.rehashed(b))) }, "invalidWeights",
                "layer 0", "convolution geometry out of range")
        }
    }

    // MARK: The CLI: one line on stderr, exit 2

    @Test func cliReportsEveryBadInputInOneLineWithStatus2() throws {
        let feb = try Hostile.feb()
        let empty = Hostile.file("empty.ppm", [])
        let fifo = Hostile.folder.appendingPathComponent("cli-fifo").path
        unlink(fifo); mkfifo(fifo, 0o600)
        let nan = Hostile.file("cli-nan.params", try Hostile.params(setting: "conv_1_conv2d_weight", to: .nan))
        let out = Hostile.folder.appendingPathComponent("cli.feb").path
        let cases: [([String], [String])] = [
            (["embed", "--model", feb, Hostile.folder.path], ["is a directory"]),
            (["embed", "--model", feb, "/nonexistent/face.ppm"], ["/nonexistent/face.ppm", "no such file"]),
            (["embed", "--model", feb, empty], [empty, "the file is empty"]),
            (["embed", "--model", feb, "/dev/zero"], ["/dev/zero", "not a regular file"]),
            (["embed", "--model", feb, fifo], [fifo, "not a regular file"]),
            (["embed", "--model", feb, Hostile.mfnSymbol], ["unknown image format"]),
            (["embed", "--model", feb, "--threads", "abc", Hostile.face], ["--threads must be a whole number"]),
            (["embed", "--model", feb, "--threads", "100000", Hostile.face], ["--threads must be a whole number"]),
            (["embed", "--model", Hostile.mfnParams, Hostile.face], ["bad magic"]),
            (["embed", "--model", Hostile.folder.path, Hostile.face], ["not a regular file"]),
            (["embed", "--model", empty, Hostile.face], ["truncated"]),
            (["embed", "--model", fifo, Hostile.face], ["not a regular file"]),
            (["embed", "--model", feb, "--landmarks", "1,2,3", Hostile.face], ["landmarks"]),
            (["info", Hostile.mfnSymbol], ["bad magic"]),
            (["convert", Hostile.mfnSymbol, Hostile.irParams, "-o", out], ["parameter", "is missing"]),
            (["convert", Hostile.mfnSymbol, nan, "-o", out], ["parameter conv_1_conv2d_weight holds NaN"]),
            (["convert", Hostile.face, Hostile.mfnParams, "-o", out], ["malformed JSON"]),
            (["convert", Hostile.mfnSymbol, feb, "-o", out], ["not an MXNet .params file"]),
            (["convert", Hostile.mfnSymbol, Hostile.mfnParams, "-o", Hostile.folder.path], ["cannot create"]),
            (["compare", "--model", feb, Hostile.face], ["compare takes exactly two images"]),
        ]
        for (args, words) in cases {
            let r = try faceembed(args)
            let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.isEmpty }
            #expect(r.status == 2, "\(args): status \(r.status)")
            #expect(lines.count == 1 && r.stderr.hasPrefix("faceembed: "), "\(args): \(r.stderr)")
            for w in words { #expect(r.stderr.contains(w), "\(args): \"\(w)\" not in \(r.stderr)") }
        }
    }
}
