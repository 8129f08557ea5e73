import FaceEmbed

// What every importer produces: a fused plan whose tensors are computed lazily, one at a time, when the flat file
// is written (so a 261 MB params file is never held twice), and the folding helpers the importers share.

/// A model ready to be written: its plan and, for each tensor, how to compute its float32 data.
struct ImportedModel {
    var plan: ModelPlan
    var produce: [() -> [Float]]
}

extension ImportedModel {
    /// The model with every non-depthwise convolution's weights lane-packed, as a flat file stores them.
    /// Must be applied once, to an importer's plan (whose convolution weights are OIHW).
    func lanePacked() -> ImportedModel {
        var out = self, packed = Set<Int>()
        for case let .convolution(c) in plan.layers where !c.geometry.isDepthwise && packed.insert(c.weight).inserted {
            let g = c.geometry, oihw = produce[c.weight]
            out.plan.tensors[c.weight].shape = g.storedWeightShape
            out.produce[c.weight] = { lanePackedWeights(oihw(), g) }
        }
        return out
    }
}

/// Folds MXNet batch-norm parameters into a per-channel scale and shift (`fixGamma` ignores `gamma`).
func batchNormScaleShift(gamma: [Float], beta: [Float], mean: [Float], variance: [Float], eps: Float,
                         fixGamma: Bool) -> (scale: [Float], shift: [Float]) {
    var scale = [Float](repeating: 0, count: beta.count), shift = scale
    for c in 0..<beta.count {
        let s = (fixGamma ? 1 : gamma[c]) / (variance[c] + eps).squareRoot()
        scale[c] = s
        shift[c] = beta[c] - mean[c] * s
    }
    return (scale, shift)
}
