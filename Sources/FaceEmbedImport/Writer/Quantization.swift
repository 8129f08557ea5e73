import FaceEmbed

// Int8 conversion (`ModelConverter`'s `precision: .int8`): every convolution with groups = 1 and every fully
// connected layer gets int8 weights, one scale per output channel, in the layout of FaceEmbed's Plan/QuantizedPlan.swift,
// and 8-bit activations quantized at run time. Depthwise convolutions stay float32: the integer kernels need
// groups = 1, and they are 4.5 % of MobileFaceNet's multiply-adds (none of LResNet's).

extension ImportedModel {
    /// The model with its convolutions (groups = 1) and fully connected layers quantized. Must be applied to an
    /// importer's plan (OIHW weights), before `lanePacked`, which then leaves the quantized weights alone.
    func quantized() -> ImportedModel {
        var out = self, scales: [Int: Int] = [:]
        for (i, layer) in plan.layers.enumerated() {
            switch layer {
            case var .convolution(c) where c.geometry.groups == 1:
                c.quantization = out.quantize(c.weight, rows: (c.geometry.outC, c.geometry.k), &scales)
                out.plan.layers[i] = .convolution(c)
            case var .fullyConnected(f):
                f.quantization = out.quantize(f.weight, rows: (f.outFeatures, f.inFeatures), &scales)
                out.plan.layers[i] = .fullyConnected(f)
            default:
                continue
            }
        }
        return out
    }

    /// Turns weight tensor `w` (once, however many layers share it) into int8 and adds its scales tensor.
    private mutating func quantize(_ w: Int, rows: (outC: Int, k: Int), _ scales: inout [Int: Int]) -> LayerQuantization
    {
        if let s = scales[w] { return LayerQuantization(scales: s, activations: .int8) }
        let source = produce[w], name = plan.tensors[w].name, (outC, k) = rows
        plan.tensors[w] = TensorInfo(name: name, shape: quantizedWeightShape(outC: outC, k: k), elementType: .int8)
        // The writer asks for the weights before the scales (appended last): the weights' quantization keeps its
        // scales for then, so the source (a batch norm folded on the fly) is produced and quantized once. A
        // non-finite weight gets zero int8 weights and NaN scales, which the writer refuses, naming the tensor.
        let pending = PendingScales()
        let quantize = { () -> (values: [Int8], scales: [Float]) in
            let data = source()
            guard data.allSatisfy(\.isFinite) else {
                return ([Int8](repeating: 0, count: outC * k), [Float](repeating: .nan, count: outC))
            }
            return quantizedWeightValues(data, outC: outC, k: k)
        }
        produce[w] = {
            let (values, scales) = quantize()
            pending.scales = scales
            return packedInt8Weights(values, outC: outC, k: k).map(Float.init)
        }
        plan.tensors.append(TensorInfo(name: name + "_scale", shape: [outC]))
        produce.append {
            defer { pending.scales = nil }
            return pending.scales ?? quantize().scales
        }
        scales[w] = plan.tensors.count - 1
        return LayerQuantization(scales: plan.tensors.count - 1, activations: .int8)
    }
}

/// A weight tensor's scales, from its quantization until the writer asks for them.
private final class PendingScales {
    var scales: [Float]?
}
