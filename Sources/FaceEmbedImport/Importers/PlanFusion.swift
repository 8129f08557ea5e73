import FaceEmbed

// Fusion of an interpreted graph (`FusionGraph`, built by either importer) into `ModelPlan` layers:
//
// Each convolution or fully connected op starts a chain that absorbs what follows it while the value in between has
// no other consumer: per-channel affine maps (batch norms, constant Mul/Add/Sub; folded into weights and bias,
// exact), then one PReLU, then one residual add (given to the operand computed last, so the other is ready).
// A standalone affine whose only consumer is a groups = 1 convolution or a fully connected layer becomes that
// layer's input affine (exact: the convolution applies it to in-bounds taps only). A PReLU after a standalone affine
// joins it. Everything else stays a standalone layer. Layers are emitted in the order of their chains' first ops;
// tensor data stays lazy (`ImportedModel.produce`).

enum PlanFusion {
    /// Fuses `graph` (whose op `output` is the embedding) into a plan with the given header facts.
    static func plan(
        _ graph: FusionGraph, output: Int, kind: ModelKind, name: String, channelOrder: ChannelOrder,
        inputMean: Float, inputScale: Float
    ) -> ImportedModel {
        plan(
            graph, outputs: [("embedding", output)], kind: kind, name: name, channelOrder: channelOrder,
            inputMean: inputMean, inputScale: inputScale)
    }

    /// Fuses `graph` into a plan whose results are the named ops `outputs`.
    static func plan(
        _ graph: FusionGraph, outputs: [(name: String, op: Int)], kind: ModelKind, name: String,
        channelOrder: ChannelOrder, inputMean: Float, inputScale: Float
    ) -> ImportedModel {
        var f = Fusion(graph, outputs: outputs.map(\.op))
        f.formChains()
        f.foldInputAffines()
        f.emitLayers()
        let plan = ModelPlan(
            kind: kind, name: name, channelOrder: channelOrder, inputMean: inputMean,
            inputScale: inputScale, values: f.values, layers: f.layers, tensors: f.tensors,
            outputs: outputs.map { PlanOutput(name: $0.name, value: f.resolved($0.op)) })
        return ImportedModel(plan: plan, produce: f.produce)
    }
}

/// A convolution or fully connected op (its head) and what it absorbs, in order: affines, a PReLU, a residual add.
private struct Chain {
    let head: Int
    /// Affines after the head, folded into its weights and bias.
    var post: [ChannelAffine] = []
    /// An affine before the head, folded into its input.
    var pre: ChannelAffine?
    var slope: LazyFloats?
    var residual: Int?
    /// The op whose value the chain computes.
    var last: Int
}

/// What became of one op.
private enum Fate {
    /// A layer of its own, or the head of a chain.
    case layer
    /// Absorbed by its chain.
    case inChain
    /// A PReLU joined to the standalone affine before it (op `affine`).
    case slopeOf(affine: Int)
    /// A standalone affine folded into the input of its only consumer.
    case inputAffine
}

/// What fusion knows about one op.
private struct OpState {
    /// Readers of the op's value (the model's output counts as one), and the last of them.
    var consumers = 0, consumer = -1
    /// The chain the op heads or belongs to (an index into `Fusion.chains`).
    var chain: Int?
    var fate = Fate.layer
    /// The PReLU joined to a standalone affine.
    var joinedSlope: LazyFloats?
    /// The plan value holding the op's result, once emitted.
    var value = -1
}

private struct Fusion {
    let graph: FusionGraph
    var ops: [OpState]
    var chains: [Chain] = []
    // The plan being built.
    var values: [ValueShape]
    var layers: [Layer] = []
    var tensors: [TensorInfo] = []
    var produce: [LazyFloats] = []

    init(_ graph: FusionGraph, outputs: [Int]) {
        self.graph = graph
        values = [graph.shapes[0]]
        ops = [OpState](repeating: OpState(), count: graph.ops.count)
        ops[0].value = 0
        for (i, op) in graph.ops.enumerated() {
            for x in op.inputs { ops[x].consumers += 1; ops[x].consumer = i }
        }
        for o in outputs { ops[o].consumers += 1 }
    }

    // MARK: Chains

    /// Walks the ops in order, growing each chain over what follows it.
    mutating func formChains() {
        for (i, op) in graph.ops.enumerated() {
            switch op {
            case .input: break
            case .conv, .fullyConnected: ops[i].chain = chains.count; chains.append(Chain(head: i, last: i))
            case let .affine(x, a): absorbAffine(i, x, a)
            case let .prelu(x, slope): absorbPReLU(i, x, slope)
            case let .add(a, b): absorbAdd(i, a, b)
            case .upsample, .sigmoid: break
            }
        }
    }

