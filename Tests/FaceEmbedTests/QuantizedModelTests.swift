import FaceEmbedTestSupport
import Foundation
import Testing

@testable import FaceEmbed
@testable import FaceEmbedImport

// Int8 models (format version 3, Plan/QuantizedPlan.swift, Runtime/QuantizedLayers.swift): the network's quantized
// layers against ReferenceQuantized on a small written-and-loaded plan, the int8 file's round trip and refusal of
// hostile int8 data, version 2 files still loading, and y1 converted to int8 against its float32 self on LFW images.

/// A small plan of quantized layers, written with the converter's own quantization and loaded back: a 5×5 stride-3
/// convolution (input affine, PReLU, 20 channels: a partial block; 37×37 output: a partial panel), a 1×1 with
/// PReLU and a residual (the pointwise path), and a fully connected layer of K = 27,380.
private enum SmallPlan {
    static let conv = ConvGeometry(
        inC: 3, inH: 112, inW: 112, outC: 20, kH: 5, kW: 5, strideH: 3, strideW: 3, padH: 1, padW: 1, groups: 1)
    static let point = ConvGeometry(
        inC: 20, inH: 37, inW: 37, outC: 20, kH: 1, kW: 1, strideH: 1, strideW: 1, padH: 0, padW: 0, groups: 1)
    static let fcIn = 20 * 37 * 37, fcOut = 8

    /// Seeded float tensors: conv weight, bias, slope, input scale, input shift; pointwise weight, bias, slope;
    /// fc weight, bias.
    static let data: [[Float]] = {
        var rng = SeededRandom(seed: 14)
        func uniform(_ n: Int, _ r: ClosedRange<Float>) -> [Float] {
            (0..<n).map { _ in Float.random(in: r, using: &rng) }
        }
        return [
            uniform(20 * 75, -0.2...0.2), uniform(20, -0.1...0.1), uniform(20, 0...0.3), uniform(3, 0.5...1.5),
            uniform(3, -0.3...0.3), uniform(20 * 20, -0.3...0.3), uniform(20, -0.1...0.1), uniform(20, 0...0.3),
            uniform(fcOut * fcIn, -0.01...0.01), uniform(fcOut, -0.1...0.1),
        ]
    }()

    static func model(activations: QuantizedPrecision, data: [[Float]] = data) -> ImportedModel {
        let names = ["c.w", "c.b", "c.slope", "c.scale", "c.shift", "p.w", "p.b", "p.slope", "fc.w", "fc.b"]
        let shapes = [[20, 3, 5, 5], [20], [20], [3], [3], [20, 20, 1, 1], [20], [20], [fcOut, fcIn], [fcOut]]
        let plan = ModelPlan(
            kind: .arcface, name: "small", channelOrder: .rgb, inputMean: 0, inputScale: 1,
            values: [
                modelInputShape, ValueShape(c: 20, h: 37, w: 37), ValueShape(c: 20, h: 37, w: 37),
                ValueShape(c: fcOut, h: 1, w: 1),
            ],
            layers: [
                .convolution(
                    ConvLayer(
                        input: 0, output: 1, geometry: conv, weight: 0, bias: 1, slope: 2, inputScale: 3,
                        inputShift: 4)),
                .convolution(
                    ConvLayer(input: 1, output: 2, geometry: point, weight: 5, bias: 6, slope: 7, residual: 1)),
                .fullyConnected(
                    FullyConnectedLayer(input: 2, output: 3, weight: 8, bias: 9, inFeatures: fcIn, outFeatures: fcOut)),
            ],
            tensors: zip(names, shapes).map { TensorInfo(name: $0, shape: $1) }, output: 3)
        var m = ImportedModel(plan: plan, produce: data.map { d in { d } }).quantized()
        for (i, layer) in m.plan.layers.enumerated() {
            switch layer {
            case var .convolution(c): c.quantization?.activations = activations; m.plan.layers[i] = .convolution(c)
            case var .fullyConnected(f):
                f.quantization?.activations = activations; m.plan.layers[i] = .fullyConnected(f)
            default: break
            }
        }
        return m.lanePacked()
    }

