import FaceEmbed

// Reads an ONNX model file (a protobuf `ModelProto`) into the parts FaceEmbed's importer needs: the graph's nodes
// with their attributes, initializers, inputs and outputs. Tensor data is not copied: a tensor records the byte
// range of its `raw_data` (or packed `float_data`) in the mapped file, and is converted to float32 only when asked.
//
// Fields read (numbers from onnx.proto3):
//   ModelProto      1 ir_version · 2 producer_name · 3 producer_version · 7 graph · 8 opset_import (1 domain, 2 version)
//   GraphProto      1 node · 2 name · 5 initializer · 11 input · 12 output
//   NodeProto       1 input · 2 output · 3 name · 4 op_type · 5 attribute · 7 domain
//   AttributeProto  1 name · 20 type · 2 f · 3 i · 4 s · 5 t · 7 floats · 8 ints · (6 g, 9–11 lists of s/t/g: noted, not read)
//   TensorProto     1 dims · 2 data_type · 4 float_data · 5 int32_data · 7 int64_data · 8 name · 9 raw_data ·
//                   10 double_data · 14 data_location (external data is refused)
//   ValueInfoProto  1 name · 2 type → TypeProto 1 tensor_type → 1 elem_type, 2 shape → 1 dim → 1 dim_value, 2 dim_param
// Everything else is skipped.

/// A tensor from an ONNX file: its dims and where its data lies.
struct ONNXTensor: Sendable {
    enum Storage: Sendable {
        /// Little-endian elements of the tensor's type at these byte ranges of the file (raw_data, or packed
        /// float_data chunks), in order.
        case bytes([Range<Int>])
        /// Values given element by element (unpacked float_data).
        case floats([Float])
        /// double_data.
        case doubles([Double])
        /// int32_data (which also carries float16/bfloat16 bits, bool, int8, uint8) or int64_data.
        case ints([Int64])
    }

    var name: String
    var dims: [Int]
    /// The raw `data_type` code (kept even when not one FaceEmbed reads, for the error message).
    var dataTypeCode: Int
    var dataType: ElementType? { ElementType(rawValue: dataTypeCode) }
    var storage: Storage
    /// Number of elements (1 for a scalar).
    var count: Int { dims.reduce(1, *) }

    /// The values converted to float32. The element count was checked when the file was read.
    func floats(_ file: UnsafeRawBufferPointer) -> [Float] {
        let type = dataType ?? .float
        switch storage {
        case let .floats(v): return v
        case let .doubles(v): return v.map { Float($0) }
        case let .ints(v):
            switch type {
            case .float16: return v.map { halfToFloat(UInt16(truncatingIfNeeded: $0)) }
            case .bfloat16: return v.map { bfloat16ToFloat(UInt16(truncatingIfNeeded: $0)) }
            default: return v.map { Float($0) }
            }
        case let .bytes(ranges):
            return ranges.flatMap { type.floats(file, at: $0.lowerBound, count: $0.count / type.size) }
        }
    }

    /// The values as integers (for shapes and axes); floating-point values are truncated.
    func ints(_ file: UnsafeRawBufferPointer) -> [Int64] {
        let type = dataType ?? .int64
        switch storage {
        case let .ints(v) where !type.isFloatingPoint: return v
        case let .bytes(ranges) where !type.isFloatingPoint:
            return ranges.flatMap { type.offsets(in: $0).map { type.integer(file, at: $0) } }
        default: return floats(file).map { Int64(exactly: $0.rounded(.towardZero)) ?? 0 }
        }
    }
}

/// An attribute of a node.
enum ONNXAttribute: Sendable {
    case float(Float)
    case int(Int64)
    case string(String)
    case tensor(ONNXTensor)
    case floats([Float])
    case ints([Int64])
    /// A kind FaceEmbed does not read (graphs, lists of strings or tensors, type protos); the code is AttributeType.
    case other(type: Int)
}

struct ONNXNode: Sendable {
    var name: String
    var opType: String
    var domain: String
    var inputs: [String]
    var outputs: [String]
    var attributes: [String: ONNXAttribute]

