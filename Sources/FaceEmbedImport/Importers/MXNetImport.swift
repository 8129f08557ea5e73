import FaceEmbed

// Turns an MXNet symbol + params into a fused `ModelPlan`, checking every shape on the way.
//
// 1. Refuse up front, by name, every operator outside the supported set (the keys of `MXNetImporter.handlers`).
// 2. Interpret: walk the nodes in order (a topological order), each by its operator's handler (MXNetOperators.swift)
//    over an `MXNetContext`: identities (`_copy`, `Dropout`, `Flatten`) are views, `_minus_scalar`/`_mul_scalar` on
//    the input are preprocessing, every shape is inferred at 3 × 112 × 112 and each parameter's shape checked.
// 3. Fuse with `PlanFusion` (shared with the ONNX importer): batch norms fold into the convolution or fully
//    connected layer before them (exact), PReLU and residual adds into convolution epilogues, a batch norm before
//    a zero-padded convolution becomes its input affine. Tensor data is produced lazily, one tensor at a time, when
//    the flat file is written, so a 261 MB params file is never held twice.

enum MXNetImporter {
    /// Turns one node into fusion ops (or into a view of a value it already has) on the context.
    typealias Handler = @Sendable (inout MXNetContext) throws(FaceEmbedError) -> Void

    /// Builds the fused plan for `symbol` with weights from `params`; `symbolFile` names the symbol file in errors.
    static func importModel(
        symbol: MXNetSymbol, params: MXNetParams,
        symbolFile: String?
    ) throws(FaceEmbedError) -> ImportedModel {
        let steps = try handlers(for: symbol, file: symbolFile)
        var context = MXNetContext(symbol: symbol, params: params, symbolFile: symbolFile)
        for (n, handle) in steps.enumerated() {
            context.index = n
            try handle(&context)
        }
        let output = try context.embedding()
        let (kind, name) = try recognise(symbol.nodes, ops: context.graph.ops, fail: context.fail)
        return PlanFusion.plan(
            context.graph, output: output, kind: kind, name: name, channelOrder: .rgb,
            inputMean: context.preprocessing.mean, inputScale: context.preprocessing.scale)
    }

    /// Each node's handler; every operator without one is refused, all of them named in one error.
    private static func handlers(for symbol: MXNetSymbol, file: String?) throws(FaceEmbedError) -> [Handler] {
        var steps: [Handler] = [], unknown: [(op: String, node: String)] = []
        for n in symbol.nodes {
            if let handle = handlers[n.op] { steps.append(handle) } else { unknown.append((n.op, n.name)) }
        }
        let operators = handlers.keys.filter { $0 != "null" }
        if let message = unsupportedOperatorsMessage(unknown, format: "MXNet", supported: operators) {
            throw .unsupportedModel(file: file, reason: message)
        }
        return steps
    }

    /// Identifies the family: MobileFaceNet (a 7×7 global depthwise convolution head) or LResNet-IR (stages of
    /// `stageS_unitU` residual units; depth = 2 × units + 2).
    private static func recognise(
        _ nodes: [SymbolNode], ops: [FusionOp],
        fail: (String) -> FaceEmbedError
    ) throws(FaceEmbedError) -> (ModelKind, String) {
        let hasGDC = ops.contains {
            if case let .conv(_, _, _, g) = $0 { return g.groups == g.inC && g.groups > 1 && g.kH == 7 && g.outH == 1 }
            return false
        }
        if hasGDC { return (.mobileFaceNet, "MobileFaceNet") }
        var units = Set<String>()
        for n in nodes where n.op == "Convolution" && n.name.hasPrefix("stage") && n.name.hasSuffix("_conv1") {
            units.insert(String(n.name.dropLast("_conv1".count)))
        }
        if !units.isEmpty {
            return (.iresnet, "LResNet\(2 * units.count + 2)E-IR")
        }
        throw fail(
            "not a model FaceEmbed knows: expected MobileFaceNet (global depthwise 7x7 head) or LResNet-IR "
                + "(stageN_unitM blocks)")
    }
}

