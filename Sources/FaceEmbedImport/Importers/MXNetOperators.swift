import FaceEmbed

// One handler per MXNet operator: it reads its node through the `MXNetContext` and emits fusion ops or makes its
// value one already known. Supporting a new operator is one entry in `handlers` and one function here.

extension MXNetImporter {
    /// The handler of each supported operator (`null` is the input `data` or a parameter).
    static let handlers: [String: Handler] = [
        "null": variable, "_copy": view, "Dropout": view, "Flatten": view, "identity": view,
        "_minus_scalar": scalar, "_mul_scalar": scalar, "Convolution": convolution, "BatchNorm": batchNorm,
        "LeakyReLU": leakyReLU, "elemwise_add": add, "_Plus": add, "_plus": add, "broadcast_add": add,
        "FullyConnected": fullyConnected,
    ]

    /// The input `data` is value 0; other variables are parameters, read by the nodes that use them.
    private static func variable(_ c: inout MXNetContext) throws(FaceEmbedError) {
        guard c.node.name == "data" else { return }
        guard !c.sawInput else { throw c.fail("more than one input named data") }
        c.sawInput = true
        c.define(0)
    }

    /// Identities: the node's value is its input's.
    private static func view(_ c: inout MXNetContext) throws(FaceEmbedError) {
        c.define(try c.value())
    }

    /// `_minus_scalar` and `_mul_scalar` on the input: the model's own preprocessing.
    private static func scalar(_ c: inout MXNetContext) throws(FaceEmbedError) {
        let node = c.node
        guard try c.value() == 0, c.graph.ops.count == 1 else {
            throw c.fail("\(node.op) (\(node.name)) is supported only on the input")
        }
        let s = try node.float("scalar", default: .nan)
        guard s.isFinite else { throw c.fail("\(node.name) has no scalar") }
        if node.op == "_minus_scalar" {
            guard c.preprocessing.scale == 1 else {
                throw c.fail("_minus_scalar after _mul_scalar on the input is not supported")
            }
            c.preprocessing.subtract(s)
        } else {
            c.preprocessing.multiply(s)
        }
        c.define(0)
    }

    private static func convolution(_ c: inout MXNetContext) throws(FaceEmbedError) {
        let node = c.node, x = try c.value(), xs = c.graph.shapes[x]
        let kernel = try node.tuple("kernel", default: [0, 0]), stride = try node.tuple("stride", default: [1, 1])
        let pad = try node.tuple("pad", default: [0, 0]), dilate = try node.tuple("dilate", default: [1, 1])
        let filters = try node.int("num_filter", default: 0), groups = try node.int("num_group", default: 1)
        guard dilate == [1, 1] else { throw c.fail("\(node.name): dilated convolution is not supported") }
        guard (node.attrs["layout"] ?? "NCHW") == "NCHW" else {
            throw c.fail("\(node.name): only NCHW layout is supported")
        }
        let g = try convGeometry(
            input: xs, filters: filters, kernel: kernel, stride: stride, pad: pad,
            groups: groups
        ) { c.fail("\(node.name): convolution \($0)") }
        let w = try c.param(1, "weight", shape: [filters, xs.c / groups, kernel[0], kernel[1]])
        c.emit(
            .conv(x: x, weight: c.lazy(w), bias: try c.bias(filters), geometry: g),
            ValueShape(c: filters, h: g.outH, w: g.outW))
    }

    private static func batchNorm(_ c: inout MXNetContext) throws(FaceEmbedError) {
        let node = c.node, x = try c.value(), channels = [c.graph.shapes[x].c]
        guard try node.int("axis", default: 1) == 1 else { throw c.fail("\(node.name): BatchNorm axis must be 1") }
        let fixGamma = try node.bool("fix_gamma", default: true)
        let bn = BatchNormParams(
            gamma: fixGamma ? nil : try c.param(1, "gamma", shape: channels),
            beta: try c.param(2, "beta", shape: channels),
            mean: try c.param(3, "moving_mean", shape: channels),
            variance: try c.param(4, "moving_var", shape: channels),
            eps: try node.float("eps", default: 1e-3), fixGamma: fixGamma)
        guard bn.eps.isFinite, bn.eps >= 0 else {
            throw c.fail("\(node.name): BatchNorm eps \(bn.eps) is not a non-negative number")
        }
        if let ch = c.params.floats(bn.variance).firstIndex(where: { !($0 + bn.eps > 0) }) {
            throw c.wrong(
                "parameter \(bn.variance.name) of \(node.name): moving variance + eps is not positive "
                    + "at channel \(ch)")
        }
        let params = c.params
        let affine = ChannelAffine(scale: { bn.scaleShift(params).scale }, shift: { bn.scaleShift(params).shift })
        c.emit(.affine(x: x, affine), c.graph.shapes[x])
    }

    /// LeakyReLU with act_type prelu (the only kind insightface models use).
    private static func leakyReLU(_ c: inout MXNetContext) throws(FaceEmbedError) {
        let node = c.node
        guard node.attrs["act_type"] == "prelu" else {
            let kind = node.attrs["act_type"] ?? "leaky"
            throw c.fail("\(node.name): LeakyReLU act_type \(kind) is not supported (only prelu)")
        }
        let x = try c.value()
        let slope = try c.param(1, "gamma", shape: [c.graph.shapes[x].c])
        c.emit(.prelu(x: x, slope: c.lazy(slope)), c.graph.shapes[x])
    }

    private static func add(_ c: inout MXNetContext) throws(FaceEmbedError) {
        let node = c.node
        guard node.inputs.count == 2, let a = c.valueOf[node.inputs[0]], let b = c.valueOf[node.inputs[1]] else {
            throw c.fail("\(node.name): add needs two computed inputs")
        }
        guard c.graph.shapes[a] == c.graph.shapes[b] else {
            throw c.fail("\(node.name): adding shapes \(c.graph.shapes[a]) and \(c.graph.shapes[b])")
        }
        c.emit(.add(a, b), c.graph.shapes[a])
    }

    private static func fullyConnected(_ c: inout MXNetContext) throws(FaceEmbedError) {
        let node = c.node, x = try c.value()
        let hidden = try node.int("num_hidden", default: 0)
        guard hidden >= 1, hidden <= PlanLimits.maxChannels, try node.bool("flatten", default: true) else {
            throw c.fail("\(node.name): FullyConnected num_hidden \(hidden) / flatten is not supported")
        }
        let w = try c.param(1, "weight", shape: [hidden, c.graph.shapes[x].count])
        c.emit(
            .fullyConnected(x: x, weight: c.lazy(w), bias: try c.bias(hidden), outFeatures: hidden),
            ValueShape(c: hidden, h: 1, w: 1))
    }
}

/// MXNet's BatchNorm parameters for one node.
private struct BatchNormParams {
    var gamma: MXNetArray?, beta: MXNetArray, mean: MXNetArray, variance: MXNetArray
    var eps: Float, fixGamma: Bool

    /// The per-channel scale and shift (gamma taken as 1 under fix_gamma).
    func scaleShift(_ p: MXNetParams) -> (scale: [Float], shift: [Float]) {
        let beta = p.floats(self.beta)
        return batchNormScaleShift(
            gamma: gamma.map { p.floats($0) } ?? [Float](repeating: 1, count: beta.count),
            beta: beta, mean: p.floats(mean), variance: p.floats(variance), eps: eps,
            fixGamma: fixGamma)
    }
}
