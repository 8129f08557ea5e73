// Turns an MXNet symbol + params into a fused `ModelPlan`, checking every shape on the way.
//
// 1. Interpret: walk the nodes in order (a topological order), resolve identities (`_copy`, `Dropout`,
//    `Flatten`), take `_minus_scalar`/`_mul_scalar` on the input as preprocessing, infer every shape at
//    3 × 112 × 112 and check each parameter's shape against it.
// 2. Fuse: each Convolution or FullyConnected starts a chain that absorbs what follows it while the value in
//    between has no other consumer: batch norms (folded into weights and bias, exact), one PReLU, one residual add
//    (given to the operand computed last, so the other is ready). A batch norm whose only consumer is a
//    convolution with groups = 1 or a fully connected layer becomes that layer's input affine (exact: the
//    convolution applies it to in-bounds taps only). Everything else stays a standalone layer.
// 3. Emit layers in the order of their chains' first nodes; tensor data is produced lazily, one at a time, when
//    the flat file is written, so a 261 MB params file is never held twice.

/// MXNet's BatchNorm parameters for one node.
private struct BatchNormParams {
    var gamma: MXNetArray?, beta: MXNetArray, mean: MXNetArray, variance: MXNetArray
    var eps: Float, fixGamma: Bool
}

private enum RawOp {
    case input
    case conv(x: Int, weight: MXNetArray, bias: MXNetArray?, geometry: ConvGeometry)
    case batchNorm(x: Int, BatchNormParams)
    case prelu(x: Int, slope: MXNetArray)
    case add(Int, Int)
    case fullyConnected(x: Int, weight: MXNetArray, bias: MXNetArray?, outFeatures: Int)

    var inputs: [Int] {
        switch self {
        case .input: return []
        case let .conv(x, _, _, _), let .batchNorm(x, _), let .prelu(x, _), let .fullyConnected(x, _, _, _): return [x]
        case let .add(a, b): return [a, b]
        }
    }
}

/// A conv or FC layer and what it absorbed.
private final class Chain {
    let head: Int
    var postBN: [BatchNormParams] = []
    var preBN: BatchNormParams?
    var slope: MXNetArray?
    var residual: Int?
    var last: Int
    init(head: Int) { self.head = head; last = head }
}

/// A model ready to be written: its plan and, for each tensor, how to compute its float32 data.
struct ImportedModel {
    var plan: ModelPlan
    var produce: [() -> [Float]]
}

/// The input size every supported model takes.
let modelInputShape = ValueShape(c: 3, h: 112, w: 112)

