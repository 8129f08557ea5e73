import FaceEmbed

// One handler per ONNX operator: it reads its node through the `ONNXContext` and emits fusion ops or defines its
// output as a value already known. Supporting a new operator is one entry in `handlers` and one function here.
//
// Identity, Dropout, Flatten and Reshape-to-(N, K) are views; Sub/Mul/Div/Add with a scalar on the input before
// anything else is computed are the graph's own preprocessing; BatchNormalization and Add/Sub/Mul/Div with a
// per-channel constant are per-channel affine maps; Gemm and MatMul with a constant weight are fully connected layers.
//
// Export quirks accepted: PRelu slopes of shape (C), (C, 1, 1) or (1, C, 1, 1) (a (C) slope on a 4-D input is
// per-channel, as MXNet meant it, although ONNX broadcasting would align it with W); BatchNormalization with
// `spatial` 0 or 1 (opset < 9); Gemm on a 4-D input (flattened, as MXNet's FullyConnected does); Gemm transB 0 or 1.

extension ONNXImporter {
    /// The handler of each supported operator (default domain).
    static let handlers: [String: Handler] = recognitionHandlers.merging(shapeHandlers) { a, _ in a }
        .merging(detectionHandlers) { a, _ in a }

    /// The operators of recognition networks.
    private static let recognitionHandlers: [String: Handler] = [
        "Identity": view, "Dropout": dropout, "Constant": constant, "Conv": conv, "BatchNormalization": batchNorm,
        "PRelu": prelu, "Add": arithmetic, "Sub": arithmetic, "Mul": arithmetic, "Div": arithmetic, "Flatten": flatten,
        "Reshape": reshape, "Gemm": gemm, "MatMul": gemm,
    ]

    // MARK: Views and constants

    /// Identity: its output is its input.
    private static func view(_ c: inout ONNXContext) throws(FaceEmbedError) {
        guard let first = c.node.inputs.first, let v = c.values[first] else {
            throw c.fail("\(c.described) has no defined input")
        }
        c.define(v)
    }

    /// Dropout at inference is a view; in training mode it is refused.
    private static func dropout(_ c: inout ONNXContext) throws(FaceEmbedError) {
        if c.node.inputs.count >= 3, let t = try c.constant(2, "shape"), t.ints(c.model.bytes).first ?? 0 != 0 {
            throw c.fail("node \(c.label): Dropout in training mode")
        }
        try view(&c)
    }

    private static func constant(_ c: inout ONNXContext) throws(FaceEmbedError) {
        let a = c.node.attributes
        func tensor(_ dims: [Int], _ type: ElementType, _ storage: ONNXTensor.Storage) -> ONNXTensor {
            ONNXTensor(name: "", dims: dims, dataTypeCode: type.rawValue, storage: storage)
        }
        let t: ONNXTensor
        switch (a["value"], a["value_float"], a["value_floats"], a["value_int"], a["value_ints"]) {
        case let (.tensor(v)?, _, _, _, _): t = v
        case let (_, .float(v)?, _, _, _): t = tensor([], .float, .floats([v]))
        case let (_, _, .floats(v)?, _, _): t = tensor([v.count], .float, .floats(v))
        case let (_, _, _, .int(v)?, _): t = tensor([], .int64, .ints([v]))
        case let (_, _, _, _, .ints(v)?): t = tensor([v.count], .int64, .ints(v))
        default: throw c.fail("node \(c.label): Constant without a supported value attribute")
        }
        c.define(.constant(t))
    }

    private static func flatten(_ c: inout ONNXContext) throws(FaceEmbedError) {
        let x = try c.computed(0)
        let axis = try c.int("axis", 1)
        guard axis == 1 || (x.rank == 2 && axis == -1) else {
            throw c.fail("Flatten \(c.label): axis \(axis) is not supported (only 1)")
        }
        c.define(.computed(ONNXActivation(op: x.op, rank: 2)))
    }

