import FaceEmbed
// Turns an ONNX graph (insightface recognition models: MobileFaceNet, IResNet, and relatives exported from PyTorch
// or converted from MXNet) into a fused `ModelPlan`, checking every shape on the way.
//
// 1. Refuse up front, by name, every operator outside the supported set.
// 2. Interpret the nodes in order (ONNX requires a topological order) at input 1 × 3 × 112 × 112. Values are either
//    constants (initializers, Constant nodes) or computed activations of rank 4 (N, C, H, W) or rank 2 (N, K).
//    Identity, Dropout, Flatten and Reshape-to-(N, K) are views; Sub/Mul/Div/Add with a scalar on the input
//    before anything else is computed are the graph's own preprocessing (otherwise FaceEmbed applies
//    insightface's `(x − 127.5) / 127.5` on RGB); BatchNormalization and Add/Sub/Mul/Div with a per-channel
//    constant are per-channel affine maps; Gemm and MatMul with a constant weight are fully connected layers.
// 3. Fuse with `PlanFusion` (batch norms and constant affines folded into conv/FC weights, PReLU and residual adds
//    into convolution epilogues); tensor data stays in the mapped file until the flat file is written.
//
// Export quirks accepted: PRelu slopes of shape (C), (C, 1, 1) or (1, C, 1, 1) (a (C) slope on a 4-D input is
// per-channel, as MXNet meant it, although ONNX broadcasting would align it with W); BatchNormalization with
// `spatial` 0 or 1 (opset < 9); Gemm on a 4-D input (flattened, as MXNet's FullyConnected does); Gemm transB 0 or 1.

enum ONNXImporter {
    /// Operators the importer understands (default domain).
    static let supportedOperators: Set<String> = [
        "Conv", "BatchNormalization", "PRelu", "Add", "Sub", "Mul", "Div", "Flatten", "Reshape", "Gemm", "MatMul",
        "Identity", "Constant", "Dropout",
    ]

    /// A value of the graph during interpretation.
    private enum Sym {
        /// A computed activation: fusion op `op`, seen with rank 4 (N, C, H, W) or 2 (N, K).
        case computed(op: Int, rank: Int)
        case constant(ONNXTensor)
    }