enum MXNetImporter {
    /// Builds the fused plan for `symbol` with weights from `params`; `file` names the symbol file in errors.
    static func importModel(symbol: MXNetSymbol, params: MXNetParams, symbolFile: String?) throws(FaceEmbedError) -> ImportedModel {
        func fail(_ s: String) -> FaceEmbedError { .unsupportedModel(file: symbolFile, reason: s) }
        func wrong(_ s: String) -> FaceEmbedError { .invalidWeights(file: params.file, reason: s) }
        let nodes = symbol.nodes

        // 1. Interpret.
        var raw: [RawOp] = []
        var shapes: [ValueShape] = []
        var rawOf = [Int?](repeating: nil, count: nodes.count)   // node → raw value
        var mean: Float = 0, scale: Float = 1
        func param(_ node: SymbolNode, _ i: Int, _ what: String) throws(FaceEmbedError) -> MXNetArray {
            guard i < node.inputs.count else { throw fail("node \(node.name) has no \(what) input") }
            let p = nodes[node.inputs[i]]
            guard p.op == "null" else { throw fail("node \(node.name): \(what) is computed, not a parameter") }
            let a = try params.array(p.name)
            try params.checkFinite(a)
            return a
        }
        func value(_ node: SymbolNode) throws(FaceEmbedError) -> Int {
            guard let first = node.inputs.first, let v = rawOf[first] else {
                throw fail("node \(node.name) (\(node.op)) has no computed input")
            }
            return v
        }
        func expectShape(_ a: MXNetArray, _ shape: [Int], _ node: SymbolNode) throws(FaceEmbedError) {
            guard a.shape == shape else {
                throw wrong("parameter \(a.name) of \(node.name) has shape \(a.shape), the graph needs \(shape)")
            }
        }

        for (n, node) in nodes.enumerated() {
            switch node.op {
            case "null":
                if node.name == "data" {
                    guard raw.isEmpty else { throw fail("more than one input named data") }
                    raw.append(.input); shapes.append(modelInputShape); rawOf[n] = 0
                }
            case "_copy", "Dropout", "Flatten", "identity":
                rawOf[n] = try value(node)
            case "_minus_scalar", "_mul_scalar":
                let v = try value(node)
                guard v == 0, raw.count == 1 else { throw fail("\(node.op) (\(node.name)) is supported only on the input") }
                let s = try node.float("scalar", default: .nan)
                guard s.isFinite else { throw fail("\(node.name) has no scalar") }
                if node.op == "_minus_scalar" {
                    guard scale == 1 else { throw fail("_minus_scalar after _mul_scalar on the input is not supported") }
                    mean += s
                } else {
                    scale *= s
                }
                rawOf[n] = 0
            case "Convolution":
                let x = try value(node), xs = shapes[x]
                let kernel = try node.tuple("kernel", default: [0, 0])
                let stride = try node.tuple("stride", default: [1, 1])
                let pad = try node.tuple("pad", default: [0, 0])
                let dilate = try node.tuple("dilate", default: [1, 1])
                let filters = try node.int("num_filter", default: 0)
                let groups = try node.int("num_group", default: 1)
                let noBias = try node.bool("no_bias", default: false)
                guard dilate == [1, 1] else { throw fail("\(node.name): dilated convolution is not supported") }
                guard (node.attrs["layout"] ?? "NCHW") == "NCHW" else { throw fail("\(node.name): only NCHW layout is supported") }
                guard kernel.allSatisfy({ $0 >= 1 && $0 <= 15 }), stride.allSatisfy({ $0 >= 1 && $0 <= 8 }),
                      pad.allSatisfy({ $0 >= 0 && $0 <= 15 }), filters >= 1, filters <= 65_536, groups >= 1,
                      xs.c % groups == 0, filters % groups == 0 else {
                    throw fail("\(node.name): convolution attributes kernel \(kernel) stride \(stride) pad \(pad) filters \(filters) groups \(groups) do not fit \(xs.c) input channels")
                }
                let g = ConvGeometry(inC: xs.c, inH: xs.h, inW: xs.w, outC: filters, kH: kernel[0], kW: kernel[1],
                                     strideH: stride[0], strideW: stride[1], padH: pad[0], padW: pad[1], groups: groups)
                guard g.outH >= 1, g.outW >= 1, xs.h + 2 * pad[0] >= kernel[0], xs.w + 2 * pad[1] >= kernel[1] else {
                    throw fail("\(node.name): kernel \(kernel) does not fit a \(xs.h)x\(xs.w) input")
                }
                let w = try param(node, 1, "weight")
                try expectShape(w, [filters, xs.c / groups, kernel[0], kernel[1]], node)
                var b: MXNetArray?
                if !noBias { b = try param(node, 2, "bias"); try expectShape(b!, [filters], node) }
                raw.append(.conv(x: x, weight: w, bias: b, geometry: g))
                shapes.append(ValueShape(c: filters, h: g.outH, w: g.outW))
                rawOf[n] = raw.count - 1
            case "BatchNorm":
                let x = try value(node), c = shapes[x].c
                guard try node.int("axis", default: 1) == 1 else { throw fail("\(node.name): BatchNorm axis must be 1") }
                let fixGamma = try node.bool("fix_gamma", default: true)
                let gamma: MXNetArray? = fixGamma ? nil : try param(node, 1, "gamma")
                let bn = BatchNormParams(gamma: gamma, beta: try param(node, 2, "beta"), mean: try param(node, 3, "moving_mean"),
                                         variance: try param(node, 4, "moving_var"),
                                         eps: try node.float("eps", default: 1e-3), fixGamma: fixGamma)
                for a in [bn.gamma, bn.beta, bn.mean, bn.variance].compactMap({ $0 }) { try expectShape(a, [c], node) }
                guard bn.eps.isFinite, bn.eps >= 0 else { throw fail("\(node.name): BatchNorm eps \(bn.eps) is not a non-negative number") }
                if let ch = params.floats(bn.variance).firstIndex(where: { !($0 + bn.eps > 0) }) {
                    throw wrong("parameter \(bn.variance.name) of \(node.name): moving variance + eps is not positive at channel \(ch)")
                }
                raw.append(.batchNorm(x: x, bn)); shapes.append(shapes[x]); rawOf[n] = raw.count - 1
            case "LeakyReLU":
                guard node.attrs["act_type"] == "prelu" else {
                    throw fail("\(node.name): LeakyReLU act_type \(node.attrs["act_type"] ?? "leaky") is not supported (only prelu)")
                }
                let x = try value(node)
                let slope = try param(node, 1, "gamma")
                try expectShape(slope, [shapes[x].c], node)
                raw.append(.prelu(x: x, slope: slope)); shapes.append(shapes[x]); rawOf[n] = raw.count - 1
            case "elemwise_add", "_Plus", "_plus", "broadcast_add":
                guard node.inputs.count == 2, let a = rawOf[node.inputs[0]], let b = rawOf[node.inputs[1]] else {
                    throw fail("\(node.name): add needs two computed inputs")
                }
                guard shapes[a] == shapes[b] else { throw fail("\(node.name): adding shapes \(shapes[a]) and \(shapes[b])") }
                raw.append(.add(a, b)); shapes.append(shapes[a]); rawOf[n] = raw.count - 1
            case "FullyConnected":
                let x = try value(node)
                let hidden = try node.int("num_hidden", default: 0)
                guard hidden >= 1, hidden <= 65_536, try node.bool("flatten", default: true) else {
                    throw fail("\(node.name): FullyConnected num_hidden \(hidden) / flatten is not supported")
                }
                let w = try param(node, 1, "weight")
                try expectShape(w, [hidden, shapes[x].count], node)
                var b: MXNetArray?
                if !(try node.bool("no_bias", default: false)) { b = try param(node, 2, "bias"); try expectShape(b!, [hidden], node) }
                raw.append(.fullyConnected(x: x, weight: w, bias: b, outFeatures: hidden))
                shapes.append(ValueShape(c: hidden, h: 1, w: 1)); rawOf[n] = raw.count - 1
            default:
                throw fail("operator \(node.op) (node \(node.name)) is not supported")
            }
        }
        guard !raw.isEmpty else { throw fail("the graph has no input named data") }
        guard let outRaw = rawOf[symbol.head], case .fullyConnected = raw[chainHead(outRaw, raw)] else {
            throw fail("the output must be an embedding computed by FullyConnected (and batch norms)")
        }
        let outShape = shapes[outRaw]
        guard outShape.h == 1, outShape.w == 1 else { throw fail("the output is not a vector") }
        let (kind, name) = try recognise(nodes, raw: raw, fail: fail)

        // 2. Fuse.
        var consumers = [Int](repeating: 0, count: raw.count)
        var consumer = [Int](repeating: -1, count: raw.count)
        for (i, op) in raw.enumerated() { for x in op.inputs { consumers[x] += 1; consumer[x] = i } }
        consumers[outRaw] += 1
        var chainOf = [Chain?](repeating: nil, count: raw.count)
        var standaloneSlope = [MXNetArray?](repeating: nil, count: raw.count)  // PReLU merged into a standalone BN
        var absorbed = [Bool](repeating: false, count: raw.count)
        var redirect = [Int: Int]()  // a PReLU merged into a standalone BN: read the BN's value
        func open(_ x: Int) -> Chain? {
            guard let c = chainOf[x], c.last == x, consumers[x] == 1 else { return nil }
            return c
        }
        for (i, op) in raw.enumerated() {
            switch op {
            case .input: break
            case .conv, .fullyConnected: chainOf[i] = Chain(head: i)
            case let .batchNorm(x, bn):
                if let c = open(x), c.slope == nil, c.residual == nil {
                    c.postBN.append(bn); c.last = i; chainOf[i] = c; absorbed[i] = true
                }
            case let .prelu(x, slope):
                if let c = open(x), c.slope == nil, c.residual == nil {
                    c.slope = slope; c.last = i; chainOf[i] = c; absorbed[i] = true
                } else if case .batchNorm = raw[x], !absorbed[x], consumers[x] == 1, standaloneSlope[x] == nil {
                    standaloneSlope[x] = slope; absorbed[i] = true; chainOf[i] = nil
                    redirect[i] = x
                }
            case let .add(a, b):
                let candidates = [(a, b), (b, a)].compactMap { (mine, other) -> (Chain, Int)? in
                    guard let c = open(mine), c.residual == nil, case .conv = raw[c.head] else { return nil }
                    return (c, other)
                }
                if let (c, other) = candidates.max(by: { $0.0.head < $1.0.head }) {
                    c.residual = other; c.last = i; chainOf[i] = c; absorbed[i] = true
                }
            }
        }
        // Batch norms left standalone whose only consumer is a groups=1 convolution or a fully connected layer.
        for (i, op) in raw.enumerated() {
            guard case let .batchNorm(_, bn) = op, !absorbed[i], standaloneSlope[i] == nil, consumers[i] == 1,
                  consumer[i] >= 0, let c = chainOf[consumer[i]], c.head == consumer[i], c.preBN == nil else { continue }
            switch raw[c.head] {
            case let .conv(_, _, _, g) where g.groups == 1: break
            case .fullyConnected: break
            default: continue
            }
            c.preBN = bn; absorbed[i] = true
        }

        // 3. Emit.
        var values: [ValueShape] = [modelInputShape]
        var valueOf = [Int](repeating: -1, count: raw.count)
        valueOf[0] = 0
        var layers: [Layer] = []
        var tensors: [TensorInfo] = []
        var produce: [() -> [Float]] = []
        func tensor(_ name: String, _ shape: [Int], _ f: @escaping () -> [Float]) -> Int {
            tensors.append(TensorInfo(name: name, shape: shape)); produce.append(f); return tensors.count - 1
        }
        func resolved(_ x: Int) -> Int {
            // A pre-folded batch norm is read through: its consumer takes the BN's input.
            if absorbed[x], case let .batchNorm(bx, _) = raw[x], chainOf[x] == nil { return valueOf[bx] }
            return valueOf[redirect[x] ?? x]
        }
        let p = params
        for (i, op) in raw.enumerated() {
            switch op {
            case .input: continue
            case let .conv(x, w, b, g):
                let c = chainOf[i]!
                let label = nodeName(nodes, rawOf, i)
                let post = c.postBN, pre = c.preBN
                let weight = tensor("\(label).weight", [g.outC, g.inC / g.groups, g.kH, g.kW]) {
                    var data = p.floats(w)
                    let per = data.count / g.outC
                    for bn in post {
                        let s = bnScaleShift(bn, p).scale
                        for oc in 0..<g.outC { for j in 0..<per { data[oc * per + j] *= s[oc] } }
                    }
                    return data
                }
                let bias = tensor("\(label).bias", [g.outC]) {
                    var data = b.map { p.floats($0) } ?? [Float](repeating: 0, count: g.outC)
                    for bn in post {
                        let (s, t) = bnScaleShift(bn, p)
                        for oc in 0..<g.outC { data[oc] = data[oc] * s[oc] + t[oc] }
                    }
                    return data
                }
                let slope = c.slope.map { s in tensor("\(label).prelu", [g.outC]) { p.floats(s) } }
                var inScale: Int?, inShift: Int?
                if let pre {
                    inScale = tensor("\(label).input_scale", [g.inC]) { bnScaleShift(pre, p).scale }
                    inShift = tensor("\(label).input_shift", [g.inC]) { bnScaleShift(pre, p).shift }
                }
                values.append(shapes[c.last])
                let out = values.count - 1
                layers.append(.convolution(ConvLayer(input: resolved(x), output: out, geometry: g, weight: weight, bias: bias,
                                                     slope: slope, residual: c.residual.map { resolved($0) },
                                                     inputScale: inScale, inputShift: inShift)))
                valueOf[i] = out; valueOf[c.last] = out
            case let .fullyConnected(x, w, b, outF):
                let c = chainOf[i]!
                let label = nodeName(nodes, rawOf, i)
                let inF = shapes[x].count, plane = shapes[x].h * shapes[x].w
                let post = c.postBN, pre = c.preBN
                // Both folds need the unscaled weights, so the bias is computed from them first.
                let bias = tensor("\(label).bias", [outF]) {
                    var data = b.map { p.floats($0) } ?? [Float](repeating: 0, count: outF)
                    if let pre {
                        let wd = p.floats(w), t = bnScaleShift(pre, p).shift
                        for o in 0..<outF {
                            var s: Double = 0
                            for j in 0..<inF { s += Double(wd[o * inF + j]) * Double(t[j / plane]) }
                            data[o] += Float(s)
                        }
                    }
                    for bn in post {
                        let (s, t) = bnScaleShift(bn, p)
                        for o in 0..<outF { data[o] = data[o] * s[o] + t[o] }
                    }
                    return data
                }
                let weight = tensor("\(label).weight", [outF, inF]) {
                    var data = p.floats(w)
                    if let pre {
                        let s = bnScaleShift(pre, p).scale
                        for o in 0..<outF { for j in 0..<inF { data[o * inF + j] *= s[j / plane] } }
                    }
                    for bn in post {
                        let s = bnScaleShift(bn, p).scale
                        for o in 0..<outF { for j in 0..<inF { data[o * inF + j] *= s[o] } }
                    }
                    return data
                }
                values.append(shapes[c.last])
                let out = values.count - 1
                layers.append(.fullyConnected(FullyConnectedLayer(input: resolved(x), output: out, weight: weight, bias: bias,
                                                                  inFeatures: inF, outFeatures: outF)))
                valueOf[i] = out; valueOf[c.last] = out
            case let .batchNorm(x, bn):
                guard !absorbed[i] else { continue }
                let label = nodeName(nodes, rawOf, i)
                let c = shapes[x].c
                let sc = tensor("\(label).scale", [c]) { bnScaleShift(bn, p).scale }
                let sh = tensor("\(label).shift", [c]) { bnScaleShift(bn, p).shift }
                let slope = standaloneSlope[i].map { s in tensor("\(label).prelu", [c]) { p.floats(s) } }
                values.append(shapes[i])
                layers.append(.affine(AffineLayer(input: resolved(x), output: values.count - 1, scale: sc, shift: sh, slope: slope)))
                valueOf[i] = values.count - 1
            case let .prelu(x, s):
                guard !absorbed[i] else { continue }
                let label = nodeName(nodes, rawOf, i)
                let slope = tensor("\(label).prelu", [shapes[x].c]) { p.floats(s) }
                values.append(shapes[i])
                layers.append(.affine(AffineLayer(input: resolved(x), output: values.count - 1, scale: nil, shift: nil, slope: slope)))
                valueOf[i] = values.count - 1
            case let .add(a, b):
                guard !absorbed[i] else { continue }
                values.append(shapes[i])
                layers.append(.add(a: resolved(a), b: resolved(b), output: values.count - 1))
                valueOf[i] = values.count - 1
            }
        }
        let plan = ModelPlan(kind: kind, name: name, channelOrder: .rgb, inputMean: mean, inputScale: scale,
                             values: values, layers: layers, tensors: tensors, output: resolved(outRaw))
        return ImportedModel(plan: plan, produce: produce)
    }

