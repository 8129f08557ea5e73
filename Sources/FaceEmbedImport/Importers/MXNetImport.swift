import FaceEmbed
// Turns an MXNet symbol + params into a fused `ModelPlan`, checking every shape on the way.
//
// 1. Interpret: walk the nodes in order (a topological order), resolve identities (`_copy`, `Dropout`,
//    `Flatten`), take `_minus_scalar`/`_mul_scalar` on the input as preprocessing, infer every shape at
//    3 × 112 × 112 and check each parameter's shape against it.
// 2. Fuse with `PlanFusion` (shared with the ONNX importer): batch norms fold into the convolution or fully
//    connected layer before them (exact), PReLU and residual adds into convolution epilogues, a batch norm before
//    a zero-padded convolution becomes its input affine. Tensor data is produced lazily, one tensor at a time, when
//    the flat file is written, so a 261 MB params file is never held twice.

/// MXNet's BatchNorm parameters for one node.
private struct BatchNormParams {
    var gamma: MXNetArray?, beta: MXNetArray, mean: MXNetArray, variance: MXNetArray
    var eps: Float, fixGamma: Bool
}

enum MXNetImporter {
    /// Builds the fused plan for `symbol` with weights from `params`; `file` names the symbol file in errors.
        static func importModel(symbol: MXNetSymbol, params: MXNetParams, symbolFile: String?) throws(FaceEmbedError) -> ImportedModel {
        func fail(_ s: String) -> FaceEmbedError { .unsupportedModel(file: symbolFile, reason: s) }
        func wrong(_ s: String) -> FaceEmbedError { .invalidWeights(file: params.file, reason: s) }
        let nodes = symbol.nodes

        // 1. Interpret.
        var graph = FusionGraph()
        var rawOf = [Int?](repeating: nil, count: nodes.count)   // node → graph value
        var sawInput = false
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
                    guard !sawInput else { throw fail("more than one input named data") }
                    sawInput = true; rawOf[n] = 0
                }
            case "_copy", "Dropout", "Flatten", "identity":
                rawOf[n] = try value(node)
            case "_minus_scalar", "_mul_scalar":
                let v = try value(node)
                guard v == 0, graph.ops.count == 1 else { throw fail("\(node.op) (\(node.name)) is supported only on the input") }
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
                let x = try value(node), xs = graph.shapes[x]
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
                rawOf[n] = graph.append(.conv(x: x, weight: { params.floats(w) }, bias: b.map { b in { params.floats(b) } }, geometry: g),
                                        ValueShape(c: filters, h: g.outH, w: g.outW), node.name)
            case "BatchNorm":
                let x = try value(node), c = graph.shapes[x].c
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
                let affine = ChannelAffine(scale: { bnScaleShift(bn, params).scale }, shift: { bnScaleShift(bn, params).shift })
                rawOf[n] = graph.append(.affine(x: x, affine), graph.shapes[x], node.name)
            case "LeakyReLU":
                guard node.attrs["act_type"] == "prelu" else {
                    throw fail("\(node.name): LeakyReLU act_type \(node.attrs["act_type"] ?? "leaky") is not supported (only prelu)")
                }
                let x = try value(node)
                let slope = try param(node, 1, "gamma")
                try expectShape(slope, [graph.shapes[x].c], node)
                rawOf[n] = graph.append(.prelu(x: x, slope: { params.floats(slope) }), graph.shapes[x], node.name)
            case "elemwise_add", "_Plus", "_plus", "broadcast_add":
                guard node.inputs.count == 2, let a = rawOf[node.inputs[0]], let b = rawOf[node.inputs[1]] else {
                    throw fail("\(node.name): add needs two computed inputs")
                }
                guard graph.shapes[a] == graph.shapes[b] else {
                    throw fail("\(node.name): adding shapes \(graph.shapes[a]) and \(graph.shapes[b])")
                }
                rawOf[n] = graph.append(.add(a, b), graph.shapes[a], node.name)
            case "FullyConnected":
                let x = try value(node)
                let hidden = try node.int("num_hidden", default: 0)
                guard hidden >= 1, hidden <= 65_536, try node.bool("flatten", default: true) else {
                    throw fail("\(node.name): FullyConnected num_hidden \(hidden) / flatten is not supported")
                }
                let w = try param(node, 1, "weight")
                try expectShape(w, [hidden, graph.shapes[x].count], node)
                var b: MXNetArray?
                if !(try node.bool("no_bias", default: false)) { b = try param(node, 2, "bias"); try expectShape(b!, [hidden], node) }
                rawOf[n] = graph.append(.fullyConnected(x: x, weight: { params.floats(w) }, bias: b.map { b in { params.floats(b) } },
                                                        outFeatures: hidden), ValueShape(c: hidden, h: 1, w: 1), node.name)
            default:
                throw fail("operator \(node.op) (node \(node.name)) is not supported")
            }
        }
        guard sawInput else { throw fail("the graph has no input named data") }
        guard let outRaw = rawOf[symbol.head], case .fullyConnected = graph.ops[chainHead(outRaw, graph.ops)] else {
            throw fail("the output must be an embedding computed by FullyConnected (and batch norms)")
        }
        let outShape = graph.shapes[outRaw]
        guard outShape.h == 1, outShape.w == 1 else { throw fail("the output is not a vector") }
        let (kind, name) = try recognise(nodes, ops: graph.ops, fail: fail)

        // 2. Fuse.
        return PlanFusion.plan(graph, output: outRaw, kind: kind, name: name, channelOrder: .rgb,
                               inputMean: mean, inputScale: scale)
    }

    /// Scale and shift of a batch norm (gamma taken as 1 under fix_gamma).
    private static func bnScaleShift(_ bn: BatchNormParams, _ p: MXNetParams) -> (scale: [Float], shift: [Float]) {
        let beta = p.floats(bn.beta)
        return batchNormScaleShift(gamma: bn.gamma.map { p.floats($0) } ?? [Float](repeating: 1, count: beta.count),
                                   beta: beta, mean: p.floats(bn.mean), variance: p.floats(bn.variance),
                                   eps: bn.eps, fixGamma: bn.fixGamma)
    }

    /// The chain head behind a value (following BN/PReLU/add back to the conv or FC that started it).
    private static func chainHead(_ x: Int, _ ops: [FusionOp]) -> Int {
        var i = x
        while true {
            switch ops[i] {
            case let .affine(y, _), let .prelu(y, _): i = y
            default: return i
            }
        }
    }

    /// Identifies the family: MobileFaceNet (a 7×7 global depthwise convolution head) or LResNet-IR (stages of
    /// `stageS_unitU` residual units; depth = 2 × units + 2).
    private static func recognise(_ nodes: [SymbolNode], ops: [FusionOp],
                                  fail: (String) -> FaceEmbedError) throws(FaceEmbedError) -> (ModelKind, String) {
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
        throw fail("not a model FaceEmbed knows: expected MobileFaceNet (global depthwise 7x7 head) or LResNet-IR (stageN_unitM blocks)")
    }
}
