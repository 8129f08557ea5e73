#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// FaceEmbed's own weight file ("flat file", `.feb`): a fused model plan and its float32 tensors, laid out so the
// data can be mapped and used in place. Byte by byte in Models/FORMAT.md. In short:
//
//   [0, 128)      header: magic "FACEEMB\0", version, kind, embedding size, input geometry and preprocessing,
//                 counts, file size, table and data offsets, checksum, name
//   [128, data)   tables: values, layers, outputs (value, name), tensors (name, shape, offset, count, element
//                 type), zero padding (version 2: no outputs table, no element types)
//   [data, end)   tensors, float32 (or int8: version 3 and later) little-endian, each 64-byte aligned; the file ends
//                 aligned (version 4: the int8 weights of convolutions the direct kernel runs have K tap-major)
//   checksum      FNV-1a 64 over the little-endian 64-bit words of [128, end)

package enum FlatFile {
    package static let magic: [UInt8] = Array("FACEEMB".utf8) + [0]
    package static let version: UInt32 = 4
    /// Versions this reader accepts: 2 (float32 only, one output named in the header), 3 (outputs table, element
    /// types: QuantizedPlan.swift) and 4 (version 3 with tap-major int8 weights where the direct kernel runs).
    package static let readableVersions: ClosedRange<UInt32> = 2...4
    package static let headerSize = 128
    package static let alignment = 64
    package static let maxCount = 1 << 20
    /// Floats of activations (all values together) a model may need per image: 1 GiB (LResNet100 needs a few %).
    package static let maxActivations = 1 << 28
    package static let fnvOffset: UInt64 = 0xCBF2_9CE4_8422_2325
    package static let fnvPrime: UInt64 = 0x0000_0100_0000_01B3

    /// FNV-1a over 64-bit little-endian words (`bytes.count` must be a multiple of 8).
    package static func hash(_ bytes: UnsafeRawBufferPointer, into h: inout UInt64) {
        var x = h
        let words = bytes.count / 8
        for i in 0..<words {
            x = (x ^ UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))) &* fnvPrime
        }
        h = x
    }

    package static func aligned(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    package static func layerCode(_ l: Layer) -> UInt32 {
        switch l {
        case let .convolution(c): return c.quantization == nil ? 1 : 7
        case .affine: return 2
        case let .fullyConnected(f): return f.quantization == nil ? 3 : 8
        case .add: return 4
        case .upsample: return 5
        case .sigmoid: return 6
        }
    }

    package static func layerFields(_ l: Layer) -> [Int] {
        switch l {
        case let .convolution(c):
            let g = c.geometry
            return [
                c.input, c.output, g.inC, g.inH, g.inW, g.outC, g.kH, g.kW, g.strideH, g.strideW, g.padH, g.padW,
                g.groups, c.weight, c.bias, c.slope ?? -1, c.residual ?? -1, c.inputScale ?? -1, c.inputShift ?? -1,
            ] + quantizationFields(c.quantization)
        case let .affine(a):
            return [a.input, a.output, a.scale ?? -1, a.shift ?? -1, a.slope ?? -1]
        case let .fullyConnected(f):
            return [f.input, f.output, f.weight, f.bias, f.inFeatures, f.outFeatures]
                + quantizationFields(f.quantization)
        case let .add(a, b, o):
            return [a, b, o]
        case let .upsample(x, o), let .sigmoid(x, o):
            return [x, o]
        }
    }

    // MARK: Reading

    /// Parses and validates a flat file: header, checksum, tables, every index and shape, finite weights.
    /// Returns the plan and each tensor's byte offset.
    package static func read(_ bytes: UnsafeRawBufferPointer, file: String?) throws(FaceEmbedError) -> (
        ModelPlan, [Int]
    ) {
        var r = ByteReader(bytes) { .invalidWeights(file: file, reason: $0) }
        let header = try readHeader(&r, bytes)
        try checkChecksum(bytes, header.checksum, fail: r.fail)
        var t = ByteReader(UnsafeRawBufferPointer(rebasing: bytes[0..<Int(header.dataOffset)]), offset: headerSize) {
            .invalidWeights(file: file, reason: "table: \($0)")
        }
        let values = try readValues(&t, count: header.nValues, input: header.input)
        let layers = try readLayers(&t, count: header.nLayers).map { tapMajorMarked($0, version: header.version) }
        let outputs =
            header.version == 2
            ? [PlanOutput(name: "embedding", value: header.output)]
            : try readOutputs(&t, count: header.output, values: header.nValues)
        let (tensors, offsets) = try readTensors(
            &t, count: header.nTensors, bytes, header.dataOffset, typed: header.version >= 3, file: file)
        let plan = ModelPlan(
            kind: header.kind, name: header.name.isEmpty ? header.kind.description : header.name,
            channelOrder: header.order, inputMean: header.mean, inputScale: header.scale, values: values,
            layers: layers, tensors: tensors, outputs: outputs)
        try validate(plan, embeddingSize: header.embedding, fail: { .invalidWeights(file: file, reason: $0) })
        try checkQuantizedData(plan, bytes, offsets: offsets) { .invalidWeights(file: file, reason: $0) }
        return (plan, offsets)
    }

    /// The header's fields, as read; `readHeader` has checked them against each other and the file's size.
    private struct Header {
        let version: UInt32, kind: ModelKind, embedding: Int, input: ValueShape, order: ChannelOrder
        let mean: Float, scale: Float
        /// `output` is the output value in version 2 and the number of outputs in version 3.
        let nValues: Int, nLayers: Int, nTensors: Int, output: Int
        let fileSize: UInt64, tableOffset: UInt64, tableSize: UInt64, dataOffset: UInt64, checksum: UInt64
        let name: String
    }

    private static func readHeader(_ r: inout ByteReader, _ bytes: UnsafeRawBufferPointer) throws(FaceEmbedError)
        -> Header
    {
        let version = try readIdentity(&r, bytes)
        let kindRaw = try r.u32("kind")
        guard let kind = ModelKind(rawValue: kindRaw) else { throw r.fail("unknown model kind \(kindRaw)") }
        let embedding = Int(try r.u32("embedding size"))
        let input = ValueShape(c: Int(try r.u32("input c")), h: Int(try r.u32("input h")), w: Int(try r.u32("input w")))
        try checkInput(input, kind: kind, fail: r.fail)
        guard let order = ChannelOrder(rawValue: try r.u32("channel order")) else {
            throw r.fail("unknown channel order")
        }
        let mean = try r.f32("input mean"), scale = try r.f32("input scale")
        guard mean.isFinite, scale.isFinite, scale != 0 else { throw r.fail("input preprocessing is not finite") }
        let nValues = Int(try r.u32("value count")), nLayers = Int(try r.u32("layer count"))
        let nTensors = Int(try r.u32("tensor count")), output = Int(try r.u32("output value"))
        let fileSize = try r.u64("file size"), tableOffset = try r.u64("table offset")
        let tableSize = try r.u64("table size"), dataOffset = try r.u64("data offset"), checksum = try r.u64("checksum")
        let nameBytes = (0..<24).map { bytes[r.offset + $0] }
        let header = Header(
            version: version, kind: kind, embedding: embedding, input: input, order: order, mean: mean, scale: scale,
            nValues: nValues,
            nLayers: nLayers, nTensors: nTensors, output: output, fileSize: fileSize, tableOffset: tableOffset,
            tableSize: tableSize, dataOffset: dataOffset, checksum: checksum,
            name: String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self))
        try checkLayout(header, fileBytes: bytes.count, fail: r.fail)
        return header
    }

    /// A recognition model takes 3 × 112 × 112; a detector 3 × H × W at the size it was converted at.
    private static func checkInput(_ input: ValueShape, kind: ModelKind, fail: (String) -> FaceEmbedError)
        throws(FaceEmbedError)
    {
        if kind == .faceDetector {
            let sides = 1...PlanLimits.maxSide
            guard input.c == 3, sides.contains(input.h), sides.contains(input.w) else {
                throw fail("detector input \(input.c)x\(input.h)x\(input.w) is not 3 x H x W")
            }
        } else if input != modelInputShape {
            throw fail("input \(input.c)x\(input.h)x\(input.w) is not 3x112x112")
        }
    }

    /// Magic, version and header size: what says the bytes are a flat file this reader understands. Returns the
    /// version.
    private static func readIdentity(_ r: inout ByteReader, _ bytes: UnsafeRawBufferPointer) throws(FaceEmbedError)
        -> UInt32
    {
        try r.need(headerSize, "the header")
        guard (0..<8).allSatisfy({ bytes[$0] == magic[$0] }) else {
            throw r.fail(
                "not a FaceEmbed weight file (bad magic); convert MXNet or ONNX models with `faceembed convert`")
        }
        try r.skip(8, "magic")
        let ver = try r.u32("version")
        guard readableVersions.contains(ver) else {
            throw r.fail(
                ver == 1
                    ? "format version 1 (FaceEmbed 0.1) stores convolution weights in another layout: convert the model again with `faceembed convert`"
                    : "format version \(ver) is not supported (this FaceEmbed reads versions 2 to 4): convert the model again with this version's `faceembed convert`"
            )
        }
        guard try r.u32("header size") == UInt32(headerSize) else { throw r.fail("unexpected header size") }
        return ver
    }

    /// The header's sizes, offsets and counts agree with each other and with the file's length.
    private static func checkLayout(_ h: Header, fileBytes count: Int, fail: (String) -> FaceEmbedError)
        throws(FaceEmbedError)
    {
        guard h.fileSize == UInt64(count) else {
            throw fail("the header says \(h.fileSize) bytes but the file has \(count): truncated or padded")
        }
        guard h.tableOffset == UInt64(headerSize), h.tableSize <= UInt64(count) - h.tableOffset,
            h.dataOffset >= h.tableOffset + h.tableSize, h.dataOffset <= h.fileSize, count % alignment == 0,
            h.nValues >= 1, h.nValues <= maxCount, h.nLayers <= maxCount, h.nTensors <= maxCount,
            h.version == 2 ? h.output < h.nValues : (1...64).contains(h.output)
        else {
            throw fail("inconsistent header (offsets or counts out of range)")
        }
    }

    private static func checkChecksum(
        _ bytes: UnsafeRawBufferPointer, _ checksum: UInt64, fail: (String) -> FaceEmbedError
    ) throws(FaceEmbedError) {
        var h = fnvOffset
        hash(UnsafeRawBufferPointer(rebasing: bytes[headerSize...]), into: &h)
        guard h == checksum else { throw fail("checksum mismatch: the file is corrupt") }
    }

    /// The values table: each value's shape in range, value 0 the input, all values within the activation limit.
    private static func readValues(_ t: inout ByteReader, count: Int, input: ValueShape) throws(FaceEmbedError)
        -> [ValueShape]
    {
        var values: [ValueShape] = []
        for i in 0..<count {
            let v = ValueShape(
                c: Int(try t.u32("value \(i)")), h: Int(try t.u32("value \(i)")), w: Int(try t.u32("value \(i)")))
            guard v.c >= 1, v.h >= 1, v.w >= 1, v.c <= 65_536, v.h <= 4096, v.w <= 4096, v.count <= 1 << 26 else {
                throw t.fail("value \(i) has shape \(v.c)x\(v.h)x\(v.w)")
            }
            values.append(v)
        }
        guard values[0] == input else { throw t.fail("value 0 is not the \(input.c)x\(input.h)x\(input.w) input") }
        // The activation arena is at most the sum of all values: bound it before a workspace is ever allocated.
        let activations = values.reduce(0) { $0 + $1.count }
        guard activations <= maxActivations else {
            throw t.fail("the values need \(activations) floats per image, more than the limit of \(maxActivations)")
        }
        return values
    }

    private static func readLayers(_ t: inout ByteReader, count: Int) throws(FaceEmbedError) -> [Layer] {
        var layers: [Layer] = []
        for i in 0..<count {
            let code = try t.u32("layer \(i) op"), nFields = Int(try t.u32("layer \(i) field count"))
            guard nFields <= 64 else { throw t.fail("layer \(i) has \(nFields) fields") }
            var f: [Int] = []
            for _ in 0..<nFields { f.append(Int(try t.i32("layer \(i) field"))) }
            layers.append(
                code == 7 || code == 8
                    ? try decodeQuantizedLayer(code: code, fields: f, index: i, fail: t.fail)
                    : try decodeLayer(code: code, fields: f, index: i, fail: t.fail))
        }
        return layers
    }

    /// The outputs table (version 3): each output's value and name.
    private static func readOutputs(_ t: inout ByteReader, count: Int, values: Int) throws(FaceEmbedError)
        -> [PlanOutput]
    {
        var outputs: [PlanOutput] = []
        for i in 0..<count {
            let value = Int(try t.u32("output \(i) value")), len = Int(try t.u32("output \(i) name length"))
            guard value < values, len <= 64 else { throw t.fail("output \(i) is out of range") }
            let name = try t.string(count: len, "output \(i) name")
            try t.skip((4 - len % 4) % 4, "output \(i) name padding")
            guard !outputs.contains(where: { $0.name == name }) else { throw t.fail("output \(name) appears twice") }
            outputs.append(PlanOutput(name: name, value: value))
        }
        return outputs
    }

    /// The tensors table, each record checked (and its data scanned) before the next is read. `typed`: the records
    /// end with an element type (version 3).
    private static func readTensors(
        _ t: inout ByteReader, count: Int, _ bytes: UnsafeRawBufferPointer, _ dataOffset: UInt64, typed: Bool,
        file: String?
    ) throws(FaceEmbedError) -> ([TensorInfo], [Int]) {
        var tensors: [TensorInfo] = [], offsets: [Int] = []
        for i in 0..<count {
            let (tensor, offset) = try readTensor(&t, index: i, bytes, dataOffset, typed: typed, file: file)
            tensors.append(tensor)
            offsets.append(offset)
        }
        return (tensors, offsets)
    }

    /// One tensor record: name, shape, an offset and count that place its data inside the data section, and (when
    /// `typed`) the element type.
    private static func readTensor(
        _ t: inout ByteReader, index i: Int, _ bytes: UnsafeRawBufferPointer, _ dataOffset: UInt64, typed: Bool,
        file: String?
    ) throws(FaceEmbedError) -> (TensorInfo, Int) {
        let len = Int(try t.u32("tensor \(i) name length"))
        guard len <= 1024 else { throw t.fail("tensor \(i) name is \(len) bytes") }
        let tname = try t.string(count: len, "tensor \(i) name")
        try t.skip((4 - len % 4) % 4, "tensor \(i) name padding")
        let shape = try readShape(&t, index: i, name: tname)
        let count = shape.reduce(1, *)
        let off = try t.u64("tensor \(i) offset"), n = try t.u64("tensor \(i) count")
        let typeCode = typed ? try t.u32("tensor \(i) element type") : 0
        guard let type = TensorElementType(rawValue: typeCode) else {
            throw t.fail("tensor \(tname) has unknown element type \(typeCode)")
        }
        guard n == UInt64(count), off % UInt64(alignment) == 0, off >= dataOffset,
            off <= UInt64(bytes.count), UInt64(count * type.size) <= UInt64(bytes.count) - off
        else {
            throw t.fail("tensor \(tname) lies outside the data section")
        }
        if type == .float32 { try checkFinite(bytes, offset: Int(off), count: count, name: tname, file: file) }
        return (TensorInfo(name: tname, shape: shape, elementType: type), Int(off))
    }

    /// A tensor's dimensions, each and their product at most 2^28.
    private static func readShape(_ t: inout ByteReader, index i: Int, name: String) throws(FaceEmbedError) -> [Int] {
        let ndim = Int(try t.u32("tensor \(i) ndim"))
        guard ndim >= 1, ndim <= 8 else { throw t.fail("tensor \(name) has \(ndim) dimensions") }
        var shape: [Int] = []
        var count = 1
        for _ in 0..<ndim {
            let d = Int(try t.u32("tensor \(i) dim"))
            guard d >= 1, d <= 1 << 28 else { throw t.fail("tensor \(name) has dimension \(d)") }
            count *= d
            guard count <= 1 << 28 else { throw t.fail("tensor \(name) is too large") }
            shape.append(d)
        }
        return shape
    }

    /// Rejects NaN, infinity and denormals in a tensor's data (already bounds-checked by `readTensor`).
    private static func checkFinite(
        _ bytes: UnsafeRawBufferPointer, offset: Int, count: Int, name: String, file: String?
    ) throws(FaceEmbedError) {
        for j in 0..<count {
            let v = Float(
                bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + j * 4, as: UInt32.self)))
            guard v.isFinite else {
                throw .invalidWeights(file: file, reason: "tensor \(name) holds NaN or infinity at \(j)")
            }
            // The converter flushes denormals; a file holding one was not written by it (and would run slower).
            guard !v.isSubnormal else {
                throw .invalidWeights(
                    file: file,
                    reason: "tensor \(name) holds a denormal value at \(j) (faceembed convert flushes them to zero)")
            }
        }
    }

    static func decodeLayer(
        code: UInt32, fields f: [Int], index i: Int,
        fail: (String) -> FaceEmbedError
    ) throws(FaceEmbedError) -> Layer {
        func opt(_ v: Int) -> Int? { v < 0 ? nil : v }
        switch (code, f.count) {
        case (1, 19):
            // The fields are range-checked before anything divides by the strides (a zero stride trapped here once).
            guard
                let g = ConvGeometry.checked(
                    inC: f[2], inH: f[3], inW: f[4], outC: f[5], kH: f[6], kW: f[7],
                    strideH: f[8], strideW: f[9], padH: f[10], padW: f[11],
                    groups: f[12])
            else {
                throw fail("layer \(i): convolution geometry out of range")
            }
            return .convolution(
                ConvLayer(
                    input: f[0], output: f[1], geometry: g, weight: f[13], bias: f[14],
                    slope: opt(f[15]), residual: opt(f[16]), inputScale: opt(f[17]), inputShift: opt(f[18])))
        case (2, 5):
            return .affine(AffineLayer(input: f[0], output: f[1], scale: opt(f[2]), shift: opt(f[3]), slope: opt(f[4])))
        case (3, 6):
            return .fullyConnected(
                FullyConnectedLayer(
                    input: f[0], output: f[1], weight: f[2], bias: f[3],
                    inFeatures: f[4], outFeatures: f[5]))
        case (4, 3):
            return .add(a: f[0], b: f[1], output: f[2])
        case (5, 2):
            return .upsample(input: f[0], output: f[1])
        case (6, 2):
            return .sigmoid(input: f[0], output: f[1])
        default:
            throw fail("layer \(i): unknown operator \(code) with \(f.count) fields")
        }
    }

    /// Checks that a plan is executable: values defined before use, each written once, shapes and tensor sizes
    /// consistent with every layer. Used on every loaded file, so a crafted file cannot misdirect a kernel.
    package static func validate(_ plan: ModelPlan, embeddingSize: Int, fail: (String) -> FaceEmbedError)
        throws(FaceEmbedError)
    {
        try withoutActuallyEscaping(fail) { (fail) throws(FaceEmbedError) in
            var checker = PlanChecker(plan: plan, fail: fail)
            for (i, layer) in plan.layers.enumerated() { try checker.check(layer, i) }
            for o in plan.outputs where !checker.defined[o.value] || o.value == 0 {
                throw fail("output \(o.name) is not computed by any layer")
            }
            guard plan.kind == .faceDetector || plan.outputs.count == 1 else {
                throw fail("a recognition model has one output, not \(plan.outputs.count)")
            }
            guard plan.kind == .faceDetector || plan.values[plan.output] == ValueShape(c: embeddingSize, h: 1, w: 1)
            else {
                throw fail("the output is not a computed \(embeddingSize)-value embedding")
            }
        }
    }

    /// `validate`'s walk over the layers in order: which values are computed so far, and one check per layer kind.
    private struct PlanChecker {
        let plan: ModelPlan
        let fail: (String) -> FaceEmbedError
        var defined: [Bool]

        init(plan: ModelPlan, fail: @escaping (String) -> FaceEmbedError) {
            self.plan = plan
            self.fail = fail
            defined = [Bool](repeating: false, count: plan.values.count)
            defined[0] = true
        }

        mutating func check(_ layer: Layer, _ i: Int) throws(FaceEmbedError) {
            let out = layer.output
            guard out > 0, out < plan.values.count, !defined[out] else {
                throw fail("layer \(i) writes value \(out) twice or out of range")
            }
            let os = plan.values[out]
            switch layer {
            case let .convolution(c): try convolution(c, os, i)
            case let .affine(a): try affine(a, os, i)
            case let .fullyConnected(f): try fullyConnected(f, os, i)
            case let .add(a, b, _): try add(a, b, os, i)
            case let .upsample(x, _):
                let s = try value(x, i)
                guard os == ValueShape(c: s.c, h: 2 * s.h, w: 2 * s.w) else { throw fail("layer \(i): upsample shape") }
            case let .sigmoid(x, _):
                guard try value(x, i) == os else { throw fail("layer \(i): sigmoid changes shape") }
            }
            defined[out] = true
        }

        func convolution(_ c: ConvLayer, _ os: ValueShape, _ i: Int) throws(FaceEmbedError) {
            let g = c.geometry, x = try value(c.input, i)
            guard x == ValueShape(c: g.inC, h: g.inH, w: g.inW), os == ValueShape(c: g.outC, h: g.outH, w: g.outW)
            else {
                throw fail("layer \(i): convolution shapes do not match its values")
            }
            if let q = c.quantization {
                try quantized(c.weight, rows: (g.outC, g.k), q, i)
            } else {
                try tensor(c.weight, g.storedWeightShape, i)
            }
            try tensor(c.bias, [g.outC], i)
            try tensor(c.slope, [g.outC], i)
            if let r = c.residual { guard try value(r, i) == os else { throw fail("layer \(i): residual shape") } }
            guard (c.inputScale == nil) == (c.inputShift == nil), c.inputScale == nil || g.groups == 1 else {
                throw fail("layer \(i): input affine needs both scale and shift and groups = 1")
            }
            try tensor(c.inputScale, [g.inC], i)
            try tensor(c.inputShift, [g.inC], i)
        }

        func affine(_ a: AffineLayer, _ os: ValueShape, _ i: Int) throws(FaceEmbedError) {
            let x = try value(a.input, i)
            guard x == os else { throw fail("layer \(i): affine changes shape") }
            try tensor(a.scale, [x.c], i); try tensor(a.shift, [x.c], i); try tensor(a.slope, [x.c], i)
        }

        func fullyConnected(_ f: FullyConnectedLayer, _ os: ValueShape, _ i: Int) throws(FaceEmbedError) {
            let x = try value(f.input, i)
            guard x.count == f.inFeatures, os == ValueShape(c: f.outFeatures, h: 1, w: 1) else {
                throw fail("layer \(i): fully connected shapes do not match its values")
            }
            if let q = f.quantization {
                let rows = (f.outFeatures, f.inFeatures)
                try quantized(f.weight, rows: rows, q, i)
            } else {
                try tensor(f.weight, [f.outFeatures, f.inFeatures], i)
            }
            try tensor(f.bias, [f.outFeatures], i)
        }

        func add(_ a: Int, _ b: Int, _ os: ValueShape, _ i: Int) throws(FaceEmbedError) {
            guard try value(a, i) == os, try value(b, i) == os else { throw fail("layer \(i): add shapes differ") }
        }

        /// Value `v`'s shape, if an earlier layer (or the input) has computed it.
        func value(_ v: Int, _ i: Int) throws(FaceEmbedError) -> ValueShape {
            guard v >= 0, v < plan.values.count, defined[v] else {
                throw fail("layer \(i) reads value \(v) before it is computed")
            }
            return plan.values[v]
        }

        /// Checks that optional tensor `t` exists with `shape`, float32.
        func tensor(_ t: Int?, _ shape: [Int], _ i: Int, type: TensorElementType = .float32) throws(FaceEmbedError) {
            guard let t else { return }
            guard t >= 0, t < plan.tensors.count else {
                throw fail("layer \(i) refers to tensor \(t), which does not exist")
            }
            guard plan.tensors[t].shape == shape, plan.tensors[t].elementType == type else {
                throw fail(
                    "layer \(i): tensor \(plan.tensors[t].name) is \(plan.tensors[t].elementType) \(plan.tensors[t].shape), "
                        + "expected \(type) \(shape)")
            }
        }
        /// A quantized layer's tensors: int8 weights in the stored shape, float32 scales [outC].
        func quantized(_ weight: Int, rows: (outC: Int, k: Int), _ q: LayerQuantization, _ i: Int)
            throws(FaceEmbedError)
        {
            try tensor(weight, quantizedWeightShape(outC: rows.outC, k: rows.k), i, type: .int8)
            try tensor(q.scales, [rows.outC], i)
        }
    }
}
