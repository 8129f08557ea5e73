import FaceEmbedTestSupport
import Foundation
import Testing

@testable import FaceEmbed
@testable import FaceEmbedImport

/// The converted SCRFD detector, once per test process, or nil (skipped or failed per `TestPaths.local`).
enum DetectorFixture {
    static let onnx = "detection/scrfd_500m_bnkps.onnx"

    static func converted() throws -> String? {
        guard let onnx = TestPaths.local(onnx) else { return nil }
        let out = TestModels.folder.appendingPathComponent("scrfd_500m_bnkps.feb").path
        if !FileManager.default.fileExists(atPath: out) { try ModelConverter.convertONNX(onnx, to: out) }
        return out
    }

    /// A little-endian float32 file of `Fixtures-local/detection/t1-640`.
    static func raw(_ name: String) throws -> [Float]? {
        guard let path = TestPaths.local("detection/t1-640/\(name).f32") else { return nil }
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return data.withUnsafeBytes { p in
            (0..<data.count / 4).map {
                Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)))
            }
        }
    }
}

@Suite struct DetectorNetworkTests {
    @Test func scrfdImportsWithNineOutputsAndItsPreprocessing() throws {
        guard let path = try DetectorFixture.converted() else { return }
        let file = try MappedFile(path: path)
        let (plan, _) = try FlatFile.read(file.bytes, file: path)
        #expect(plan.kind == .faceDetector)
        #expect(plan.values[0] == ValueShape(c: 3, h: 640, w: 640))
        #expect(
            plan.outputs.map(\.name) == [
                "score_8", "score_16", "score_32", "bbox_8", "bbox_16", "bbox_32", "kps_8", "kps_16", "kps_32",
            ])
        #expect(plan.inputMean == 127.5 && plan.inputScale == 1 / 128)
        #expect(plan.layers.filter { if case .upsample = $0 { true } else { false } }.count == 2)
        #expect(plan.layers.filter { if case .sigmoid = $0 { true } else { false } }.count == 3)
    }

    /// t1.jpg's 640 × 640 input through the converted network against onnxruntime's nine outputs, read in the
    /// graph's (N, rows, k) layout: row (y·W + x)·A + a, column j = plane a·k + j of the NCHW map.
    @Test func scrfdOutputsMatchOnnxRuntimeOnT1() throws {
        guard let path = try DetectorFixture.converted(), let input = try DetectorFixture.raw("input") else { return }
        let detector = try FaceDetector(contentsOf: path)
        var worst: [String: Float] = [:]
        try input.withUnsafeBufferPointer { x in
            try detector.withOutputs(input: x.baseAddress!, height: 640, width: 640) { layout, map in
                for level in layout.levels {
                    for (name, v, k) in [
                        ("score", level.scores, 1), ("bbox", level.boxes, 4), ("kps", level.landmarks, 10),
                    ] {
                        let key = "\(name)_\(level.stride)"
                        guard let expected = try? DetectorFixture.raw(key) else { Issue.record("no \(key)"); continue }
                        let grid = 640 / level.stride, a = layout.anchors, m = map(v)
                        #expect(expected.count == grid * grid * a * k)
                        var err: Float = 0
                        for p in 0..<grid * grid {
                            for anchor in 0..<a {
                                for j in 0..<k {
                                    let got = m[(anchor * k + j) * grid * grid + p]
                                    err = max(err, abs(got - expected[(p * a + anchor) * k + j]))
                                }
                            }
                        }
                        worst[key] = err
                    }
                }
            }
        }
        print("SCRFD vs onnxruntime on t1 640x640, max |difference| per output: \(worst.sorted { $0.key < $1.key })")
        #expect(worst.count == 9)
        for (key, err) in worst { #expect(err < (key.hasPrefix("score") ? 1e-5 : 1e-4), "\(key): \(err)") }
    }

    /// SCRFD in int8 runs at any input size: its plan resized for the input keeps the layers stored tap-major for
    /// 640 × 640 (Kernels/QuantizedDirectConvolution.swift), also where a map shrinks under the 64 pixels that would
    /// have kept them in OIHW order (a 32 × 32 input stopped at a precondition before). Every output equals, bit for
    /// bit, that of the same model written as version 3 (every K in OIHW order, run on the im2col path).
    @Test(arguments: [640, 96, 32])
    func anInt8DetectorRunsAtAnySizeAsItsVersion3Twin(_ side: Int) throws {
        guard let onnx = TestPaths.local(DetectorFixture.onnx) else { return }
        let model = try ONNXModel(path: onnx)
        let imported = try withExtendedLifetime(model) { try ONNXImporter.importModel(model, name: "scrfd") }
        let v3 = TestModels.folder.appendingPathComponent("scrfd-int8-v3-\(side).feb").path
        let v4 = TestModels.folder.appendingPathComponent("scrfd-int8-v4-\(side).feb").path
        try FlatFile.write(imported.quantized(tapMajor: false).lanePacked(), to: v3, version: 3)
        try FlatFile.write(imported.quantized().lanePacked(), to: v4)
        var rng = SeededRandom(seed: UInt64(side))
        let input = rng.floats(3 * side * side)
        func outputs(_ path: String) throws -> (maps: [[Float]], direct: Int) {
            let detector = try FaceDetector(contentsOf: path, threads: 2)
            let maps = try input.withUnsafeBufferPointer { x in
                try detector.withOutputs(input: x.baseAddress!, height: side, width: side) { layout, map in
                    layout.levels.flatMap { level in
                        let grid = (side / level.stride) * (side / level.stride), a = layout.anchors
                        return [(level.scores, 1), (level.boxes, 4), (level.landmarks, 10)].map { v, k in
                            Array(UnsafeBufferPointer(start: map(v), count: grid * a * k))
                        }
                    }
                }
            }
            let file = try MappedFile(path: path)
            let direct = try withExtendedLifetime(file) {
                try FlatFile.read(file.bytes, file: path).0.layers.filter { $0.quantization?.tapMajor == true }.count
            }
            return (maps, direct)
        }
        let (old, new) = (try outputs(v3), try outputs(v4))
        #expect(old.direct == 0 && new.direct > 0)
        #expect(old.maps.count == 9 && old.maps.allSatisfy { !$0.isEmpty })
        for (a, b) in zip(old.maps, new.maps) {
            #expect(zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(side) x \(side)")
        }
    }
}