    /// The plan written to a temporary file.
    static func file(activations: QuantizedPrecision) throws -> String {
        let path = TestModels.folder.appendingPathComponent("small-\(activations.rawValue).feb").path
        try FlatFile.write(model(activations: activations), to: path)
        return path
    }
}

/// The reference of one quantized layer: the input quantized per tensor from its max |x| (as the network does),
/// ReferenceQuantized's exact sums, dequantized, then bias, PReLU and residual in float.
private func referenceLayer(
    _ x: [Float], weights w: [Float], outC: Int, k: Int, activations: QuantizedPrecision,
    sums: ([Int32], [Int8]) -> [Int32], bias: [Float], slope: [Float]?, residual: [Float]?
) -> [Float] {
    let (q, scales) = ReferenceQuantized.quantizeWeights(w, outC: outC, k: k)
    let maxRow = (0..<outC).map { c in (0..<k).reduce(0) { $0 + abs(Int(q[c * k + $1])) } }.max()!
    let range = x.reduce(Float(0)) { max($0, abs($1)) }
    let qmax: Int32 = activations == .int8 ? 127 : Int32(min(32767, Int(Int32.max) / max(1, maxRow)))
    let low: Int32 = activations == .int8 ? -128 : -qmax
    let acc = sums(ReferenceQuantized.quantize(x, inverse: Float(qmax) / range, low: low, high: qmax), q)
    let pixels = acc.count / outC
    var y = ReferenceQuantized.dequantize(acc, scale: range / Float(qmax), weightScales: scales, pixels: pixels)
    for i in y.indices {
        y[i] += bias[i / pixels]
        if let slope, y[i] < 0 { y[i] *= slope[i / pixels] }
        if let residual { y[i] += residual[i] }
    }
    return y
}

struct QuantizedModelTests {
    @Test(
        "the network's int8 layers equal the plain reference on a written and loaded plan",
        arguments: [
            QuantizedPrecision.int8, .int16,
        ])
    func quantizedLayersMatchThePlainReference(_ activations: QuantizedPrecision) throws {
        let m = try FaceModel(contentsOf: try SmallPlan.file(activations: activations), threads: 2)
        #expect(m.precision == .int8)
        let net = m.network, d = SmallPlan.data
        var rng = SeededRandom(seed: 3)
        let input = (0..<modelInputShape.count).map { _ in Float.random(in: -1...1, using: &rng) }
        for threads in [1, 2] {
            let w = net.checkout(threads: threads)
            defer { net.checkin(w) }
            input.withUnsafeBufferPointer { net.input(w).update(from: $0.baseAddress!, count: input.count) }
            net.run(w, threads: threads)
            func value(_ v: Int) -> [Float] {
                Array(UnsafeBufferPointer(start: net.value(v, w), count: net.plan.values[v].count))
            }
            let (v1, v2, v3) = (value(1), value(2), value(3))
            // Each layer from the network's own input to it, so that each is checked alone.
            let plane = 112 * 112
            let affine = input.indices.map { input[$0] * d[3][$0 / plane] + d[4][$0 / plane] }
            let g = SmallPlan.conv, p = SmallPlan.point
            let r1 = referenceLayer(
                affine, weights: d[0], outC: 20, k: g.k, activations: activations,
                sums: {
                    ReferenceQuantized.convolution(
                        $0, inC: 3, h: 112, w: 112, weights: $1, outC: 20, kernel: (5, 5), stride: (3, 3), pad: (1, 1))
                }, bias: d[1], slope: d[2], residual: nil)
            let r2 = referenceLayer(
                v1, weights: d[5], outC: 20, k: p.k, activations: activations,
                sums: {
                    ReferenceQuantized.convolution(
                        $0, inC: 20, h: 37, w: 37, weights: $1, outC: 20, kernel: (1, 1), stride: (1, 1), pad: (0, 0))
                }, bias: d[6], slope: d[7], residual: v1)
            let r3 = referenceLayer(
                v2, weights: d[8], outC: SmallPlan.fcOut, k: SmallPlan.fcIn, activations: activations,
                sums: { ReferenceQuantized.fullyConnected($0, weights: $1, outFeatures: SmallPlan.fcOut) },
                bias: d[9], slope: nil, residual: nil)
            for (name, got, want) in [("5x5 conv", v1, r1), ("1x1 conv", v2, r2), ("fc", v3, r3)] {
                let scale = want.reduce(Float(0)) { max($0, abs($1)) }
                expectClose(
                    got, want, maxAbs: 1e-5 * scale, cosine: 0.9999999, "\(name), \(activations), \(threads) threads")
            }
        }
    }