/// The state of interpreting one MXNet symbol, and the node being interpreted with helpers to read its inputs.
struct MXNetContext {
    let symbol: MXNetSymbol
    let params: MXNetParams
    let symbolFile: String?
    var graph = FusionGraph()
    /// The graph value each node computes (nil for parameters and nodes not yet interpreted).
    var valueOf: [Int?]
    var sawInput = false
    /// `_minus_scalar` and `_mul_scalar` on the input.
    var preprocessing = InputPreprocessing()
    /// The index of the node being interpreted.
    var index = 0

    init(symbol: MXNetSymbol, params: MXNetParams, symbolFile: String?) {
        self.symbol = symbol; self.params = params; self.symbolFile = symbolFile
        valueOf = [Int?](repeating: nil, count: symbol.nodes.count)
    }

    var node: SymbolNode { symbol.nodes[index] }
    func fail(_ s: String) -> FaceEmbedError { .unsupportedModel(file: symbolFile, reason: s) }
    func wrong(_ s: String) -> FaceEmbedError { .invalidWeights(file: params.file, reason: s) }

    /// The graph value of the node's first input.
    func value() throws(FaceEmbedError) -> Int {
        guard let first = node.inputs.first, let v = valueOf[first] else {
            throw fail("node \(node.name) (\(node.op)) has no computed input")
        }
        return v
    }

    /// Input `i` of the node, a parameter whose values are all finite.
    func param(_ i: Int, _ what: String) throws(FaceEmbedError) -> MXNetArray {
        guard i < node.inputs.count else { throw fail("node \(node.name) has no \(what) input") }
        let p = symbol.nodes[node.inputs[i]]
        guard p.op == "null" else { throw fail("node \(node.name): \(what) is computed, not a parameter") }
        let a = try params.array(p.name)
        try params.checkFinite(a)
        return a
    }

    /// Input `i` of the node, a parameter of the given shape.
    func param(_ i: Int, _ what: String, shape: [Int]) throws(FaceEmbedError) -> MXNetArray {
        let a = try param(i, what)
        guard a.shape == shape else {
            throw wrong("parameter \(a.name) of \(node.name) has shape \(a.shape), the graph needs \(shape)")
        }
        return a
    }

    /// The bias (input 2) of `count` values, unless the node has `no_bias`.
    func bias(_ count: Int) throws(FaceEmbedError) -> LazyFloats? {
        guard try !node.bool("no_bias", default: false) else { return nil }
        return lazy(try param(2, "bias", shape: [count]))
    }

    /// The array's values as float32, read from the file when asked for.
    func lazy(_ a: MXNetArray) -> LazyFloats { let p = params; return { p.floats(a) } }

    /// Makes the node's value `v`, an existing graph value.
    mutating func define(_ v: Int) { valueOf[index] = v }

    /// Appends a fusion op computing the node's value, of shape `s`.
    mutating func emit(_ op: FusionOp, _ s: ValueShape) { valueOf[index] = graph.append(op, s, node.name) }

    /// The fusion op of the symbol's head, which must be an embedding vector computed by FullyConnected (and batch
    /// norms) from the input.
    func embedding() throws(FaceEmbedError) -> Int {
        guard sawInput else { throw fail("the graph has no input named data") }
        guard let out = valueOf[symbol.head], case .fullyConnected = graph.ops[chainHead(out)] else {
            throw fail("the output must be an embedding computed by FullyConnected (and batch norms)")
        }
        guard graph.shapes[out].h == 1, graph.shapes[out].w == 1 else { throw fail("the output is not a vector") }
        return out
    }

    /// The op behind a value, following batch norms and PReLUs back to the op that started the chain.
    private func chainHead(_ x: Int) -> Int {
        var i = x
        while true {
            switch graph.ops[i] {
            case let .affine(y, _), let .prelu(y, _): i = y
            default: return i
            }
        }
    }
}
