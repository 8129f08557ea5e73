// Sibling convolutions: float32 convolutions that read the same input through the same window, run as one
// convolution over their concatenated output channels (SCRFD's three heads at each stride: 2 score, 8 box and 20
// landmark channels from one 64-channel map).
//
//   members j = 0 ..< n in plan order, outC_j channels each;  merged channel m = Σ_{i<j} outC_i + c  ⇔  member j's c
//   weights  lane-packed [blk][K][16] over Σ outC_j channels (WeightLayout.swift), built once when the network is
//   bias     the members' biases back to back                                             built, from the mapped ones
//   outputs  the members' values back to back in the arena (`Network.planArena`), so the merged output is one NCHW
//            tensor whose channel slices are the members' values: nothing is copied after the convolution.
//
// Why: apart, the heads run the narrow kernel at its FMA peak, but as three convolutions of the same input. Merged,
// they fill two Winograd blocks (30 of 32 lanes) and share one input transform, which does a third of the multiplies:
// at 640 × 640, 2.71 → 1.98 ms for the 80 × 80 heads and 0.89 → 0.47 ms at 40 × 40 on one thread.

/// A group of sibling convolutions and the one convolution that computes them all.
struct SiblingGroup {
    /// The members' plan layer indices, in plan order: the first runs `merged`, the others nothing.
    let layers: [Int]
    /// The members' output values, in the same order (laid out back to back in the arena).
    let outputs: [Int]
    /// The merged layer, its output the first member's value; `weight` and `bias` index the arrays below, counted
    /// from the plan's last tensor (`Network` appends them to its tensors).
    let merged: ConvLayer
    let weights: [Float]
    let bias: [Float]
}

/// The groups of sibling convolutions in `plan` worth merging: at least two members whose merged convolution runs
/// on the Winograd kernel. `tensor(i)` gives tensor i's floats; `tensorCount` is the plan's number of tensors.
func siblingGroups(_ plan: ModelPlan, tensorCount: Int, tensor: (Int) -> UnsafePointer<Float>) -> [SiblingGroup] {
    var byKey: [SiblingKey: [Int]] = [:]
    var order: [SiblingKey] = []
    for (i, layer) in plan.layers.enumerated() {
        guard case let .convolution(c) = layer, let key = SiblingKey(c) else { continue }
        if byKey[key] == nil { order.append(key) }
        byKey[key, default: []].append(i)
    }
    var groups: [SiblingGroup] = []
    for key in order {
        guard let layers = byKey[key], layers.count > 1 else { continue }
        let members = layers.map { i -> ConvLayer in
            guard case let .convolution(c) = plan.layers[i] else { preconditionFailure("not a convolution") }
            return c
        }
        var g = members[0].geometry
        g.outC = members.map(\.geometry.outC).reduce(0, +)
        guard ConvolutionKernel(g, inputAffine: false) == .winograd else { continue }
        let index = tensorCount + 2 * groups.count
        let merged = ConvLayer(
            input: members[0].input, output: members[0].output, geometry: g, weight: index, bias: index + 1)
        groups.append(
            SiblingGroup(
                layers: layers, outputs: members.map(\.output), merged: merged,
                weights: mergedWeights(members, k: g.k, merged: g, tensor: tensor),
                bias: members.flatMap { m in Array(UnsafeBufferPointer(start: tensor(m.bias), count: m.geometry.outC)) }
            ))
    }
    return groups
}

/// What siblings share: the input and every part of the geometry but the output channels. Only plain float32
/// convolutions (groups = 1, bias only) qualify.
private struct SiblingKey: Hashable {
    let input: Int
    let inC: Int, inH: Int, inW: Int, kH: Int, kW: Int, strideH: Int, strideW: Int, padH: Int, padW: Int

    init?(_ c: ConvLayer) {
        let g = c.geometry
        guard g.groups == 1, c.slope == nil, c.residual == nil, c.inputScale == nil, c.quantization == nil else {
            return nil
        }
        input = c.input
        inC = g.inC; inH = g.inH; inW = g.inW; kH = g.kH; kW = g.kW
        strideH = g.strideH; strideW = g.strideW; padH = g.padH; padW = g.padW
    }
}

/// The members' lane-packed weights re-packed over the merged channels; lanes past the last channel stay zero.
private func mergedWeights(
    _ members: [ConvLayer], k: Int, merged g: ConvGeometry, tensor: (Int) -> UnsafePointer<Float>
) -> [Float] {
    var w = [Float](repeating: 0, count: g.weightBlocks * k * weightLanes)
    var m = 0
    for member in members {
        let src = tensor(member.weight)
        for c in 0..<member.geometry.outC {
            let from = (c / weightLanes) * k * weightLanes + c % weightLanes
            let to = (m / weightLanes) * k * weightLanes + m % weightLanes
            for kk in 0..<k { w[to + kk * weightLanes] = src[from + kk * weightLanes] }
            m += 1
        }
    }
    return w
}
