import FaceEmbed

// What every ONNX operator handler works with: the values defined so far, the fusion graph being built, the input
// preprocessing found so far, and the node at hand with helpers to read its inputs and attributes (written once
// here, so a handler is only its operator's own logic).

/// A computed value of the graph: fusion op `op`, seen with rank 4 (N, C, H, W) or 2 (N, K), or through a view that
/// only a detector's head outputs take.
struct ONNXActivation {
    /// How the graph sees the op's NCHW data.
    enum View: Equatable {
        case plain
        /// Transposed to N, H, W, C.
        case nhwc
        /// The N, H, W, C view reshaped to (N, H·W·C / k, k): a detector head's rows.
        case rows(Int)
    }

    var op: Int
    var rank: Int
    var view = View.plain

    init(op: Int, rank: Int, view: View = .plain) {
        self.op = op
        self.rank = view == .plain ? rank : view == .nhwc ? 4 : 3
        self.view = view
    }
}

/// A value of the graph during interpretation.
enum ONNXValue {
    case computed(ONNXActivation)
    case constant(ONNXTensor)
}

/// The state of interpreting one ONNX graph, and the node being interpreted.
struct ONNXContext {
    let model: ONNXModel
    /// Values by name.
    var values: [String: ONNXValue] = [:]
    var graph = FusionGraph()
    /// The graph's own preprocessing (scalar arithmetic on the input before anything else is computed).
    var preprocessing = InputPreprocessing()
    /// How many node inputs read the graph's input.
    let inputUses: Int
    /// The node being interpreted (set before its handler runs).
    var node = ONNXNode(name: "", opType: "", domain: "", inputs: [], outputs: [], attributes: [:])

    /// A context with the initializers defined and the single input checked and defined as op 0, of `size` (height,
    /// width) when the graph leaves it open.
    init(_ model: ONNXModel, size: (h: Int, w: Int)) throws(FaceEmbedError) {
        self.model = model
        let graph = model.graph
        var values: [String: ONNXValue] = [:]
        for t in graph.initializers where !t.name.isEmpty { values[t.name] = .constant(t) }
        let realInputs = graph.inputs.filter { values[$0.name] == nil }
        guard realInputs.count == 1, let input = realInputs.first else {
            throw .unsupportedModel(
                file: model.file,
                reason: "the graph must have exactly one input (it has \(realInputs.map(\.name)))")
        }
        values[input.name] = .computed(ONNXActivation(op: 0, rank: 4))
        self.values = values
        self.graph.shapes[0] = try Self.check(input, size: size, file: model.file)
        inputUses = graph.nodes.reduce(0) { $0 + $1.inputs.filter { $0 == input.name }.count }
    }

    /// The input's shape for one image: 3 × `size`, where the graph leaves height and width open or gives these.
    /// Refuses an input that is not float N × 3 × H × W of that size.
    private static func check(_ input: ONNXValueInfo, size: (h: Int, w: Int), file: String?) throws(FaceEmbedError)
        -> ValueShape
    {
        func fail(_ has: String) -> FaceEmbedError {
            .unsupportedModel(file: file, reason: "input \(input.name) has \(has)")
        }
        if input.elemType != 0 && input.elemType != ElementType.float.rawValue {
            throw fail("element type \(input.elemType), not float")
        }
        let shape = ValueShape(c: 3, h: size.h, w: size.w)
        guard let dims = input.dims else { return shape }
        func fits(_ d: Int?, _ e: Int) -> Bool { d == nil || d == 0 || d == e }
        guard dims.count == 4, fits(dims[0], 1), fits(dims[1], 3), fits(dims[2], size.h), fits(dims[3], size.w) else {
            throw fail(
                "shape \(dims.map { $0.map(String.init) ?? "?" }), FaceEmbed needs N x 3 x \(size.h) x \(size.w)")
        }
        return shape
    }

    /// The fusion op of the graph's output, which must be an embedding vector computed from the input.
    func embedding() throws(FaceEmbedError) -> Int {
        guard let name = model.graph.outputs.first?.name else { throw fail("the graph has no output") }
        guard case let .computed(x)? = values[name], x.op != 0 else {
            throw fail("the graph's output \(name) is not computed from the input")
        }
        let s = shape(x)
        guard s.h == 1, s.w == 1 else {
            throw fail("the output \(name) is \(s.c)x\(s.h)x\(s.w), not an embedding vector")
        }
        return x.op
    }