    /// The chain that ends at `x` and may grow past it (nothing else reads `x`), if any.
    func open(_ x: Int) -> Int? {
        guard let c = ops[x].chain, chains[c].last == x, ops[x].consumers == 1 else { return nil }
        return c
    }

    func headIsConv(_ c: Int) -> Bool {
        if case .conv = graph.ops[chains[c].head] { return true }
        return false
    }

    mutating func extend(_ c: Int, to i: Int) {
        chains[c].last = i; ops[i].chain = c; ops[i].fate = .inChain
    }

    mutating func absorbAffine(_ i: Int, _ x: Int, _ a: ChannelAffine) {
        guard let c = open(x), chains[c].slope == nil, chains[c].residual == nil else { return }
        chains[c].post.append(a); extend(c, to: i)
    }

    /// Only convolutions have a PReLU epilogue; after a fully connected layer it stays standalone.
    mutating func absorbPReLU(_ i: Int, _ x: Int, _ slope: @escaping LazyFloats) {
        if let c = open(x), chains[c].slope == nil, chains[c].residual == nil, headIsConv(c) {
            chains[c].slope = slope; extend(c, to: i)
        } else if case .affine = graph.ops[x], case .layer = ops[x].fate, ops[x].consumers == 1,
            ops[x].joinedSlope == nil
        {
            ops[x].joinedSlope = slope; ops[i].fate = .slopeOf(affine: x)
        }
    }

    /// The add joins the chain of the operand computed last, so that the other one is ready: it must be computed
    /// before the chain's head, where the chain's layer is emitted.
    mutating func absorbAdd(_ i: Int, _ a: Int, _ b: Int) {
        let candidates = [(a, b), (b, a)].compactMap { (mine, other) -> (chain: Int, other: Int)? in
            guard let c = open(mine), chains[c].residual == nil, headIsConv(c), other < chains[c].head else {
                return nil
            }
            return (c, other)
        }
        guard let best = candidates.max(by: { chains[$0.chain].head < chains[$1.chain].head }) else { return }
        chains[best.chain].residual = best.other; extend(best.chain, to: i)
    }

    /// Standalone affines whose only consumer is a groups = 1 convolution or a fully connected layer become its
    /// input affine.
    mutating func foldInputAffines() {
        for (i, op) in graph.ops.enumerated() {
            guard case let .affine(_, a) = op, case .layer = ops[i].fate, ops[i].joinedSlope == nil,
                ops[i].consumers == 1, ops[i].consumer >= 0, let c = ops[ops[i].consumer].chain,
                chains[c].head == ops[i].consumer, chains[c].pre == nil
            else { continue }
            switch graph.ops[chains[c].head] {
            case let .conv(_, _, _, g) where g.groups == 1: break
            case .fullyConnected: break
            default: continue
            }
            chains[c].pre = a; ops[i].fate = .inputAffine
        }
    }

    // MARK: Layers

    /// The plan value that holds op `x`'s result.
    func resolved(_ x: Int) -> Int {
        switch ops[x].fate {
        case let .slopeOf(affine): return ops[affine].value
        case .inputAffine:
            guard case let .affine(input, _) = graph.ops[x] else { return ops[x].value }
            return resolved(input)
        case .layer, .inChain: return ops[x].value
        }
    }

    mutating func tensor(_ name: String, _ shape: [Int], _ data: @escaping LazyFloats) -> Int {
        tensors.append(TensorInfo(name: name, shape: shape)); produce.append(data)
        return tensors.count - 1
    }

    /// A new plan value for the result of op `i`.
    mutating func value(_ i: Int) -> Int {
        values.append(graph.shapes[i])
        ops[i].value = values.count - 1
        return values.count - 1
    }

    /// Emits every op that is a layer, in graph order.
    mutating func emitLayers() {
        for (i, op) in graph.ops.enumerated() {
            guard case .layer = ops[i].fate else { continue }
            switch op {
            case .input: continue
            case let .conv(x, w, b, g): emitConv(i, x, w, b, g)
            case let .fullyConnected(x, w, b, outF): emitFullyConnected(i, x, w, b, outF)
            case let .affine(x, a): emitAffine(i, x, a, slope: ops[i].joinedSlope)
            case let .prelu(x, s): emitAffine(i, x, ChannelAffine(), slope: s)
            case let .add(a, b):
                let out = value(i)
                layers.append(.add(a: resolved(a), b: resolved(b), output: out))
            case let .upsample(x):
                let input = resolved(x)
                layers.append(.upsample(input: input, output: value(i)))
            case let .sigmoid(x):
                let input = resolved(x)
                layers.append(.sigmoid(input: input, output: value(i)))
            }
        }
    }

