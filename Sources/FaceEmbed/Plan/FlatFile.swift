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
//   [128, data)   tables: values, layers, tensors (name, shape, offset, count), zero padding
//   [data, end)   tensors, float32 little-endian, each 64-byte aligned; the file ends 64-byte aligned
//   checksum      FNV-1a 64 over the little-endian 64-bit words of [128, end)

package enum FlatFile {
    package static let magic: [UInt8] = Array("FACEEMB".utf8) + [0]
    package static let version: UInt32 = 2
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
        case .convolution: return 1
        case .affine: return 2
        case .fullyConnected: return 3
        case .add: return 4
        }
    }

    package static func layerFields(_ l: Layer) -> [Int] {
        switch l {
        case let .convolution(c):
            let g = c.geometry
            return [
                c.input, c.output, g.inC, g.inH, g.inW, g.outC, g.kH, g.kW, g.strideH, g.strideW, g.padH, g.padW,
                g.groups, c.weight, c.bias, c.slope ?? -1, c.residual ?? -1, c.inputScale ?? -1, c.inputShift ?? -1,
            ]
        case let .affine(a):
            return [a.input, a.output, a.scale ?? -1, a.shift ?? -1, a.slope ?? -1]
        case let .fullyConnected(f):
            return [f.input, f.output, f.weight, f.bias, f.inFeatures, f.outFeatures]
        case let .add(a, b, o):
            return [a, b, o]
        }
    }

    // MARK: Reading

    /// Parses and validates a flat file: header, checksum, tables, every index and shape, finite weights.
    /// Returns the plan and each tensor's byte offset.
    package static func read(_ bytes: UnsafeRawBufferPointer, file: String?) throws(FaceEmbedError) -> (
        ModelPlan, [Int]
    ) {
        var r = ByteReader(bytes) { .invalidWeights(file: file, reason: $0) }
        try r.need(headerSize, "the header")
        guard (0..<8).allSatisfy({ bytes[$0] == magic[$0] }) else {
            throw r.fail(
                "not a FaceEmbed weight file (bad magic); convert MXNet or ONNX models with `faceembed convert`")
        }
        try r.skip(8, "magic")
        let ver = try r.u32("version")
        guard ver == version else {
            throw r.fail(
                ver == 1
                    ? "format version 1 (FaceEmbed 0.1) stores convolution weights in another layout: convert the model again with `faceembed convert`"
                    : "format version \(ver) is not supported (this FaceEmbed reads \(version))")
        }
        guard try r.u32("header size") == UInt32(headerSize) else { throw r.fail("unexpected header size") }
        let kindRaw = try r.u32("kind")
        guard let kind = ModelKind(rawValue: kindRaw) else { throw r.fail("unknown model kind \(kindRaw)") }
        let embedding = Int(try r.u32("embedding size"))
        let input = ValueShape(c: Int(try r.u32("input c")), h: Int(try r.u32("input h")), w: Int(try r.u32("input w")))
        guard input == modelInputShape else { throw r.fail("input \(input.c)x\(input.h)x\(input.w) is not 3x112x112") }
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
        let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
        guard fileSize == UInt64(bytes.count) else {
            throw r.fail("the header says \(fileSize) bytes but the file has \(bytes.count): truncated or padded")
        }
        guard tableOffset == UInt64(headerSize), tableSize <= UInt64(bytes.count) - tableOffset,
            dataOffset >= tableOffset + tableSize, dataOffset <= fileSize, bytes.count % alignment == 0,
            nValues >= 1, nValues <= maxCount, nLayers <= maxCount, nTensors <= maxCount, output < nValues
        else {
            throw r.fail("inconsistent header (offsets or counts out of range)")
        }
        var h = fnvOffset
        hash(UnsafeRawBufferPointer(rebasing: bytes[headerSize...]), into: &h)
        guard h == checksum else { throw r.fail("checksum mismatch: the file is corrupt") }

        var t = ByteReader(UnsafeRawBufferPointer(rebasing: bytes[0..<Int(dataOffset)]), offset: headerSize) {
            .invalidWeights(file: file, reason: "table: \($0)")
        }
        var values: [ValueShape] = []
        for i in 0..<nValues {
            let v = ValueShape(
                c: Int(try t.u32("value \(i)")), h: Int(try t.u32("value \(i)")), w: Int(try t.u32("value \(i)")))
            guard v.c >= 1, v.h >= 1, v.w >= 1, v.c <= 65_536, v.h <= 4096, v.w <= 4096, v.count <= 1 << 26 else {
                throw t.fail("value \(i) has shape \(v.c)x\(v.h)x\(v.w)")
            }
            values.append(v)
        }
        guard values[0] == modelInputShape else { throw t.fail("value 0 is not the 3x112x112 input") }
        // The activation arena is at most the sum of all values: bound it before a workspace is ever allocated.
        let activations = values.reduce(0) { $0 + $1.count }
        guard activations <= maxActivations else {
            throw t.fail("the values need \(activations) floats per image, more than the limit of \(maxActivations)")
        }
        var layers: [Layer] = []
        for i in 0..<nLayers {
            let code = try t.u32("layer \(i) op"), count = Int(try t.u32("layer \(i) field count"))
            guard count <= 64 else { throw t.fail("layer \(i) has \(count) fields") }
            var f: [Int] = []
            for _ in 0..<count { f.append(Int(try t.i32("layer \(i) field"))) }
            layers.append(try decodeLayer(code: code, fields: f, index: i, fail: t.fail))
        }
        var tensors: [TensorInfo] = [], offsets: [Int] = []
        for i in 0..<nTensors {
            let len = Int(try t.u32("tensor \(i) name length"))
            guard len <= 1024 else { throw t.fail("tensor \(i) name is \(len) bytes") }
            let tname = try t.string(count: len, "tensor \(i) name")
            try t.skip((4 - len % 4) % 4, "tensor \(i) name padding")
            let ndim = Int(try t.u32("tensor \(i) ndim"))
            guard ndim >= 1, ndim <= 8 else { throw t.fail("tensor \(tname) has \(ndim) dimensions") }
            var shape: [Int] = []
            var count = 1
            for _ in 0..<ndim {
                let d = Int(try t.u32("tensor \(i) dim"))
                guard d >= 1, d <= 1 << 28 else { throw t.fail("tensor \(tname) has dimension \(d)") }
                count *= d
                guard count <= 1 << 28 else { throw t.fail("tensor \(tname) is too large") }
                shape.append(d)
            }
            let off = try t.u64("tensor \(i) offset"), n = try t.u64("tensor \(i) count")
            guard n == UInt64(count), off % UInt64(alignment) == 0, off >= dataOffset,
                off <= UInt64(bytes.count), UInt64(count) * 4 <= UInt64(bytes.count) - off
            else {
                throw t.fail("tensor \(tname) lies outside the data section")
            }
            for j in 0..<count {
                let v = Float(
                    bitPattern: UInt32(
                        littleEndian: bytes.loadUnaligned(fromByteOffset: Int(off) + j * 4, as: UInt32.self)))
                guard v.isFinite else {
                    throw .invalidWeights(file: file, reason: "tensor \(tname) holds NaN or infinity at \(j)")
                }
                // The converter flushes denormals; a file holding one was not written by it (and would run slower).
                guard !v.isSubnormal else {
                    throw .invalidWeights(
                        file: file,
                        reason:
                            "tensor \(tname) holds a denormal value at \(j) (faceembed convert flushes them to zero)")
                }
            }
            tensors.append(TensorInfo(name: tname, shape: shape))
            offsets.append(Int(off))
        }
        let plan = ModelPlan(
            kind: kind, name: name.isEmpty ? kind.description : name, channelOrder: order,
            inputMean: mean, inputScale: scale, values: values, layers: layers, tensors: tensors,
            output: output)
        try validate(plan, embeddingSize: embedding, fail: { .invalidWeights(file: file, reason: $0) })
        return (plan, offsets)
    }

    private static func decodeLayer(
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
        default:
            throw fail("layer \(i): unknown operator \(code) with \(f.count) fields")
        }
    }

    /// Checks that a plan is executable: values defined before use, each written once, shapes and tensor sizes
    /// consistent with every layer. Used on every loaded file, so a crafted file cannot misdirect a kernel.
    package static func validate(_ plan: ModelPlan, embeddingSize: Int, fail: (String) -> FaceEmbedError)
        throws(FaceEmbedError)
    {
        var defined = [Bool](repeating: false, count: plan.values.count)
        defined[0] = true
        func value(_ v: Int, _ i: Int) throws(FaceEmbedError) -> ValueShape {
            guard v >= 0, v < plan.values.count, defined[v] else {
                throw fail("layer \(i) reads value \(v) before it is computed")
            }
            return plan.values[v]
        }
        func tensor(_ t: Int?, _ shape: [Int], _ i: Int) throws(FaceEmbedError) {
            guard let t else { return }
            guard t >= 0, t < plan.tensors.count else {
                throw fail("layer \(i) refers to tensor \(t), which does not exist")
            }
            guard plan.tensors[t].shape == shape else {
                throw fail(
                    "layer \(i): tensor \(plan.tensors[t].name) has shape \(plan.tensors[t].shape), expected \(shape)")
            }
        }
        for (i, layer) in plan.layers.enumerated() {
            let out = layer.output
            guard out > 0, out < plan.values.count, !defined[out] else {
                throw fail("layer \(i) writes value \(out) twice or out of range")
            }
            let os = plan.values[out]
            switch layer {
            case let .convolution(c):
                let g = c.geometry, x = try value(c.input, i)
                guard x == ValueShape(c: g.inC, h: g.inH, w: g.inW), os == ValueShape(c: g.outC, h: g.outH, w: g.outW)
                else {
                    throw fail("layer \(i): convolution shapes do not match its values")
                }
                try tensor(c.weight, g.storedWeightShape, i)
                try tensor(c.bias, [g.outC], i)
                try tensor(c.slope, [g.outC], i)
                if let r = c.residual { guard try value(r, i) == os else { throw fail("layer \(i): residual shape") } }
                guard (c.inputScale == nil) == (c.inputShift == nil), c.inputScale == nil || g.groups == 1 else {
                    throw fail("layer \(i): input affine needs both scale and shift and groups = 1")
                }
                try tensor(c.inputScale, [g.inC], i)
                try tensor(c.inputShift, [g.inC], i)
            case let .affine(a):
                let x = try value(a.input, i)
                guard x == os else { throw fail("layer \(i): affine changes shape") }
                try tensor(a.scale, [x.c], i); try tensor(a.shift, [x.c], i); try tensor(a.slope, [x.c], i)
            case let .fullyConnected(f):
                let x = try value(f.input, i)
                guard x.count == f.inFeatures, os == ValueShape(c: f.outFeatures, h: 1, w: 1) else {
                    throw fail("layer \(i): fully connected shapes do not match its values")
                }
                try tensor(f.weight, [f.outFeatures, f.inFeatures], i)
                try tensor(f.bias, [f.outFeatures], i)
            case let .add(a, b, _):
                guard try value(a, i) == os, try value(b, i) == os else { throw fail("layer \(i): add shapes differ") }
            }
            defined[out] = true
        }
        guard defined[plan.output], plan.values[plan.output] == ValueShape(c: embeddingSize, h: 1, w: 1) else {
            throw fail("the output is not a computed \(embeddingSize)-value embedding")
        }
    }
}