    @Test func int8FilesRoundTripTheirPlanAndWeights() throws {
        let path = try SmallPlan.file(activations: .int8)
        let bytes = try readFile(path)
        #expect(bytes[8] == 4)
        let file = try MappedFile(path: path)
        defer { withExtendedLifetime(file) {} }
        let (plan, offsets) = try FlatFile.read(file.bytes, file: path)
        let written = SmallPlan.model(activations: .int8)
        #expect(plan == written.plan)
        // Every tensor's stored data is what the converter produced: int8 bytes for the weights, floats otherwise.
        for (i, t) in plan.tensors.enumerated() {
            let want = written.produce[i]()
            let got: [Float] = (0..<t.count).map { j in
                t.elementType == .int8
                    ? Float(Int8(bitPattern: bytes[offsets[i] + j]))
                    : bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offsets[i] + 4 * j, as: Float.self) }
            }
            #expect(got == want, "tensor \(t.name)")
        }
        #expect(plan.tensors.filter { $0.elementType == .int8 }.count == 3)
        #expect(plan.layers.allSatisfy { $0.quantization?.activations == .int8 })
    }

    @Test func aNonFiniteWeightIsRefusedWhenQuantizedNotACrash() throws {
        var data = SmallPlan.data
        data[0][7] = .nan
        let path = TestModels.folder.appendingPathComponent("small-nan.feb").path
        #expect(throws: FaceEmbedError.self) {
            try FlatFile.write(SmallPlan.model(activations: .int8, data: data), to: path)
        }
    }

    @Test func version2FloatFilesStillLoad() throws {
        let dir = TestPaths.fixtures.appendingPathComponent("tiny-iresnet")
        let symbolPath = dir.appendingPathComponent("model-symbol.json").path
        let symbol = try MXNetSymbol(json: readFile(symbolPath), file: symbolPath)
        let file = try MappedFile(path: dir.appendingPathComponent("model-0000.ndarray").path)
        let params = try MXNetParams(bytes: file.bytes, file: file.path)
        let model = try MXNetImporter.importModel(symbol: symbol, params: params, symbolFile: symbolPath).lanePacked()
        let v2 = TestModels.folder.appendingPathComponent("tiny-iresnet-v2.feb").path
        let v4 = TestModels.folder.appendingPathComponent("tiny-iresnet-v4.feb").path
        try FlatFile.write(model, to: v2, version: 2)
        try FlatFile.write(model, to: v4)
        #expect(try readFile(v2)[8] == 2 && readFile(v4)[8] == 4)
        let old = try FaceModel(contentsOf: v2), new = try FaceModel(contentsOf: v4)
        #expect(old.precision == .float32 && old.network.plan == new.network.plan)
        let face = try ImageDecoder.load(path: dir.appendingPathComponent("input0.ppm").path)
        #expect(try old.embedding(for: face) == new.embedding(for: face))
        // Version 2 has no element types, so it cannot hold an int8 model.
        #expect(throws: FaceEmbedError.self) {
            try FlatFile.write(SmallPlan.model(activations: .int8), to: v2, version: 2)
        }
    }
}