    mutating func emitConv(_ i: Int, _ x: Int, _ w: @escaping LazyFloats, _ b: LazyFloats?, _ g: ConvGeometry) {
        let c = chains[ops[i].chain!], label = graph.names[i], post = c.post
        let weight = tensor("\(label).weight", [g.outC, g.inC / g.groups, g.kH, g.kW]) {
            Self.scaledRows(w(), by: post, rows: g.outC)
        }
        let bias = tensor("\(label).bias", [g.outC]) {
            Self.biased(b?() ?? [Float](repeating: 0, count: g.outC), by: post)
        }
        let slope = c.slope.map { tensor("\(label).prelu", [g.outC], $0) }
        let inScale = c.pre.map { pre in tensor("\(label).input_scale", [g.inC]) { pre.values(g.inC).scale } }
        let inShift = c.pre.map { pre in tensor("\(label).input_shift", [g.inC]) { pre.values(g.inC).shift } }
        let out = value(c.last)
        ops[i].value = out
        layers.append(
            .convolution(
                ConvLayer(
                    input: resolved(x), output: out, geometry: g, weight: weight, bias: bias,
                    slope: slope, residual: c.residual.map { resolved($0) },
                    inputScale: inScale, inputShift: inShift)))
    }

    mutating func emitFullyConnected(_ i: Int, _ x: Int, _ w: @escaping LazyFloats, _ b: LazyFloats?, _ outF: Int) {
        let c = chains[ops[i].chain!], label = graph.names[i], xs = graph.shapes[x]
        let inF = xs.count, plane = xs.h * xs.w
        let (pre, post) = (c.pre, c.post)
        // Both folds need the unscaled weights, so the bias is computed from them first.
        let bias = tensor("\(label).bias", [outF]) {
            var data = b?() ?? [Float](repeating: 0, count: outF)
            if let pre, pre.shift != nil {
                let wd = w(), t = pre.values(xs.c).shift
                for o in 0..<outF {
                    var s: Double = 0
                    for j in 0..<inF { s += Double(wd[o * inF + j]) * Double(t[j / plane]) }
                    data[o] += Float(s)
                }
            }
            return Self.biased(data, by: post)
        }
        let weight = tensor("\(label).weight", [outF, inF]) {
            var data = w()
            if let s = pre?.scale?() {
                for o in 0..<outF { for j in 0..<inF { data[o * inF + j] *= s[j / plane] } }
            }
            return Self.scaledRows(data, by: post, rows: outF)
        }
        let out = value(c.last)
        ops[i].value = out
        layers.append(
            .fullyConnected(
                FullyConnectedLayer(
                    input: resolved(x), output: out, weight: weight, bias: bias,
                    inFeatures: inF, outFeatures: outF)))
    }

    /// A standalone affine and/or PReLU.
    mutating func emitAffine(_ i: Int, _ x: Int, _ a: ChannelAffine, slope s: LazyFloats?) {
        let n = graph.shapes[x].c, label = graph.names[i]
        let scale = a.scale.map { tensor("\(label).scale", [n], $0) }
        let shift = a.shift.map { tensor("\(label).shift", [n], $0) }
        let slope = s.map { tensor("\(label).prelu", [n], $0) }, out = value(i)
        layers.append(.affine(AffineLayer(input: resolved(x), output: out, scale: scale, shift: shift, slope: slope)))
    }

    // MARK: Folds

    /// `data`, `rows` rows of equal length, with row `r` multiplied by each affine's scale[r] in turn.
    static func scaledRows(_ data: [Float], by affines: [ChannelAffine], rows: Int) -> [Float] {
        var data = data
        let per = data.count / rows
        for a in affines {
            guard let s = a.scale?() else { continue }
            for r in 0..<rows { for j in 0..<per { data[r * per + j] *= s[r] } }
        }
        return data
    }

    /// `bias` carried through each affine in turn.
    static func biased(_ bias: [Float], by affines: [ChannelAffine]) -> [Float] {
        var data = bias
        for a in affines {
            let (s, t) = a.values(data.count)
            for c in data.indices { data[c] = data[c] * s[c] + t[c] }
        }
        return data
    }
}
