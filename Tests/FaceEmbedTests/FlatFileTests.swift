@testable import FaceEmbed
import Foundation
import Testing

// The flat weight file: round trip, and refusal of every kind of damage before anything is mapped or used.

struct FlatFileTests {
    func converted() throws -> (path: String, bytes: [UInt8]) {
        _ = try TestModels.tiny("tiny-iresnet")
        let path = TestModels.folder.appendingPathComponent("tiny-iresnet.feb").path
        return (path, try readFile(path))
    }

    func write(_ bytes: [UInt8], _ name: String) -> String {
        let p = TestModels.folder.appendingPathComponent(name).path
        FileManager.default.createFile(atPath: p, contents: Data(bytes))
        return p
    }

    func loadError(_ bytes: [UInt8], _ name: String) -> FaceEmbedError? {
        do { _ = try FaceModel(contentsOf: write(bytes, name)); return nil } catch { return error }
    }

    @Test func headerDescribesTheModel() throws {
        let (path, bytes) = try converted()
        #expect(Array(bytes[0..<8]) == Array("FACEEMB\0".utf8))
        #expect(bytes.count % 64 == 0)
        let m = try FaceModel(contentsOf: path)
        #expect(m.kind == .iresnet && m.embeddingSize == 64 && m.channelOrder == .rgb)
    }

    @Test func truncatedFilesAreRefusedBeforeMapping() throws {
        let (_, bytes) = try converted()
        for cut in [0, 7, 64, 127, 128, 1000, bytes.count / 2, bytes.count - 64, bytes.count - 1] {
            let e = loadError(Array(bytes[0..<cut]), "cut.feb")
            #expect(e != nil, "cut at \(cut)")
            if cut >= 128 { #expect(e?.description.contains("truncated") == true, "\(String(describing: e))") }
        }
    }

    @Test func everyCorruptedByteIsCaughtByTheChecksumOrTheHeaderChecks() throws {
        let (_, bytes) = try converted()
        var rng = SeededRandom(seed: 5)
        for _ in 0..<200 {
            var b = bytes
            let at = Int.random(in: 0..<b.count, using: &rng)
            b[at] ^= UInt8.random(in: 1...255, using: &rng)
            #expect(loadError(b, "flip.feb") != nil, "byte \(at)")
        }
    }

    @Test func wrongFilesGetSpecificErrors() throws {
        let params = TestPaths.fixtures.appendingPathComponent("tiny-iresnet/model-0000.ndarray").path
        #expect(throws: FaceEmbedError.invalidWeights(file: params, reason: "not a FaceEmbed weight file (bad magic); convert MXNet or ONNX models with `faceembed convert`")) {
            try FaceModel(contentsOf: params)
        }
        #expect(throws: FaceEmbedError.self) { try FaceModel(contentsOf: "/nonexistent/model.feb") }
        #expect(throws: FaceEmbedError.io(file: "/tmp", reason: "not a regular file")) { try FaceModel(contentsOf: "/tmp") }
        #expect(loadError([], "empty.feb")?.description.contains("truncated") == true)
    }

    @Test func nonFiniteWeightsAreRefusedAtLoad() throws {
        let (_, bytes) = try converted()
        // Put a NaN in the last tensor and repair the checksum, so only the finiteness check can catch it.
        var b = bytes
        let dataOffset = Int(b[88]) | Int(b[89]) << 8 | Int(b[90]) << 16 | Int(b[91]) << 24
        var at = b.count - 4
        while b[at..<at + 4].allSatisfy({ $0 == 0 }) && at > dataOffset { at -= 4 }
        b[at] = 0; b[at + 1] = 0; b[at + 2] = 0xC0; b[at + 3] = 0x7F
        var h = FlatFile.fnvOffset
        b.withUnsafeBytes { FlatFile.hash(UnsafeRawBufferPointer(rebasing: $0[128...]), into: &h) }
        for i in 0..<8 { b[96 + i] = UInt8(truncatingIfNeeded: h >> (8 * UInt64(i))) }
        #expect(loadError(b, "nan.feb")?.description.contains("NaN") == true)
    }
}