    /// Scale and shift of a batch norm (gamma taken as 1 under fix_gamma).
    private static func bnScaleShift(_ bn: BatchNormParams, _ p: MXNetParams) -> (scale: [Float], shift: [Float]) {
        let beta = p.floats(bn.beta)
        return batchNormScaleShift(gamma: bn.gamma.map { p.floats($0) } ?? [Float](repeating: 1, count: beta.count),
                                   beta: beta, mean: p.floats(bn.mean), variance: p.floats(bn.variance),
                                   eps: bn.eps, fixGamma: bn.fixGamma)
    }

    /// The chain head behind a value (following BN/PReLU/add back to the conv or FC that started it).
    private static func chainHead(_ x: Int, _ raw: [RawOp]) -> Int {
        var i = x
        while true {
            switch raw[i] {
            case let .batchNorm(y, _), let .prelu(y, _): i = y
            default: return i
            }
        }
    }

    /// The symbol node name of raw op `i`, for tensor names.
    private static func nodeName(_ nodes: [SymbolNode], _ rawOf: [Int?], _ i: Int) -> String {
        nodes[rawOf.lastIndex(where: { $0 == i }) ?? 0].name
    }

    /// Identifies the family: MobileFaceNet (a 7×7 global depthwise convolution head) or LResNet-IR (stages of
    /// `stageS_unitU` residual units; depth = 2 × units + 2).
    private static func recognise(_ nodes: [SymbolNode], raw: [RawOp],
                                  fail: (String) -> FaceEmbedError) throws(FaceEmbedError) -> (ModelKind, String) {
        let hasGDC = raw.contains {
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
        throw fail("not a model FaceEmbed knows: expected MobileFaceNet (global depthwise 7x7 head) or LResNet-IR (stageN_unitM blocks)")
    }
}
