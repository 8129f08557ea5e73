import FaceEmbed
// Fusion of an interpreted graph into `ModelPlan` layers, independent of the source format (used by the ONNX
// importer; the same rules MXNetImport applies to MXNet graphs, written over lazily computed tensors):
//
// Each convolution or fully connected op starts a chain that absorbs what follows it while the value in between has
// no other consumer: per-channel affine maps (batch norms, constant Mul/Add/Sub; folded into weights and bias,
// exact), then one PReLU, then one residual add (given to the operand computed last, so the other is ready).
// A standalone affine whose only consumer is a groups = 1 convolution or a fully connected layer becomes that
// layer's input affine (exact: the convolution applies it to in-bounds taps only). A PReLU after a standalone affine
// joins it. Everything else stays a standalone layer. Layers are emitted in the order of their chains' first ops;
// tensor data stays lazy (`ImportedModel.produce`).

/// Float data computed on demand (when the flat file is written).
typealias LazyFloats = () -> [Float]

/// A per-channel affine map `y = x · scale[c] + shift[c]`; a missing scale is 1, a missing shift 0.
struct ChannelAffine {
    var scale: LazyFloats?
    var shift: LazyFloats?
}

/// One op of an interpreted graph. Values are numbered by op; op 0 is the input.
enum FusionOp {
    case input
    /// OIHW weight; bias per output channel.
    case conv(x: Int, weight: LazyFloats, bias: LazyFloats?, geometry: ConvGeometry)
    case affine(x: Int, ChannelAffine)
    case prelu(x: Int, slope: LazyFloats)
    case add(Int, Int)
    /// Weight `(out, in)` over the row-major flattened input.
    case fullyConnected(x: Int, weight: LazyFloats, bias: LazyFloats?, outFeatures: Int)

    var inputs: [Int] {
        switch self {
        case .input: return []
        case let .conv(x, _, _, _), let .affine(x, _), let .prelu(x, _), let .fullyConnected(x, _, _, _): return [x]
        case let .add(a, b): return [a, b]
        }
    }
}

/// Interpreted ops with each op's output shape and a name for its tensors.
struct FusionGraph {
    var ops: [FusionOp] = [.input]
    var shapes: [ValueShape] = [modelInputShape]
    var names: [String] = ["input"]
    /// Adds an op; returns its value number.
    mutating func append(_ op: FusionOp, _ shape: ValueShape, _ name: String) -> Int {
        ops.append(op); shapes.append(shape); names.append(name)
        return ops.count - 1
    }
}

enum PlanFusion {
    private final class Chain {
        let head: Int
        var post: [ChannelAffine] = []
        var pre: ChannelAffine?
        var slope: LazyFloats?
        var residual: Int?
        var last: Int
        init(head: Int) { self.head = head; last = head }
    }