    // MARK: Errors

    /// The node's name, or its first output, for messages.
    var label: String { node.label }
    /// "node NAME (OPERATOR)", for messages.
    var described: String { "node \(label) (\(node.opType))" }
    func fail(_ s: String) -> FaceEmbedError { .unsupportedModel(file: model.file, reason: s) }
    func wrong(_ s: String) -> FaceEmbedError { .invalidWeights(file: model.file, reason: s) }

    // MARK: Inputs

    /// Input `i` of the node, which must be a computed value; a transposed or reshaped head output only if `views`.
    func computed(_ i: Int, views: Bool = false) throws(FaceEmbedError) -> ONNXActivation {
        guard i < node.inputs.count, !node.inputs[i].isEmpty else { throw fail("\(described) lacks input \(i)") }
        guard let v = values[node.inputs[i]] else {
            throw fail(
                "\(described) reads \(node.inputs[i]), which no earlier node computes "
                    + "(the graph must be topologically sorted)")
        }
        guard case let .computed(x) = v else {
            throw fail("\(described): input \(node.inputs[i]) is a constant, FaceEmbed needs a computed value there")
        }
        guard views || x.view == .plain else {
            throw fail("\(described) reads \(node.inputs[i]), a transposed or reshaped map: not supported there")
        }
        return x
    }

    /// Input `i` of the node as integers (a shape, indices, axes): a constant of any type, with its dimensions.
    func integers(_ i: Int, _ what: String) throws(FaceEmbedError) -> (dims: [Int], values: [Int64]) {
        let t = try required(i, "shape")
        guard t.count <= 64 else { throw fail("\(described): \(what) has \(t.count) elements") }
        return (t.dims, t.ints(model.bytes))
    }

    /// The dimensions the graph sees for computed value `x` (batch 1).
    func dims(_ x: ONNXActivation) -> [Int] {
        let s = shape(x)
        switch x.view {
        case .plain: return x.rank == 4 ? [1, s.c, s.h, s.w] : [1, s.count]
        case .nhwc: return [1, s.h, s.w, s.c]
        case let .rows(k): return [1, s.count / k, k]
        }
    }

    /// Input `i` of the node, a constant (of a floating-point type unless it is a "shape"), or nil if absent.
    func constant(_ i: Int, _ what: String) throws(FaceEmbedError) -> ONNXTensor? {
        guard i < node.inputs.count, !node.inputs[i].isEmpty else { return nil }
        guard let v = values[node.inputs[i]] else {
            throw fail("\(described) reads \(node.inputs[i]), which is not defined before it")
        }
        guard case let .constant(t) = v else {
            throw fail("\(described): \(what) \(node.inputs[i]) is computed; FaceEmbed needs a constant")
        }
        guard let type = t.dataType, type.isFloatingPoint || what == "shape" else {
            throw wrong(
                "\(what) \(node.inputs[i]) of node \(label) has data type \(t.dataTypeCode), "
                    + "not a floating-point type")
        }
        return t
    }

    /// Input `i` of the node, a constant that must be present.
    func required(_ i: Int, _ what: String) throws(FaceEmbedError) -> ONNXTensor {
        guard let t = try constant(i, what) else { throw fail("\(described) has no \(what)") }
        return t
    }

    // MARK: Attributes

    /// An integer attribute, `d` when absent.
    func int(_ name: String, _ d: Int) throws(FaceEmbedError) -> Int {
        switch node.attributes[name] {
        case nil: return d
        case let .int(v)?:
            guard v > -(1 << 30), v < 1 << 30 else { throw fail("node \(label): attribute \(name) = \(v)") }
            return Int(v)
        default: throw fail("node \(label): attribute \(name) is not an integer")
        }
    }

    /// A list-of-integers attribute, nil when absent.
    func ints(_ name: String) throws(FaceEmbedError) -> [Int]? {
        switch node.attributes[name] {
        case nil: return nil
        case let .ints(v)?:
            guard v.count <= 8, v.allSatisfy({ $0 > -(1 << 30) && $0 < 1 << 30 }) else {
                throw fail("node \(label): attribute \(name) = \(v)")
            }
            return v.map { Int($0) }
        default: throw fail("node \(label): attribute \(name) is not a list of integers")
        }
    }