/// Version 3 int8 files (every K in OIHW order) against version 4 (K tap-major where the direct convolution runs).
struct QuantizedFileVersionTests {
    @Test(
        "an int8 file of version 3 loads and embeds as its version 4 twin does, bit for bit",
        arguments: QuantizedPrecision.allCases)
    func version3Int8FilesEmbedAsVersion4(_ activations: QuantizedPrecision) throws {
        let dir = TestPaths.fixtures.appendingPathComponent("tiny-iresnet")
        let symbolPath = dir.appendingPathComponent("model-symbol.json").path
        let symbol = try MXNetSymbol(json: readFile(symbolPath), file: symbolPath)
        let file = try MappedFile(path: dir.appendingPathComponent("model-0000.ndarray").path)
        let params = try MXNetParams(bytes: file.bytes, file: file.path)
        let imported = try MXNetImporter.importModel(symbol: symbol, params: params, symbolFile: symbolPath)
        func int8(tapMajor: Bool) -> ImportedModel {
            var m = imported.quantized(tapMajor: tapMajor)
            for (i, layer) in m.plan.layers.enumerated() {
                guard case var .convolution(c) = layer, c.quantization != nil else { continue }
                c.quantization?.activations = activations
                m.plan.layers[i] = .convolution(c)
            }
            return m.lanePacked()
        }
        let v3 = TestModels.folder.appendingPathComponent("tiny-iresnet-int8-v3-\(activations.rawValue).feb").path
        let v4 = TestModels.folder.appendingPathComponent("tiny-iresnet-int8-v4-\(activations.rawValue).feb").path
        try FlatFile.write(int8(tapMajor: false), to: v3, version: 3)
        try FlatFile.write(int8(tapMajor: true), to: v4)
        // Each version holds only its own order.
        #expect(throws: FaceEmbedError.self) { try FlatFile.write(int8(tapMajor: true), to: v3, version: 3) }
        #expect(throws: FaceEmbedError.self) { try FlatFile.write(int8(tapMajor: false), to: v4) }
        #expect(try readFile(v3)[8] == 3 && readFile(v4)[8] == 4)
        let face = try ImageDecoder.load(path: dir.appendingPathComponent("input0.ppm").path)
        for threads in [1, 2] {
            let old = try FaceModel(contentsOf: v3, threads: threads)
            let new = try FaceModel(contentsOf: v4, threads: threads)
            let direct = new.network.plan.layers.filter { $0.quantization?.tapMajor == true }.count
            #expect(direct > 0 && old.network.plan.layers.allSatisfy { $0.quantization?.tapMajor != true })
            #expect(
                try old.embedding(for: face) == new.embedding(for: face),
                "\(activations), \(threads) threads, \(direct) direct layers")
        }
    }
}

/// Damaged int8 files: each edit is resealed (checksum repaired), so only the int8 checks can catch it.
struct HostileInt8FileTests {
    /// The small int8 plan's bytes, the tensors' data offsets, and where each tensor record ends in the table.
    func original() throws -> (bytes: [UInt8], plan: ModelPlan, offsets: [Int]) {
        let path = try SmallPlan.file(activations: .int8)
        let bytes = try readFile(path)
        let file = try MappedFile(path: path)
        defer { withExtendedLifetime(file) {} }
        let (plan, offsets) = try FlatFile.read(file.bytes, file: path)
        return (bytes, plan, offsets)
    }

    /// `bytes` with the checksum at 96 recomputed.
    func resealed(_ bytes: [UInt8]) -> [UInt8] {
        var b = bytes, h = FlatFile.fnvOffset
        b.withUnsafeBytes { FlatFile.hash(UnsafeRawBufferPointer(rebasing: $0[FlatFile.headerSize...]), into: &h) }
        withUnsafeBytes(of: h.littleEndian) { for i in 0..<8 { b[96 + i] = $0[i] } }
        return b
    }

    /// The byte just past tensor `name`'s record in the table (its element type is the last 4 bytes).
    func recordEnd(_ bytes: [UInt8], _ t: TensorInfo) -> Int {
        let name = Array(t.name.utf8)
        let start = (FlatFile.headerSize..<bytes.count).first { bytes[$0..<$0 + name.count].elementsEqual(name) }!
        return (start + name.count + 3) / 4 * 4 + 4 + 4 * t.shape.count + 16 + 4
    }

    func expectRefused(_ bytes: [UInt8], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        // One file per expectation: the tests run in parallel.
        let path = TestModels.folder.appendingPathComponent("hostile-int8-\(sourceLocation.line).feb").path
        _ = FileManager.default.createFile(atPath: path, contents: Data(resealed(bytes)))
        do {
            _ = try FaceModel(contentsOf: path)
            Issue.record("loaded a file that \(what)", sourceLocation: sourceLocation)
        } catch {
            guard case let .invalidWeights(file, reason) = error else {
                Issue.record("\(error)", sourceLocation: sourceLocation)
                return
            }
            #expect(file == path && reason.contains(what), "\(reason)", sourceLocation: sourceLocation)
        }
    }