    /// `name` if the node has one, else its first output, for messages.
    var label: String { !name.isEmpty ? name : (outputs.first.map { "output \($0)" } ?? opType) }
}

/// A graph input or output: element type and shape (nil dims are symbolic or unknown).
struct ONNXValueInfo: Sendable {
    var name: String
    var elemType: Int
    var dims: [Int?]?
}

struct ONNXGraph: Sendable {
    var name: String
    var nodes: [ONNXNode]
    var initializers: [ONNXTensor]
    var inputs: [ONNXValueInfo]
    var outputs: [ONNXValueInfo]
}

/// A parsed ONNX model whose tensors refer to the file's bytes.
final class ONNXModel: @unchecked Sendable {
    let irVersion: Int
    /// (domain, version); the default domain is "" (or "ai.onnx").
    let opsets: [(domain: String, version: Int)]
    let producer: String
    let graph: ONNXGraph
    /// The file's bytes (tensor data ranges point into it). Valid while `owner` lives.
    let bytes: UnsafeRawBufferPointer
    let file: String?
    private let owner: AnyObject?

    /// Limits against hostile files.
    static let maxNodes = 1 << 20, maxDims = 8, maxElements = 1 << 31, maxListCount = 1 << 24

    /// Maps and parses `path`.
    convenience init(path: String) throws(FaceEmbedError) {
        let mapped = try MappedFile(path: path)
        try self.init(bytes: mapped.bytes, file: path, owner: mapped)
    }

    /// Parses `bytes`, which must stay valid while `owner` (kept by the model) lives.
    init(bytes: UnsafeRawBufferPointer, file: String?, owner: AnyObject?) throws(FaceEmbedError) {
        self.bytes = bytes
        self.file = file
        self.owner = owner
        let fail: (String) -> FaceEmbedError = { .invalidWeights(file: file, reason: $0) }
        var r = ProtoReader(bytes, fail: fail)
        var ir: Int64 = 0, producer = "", version = ""
        var opsets: [(String, Int)] = []
        var graph: ONNXGraph?
        while let key = try r.next() {
            switch key.number {
            case 1: ir = try r.int(key, "ir_version")
            case 2: producer = try r.string(key, "producer_name")
            case 3: version = try r.string(key, "producer_version")
            case 7:
                guard graph == nil else { throw fail("the model has two graphs") }
                var g = try r.message(key, "graph")
                graph = try Self.parseGraph(&g, bytes: bytes, fail: fail)
            case 8:
                var o = try r.message(key, "opset_import")
                var domain = "", v: Int64 = 0
                while let k = try o.next() {
                    switch k.number {
                    case 1: domain = try o.string(k, "opset domain")
                    case 2: v = try o.int(k, "opset version")
                    default: try o.skip(k)
                    }
                }
                opsets.append((domain, Int(clamping: v)))
            default: try r.skip(key)
            }
        }
        guard let graph else {
            throw fail(bytes.isEmpty ? "the file is empty" : "not an ONNX model (no graph): is this an .onnx file?")
        }
        guard ir >= 1, ir < 1000 else { throw fail("not an ONNX model (ir_version \(ir))") }
        irVersion = Int(ir)
        self.opsets = opsets
        self.producer = version.isEmpty ? producer : "\(producer) \(version)"
        self.graph = graph
    }