    /// A string attribute, `d` when absent.
    func string(_ name: String, _ d: String) throws(FaceEmbedError) -> String {
        switch node.attributes[name] {
        case nil: return d
        case let .string(v)?: return v
        default: throw fail("node \(label): attribute \(name) is not a string")
        }
    }

    /// A float attribute, `d` when absent.
    func float(_ name: String, _ d: Float) throws(FaceEmbedError) -> Float {
        switch node.attributes[name] {
        case nil: return d
        case let .float(v)?:
            guard v.isFinite else { throw fail("node \(label): attribute \(name) is not finite") }
            return v
        default: throw fail("node \(label): attribute \(name) is not a float")
        }
    }

    // MARK: Shapes and per-channel constants

    /// The tensor's values as float32, read from the file when asked for.
    func lazy(_ t: ONNXTensor) -> LazyFloats { let m = model; return { t.floats(m.bytes) } }

    func shape(_ x: ONNXActivation) -> ValueShape { graph.shapes[x.op] }

    /// Channels of a computed value for per-channel ops; a flattened view of a spatial value has none.
    func channels(_ x: ONNXActivation) throws(FaceEmbedError) -> Int {
        let s = shape(x)
        if x.rank == 2 && s.h * s.w != 1 {
            throw fail(
                "\(described): per-feature operations after flattening a \(s.c)x\(s.h)x\(s.w) value "
                    + "are not supported")
        }
        return s.c
    }

    /// A constant as a vector of `c` values along axis 1 of `target` under ONNX broadcasting (nil if not).
    func vector(_ t: ONNXTensor, target: [Int], _ c: Int) -> LazyFloats? {
        guard t.dims.count <= target.count else { return nil }
        let aligned = [Int](repeating: 1, count: target.count - t.dims.count) + t.dims
        for (axis, (d, e)) in zip(aligned, target).enumerated() {
            guard d == 1 || (d == e && (axis == 1 || e == 1)) else { return nil }
        }
        let f = lazy(t)
        if t.count == c { return f }
        guard t.count == 1 else { return nil }
        return { [Float](repeating: f()[0], count: c) }
    }

    /// A constant as a per-channel vector for value `x` (nil if it is not one).
    func perChannel(_ t: ONNXTensor, _ x: ONNXActivation) throws(FaceEmbedError) -> LazyFloats? {
        let c = try channels(x), s = shape(x)
        return vector(t, target: x.rank == 4 ? [1, s.c, s.h, s.w] : [1, c], c)
    }

    /// A scalar constant's value, or a per-element constant whose values are all equal (for preprocessing).
    func uniform(_ t: ONNXTensor) -> Float? {
        let v = t.floats(model.bytes)
        guard let first = v.first, v.allSatisfy({ $0 == first }), first.isFinite else { return nil }
        return first
    }

    /// The detector's outputs, by name: every graph output a computed map.
    func detectorOutputs() throws(FaceEmbedError) -> [(name: String, op: Int)] {
        try model.graph.outputs.map { (o) throws(FaceEmbedError) -> (name: String, op: Int) in
            guard case let .computed(x)? = values[o.name], x.op != 0 else {
                throw fail("the graph's output \(o.name) is not computed from the input")
            }
            return (o.name, x.op)
        }
    }

    // MARK: Outputs

    /// Names output `i` of the node as `value`.
    mutating func define(_ value: ONNXValue, output i: Int = 0) {
        if i < node.outputs.count, !node.outputs[i].isEmpty { values[node.outputs[i]] = value }
    }

    /// Appends a fusion op computing the node's output, of shape `s` seen with rank `rank` through `view`.
    mutating func emit(_ op: FusionOp, _ s: ValueShape, rank: Int, view: ONNXActivation.View = .plain) {
        let name = node.name.isEmpty ? "\(node.opType.lowercased())_\(node.outputs.first ?? "")" : node.name
        let n = graph.append(op, s, name)
        define(.computed(ONNXActivation(op: n, rank: rank, view: view)))
    }

    /// Defines the node's output as the integer constant `values` of dimensions `dims` (a folded shape op).
    mutating func defineIntegers(_ values: [Int64], dims: [Int]) {
        define(
            .constant(
                ONNXTensor(name: "", dims: dims, dataTypeCode: ElementType.int64.rawValue, storage: .ints(values))))
    }
}