    /// Reshape to (N, K) flattens; to the same N × C × H × W shape it is a view; an NHWC view to (N, rows, k) is a
    /// detector head's rows; anything else is refused.
    private static func reshape(_ c: inout ONNXContext) throws(FaceEmbedError) {
        let x = try c.computed(0, views: true), t = try c.required(1, "shape"), xs = c.shape(x)
        let target = try reshapeTarget(c, t, x)
        if x.view == .nhwc { return try reshapeRows(&c, x, target: target) }
        guard x.view == .plain else { throw c.fail("Reshape \(c.label) of a detector head's rows is not supported") }
        if target == [1, xs.count] {
            c.define(.computed(ONNXActivation(op: x.op, rank: 2)))
        } else if target == [1, xs.c, xs.h, xs.w] || (xs.h * xs.w == 1 && target == [1, xs.c, 1, 1]) {
            c.define(.computed(ONNXActivation(op: x.op, rank: 4)))
        } else {
            throw c.fail(
                "Reshape \(c.label) to \(target) is not supported "
                    + "(only flattening to (N, K) or keeping the shape)")
        }
    }

    /// The target shape of a Reshape with its 0s (copy an input dimension) and -1 (the rest) resolved.
    private static func reshapeTarget(
        _ c: ONNXContext, _ t: ONNXTensor,
        _ x: ONNXActivation
    ) throws(FaceEmbedError) -> [Int] {
        let xs = c.shape(x), current = c.dims(x)
        let allowZero = try c.int("allowzero", 0) != 0
        let raw = t.ints(c.model.bytes)
        guard raw.count <= 8, raw.allSatisfy({ $0 >= -1 && $0 <= 1 << 28 }) else {
            throw c.fail("Reshape \(c.label): target shape \(raw)")
        }
        var target = raw.map { Int($0) }
        for i in target.indices where target[i] == 0 && !allowZero {
            guard i < current.count else { throw c.fail("Reshape \(c.label): 0 at axis \(i) past the input's rank") }
            target[i] = current[i]
        }
        func product(_ v: [Int]) -> Int {  // saturating, so a hostile shape cannot overflow
            v.reduce(1) { p, d in
                let (r, o) = p.multipliedReportingOverflow(by: d); return o ? Int.max : r
            }
        }
        let known = product(target.filter { $0 != -1 })
        if target.filter({ $0 == -1 }).count == 1, known > 0, xs.count % known == 0 {
            target = target.map { $0 == -1 ? xs.count / known : $0 }
        }
        guard target.allSatisfy({ $0 >= 1 }), product(target) == xs.count else {
            throw c.fail("Reshape \(c.label): \(raw) does not fit a value of \(current)")
        }
        return target
    }

    // MARK: Convolution

    private static func conv(_ c: inout ONNXContext) throws(FaceEmbedError) {
        let x = try c.computed(0)
        guard x.rank == 4 else { throw c.fail("node \(c.label): Conv on a rank-\(x.rank) value") }
        let xs = c.shape(x), w = try c.required(1, "weight"), groups = try c.int("group", 1)
        guard w.dims.count == 4 else {
            throw c.wrong("Conv \(c.label): weight \(w.name) has shape \(w.dims), expected 4 dimensions")
        }
        let kernel = try c.ints("kernel_shape") ?? [w.dims[2], w.dims[3]]
        let strides = try c.ints("strides") ?? [1, 1], dilations = try c.ints("dilations") ?? [1, 1]
        let pads = try c.ints("pads") ?? [0, 0, 0, 0]
        guard kernel.count == 2, strides.count == 2, pads.count == 4, dilations == [1, 1] else {
            throw c.fail(
                "Conv \(c.label): only 2-D convolutions without dilation are supported (kernel \(kernel), "
                    + "strides \(strides), pads \(pads), dilations \(dilations))")
        }
        let pad = try symmetricPads(c, pads, kernel: kernel, strides: strides, input: xs)
        let g = try convGeometry(
            input: xs, filters: w.dims[0], kernel: kernel, stride: strides, pad: pad,
            groups: groups
        ) { c.fail("Conv \(c.label): \($0)") }
        let needed = [g.outC, xs.c / groups, kernel[0], kernel[1]]
        guard w.dims == needed else {
            throw c.wrong("Conv \(c.label): weight \(w.name) has shape \(w.dims), the graph needs \(needed)")
        }
        let b = try c.constant(2, "bias")
        if let b, b.count != g.outC || b.dims.count != 1 {
            throw c.wrong("Conv \(c.label): bias \(b.name) has shape \(b.dims), expected [\(g.outC)]")
        }
        c.emit(
            .conv(x: x.op, weight: c.lazy(w), bias: b.map(c.lazy), geometry: g),
            ValueShape(c: g.outC, h: g.outH, w: g.outW), rank: 4)
    }