    /// The opset version of the default domain (1 when absent, as the specification says for IR < 3).
    var defaultOpset: Int {
        opsets.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }?.version ?? 1
    }

    private static func parseGraph(
        _ r: inout ProtoReader, bytes: UnsafeRawBufferPointer,
        fail: @escaping (String) -> FaceEmbedError
    ) throws(FaceEmbedError) -> ONNXGraph {
        var g = ONNXGraph(name: "", nodes: [], initializers: [], inputs: [], outputs: [])
        while let key = try r.next() {
            switch key.number {
            case 1:
                guard g.nodes.count < maxNodes else { throw fail("more than \(maxNodes) nodes") }
                var m = try r.message(key, "node")
                g.nodes.append(try parseNode(&m, bytes: bytes, fail: fail))
            case 2: g.name = try r.string(key, "graph name")
            case 5:
                guard g.initializers.count < maxNodes else { throw fail("more than \(maxNodes) initializers") }
                var m = try r.message(key, "initializer")
                g.initializers.append(try parseTensor(&m, bytes: bytes, fail: fail))
            case 11, 12:
                var m = try r.message(key, key.number == 11 ? "graph input" : "graph output")
                let v = try parseValueInfo(&m)
                if key.number == 11 { g.inputs.append(v) } else { g.outputs.append(v) }
            default: try r.skip(key)
            }
        }
        return g
    }

    private static func parseNode(
        _ r: inout ProtoReader, bytes: UnsafeRawBufferPointer,
        fail: @escaping (String) -> FaceEmbedError
    ) throws(FaceEmbedError) -> ONNXNode {
        var n = ONNXNode(name: "", opType: "", domain: "", inputs: [], outputs: [], attributes: [:])
        while let key = try r.next() {
            switch key.number {
            case 1: n.inputs.append(try r.string(key, "node input"))
            case 2: n.outputs.append(try r.string(key, "node output"))
            case 3: n.name = try r.string(key, "node name")
            case 4: n.opType = try r.string(key, "op_type")
            case 7: n.domain = try r.string(key, "node domain")
            case 5:
                var m = try r.message(key, "attribute")
                let (name, value) = try parseAttribute(&m, bytes: bytes, fail: fail)
                n.attributes[name] = value
            default: try r.skip(key)
            }
            guard n.inputs.count + n.outputs.count <= 4096 else {
                throw fail("a node with more than 4096 inputs and outputs")
            }
        }
        guard !n.opType.isEmpty else { throw fail("a node (\(n.label)) has no op_type") }
        return n
    }

    private static func parseAttribute(
        _ r: inout ProtoReader, bytes: UnsafeRawBufferPointer,
        fail: @escaping (String) -> FaceEmbedError
    ) throws(FaceEmbedError) -> (String, ONNXAttribute) {
        var name = "", type: Int64 = 0
        var f: Float?, i: Int64?, s: String?, t: ONNXTensor?
        var floats: [Float] = [], ints: [Int64] = []
        var sawFloats = false, sawInts = false, otherType: Int?
        while let key = try r.next() {
            switch key.number {
            case 1: name = try r.string(key, "attribute name")
            case 20: type = try r.int(key, "attribute type")
            case 2: f = try r.float(key, "attribute f")
            case 3: i = try r.int(key, "attribute i")
            case 4: s = try r.string(key, "attribute s")
            case 5:
                var m = try r.message(key, "attribute t")
                t = try parseTensor(&m, bytes: bytes, fail: fail)
            case 7: sawFloats = true; try r.appendFloats(key, to: &floats, limit: maxListCount, "attribute floats")
            case 8: sawInts = true; try r.appendInts(key, to: &ints, limit: maxListCount, "attribute ints")
            case 6: otherType = 5; try r.skip(key)
            case 9: otherType = 8; try r.skip(key)
            case 10: otherType = 9; try r.skip(key)
            case 11: otherType = 10; try r.skip(key)
            default: try r.skip(key)
            }
        }
        // AttributeType: FLOAT 1, INT 2, STRING 3, TENSOR 4, GRAPH 5, FLOATS 6, INTS 7. Old files omit `type`:
        // then the field present decides.
        let value: ONNXAttribute
        switch type {
        case 1: value = .float(f ?? 0)
        case 2: value = .int(i ?? 0)
        case 3: value = .string(s ?? "")
        case 4:
            guard let t else { throw fail("attribute \(name) of type TENSOR has no tensor") }
            value = .tensor(t)
        case 6: value = .floats(floats)
        case 7: value = .ints(ints)
        case 0:
            if let f {
                value = .float(f)
            } else if let i {
                value = .int(i)
            } else if let s {
                value = .string(s)
            } else if let t {
                value = .tensor(t)
            } else if sawFloats {
                value = .floats(floats)
            } else if sawInts {
                value = .ints(ints)
            } else {
                value = .other(type: otherType ?? 0)
            }
        default: value = .other(type: Int(clamping: type))
        }
        return (name, value)
    }

    private static func parseTensor(
        _ r: inout ProtoReader, bytes: UnsafeRawBufferPointer,
        fail: @escaping (String) -> FaceEmbedError
    ) throws(FaceEmbedError) -> ONNXTensor {
        var f = TensorFields()
        while let key = try r.next() { try f.read(key, &r, bytes: bytes, fail: fail) }
        let label = f.name.isEmpty ? "(unnamed)" : f.name
        guard !f.external else {
            throw fail("tensor \(label) keeps its data in an external file, which is not supported")
        }
        let (shape, count) = try f.shape(label, fail: fail)
        guard f.kinds.count <= 1 else { throw fail("tensor \(label) stores its data in more than one field") }
        let (storage, stored) = try f.storage(label, fail: fail)
        if let stored, stored != count {
            throw fail("tensor \(label) of shape \(shape) needs \(count) values, the file stores \(stored)")
        }
        return ONNXTensor(name: f.name, dims: shape, dataTypeCode: Int(clamping: f.type), storage: storage)
    }

    private static func parseValueInfo(_ r: inout ProtoReader) throws(FaceEmbedError) -> ONNXValueInfo {
        var v = ONNXValueInfo(name: "", elemType: 0, dims: nil)
        while let key = try r.next() {
            switch key.number {
            case 1: v.name = try r.string(key, "value name")
            case 2:
                var type = try r.message(key, "value type")
                while let k = try type.next() {
                    guard k.number == 1 else { try type.skip(k); continue }
                    var tt = try type.message(k, "tensor type")
                    while let k2 = try tt.next() {
                        switch k2.number {
                        case 1: v.elemType = Int(clamping: try tt.int(k2, "elem_type"))
                        case 2:
                            var shape = try tt.message(k2, "shape")
                            var dims: [Int?] = []
                            while let k3 = try shape.next() {
                                guard k3.number == 1 else { try shape.skip(k3); continue }
                                guard dims.count < maxDims else {
                                    throw r.fail("value \(v.name) has more than \(maxDims) dimensions")
                                }
                                var dim = try shape.message(k3, "dim")
                                var value: Int?
                                while let k4 = try dim.next() {
                                    if k4.number == 1 {
                                        value = Int(exactly: try dim.int(k4, "dim_value"))
                                    } else {
                                        try dim.skip(k4)
                                    }
                                }
                                dims.append(value)
                            }
                            v.dims = dims
                        default: try tt.skip(k2)
                        }
                    }
                }
            default: try r.skip(key)
            }
        }
        return v
    }
}