    static func importModel(_ model: ONNXModel, name fileStem: String) throws(FaceEmbedError) -> ImportedModel {
        let file = model.file
        func fail(_ s: String) -> FaceEmbedError { .unsupportedModel(file: file, reason: s) }
        func wrong(_ s: String) -> FaceEmbedError { .invalidWeights(file: file, reason: s) }
        let graph = model.graph
        let bytes = model.bytes

        // 1. Operators.
        var unknown: [String: [String]] = [:]
        for n in graph.nodes {
            let domainOK = n.domain.isEmpty || n.domain == "ai.onnx"
            if !domainOK || !supportedOperators.contains(n.opType) {
                unknown[domainOK ? n.opType : "\(n.domain):\(n.opType)", default: []].append(n.label)
            }
        }
        if !unknown.isEmpty {
            let list = unknown.keys.sorted().map { op in
                let nodes = unknown[op]!
                return "\(op) (\(nodes.count == 1 ? "node" : "\(nodes.count) nodes, first") \(nodes[0]))"
            }
            throw fail("unsupported ONNX operator\(unknown.count == 1 ? "" : "s"): \(list.joined(separator: ", ")); FaceEmbed supports \(supportedOperators.sorted().joined(separator: ", "))")
        }

        // 2. Interpret.
        var syms: [String: Sym] = [:]
        for t in graph.initializers where !t.name.isEmpty { syms[t.name] = .constant(t) }
        let realInputs = graph.inputs.filter { syms[$0.name] == nil }
        guard realInputs.count == 1, let input = realInputs.first else {
            throw fail("the graph must have exactly one input (it has \(realInputs.map(\.name)))")
        }
        if input.elemType != 0 && input.elemType != ElementType.float.rawValue {
            throw fail("input \(input.name) has element type \(input.elemType), not float")
        }
        if let dims = input.dims {
            func fits(_ d: Int?, _ e: Int) -> Bool { d == nil || d == 0 || d == e }
            guard dims.count == 4, fits(dims[0], 1), fits(dims[1], 3), fits(dims[2], 112), fits(dims[3], 112) else {
                throw fail("input \(input.name) has shape \(dims.map { $0.map(String.init) ?? "?" }), FaceEmbed needs N x 3 x 112 x 112")
            }
        }
        syms[input.name] = .computed(op: 0, rank: 4)
        var g = FusionGraph()
        var mean: Float = 0, scale: Float = 1
        var preprocessing = false
        let inputUses = graph.nodes.reduce(0) { $0 + $1.inputs.filter { $0 == input.name }.count }

        for node in graph.nodes {
            let label = node.label
            func computed(_ i: Int) throws(FaceEmbedError) -> (op: Int, rank: Int) {
                guard i < node.inputs.count, !node.inputs[i].isEmpty else { throw fail("node \(label) (\(node.opType)) lacks input \(i)") }
                guard let s = syms[node.inputs[i]] else {
                    throw fail("node \(label) (\(node.opType)) reads \(node.inputs[i]), which no earlier node computes (the graph must be topologically sorted)")
                }
                guard case let .computed(op, rank) = s else { throw fail("node \(label) (\(node.opType)): input \(node.inputs[i]) is a constant, FaceEmbed needs a computed value there") }
                return (op, rank)
            }
            func constant(_ i: Int, _ what: String) throws(FaceEmbedError) -> ONNXTensor? {
                guard i < node.inputs.count, !node.inputs[i].isEmpty else { return nil }
                guard let s = syms[node.inputs[i]] else { throw fail("node \(label) (\(node.opType)) reads \(node.inputs[i]), which is not defined before it") }
                guard case let .constant(t) = s else { throw fail("node \(label) (\(node.opType)): \(what) \(node.inputs[i]) is computed; FaceEmbed needs a constant") }
                guard let type = t.dataType, type.isFloatingPoint || what == "shape" else {
                    throw wrong("\(what) \(node.inputs[i]) of node \(label) has data type \(t.dataTypeCode), not a floating-point type")
                }
                return t
            }
            func required(_ i: Int, _ what: String) throws(FaceEmbedError) -> ONNXTensor {
                guard let t = try constant(i, what) else { throw fail("node \(label) (\(node.opType)) has no \(what)") }
                return t
            }
            func int(_ name: String, _ d: Int) throws(FaceEmbedError) -> Int {
                switch node.attributes[name] {
                case nil: return d
                case let .int(v)?:
                    guard v > -(1 << 30), v < 1 << 30 else { throw fail("node \(label): attribute \(name) = \(v)") }
                    return Int(v)
                default: throw fail("node \(label): attribute \(name) is not an integer")
                }
            }
            func ints(_ name: String) throws(FaceEmbedError) -> [Int]? {
                switch node.attributes[name] {
                case nil: return nil
                case let .ints(v)?:
                    guard v.count <= 8, v.allSatisfy({ $0 > -(1 << 30) && $0 < 1 << 30 }) else { throw fail("node \(label): attribute \(name) = \(v)") }
                    return v.map { Int($0) }
                default: throw fail("node \(label): attribute \(name) is not a list of integers")
                }
            }
            func float(_ name: String, _ d: Float) throws(FaceEmbedError) -> Float {
                switch node.attributes[name] {
                case nil: return d
                case let .float(v)?:
                    guard v.isFinite else { throw fail("node \(label): attribute \(name) is not finite") }
                    return v
                default: throw fail("node \(label): attribute \(name) is not a float")
                }
            }
            func lazy(_ t: ONNXTensor) -> LazyFloats { let m = model; return { t.floats(m.bytes) } }
            func shape(_ op: Int) -> ValueShape { g.shapes[op] }
            /// Channels of a computed value for per-channel ops; a flattened view of a spatial value has none.
            func channels(_ x: (op: Int, rank: Int)) throws(FaceEmbedError) -> Int {
                let s = shape(x.op)
                if x.rank == 2 && s.h * s.w != 1 {
                    throw fail("node \(label) (\(node.opType)): per-feature operations after flattening a \(s.c)x\(s.h)x\(s.w) value are not supported")
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
            func perChannel(_ t: ONNXTensor, _ x: (op: Int, rank: Int)) throws(FaceEmbedError) -> LazyFloats? {
                let c = try channels(x), s = shape(x.op)
                return vector(t, target: x.rank == 4 ? [1, s.c, s.h, s.w] : [1, c], c)
            }
            /// A scalar constant's value, or a per-element constant whose values are all equal (for preprocessing).
            func uniform(_ t: ONNXTensor) -> Float? {
                let v = t.floats(bytes)
                guard let first = v.first, v.allSatisfy({ $0 == first }), first.isFinite else { return nil }
                return first
            }
            func define(_ value: Sym, output i: Int = 0) {
                if i < node.outputs.count, !node.outputs[i].isEmpty { syms[node.outputs[i]] = value }
            }
            func emit(_ op: FusionOp, _ s: ValueShape, rank: Int) {
                let n = g.append(op, s, node.name.isEmpty ? "\(node.opType.lowercased())_\(node.outputs.first ?? "")" : node.name)
                define(.computed(op: n, rank: rank))
            }

            switch node.opType {
            case "Identity", "Dropout":
                guard let first = node.inputs.first, let s = syms[first] else { throw fail("node \(label) (\(node.opType)) has no defined input") }
                if node.opType == "Dropout", node.inputs.count >= 3, let t = try constant(2, "shape"), t.ints(bytes).first ?? 0 != 0 {
                    throw fail("node \(label): Dropout in training mode")
                }
                define(s)
            case "Constant":
                let t: ONNXTensor
                switch (node.attributes["value"], node.attributes["value_float"], node.attributes["value_floats"],
                        node.attributes["value_int"], node.attributes["value_ints"]) {
                case let (.tensor(v)?, _, _, _, _): t = v
                case let (_, .float(v)?, _, _, _): t = ONNXTensor(name: "", dims: [], dataTypeCode: 1, storage: .floats([v]))
                case let (_, _, .floats(v)?, _, _): t = ONNXTensor(name: "", dims: [v.count], dataTypeCode: 1, storage: .floats(v))
                case let (_, _, _, .int(v)?, _): t = ONNXTensor(name: "", dims: [], dataTypeCode: 7, storage: .ints([v]))
                case let (_, _, _, _, .ints(v)?): t = ONNXTensor(name: "", dims: [v.count], dataTypeCode: 7, storage: .ints(v))
                default: throw fail("node \(label): Constant without a supported value attribute")
                }
                define(.constant(t))
            case "Conv":
                let x = try computed(0)
                guard x.rank == 4 else { throw fail("node \(label): Conv on a rank-\(x.rank) value") }
                let xs = shape(x.op)
                let w = try required(1, "weight")
                let groups = try int("group", 1)
                guard w.dims.count == 4 else { throw wrong("Conv \(label): weight \(w.name) has shape \(w.dims), expected 4 dimensions") }
                let kernel = try ints("kernel_shape") ?? [w.dims[2], w.dims[3]]
                let strides = try ints("strides") ?? [1, 1]
                let dilations = try ints("dilations") ?? [1, 1]
                var pads = try ints("pads") ?? [0, 0, 0, 0]
                let outC = w.dims[0]
                guard kernel.count == 2, strides.count == 2, pads.count == 4, dilations == [1, 1] else {
                    throw fail("Conv \(label): only 2-D convolutions without dilation are supported (kernel \(kernel), strides \(strides), pads \(pads), dilations \(dilations))")
                }
                switch node.attributes["auto_pad"] {
                case nil: break
                case let .string(mode)?:
                    switch mode {
                    case "NOTSET", "": break
                    case "VALID": pads = [0, 0, 0, 0]
                    case "SAME_UPPER", "SAME_LOWER":
                        var p: [Int] = []
                        for (n, (k, s)) in zip([xs.h, xs.w], zip(kernel, strides)) {
                            let total = max(0, ((n + s - 1) / max(s, 1) - 1) * s + k - n)
                            guard total % 2 == 0 else { throw fail("Conv \(label): auto_pad \(mode) needs asymmetric padding, which is not supported") }
                            p.append(total / 2)
                        }
                        pads = [p[0], p[1], p[0], p[1]]
                    default: throw fail("Conv \(label): auto_pad \(mode) is not supported")
                    }
                default: throw fail("Conv \(label): auto_pad is not a string")
                }
                guard pads[0] == pads[2], pads[1] == pads[3] else {
                    throw fail("Conv \(label): asymmetric padding \(pads) is not supported")
                }
                guard kernel.allSatisfy({ $0 >= 1 && $0 <= 15 }), strides.allSatisfy({ $0 >= 1 && $0 <= 8 }),
                      pads.allSatisfy({ $0 >= 0 && $0 <= 15 }), outC >= 1, outC <= 65_536, groups >= 1,
                      xs.c % groups == 0, outC % groups == 0 else {
                    throw fail("Conv \(label): kernel \(kernel) strides \(strides) pads \(pads) filters \(outC) groups \(groups) do not fit \(xs.c) input channels")
                }
                guard w.dims == [outC, xs.c / groups, kernel[0], kernel[1]] else {
                    throw wrong("Conv \(label): weight \(w.name) has shape \(w.dims), the graph needs \([outC, xs.c / groups, kernel[0], kernel[1]])")
                }
                let geometry = ConvGeometry(inC: xs.c, inH: xs.h, inW: xs.w, outC: outC, kH: kernel[0], kW: kernel[1],
                                            strideH: strides[0], strideW: strides[1], padH: pads[0], padW: pads[1], groups: groups)
                guard xs.h + 2 * pads[0] >= kernel[0], xs.w + 2 * pads[1] >= kernel[1], geometry.outH >= 1, geometry.outW >= 1 else {
                    throw fail("Conv \(label): kernel \(kernel) does not fit a \(xs.h)x\(xs.w) input")
                }
                let b = try constant(2, "bias")
                if let b, b.count != outC || b.dims.count != 1 { throw wrong("Conv \(label): bias \(b.name) has shape \(b.dims), expected [\(outC)]") }
                emit(.conv(x: x.op, weight: lazy(w), bias: b.map(lazy), geometry: geometry),
                     ValueShape(c: outC, h: geometry.outH, w: geometry.outW), rank: 4)
            case "BatchNormalization":
                let x = try computed(0)
                let xs = shape(x.op)
                if try int("training_mode", 0) != 0 { throw fail("BatchNormalization \(label) is in training mode") }
                let spatial = try int("spatial", 1)
                let eps = try float("epsilon", 1e-5)
                guard eps >= 0 else { throw fail("BatchNormalization \(label): epsilon \(eps)") }
                let c = try channels(x)
                var params: [ONNXTensor] = []
                for (i, what) in ["scale", "bias", "mean", "variance"].enumerated() {
                    let t = try required(i + 1, what)
                    // spatial = 1 (and opset ≥ 9): (C). spatial = 0: (C, D1, …) — per channel only when the value
                    // has one element per channel, where every layout of C values means the same.
                    let squeezed = t.dims.filter { $0 != 1 }
                    let perChannel = t.count == c && (squeezed == [c] || c == 1) && t.dims.count <= 4
                    guard perChannel else {
                        if spatial == 0 && t.count == xs.count && xs.h * xs.w > 1 {
                            throw fail("BatchNormalization \(label) (spatial = 0) normalises each of \(xs.c)x\(xs.h)x\(xs.w) elements separately; only per-channel batch norms are supported")
                        }
                        throw wrong("BatchNormalization \(label): \(what) \(t.name) has shape \(t.dims), expected [\(c)]")
                    }
                    params.append(t)
                }
                let (gm, bt, mn, vr) = (lazy(params[0]), lazy(params[1]), lazy(params[2]), lazy(params[3]))
                let fold: () -> (scale: [Float], shift: [Float]) = {
                    batchNormScaleShift(gamma: gm(), beta: bt(), mean: mn(), variance: vr(), eps: eps, fixGamma: false)
                }
                emit(.affine(x: x.op, ChannelAffine(scale: { fold().scale }, shift: { fold().shift })), xs, rank: x.rank)
            case "PRelu":
                let x = try computed(0)
                let c = try channels(x), xs = shape(x.op)
                let t = try required(1, "slope")
                var slope = try perChannel(t, x)
                if slope == nil, x.rank == 4, t.dims == [c], xs.w != c || xs.h * xs.w == 1 {
                    slope = lazy(t)  // (C) on N×C×H×W: per channel, as MXNet exports mean it
                }
                guard let slope else { throw wrong("PRelu \(label): slope \(t.name) has shape \(t.dims); expected (C), (C,1,1) or (1,C,1,1) with C = \(c)") }
                emit(.prelu(x: x.op, slope: slope), xs, rank: x.rank)
            case "Add", "Sub", "Mul", "Div":
                guard node.inputs.count == 2, let s0 = syms[node.inputs[0]], let s1 = syms[node.inputs[1]] else {
                    throw fail("node \(label) (\(node.opType)) needs two defined inputs")
                }
                switch (s0, s1) {
                case let (.computed(a, ra), .computed(b, rb)):
                    guard node.opType == "Add" else { throw fail("node \(label): \(node.opType) of two computed values is not supported") }
                    guard shape(a) == shape(b), ra == rb else {
                        throw fail("node \(label): adding values of shapes \(shape(a)) and \(shape(b))")
                    }
                    emit(.add(a, b), shape(a), rank: ra)
                case let (.computed(a, ra), .constant(t)), let (.constant(t), .computed(a, ra)):
                    let constantFirst: Bool
                    if case .constant = s0 { constantFirst = true } else { constantFirst = false }
                    guard let type = t.dataType, type.isFloatingPoint else { throw wrong("node \(label): constant \(t.name) is not floating-point") }
                    if a == 0, g.ops.count == 1, node.opType != "Div" || !constantFirst, !(node.opType == "Sub" && constantFirst) {
                        // The graph's own preprocessing: (x - mean) * scale, built up step by step.
                        guard inputUses == 1 else { throw fail("the input is preprocessed by \(label) but also read elsewhere") }
                        guard let v = uniform(t) else { throw fail("node \(label): per-channel input normalisation (\(t.dims)) is not supported") }
                        switch node.opType {
                        case "Sub": mean += v / scale
                        case "Add": mean -= v / scale
                        case "Mul": scale *= v
                        default:
                            guard v != 0 else { throw fail("node \(label): division by zero") }
                            scale /= v
                        }
                        guard scale != 0, scale.isFinite, mean.isFinite else { throw fail("node \(label): degenerate input preprocessing") }
                        preprocessing = true
                        define(.computed(op: 0, rank: 4))
                        continue
                    }
                    guard let v = try perChannel(t, (a, ra)) else {
                        throw fail("node \(label): \(node.opType) with a constant of shape \(t.dims) on a value of shape \(shape(a)) is not per-channel")
                    }
                    let affine: ChannelAffine
                    switch (node.opType, constantFirst) {
                    case ("Add", _): affine = ChannelAffine(scale: nil, shift: v)
                    case ("Sub", false): affine = ChannelAffine(scale: nil, shift: { v().map { -$0 } })
                    case ("Sub", true):
                        let c = shape(a).c
                        affine = ChannelAffine(scale: { [Float](repeating: -1, count: c) }, shift: v)
                    case ("Mul", _): affine = ChannelAffine(scale: v, shift: nil)
                    case ("Div", false):
                        if let u = uniform(t), u == 0 { throw fail("node \(label): division by zero") }
                        affine = ChannelAffine(scale: { v().map { 1 / $0 } }, shift: nil)
                    default: throw fail("node \(label): dividing a constant by a computed value is not supported")
                    }
                    emit(.affine(x: a, affine), shape(a), rank: ra)
                default:
                    throw fail("node \(label): \(node.opType) of two constants is not supported (fold it before export)")
                }
            case "Flatten":
                let x = try computed(0)
                let axis = try int("axis", 1)
                guard axis == 1 || (x.rank == 2 && axis == -1) else { throw fail("Flatten \(label): axis \(axis) is not supported (only 1)") }
                define(.computed(op: x.op, rank: 2))
            case "Reshape":
                let x = try computed(0)
                let t = try required(1, "shape")
                let xs = shape(x.op)
                let current = x.rank == 4 ? [1, xs.c, xs.h, xs.w] : [1, xs.c * xs.h * xs.w]
                let allowZero = try int("allowzero", 0) != 0
                let raw = t.ints(bytes)
                guard raw.count <= 8, raw.allSatisfy({ $0 >= -1 && $0 <= 1 << 28 }) else { throw fail("Reshape \(label): target shape \(raw)") }
                var target = raw.map { Int($0) }
                for i in target.indices where target[i] == 0 && !allowZero {
                    guard i < current.count else { throw fail("Reshape \(label): 0 at axis \(i) past the input's rank") }
                    target[i] = current[i]
                }
                func product(_ v: [Int]) -> Int {  // saturating, so a hostile shape cannot overflow
                    v.reduce(1) { p, d in let (r, o) = p.multipliedReportingOverflow(by: d); return o ? Int.max : r }
                }
                let known = product(target.filter { $0 != -1 })
                if target.filter({ $0 == -1 }).count == 1, known > 0, xs.count % known == 0 {
                    target = target.map { $0 == -1 ? xs.count / known : $0 }
                }
                guard target.allSatisfy({ $0 >= 1 }), product(target) == xs.count else {
                    throw fail("Reshape \(label): \(t.ints(bytes)) does not fit a value of \(current)")
                }
                if target == [1, xs.count] {
                    define(.computed(op: x.op, rank: 2))
                } else if target == [1, xs.c, xs.h, xs.w] || (xs.h * xs.w == 1 && target == [1, xs.c, 1, 1]) {
                    define(.computed(op: x.op, rank: 4))
                } else {
                    throw fail("Reshape \(label) to \(target) is not supported (only flattening to (N, K) or keeping the shape)")
                }
            case "Gemm", "MatMul":
                let x = try computed(0)
                let xs = shape(x.op), inF = xs.count
                if x.rank == 4, node.opType == "MatMul" {
                    throw fail("MatMul \(label) on a 4-D value is not supported (flatten it first)")
                }
                let w = try required(1, "weight")
                let transA = try int("transA", 0), transB = node.opType == "Gemm" ? try int("transB", 0) : 0
                let alpha = try float("alpha", 1), beta = try float("beta", 1)
                guard transA == 0 else { throw fail("Gemm \(label): transA = 1 is not supported") }
                guard w.dims.count == 2 else { throw wrong("\(node.opType) \(label): weight \(w.name) has shape \(w.dims), expected 2 dimensions") }
                let outF = transB != 0 ? w.dims[0] : w.dims[1]
                let wIn = transB != 0 ? w.dims[1] : w.dims[0]
                guard wIn == inF, outF >= 1, outF <= 65_536 else {
                    throw wrong("\(node.opType) \(label): weight \(w.name) has shape \(w.dims) (transB \(transB)), the input has \(inF) features")
                }
                let wf = lazy(w)
                let weight: LazyFloats = transB != 0 ? (alpha == 1 ? wf : { wf().map { $0 * alpha } }) : {
                    let d = wf()
                    var out = [Float](repeating: 0, count: outF * inF)
                    for i in 0..<inF { for o in 0..<outF { out[o * inF + i] = d[i * outF + o] * alpha } }
                    return out
                }
                var bias: LazyFloats?
                if node.opType == "Gemm", let c = try constant(2, "bias") {
                    guard let v = vector(c, target: [1, outF], outF) else {
                        throw wrong("Gemm \(label): bias \(c.name) has shape \(c.dims), expected [\(outF)]")
                    }
                    bias = beta == 1 ? v : { v().map { $0 * beta } }
                }
                emit(.fullyConnected(x: x.op, weight: weight, bias: bias, outFeatures: outF), ValueShape(c: outF, h: 1, w: 1), rank: 2)
            default:
                throw fail("operator \(node.opType) (node \(label)) is not supported")
            }
        }

        guard let outName = graph.outputs.first?.name else { throw fail("the graph has no output") }
        guard let outSym = syms[outName], case let .computed(outOp, _) = outSym, outOp != 0 else {
            throw fail("the graph's output \(outName) is not computed from the input")
        }
        let os = g.shapes[outOp]
        guard os.h == 1, os.w == 1 else { throw fail("the output \(outName) is \(os.c)x\(os.h)x\(os.w), not an embedding vector") }

        // Family: depthwise/grouped convolutions mark MobileFaceNet; anything else is a generic ArcFace network.
        let grouped = g.ops.contains { if case let .conv(_, _, _, geo) = $0 { return geo.groups > 1 } else { return false } }
        let kind: ModelKind = grouped ? .mobileFaceNet : .arcface
        let name = grouped ? "MobileFaceNet" : String(fileStem.utf8.prefix(23)) ?? "ONNX"
        if !preprocessing { mean = 127.5; scale = 1 / 127.5 }
        return PlanFusion.plan(g, output: outOp, kind: kind, name: name.isEmpty ? "ONNX" : name, channelOrder: .rgb,
                               inputMean: mean, inputScale: scale)
    }
}