    /// The (height, width) padding after `auto_pad`; padding that differs between the two sides is refused.
    private static func symmetricPads(
        _ c: ONNXContext, _ explicit: [Int], kernel: [Int], strides: [Int],
        input xs: ValueShape
    ) throws(FaceEmbedError) -> [Int] {
        var pads = explicit
        switch c.node.attributes["auto_pad"] {
        case nil, .string("NOTSET")?, .string("")?: break
        case .string("VALID")?: pads = [0, 0, 0, 0]
        case let .string(mode)? where mode == "SAME_UPPER" || mode == "SAME_LOWER":
            var p: [Int] = []
            for (n, (k, s)) in zip([xs.h, xs.w], zip(kernel, strides)) {
                let total = max(0, ((n + s - 1) / max(s, 1) - 1) * s + k - n)
                guard total % 2 == 0 else {
                    throw c.fail("Conv \(c.label): auto_pad \(mode) needs asymmetric padding, which is not supported")
                }
                p.append(total / 2)
            }
            pads = [p[0], p[1], p[0], p[1]]
        case let .string(mode)?: throw c.fail("Conv \(c.label): auto_pad \(mode) is not supported")
        default: throw c.fail("Conv \(c.label): auto_pad is not a string")
        }
        guard pads[0] == pads[2], pads[1] == pads[3] else {
            throw c.fail("Conv \(c.label): asymmetric padding \(pads) is not supported")
        }
        return [pads[0], pads[1]]
    }

    // MARK: Per-channel maps

    private static func batchNorm(_ c: inout ONNXContext) throws(FaceEmbedError) {
        let x = try c.computed(0)
        if try c.int("training_mode", 0) != 0 { throw c.fail("BatchNormalization \(c.label) is in training mode") }
        let spatial = try c.int("spatial", 1), eps = try c.float("epsilon", 1e-5)
        guard eps >= 0 else { throw c.fail("BatchNormalization \(c.label): epsilon \(eps)") }
        var params: [LazyFloats] = []
        for (i, what) in ["scale", "bias", "mean", "variance"].enumerated() {
            params.append(c.lazy(try batchNormParameter(c, i + 1, what, of: x, spatial: spatial)))
        }
        let (gm, bt, mn, vr) = (params[0], params[1], params[2], params[3])
        let fold: () -> (scale: [Float], shift: [Float]) = {
            batchNormScaleShift(gamma: gm(), beta: bt(), mean: mn(), variance: vr(), eps: eps, fixGamma: false)
        }
        let affine = ChannelAffine(scale: { fold().scale }, shift: { fold().shift })
        c.emit(.affine(x: x.op, affine), c.shape(x), rank: x.rank)
    }

    /// Input `i` of a batch norm, which must hold one value per channel. With spatial = 1 (and opset ≥ 9) it is
    /// (C); with spatial = 0 it is (C, D1, …), per channel only when the value has one element per channel, where
    /// every layout of C values means the same.
    private static func batchNormParameter(
        _ c: ONNXContext, _ i: Int, _ what: String, of x: ONNXActivation,
        spatial: Int
    ) throws(FaceEmbedError) -> ONNXTensor {
        let channels = try c.channels(x), xs = c.shape(x), t = try c.required(i, what)
        let squeezed = t.dims.filter { $0 != 1 }
        guard t.count == channels, squeezed == [channels] || channels == 1, t.dims.count <= 4 else {
            if spatial == 0 && t.count == xs.count && xs.h * xs.w > 1 {
                throw c.fail(
                    "BatchNormalization \(c.label) (spatial = 0) normalises each of \(xs.c)x\(xs.h)x\(xs.w) "
                        + "elements separately; only per-channel batch norms are supported")
            }
            throw c.wrong(
                "BatchNormalization \(c.label): \(what) \(t.name) has shape \(t.dims), "
                    + "expected [\(channels)]")
        }
        return t
    }