    @Test func negativeScalesAreRefused() throws {
        var (b, plan, offsets) = try original()
        let scales = plan.tensors.firstIndex { $0.name == "c.w_scale" }!
        b[offsets[scales] + 4 * 3 + 3] |= 0x80
        expectRefused(b, "negative scale at 3")
    }

    @Test func weightsOfMinus128AreRefused() throws {
        var (b, plan, offsets) = try original()
        b[offsets[plan.tensors.firstIndex { $0.name == "p.w" }!]] = 0x80
        expectRefused(b, "−128")
    }

    @Test func nonZeroPaddingLanesAreRefused() throws {
        var (b, plan, offsets) = try original()
        // Output channel 20 of the first block (lane 4 of block 1) lies past outC = 20.
        var pastK = b
        b[offsets[plan.tensors.firstIndex { $0.name == "c.w" }!] + (1 * 19 * 16 + 4) * 4] = 1
        expectRefused(b, "padding")
        // K = 3 · 5 · 5 = 75: byte 3 of the last k-group (18) lies past K, in every lane.
        pastK[offsets[plan.tensors.firstIndex { $0.name == "c.w" }!] + (18 * 16 + 7) * 4 + 3] = 1
        expectRefused(pastK, "padding")
    }

    @Test func wrongElementCountsAndTypesAreRefused() throws {
        let (b, plan, offsets) = try original()
        let weights = plan.tensors.first { $0.name == "fc.w" }!, end = recordEnd(b, weights)
        var count = b
        count[end - 12] &+= 1
        expectRefused(count, "tensor fc.w lies outside the data section")
        // p.w read as float32: its data zeroed first, so that it passes the finiteness scan and reaches the layer check.
        let point = plan.tensors.firstIndex { $0.name == "p.w" }!
        var asFloat = b
        for i in 0..<(4 * plan.tensors[point].count) { asFloat[offsets[point] + i] = 0 }
        asFloat[recordEnd(b, plan.tensors[point]) - 4] = 0
        expectRefused(asFloat, "expected int8")
        var unknown = b
        unknown[end - 4] = 7
        expectRefused(unknown, "unknown element type 7")
        let scales = plan.tensors.first { $0.name == "fc.w_scale" }!
        var scalesAsInt8 = b
        scalesAsInt8[recordEnd(b, scales) - 4] = 1
        expectRefused(scalesAsInt8, "expected float32")
    }

    @Test func activationWidthsOtherThan8Or16AreRefused() throws {
        var (b, _, _) = try original()
        // The first layer record: op 7, 21 fields, the last of which is the activation width.
        let layers = FlatFile.headerSize + 4 * 3 * 4
        #expect(b[layers] == 7 && b[layers + 4] == 21)
        b[layers + 8 + 20 * 4] = 12
        expectRefused(b, "activation width 12 is neither 8 nor 16")
    }
}

struct QuantizedRealModelTests {
    /// y1 converted to int8 against y1 float32 on the LFW fixture images: the issue's bounds (median cosine ≥ 0.995,
    /// every image ≥ 0.99) on 18 images; compare-models measures all 13,233.
    @Test func y1Int8StaysCloseToFloat32OnLFWImages() throws {
        guard let symbol = TestPaths.shared("models/mobilefacenet-arcface/model-symbol.json"),
            let params = TestPaths.shared("models/mobilefacenet-arcface/model-0000.params"),
            TestPaths.local("lfw-ppm") != nil
        else { return }
        let float = try TestModels.load("y1", symbol: symbol, params: params)
        let int8Path = TestModels.folder.appendingPathComponent("y1-int8.feb").path
        try ModelConverter.convertMXNet(symbol: symbol, params: params, to: int8Path, precision: .int8)
        let int8 = try FaceModel(contentsOf: int8Path)
        #expect(int8.precision == .int8 && int8.parameterCount == float.parameterCount)
        let expected = try loadJSON(TestPaths.fixtures.appendingPathComponent("y1-lfw.json").path)
        let faces = try (expected["images"] as! [String]).map { name in
            try ImageDecoder.load(path: TestPaths.local.appendingPathComponent("lfw-ppm/\(name.dropLast(4)).ppm").path)
        }
        let cosines = zip(try int8.embeddings(for: faces), try float.embeddings(for: faces)).map {
            $0.cosineSimilarity(to: $1)
        }.sorted()
        print(
            "y1 int8 vs float32 on \(faces.count) LFW images: min \(cosines[0]), median \(cosines[cosines.count / 2])")
        #expect(faces.count >= 16 && cosines[0] >= 0.99 && cosines[cosines.count / 2] >= 0.995)
    }

