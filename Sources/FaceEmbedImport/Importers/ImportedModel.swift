import FaceEmbed

// What the importers share: the interpreted graph they build (`FusionGraph`, fused by `PlanFusion`), the input
// preprocessing a graph may carry, and what they produce: a fused plan whose tensors are computed lazily, one at a
// time, when the flat file is written (so a 261 MB params file is never held twice). The geometry bounds they check
// are FaceEmbed's `PlanLimits`, which the flat file reader checks too.

/// Float data computed on demand (when the flat file is written).
typealias LazyFloats = () -> [Float]

/// A model ready to be written: its plan and, for each tensor, how to compute its float32 data.
struct ImportedModel {
    var plan: ModelPlan
    var produce: [LazyFloats]
}

extension ImportedModel {
    /// The model with every non-depthwise convolution's weights lane-packed, as a flat file stores them.
    /// Must be applied once, to an importer's plan (whose convolution weights are OIHW).
    func lanePacked() -> ImportedModel {
        var out = self, packed = Set<Int>()
        for case let .convolution(c) in plan.layers
        where !c.geometry.isDepthwise && c.quantization == nil && packed.insert(c.weight).inserted {
            let g = c.geometry, oihw = produce[c.weight]
            out.plan.tensors[c.weight].shape = g.storedWeightShape
            out.produce[c.weight] = { lanePackedWeights(oihw(), g) }
        }
        return out
    }
}

/// A per-channel affine map `y = x · scale[c] + shift[c]`; a missing scale is 1, a missing shift 0.
struct ChannelAffine {
    var scale: LazyFloats?
    var shift: LazyFloats?

    /// Both vectors for `n` channels, the missing ones filled in.
    func values(_ n: Int) -> (scale: [Float], shift: [Float]) {
        (scale?() ?? [Float](repeating: 1, count: n), shift?() ?? [Float](repeating: 0, count: n))
    }
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
    /// Nearest 2× upsampling.
    case upsample(x: Int)
    case sigmoid(x: Int)

    var inputs: [Int] {
        switch self {
        case .input: return []
        case let .conv(x, _, _, _), let .affine(x, _), let .prelu(x, _), let .fullyConnected(x, _, _, _): return [x]
        case let .upsample(x), let .sigmoid(x): return [x]
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

/// A graph's own input preprocessing, `(pixel − mean) · scale`, built up from scalar arithmetic on the input.
struct InputPreprocessing {
    var mean: Float = 0, scale: Float = 1
    /// Whether the graph had any.
    var isPresent = false

    /// Applies `x − v` after the steps so far.
    mutating func subtract(_ v: Float) { mean += v / scale; isPresent = true }
    /// Applies `x · v` after the steps so far.
    mutating func multiply(_ v: Float) { scale *= v; isPresent = true }
    /// Applies `x / v` after the steps so far.
    mutating func divide(_ v: Float) { scale /= v; isPresent = true }
}

/// The geometry of a convolution read from a model, or an error (`fail`) naming what does not fit `PlanLimits` or
/// the input. `kernel`, `stride` and `pad` are (height, width).
func convGeometry(
    input x: ValueShape, filters: Int, kernel: [Int], stride: [Int], pad: [Int], groups: Int,
    fail: (String) -> FaceEmbedError
) throws(FaceEmbedError) -> ConvGeometry {
    guard
        let g = ConvGeometry.checked(
            inC: x.c, inH: x.h, inW: x.w, outC: filters, kH: kernel[0], kW: kernel[1],
            strideH: stride[0], strideW: stride[1], padH: pad[0], padW: pad[1],
            groups: groups)
    else {
        throw fail(
            "kernel \(kernel), stride \(stride), pad \(pad), \(filters) filters in \(groups) groups "
                + "do not fit a \(x.c)x\(x.h)x\(x.w) input (FaceEmbed runs kernels up to \(PlanLimits.maxKernel), "
                + "strides up to \(PlanLimits.maxStride), pads up to \(PlanLimits.maxPad))")
    }
    return g
}

/// Folds batch-norm parameters into a per-channel scale and shift (`fixGamma` ignores `gamma`, as MXNet's
/// `fix_gamma` does).
func batchNormScaleShift(
    gamma: [Float], beta: [Float], mean: [Float], variance: [Float], eps: Float,
    fixGamma: Bool
) -> (scale: [Float], shift: [Float]) {
    var scale = [Float](repeating: 0, count: beta.count), shift = scale
    for c in 0..<beta.count {
        let s = (fixGamma ? 1 : gamma[c]) / (variance[c] + eps).squareRoot()
        scale[c] = s
        shift[c] = beta[c] - mean[c] * s
    }
    return (scale, shift)
}

/// The error text for the operators of a graph that no handler knows, listed together with the first node of each,
/// or nil when every operator is known. `unknown` holds (operator, node) pairs in graph order.
func unsupportedOperatorsMessage(
    _ unknown: [(op: String, node: String)], format: String,
    supported: some Sequence<String>
) -> String? {
    guard !unknown.isEmpty else { return nil }
    let nodes = Dictionary(grouping: unknown, by: \.op)
    let list = nodes.keys.sorted().map { op in
        let n = nodes[op]!
        return "\(op) (\(n.count == 1 ? "node" : "\(n.count) nodes, first") \(n[0].node))"
    }
    return "unsupported \(format) operator\(nodes.count == 1 ? "" : "s"): \(list.joined(separator: ", ")); "
        + "FaceEmbed supports \(supported.sorted().joined(separator: ", "))"
}