    private static func prelu(_ c: inout ONNXContext) throws(FaceEmbedError) {
        let x = try c.computed(0)
        let channels = try c.channels(x), xs = c.shape(x), t = try c.required(1, "slope")
        var slope = try c.perChannel(t, x)
        if slope == nil, x.rank == 4, t.dims == [channels], xs.w != channels || xs.h * xs.w == 1 {
            slope = c.lazy(t)  // (C) on N×C×H×W: per channel, as MXNet exports mean it
        }
        guard let slope else {
            throw c.wrong(
                "PRelu \(c.label): slope \(t.name) has shape \(t.dims); "
                    + "expected (C), (C,1,1) or (1,C,1,1) with C = \(channels)")
        }
        c.emit(.prelu(x: x.op, slope: slope), xs, rank: x.rank)
    }

    /// Add, Sub, Mul, Div: a residual add of two computed values, preprocessing of the input, or a per-channel map.
    private static func arithmetic(_ c: inout ONNXContext) throws(FaceEmbedError) {
        let op = c.node.opType
        guard c.node.inputs.count == 2, let v0 = c.values[c.node.inputs[0]], let v1 = c.values[c.node.inputs[1]] else {
            throw c.fail("\(c.described) needs two defined inputs")
        }
        switch (v0, v1) {
        case let (.computed(a), .computed(b)):
            guard op == "Add" else { throw c.fail("node \(c.label): \(op) of two computed values is not supported") }
            guard c.shape(a) == c.shape(b), a.rank == b.rank else {
                throw c.fail("node \(c.label): adding values of shapes \(c.shape(a)) and \(c.shape(b))")
            }
            c.emit(.add(a.op, b.op), c.shape(a), rank: a.rank)
        case let (.computed(x), .constant(t)): try withConstant(&c, x, t, constantFirst: false)
        case let (.constant(t), .computed(x)): try withConstant(&c, x, t, constantFirst: true)
        default: throw c.fail("node \(c.label): \(op) of two constants is not supported (fold it before export)")
        }
    }

    /// Arithmetic between computed value `x` and constant `t` (`t` the left operand if `constantFirst`).
    private static func withConstant(
        _ c: inout ONNXContext, _ x: ONNXActivation, _ t: ONNXTensor,
        constantFirst: Bool
    ) throws(FaceEmbedError) {
        let op = c.node.opType
        guard let type = t.dataType, type.isFloatingPoint else {
            throw c.wrong("node \(c.label): constant \(t.name) is not floating-point")
        }
        if x.op == 0, c.graph.ops.count == 1, !(constantFirst && (op == "Div" || op == "Sub")) {
            return try preprocess(&c, t)
        }
        guard let v = try c.perChannel(t, x) else {
            throw c.fail(
                "node \(c.label): \(op) with a constant of shape \(t.dims) on a value of shape \(c.shape(x)) "
                    + "is not per-channel")
        }
        let affine: ChannelAffine
        switch (op, constantFirst) {
        case ("Add", _): affine = ChannelAffine(scale: nil, shift: v)
        case ("Sub", false): affine = ChannelAffine(scale: nil, shift: { v().map { -$0 } })
        case ("Sub", true):
            let n = c.shape(x).c
            affine = ChannelAffine(scale: { [Float](repeating: -1, count: n) }, shift: v)
        case ("Mul", _): affine = ChannelAffine(scale: v, shift: nil)
        case ("Div", false):
            if let u = c.uniform(t), u == 0 { throw c.fail("node \(c.label): division by zero") }
            affine = ChannelAffine(scale: { v().map { 1 / $0 } }, shift: nil)
        default: throw c.fail("node \(c.label): dividing a constant by a computed value is not supported")
        }
        c.emit(.affine(x: x.op, affine), c.shape(x), rank: x.rank)
    }