/// The fields of a TensorProto as read, before they are checked against each other.
private struct TensorFields {
    var dims: [Int64] = []
    var type: Int64 = 0, name = "", external = false
    var ranges: [Range<Int>] = [], floats: [Float] = [], doubles: [Double] = [], ints: [Int64] = []
    /// Which data fields appeared.
    var kinds = Set<Int>()

    mutating func read(
        _ key: ProtoKey, _ r: inout ProtoReader, bytes: UnsafeRawBufferPointer,
        fail: (String) -> FaceEmbedError
    ) throws(FaceEmbedError) {
        switch key.number {
        case 1: try r.appendInts(key, to: &dims, limit: ONNXModel.maxDims, "tensor dims")
        case 2: type = try r.int(key, "tensor data_type")
        case 8: name = try r.string(key, "tensor name")
        case 9:
            try r.expect(key, ProtoReader.lengthDelimited, "raw_data")
            ranges.append(try r.readBytes()); kinds.insert(9)
        case 4: kinds.insert(4); try readFloatData(key, &r, bytes: bytes, fail: fail)
        case 5, 7:
            kinds.insert(key.number)
            try r.appendInts(key, to: &ints, limit: ONNXModel.maxListCount, "tensor int data")
        case 10: kinds.insert(10); try readDoubleData(key, &r, bytes: bytes, fail: fail)
        case 14: external = try r.int(key, "data_location") == 1
        default: try r.skip(key)
        }
    }