    /// Fuses `graph` (whose op `output` is the embedding) into a plan with the given header facts.
    static func plan(_ graph: FusionGraph, output outOp: Int, kind: ModelKind, name: String, channelOrder: ChannelOrder,
                     inputMean: Float, inputScale: Float) -> ImportedModel {
        let raw = graph.ops, shapes = graph.shapes
        var consumers = [Int](repeating: 0, count: raw.count)
        var consumer = [Int](repeating: -1, count: raw.count)
        for (i, op) in raw.enumerated() { for x in op.inputs { consumers[x] += 1; consumer[x] = i } }
        consumers[outOp] += 1
        var chainOf = [Chain?](repeating: nil, count: raw.count)
        var absorbed = [Bool](repeating: false, count: raw.count)
        var standaloneSlope = [LazyFloats?](repeating: nil, count: raw.count)
        var redirect = [Int: Int]()
        var preFolded = [Bool](repeating: false, count: raw.count)
        func open(_ x: Int) -> Chain? {
            guard let c = chainOf[x], c.last == x, consumers[x] == 1 else { return nil }
            return c
        }
        for (i, op) in raw.enumerated() {
            switch op {
            case .input: break
            case .conv, .fullyConnected: chainOf[i] = Chain(head: i)
            case let .affine(x, a):
                if let c = open(x), c.slope == nil, c.residual == nil {
                    c.post.append(a); c.last = i; chainOf[i] = c; absorbed[i] = true
                }
            case let .prelu(x, slope):
                // Only convolutions have a PReLU epilogue; after a fully connected layer it stays standalone.
                if let c = open(x), c.slope == nil, c.residual == nil, case .conv = raw[c.head] {
                    c.slope = slope; c.last = i; chainOf[i] = c; absorbed[i] = true
                } else if case .affine = raw[x], !absorbed[x], consumers[x] == 1, standaloneSlope[x] == nil {
                    standaloneSlope[x] = slope; absorbed[i] = true; redirect[i] = x
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
        // Standalone affines whose only consumer is a groups = 1 convolution or a fully connected layer.
        for (i, op) in raw.enumerated() {
            guard case let .affine(_, a) = op, !absorbed[i], standaloneSlope[i] == nil, consumers[i] == 1, i != outOp,
                  consumer[i] >= 0, let c = chainOf[consumer[i]], c.head == consumer[i], c.pre == nil else { continue }
            switch raw[c.head] {
            case let .conv(_, _, _, g) where g.groups == 1: break
            case .fullyConnected: break
            default: continue
            }
            c.pre = a; absorbed[i] = true; preFolded[i] = true
        }

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
            if preFolded[x], case let .affine(ax, _) = raw[x] { return valueOf[ax] }
            return valueOf[redirect[x] ?? x]
        }
        func scaleShift(_ a: ChannelAffine, _ n: Int) -> (scale: [Float], shift: [Float]) {
            (a.scale?() ?? [Float](repeating: 1, count: n), a.shift?() ?? [Float](repeating: 0, count: n))
        }
        for (i, op) in raw.enumerated() {
            let label = graph.names[i]
            switch op {
            case .input: continue
            case let .conv(x, w, b, g):
                let c = chainOf[i]!
                let post = c.post, pre = c.pre
                let weight = tensor("\(label).weight", [g.outC, g.inC / g.groups, g.kH, g.kW]) {
                    var data = w()
                    let per = data.count / g.outC
                    for a in post {
                        guard let s = a.scale?() else { continue }
                        for oc in 0..<g.outC { for j in 0..<per { data[oc * per + j] *= s[oc] } }
                    }
                    return data
                }
                let bias = tensor("\(label).bias", [g.outC]) {
                    var data = b?() ?? [Float](repeating: 0, count: g.outC)
                    for a in post {
                        let (s, t) = scaleShift(a, g.outC)
                        for oc in 0..<g.outC { data[oc] = data[oc] * s[oc] + t[oc] }
                    }
                    return data
                }
                let slope = c.slope.map { s in tensor("\(label).prelu", [g.outC]) { s() } }
                var inScale: Int?, inShift: Int?
                if let pre {
                    inScale = tensor("\(label).input_scale", [g.inC]) { scaleShift(pre, g.inC).scale }
                    inShift = tensor("\(label).input_shift", [g.inC]) { scaleShift(pre, g.inC).shift }
                }
                values.append(shapes[c.last])
                let out = values.count - 1
                layers.append(.convolution(ConvLayer(input: resolved(x), output: out, geometry: g, weight: weight, bias: bias,
                                                     slope: slope, residual: c.residual.map { resolved($0) },
                                                     inputScale: inScale, inputShift: inShift)))
                valueOf[i] = out; valueOf[c.last] = out
            case let .fullyConnected(x, w, b, outF):
                let c = chainOf[i]!
                let inF = shapes[x].count, plane = shapes[x].h * shapes[x].w, inC = shapes[x].c
                let post = c.post, pre = c.pre
                // Both folds need the unscaled weights, so the bias is computed from them first.
                let bias = tensor("\(label).bias", [outF]) {
                    var data = b?() ?? [Float](repeating: 0, count: outF)
                    if let pre, pre.shift != nil {
                        let wd = w(), t = scaleShift(pre, inC).shift
                        for o in 0..<outF {
                            var s: Double = 0
                            for j in 0..<inF { s += Double(wd[o * inF + j]) * Double(t[j / plane]) }
                            data[o] += Float(s)
                        }
                    }
                    for a in post {
                        let (s, t) = scaleShift(a, outF)
                        for o in 0..<outF { data[o] = data[o] * s[o] + t[o] }
                    }
                    return data
                }
                let weight = tensor("\(label).weight", [outF, inF]) {
                    var data = w()
                    if let s = pre?.scale?() {
                        for o in 0..<outF { for j in 0..<inF { data[o * inF + j] *= s[j / plane] } }
                    }
                    for a in post {
                        guard let s = a.scale?() else { continue }
                        for o in 0..<outF { for j in 0..<inF { data[o * inF + j] *= s[o] } }
                    }
                    return data
                }
                values.append(shapes[c.last])
                let out = values.count - 1
                layers.append(.fullyConnected(FullyConnectedLayer(input: resolved(x), output: out, weight: weight, bias: bias,
                                                                  inFeatures: inF, outFeatures: outF)))
                valueOf[i] = out; valueOf[c.last] = out
            case let .affine(x, a):
                guard !absorbed[i] else { continue }
                let n = shapes[x].c
                let sc = a.scale.map { s in tensor("\(label).scale", [n]) { s() } }
                let sh = a.shift.map { s in tensor("\(label).shift", [n]) { s() } }
                let slope = standaloneSlope[i].map { s in tensor("\(label).prelu", [n]) { s() } }
                values.append(shapes[i])
                layers.append(.affine(AffineLayer(input: resolved(x), output: values.count - 1, scale: sc, shift: sh, slope: slope)))
                valueOf[i] = values.count - 1
            case let .prelu(x, s):
                guard !absorbed[i] else { continue }
                let slope = tensor("\(label).prelu", [shapes[x].c]) { s() }
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
        let plan = ModelPlan(kind: kind, name: name, channelOrder: channelOrder, inputMean: inputMean, inputScale: inputScale,
                             values: values, layers: layers, tensors: tensors, output: resolved(outOp))
        return ImportedModel(plan: plan, produce: produce)
    }
}