    /// One step of the graph's own preprocessing, `(x − mean) · scale`, built up step by step on the input.
    private static func preprocess(_ c: inout ONNXContext, _ t: ONNXTensor) throws(FaceEmbedError) {
        guard c.inputUses == 1 else { throw c.fail("the input is preprocessed by \(c.label) but also read elsewhere") }
        guard let v = c.uniform(t) else {
            throw c.fail("node \(c.label): per-channel input normalisation (\(t.dims)) is not supported")
        }
        switch c.node.opType {
        case "Sub": c.preprocessing.subtract(v)
        case "Add": c.preprocessing.subtract(-v)
        case "Mul": c.preprocessing.multiply(v)
        default:
            guard v != 0 else { throw c.fail("node \(c.label): division by zero") }
            c.preprocessing.divide(v)
        }
        let p = c.preprocessing
        guard p.scale != 0, p.scale.isFinite, p.mean.isFinite else {
            throw c.fail("node \(c.label): degenerate input preprocessing")
        }
        c.define(.computed(ONNXActivation(op: 0, rank: 4)))
    }

    // MARK: Fully connected

    /// Gemm (transB 0 or 1, alpha, beta) or MatMul with a constant weight, on a flattened value.
    private static func gemm(_ c: inout ONNXContext) throws(FaceEmbedError) {
        let x = try c.computed(0), op = c.node.opType, inF = c.shape(x).count
        if x.rank == 4, op == "MatMul" {
            throw c.fail("MatMul \(c.label) on a 4-D value is not supported (flatten it first)")
        }
        let w = try c.required(1, "weight")
        let transA = try c.int("transA", 0), transB = op == "Gemm" ? try c.int("transB", 0) : 0
        let alpha = try c.float("alpha", 1), beta = try c.float("beta", 1)
        guard transA == 0 else { throw c.fail("Gemm \(c.label): transA = 1 is not supported") }
        guard w.dims.count == 2 else {
            throw c.wrong("\(op) \(c.label): weight \(w.name) has shape \(w.dims), expected 2 dimensions")
        }
        let outF = transB != 0 ? w.dims[0] : w.dims[1], wIn = transB != 0 ? w.dims[1] : w.dims[0]
        guard wIn == inF, outF >= 1, outF <= PlanLimits.maxChannels else {
            throw c.wrong(
                "\(op) \(c.label): weight \(w.name) has shape \(w.dims) (transB \(transB)), "
                    + "the input has \(inF) features")
        }
        let weight = gemmWeight(c.lazy(w), transposed: transB == 0, alpha: alpha, outF: outF, inF: inF)
        var bias: LazyFloats?
        if op == "Gemm", let t = try c.constant(2, "bias") {
            guard let v = c.vector(t, target: [1, outF], outF) else {
                throw c.wrong("Gemm \(c.label): bias \(t.name) has shape \(t.dims), expected [\(outF)]")
            }
            bias = beta == 1 ? v : { v().map { $0 * beta } }
        }
        c.emit(
            .fullyConnected(x: x.op, weight: weight, bias: bias, outFeatures: outF),
            ValueShape(c: outF, h: 1, w: 1), rank: 2)
    }

    /// The (out, in) weight times `alpha`, from a weight stored (out, in) or, if `transposed`, (in, out).
    private static func gemmWeight(
        _ w: @escaping LazyFloats, transposed: Bool, alpha: Float, outF: Int,
        inF: Int
    ) -> LazyFloats {
        guard transposed else { return alpha == 1 ? w : { w().map { $0 * alpha } } }
        return {
            let d = w()
            var out = [Float](repeating: 0, count: outF * inF)
            for i in 0..<inF { for o in 0..<outF { out[o * inF + i] = d[i * outF + o] * alpha } }
            return out
        }
    }
}