    /// float_data: packed chunks stay in the file; values given one by one (or mixed) are materialised in order.
    mutating func readFloatData(
        _ key: ProtoKey, _ r: inout ProtoReader, bytes: UnsafeRawBufferPointer,
        fail: (String) -> FaceEmbedError
    ) throws(FaceEmbedError) {
        if key.wireType == ProtoReader.lengthDelimited, floats.isEmpty {
            let range = try r.readBytes()
            guard range.count % 4 == 0 else { throw fail("tensor \(name): packed float_data of \(range.count) bytes") }
            ranges.append(range)
        } else {
            floats += ranges.flatMap { ElementType.float.floats(bytes, at: $0.lowerBound, count: $0.count / 4) }
            ranges = []
            try r.appendFloats(key, to: &floats, limit: ONNXModel.maxListCount, "tensor float_data")
        }
    }

    mutating func readDoubleData(
        _ key: ProtoKey, _ r: inout ProtoReader, bytes: UnsafeRawBufferPointer,
        fail: (String) -> FaceEmbedError
    ) throws(FaceEmbedError) {
        if key.wireType == ProtoReader.lengthDelimited {
            let range = try r.readBytes()
            guard range.count % 8 == 0, doubles.count + range.count / 8 <= ONNXModel.maxListCount else {
                throw fail("tensor \(name): packed double_data of \(range.count) bytes")
            }
            doubles += stride(from: range.lowerBound, to: range.upperBound, by: 8).map {
                Double(bitPattern: bytes.littleEndian(at: $0))
            }
        } else {
            try r.expect(key, ProtoReader.fixed64, "double_data")
            guard doubles.count < ONNXModel.maxListCount else { throw fail("tensor \(name): too many doubles") }
            doubles.append(Double(bitPattern: try r.readFixed64()))
        }
    }

    /// The dimensions and element count, each bounded by `ONNXModel.maxElements`.
    func shape(_ label: String, fail: (String) -> FaceEmbedError) throws(FaceEmbedError) -> (shape: [Int], count: Int) {
        var count = 1
        var shape: [Int] = []
        for d in dims {
            guard d >= 0, d <= Int64(ONNXModel.maxElements) else { throw fail("tensor \(label) has dimension \(d)") }
            let (p, o) = count.multipliedReportingOverflow(by: Int(d))
            guard !o, p <= ONNXModel.maxElements else { throw fail("tensor \(label) has \(dims) elements: too many") }
            count = p
            shape.append(Int(d))
        }
        return (shape, count)
    }

    /// The data and how many elements it holds (nil: raw data of a type FaceEmbed does not read, kept for messages).
    func storage(
        _ label: String,
        fail: (String) -> FaceEmbedError
    ) throws(FaceEmbedError) -> (ONNXTensor.Storage, stored: Int?) {
        let typed = ElementType(rawValue: Int(clamping: type))
        switch kinds.first {
        case 9?:
            let total = ranges.reduce(0) { $0 + $1.count }
            guard let typed else { return (.bytes(ranges), nil) }
            guard total % typed.size == 0 else {
                throw fail("tensor \(label): raw_data of \(total) bytes is not whole elements")
            }
            return (.bytes(ranges), total / typed.size)
        case 4?:
            guard typed == .float else { throw fail("tensor \(label): float_data for data type \(type)") }
            if floats.isEmpty { return (.bytes(ranges), ranges.reduce(0) { $0 + $1.count } / 4) }
            return (.floats(floats), floats.count)
        case 10?:
            guard typed == .double else { throw fail("tensor \(label): double_data for data type \(type)") }
            return (.doubles(doubles), doubles.count)
        case 5?, 7?:
            guard typed != nil, typed != .float, typed != .double else {
                throw fail("tensor \(label): integer data for data type \(type)")
            }
            return (.ints(ints), ints.count)
        default:
            return (.bytes([]), 0)
        }
    }
}