    /// insightface's w600k_mbf converted to int8 against its float32 conversion on the 20 LFW images of its ONNX
    /// fixtures: median cosine ≥ 0.995 (the issue asks 0.99), every image ≥ 0.994. Measured here: median 0.99669,
    /// min 0.99483 in the AVX-512 and FMA builds, 0.99678 / 0.99540 in the portable one; over all 13,233 LFW images
    /// (compare-models, AVX-512) median 0.99661, min 0.99163.
    /// Its grouped 3×3 convolution (groups = 64) and its 15 depthwise ones stay float32.
    @Test func w600kInt8StaysCloseToFloat32OnLFWImages() throws {
        guard let onnx = TestPaths.local("onnx/w600k_mbf.onnx"), let json = TestPaths.local("onnx/w600k_mbf-lfw.json")
        else { return }
        // Its own float32 file: ONNXFixtures.load's shared one may be half-written by a test running in parallel.
        let floatPath = TestModels.folder.appendingPathComponent("w600k_mbf-float32.feb").path
        let int8Path = TestModels.folder.appendingPathComponent("w600k_mbf-int8.feb").path
        try ModelConverter.convertONNX(onnx, to: floatPath)
        try ModelConverter.convertONNX(onnx, to: int8Path, precision: .int8)
        let float = try FaceModel(contentsOf: floatPath), int8 = try FaceModel(contentsOf: int8Path)
        #expect(int8.precision == .int8 && int8.parameterCount == float.parameterCount)
        let faces = try (loadJSON(json)["images"] as! [String]).map { name in
            try ImageDecoder.load(
                path: TestPaths.local.appendingPathComponent("onnx/lfw-ppm/\(name.dropLast(4)).ppm").path)
        }
        let cosines = zip(try int8.embeddings(for: faces), try float.embeddings(for: faces)).map {
            $0.cosineSimilarity(to: $1)
        }.sorted()
        print(
            "w600k_mbf int8 vs float32 on \(faces.count) LFW images: min \(cosines[0]), "
                + "median \(cosines[cosines.count / 2])")
        #expect(faces.count >= 16 && cosines[0] >= 0.994 && cosines[cosines.count / 2] >= 0.995)
    }

    /// The seeded-random LResNet100 converted to int8 against MXNet's float32 fc1 on its fixture images: cosine ≥ 0.99
    /// for each (the issue asks for the median).
    @Test func r100Int8StaysCloseToMXNetFloat32() throws {
        guard let symbol = TestPaths.local("r100/model-symbol.json"),
            let params = TestPaths.local("r100/model-0000.params")
        else { return }
        let path = TestModels.folder.appendingPathComponent("r100-int8.feb").path
        try ModelConverter.convertMXNet(symbol: symbol, params: params, to: path, precision: .int8)
        let m = try FaceModel(contentsOf: path)
        let folder = TestPaths.local.appendingPathComponent("r100").path
        let expected = try loadJSON(folder + "/expected.json")
        let fc1 = floatRows(expected["fc1"])
        for (i, name) in (expected["images"] as! [String]).enumerated() {
            let e = try m.embedding(for: try ImageDecoder.load(path: folder + "/" + name))
            let c = Closeness(e.values, fc1[i])
            print("r100 int8 \(name) vs MXNet float32: \(c)")
            #expect(c.cosine >= 0.99, "\(name): \(c)")
        }
    }
}
