import FaceEmbedTestSupport
import Foundation
import Testing

@testable import FaceEmbed
@testable import FaceEmbedEvaluation
@testable import FaceEmbedImport

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
        #expect(
            throws: FaceEmbedError.invalidWeights(
                file: params,
                reason: "not a FaceEmbed weight file (bad magic); convert MXNet or ONNX models with `faceembed convert`"
            )
        ) {
            try FaceModel(contentsOf: params)
        }
        #expect(throws: FaceEmbedError.self) { try FaceModel(contentsOf: "/nonexistent/model.feb") }
        #expect(throws: FaceEmbedError.io(file: "/tmp", reason: "not a regular file")) {
            try FaceModel(contentsOf: "/tmp")
        }
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

extension FlatFileTests {
    @Test(
        "a convolution beyond PlanLimits is refused by the reader as by the importers",
        arguments: [(6, PlanLimits.maxKernel + 1), (8, PlanLimits.maxStride + 1), (10, PlanLimits.maxPad + 1)])
    func convolutionBeyondThePlanLimitsIsRefused(field: Int, value: Int) throws {
        let (_, bytes) = try converted()
        let values = Int(bytes[48]) | Int(bytes[49]) << 8
        let layer0 = 128 + 12 * values
        #expect(bytes[layer0] == 1 && bytes[layer0 + 4] == 19, "layer 0 is a convolution with 19 fields")
        var b = bytes
        let at = layer0 + 8 + 4 * field
        b.replaceSubrange(at..<(at + 4), with: Hostile.le32(UInt32(value)))
        expectError(
            loadError(Hostile.rehashed(b), "limits.feb"), "invalidWeights", "layer 0",
            "convolution geometry out of range")
    }
}

struct WeightLayoutTests {
    @Test("lane-packed weights put output channel o of block b in lane o mod 16, zero past outC, per group")
    func lanePackingLayout() {
        let g = ConvGeometry(
            inC: 4, inH: 5, inW: 5, outC: 38, kH: 3, kW: 3, strideH: 1, strideW: 1, padH: 1, padW: 1,
            groups: 2)
        let ocg = 19, k = g.k  // 2 · 9 = 18 taps per output channel, 2 blocks per group
        let w = (0..<(g.outC * k)).map { Float($0 + 1) }
        let p = lanePackedWeights(w, g)
        #expect(g.storedWeightShape == [2, 2, k, 16] && p.count == 2 * 2 * k * 16)
        for grp in 0..<2 {
            for blk in 0..<2 {
                for kk in 0..<k {
                    for lane in 0..<16 {
                        let o = blk * 16 + lane
                        let want: Float = o < ocg ? w[(grp * ocg + o) * k + kk] : 0
                        #expect(p[((grp * 2 + blk) * k + kk) * 16 + lane] == want)
                    }
                }
            }
        }
        let dw = ConvGeometry(
            inC: 8, inH: 5, inW: 5, outC: 8, kH: 3, kW: 3, strideH: 1, strideW: 1, padH: 1, padW: 1,
            groups: 8)
        #expect(dw.isDepthwise && dw.storedWeightShape == [8, 1, 3, 3])
    }
}
