import FaceEmbed

// Int8 conversion (`ModelConverter`'s `precision: .int8`): every convolution with groups = 1 and every fully
// connected layer gets int8 weights, one scale per output channel, in the layout of FaceEmbed's Plan/QuantizedPlan.swift,
// and 8-bit activations quantized at run time. Depthwise convolutions stay float32: the integer kernels need
// groups = 1, and they are 4.5 % of MobileFaceNet's multiply-adds (none of LResNet's). The convolutions the direct
// kernel runs (`quantizedDirectApplies`) get their K tap-major (format version 4), unless the model is for a
// version 3 file (the tests of old files).

extension ImportedModel {
    /// The model with its convolutions (groups = 1) and fully connected layers quantized. Must be applied to an
    /// importer's plan (OIHW weights), before `lanePacked`, which then leaves the quantized weights alone.
    func quantized(tapMajor: Bool = true) -> ImportedModel {
        var out = self, done: [TensorOrder: (weight: Int, scales: Int)] = [:]
        for (i, layer) in plan.layers.enumerated() {
            switch layer {
            case var .convolution(c) where c.geometry.groups == 1:
                let g = c.geometry, order = tapMajor && quantizedDirectApplies(g) ? (g.inC, g.kH * g.kW) : nil
                (c.weight, c.quantization) = out.quantize(
                    c.weight, source: produce[c.weight], rows: (g.outC, g.k), tapMajor: order, &done)
                out.plan.layers[i] = .convolution(c)
            case var .fullyConnected(f):
                (f.weight, f.quantization) = out.quantize(
                    f.weight, source: produce[f.weight], rows: (f.outFeatures, f.inFeatures), tapMajor: nil, &done)
                out.plan.layers[i] = .fullyConnected(f)
            default:
                continue
            }
        }
        return out
    }

    /// Turns weight tensor `w`, whose float values `source` produces, into int8 (once per order, however many layers
    /// share it), K tap-major if `tapMajor` gives the input channels and taps, and adds its scales tensor. Returns
    /// the int8 tensor: `w`, or a second tensor when `w` is already int8 in the other order.
    private mutating func quantize(
        _ w: Int, source: @escaping LazyFloats, rows: (outC: Int, k: Int), tapMajor: (inC: Int, taps: Int)?,
        _ done: inout [TensorOrder: (weight: Int, scales: Int)]
    ) -> (Int, LayerQuantization) {
        let key = TensorOrder(tensor: w, tapMajor: tapMajor != nil)
        if let d = done[key] {
            return (d.weight, LayerQuantization(scales: d.scales, activations: .int8, tapMajor: key.tapMajor))
        }
        let (outC, k) = rows, name = plan.tensors[w].name
        let target = done.keys.contains { $0.tensor == w } ? plan.tensors.count : w
        if target != w { plan.tensors.append(plan.tensors[w]); produce.append(source) }
        plan.tensors[target] = TensorInfo(
            name: target == w ? name : name + (key.tapMajor ? "_tap_major" : "_oihw"),
            shape: quantizedWeightShape(outC: outC, k: k), elementType: .int8)
        // The writer asks for the weights before the scales (appended last): the weights' quantization keeps its
        // scales for then, so the source (a batch norm folded on the fly) is produced and quantized once. A
        // non-finite weight gets zero int8 weights and NaN scales, which the writer refuses, naming the tensor.
        let pending = PendingScales()
        let quantize = { () -> (values: [Int8], scales: [Float]) in
            let oihw = source()
            let data = tapMajor.map { tapMajorOrder(oihw, outC: outC, inC: $0.inC, taps: $0.taps) } ?? oihw
            guard data.allSatisfy(\.isFinite) else {
                return ([Int8](repeating: 0, count: outC * k), [Float](repeating: .nan, count: outC))
            }
            return quantizedWeightValues(data, outC: outC, k: k)
        }
        produce[target] = {
            let (values, scales) = quantize()
            pending.scales = scales
            return packedInt8Weights(values, outC: outC, k: k).map(Float.init)
        }
        plan.tensors.append(TensorInfo(name: plan.tensors[target].name + "_scale", shape: [outC]))
        produce.append {
            defer { pending.scales = nil }
            return pending.scales ?? quantize().scales
        }
        done[key] = (target, plan.tensors.count - 1)
        return (target, LayerQuantization(scales: plan.tensors.count - 1, activations: .int8, tapMajor: key.tapMajor))
    }
}

/// A weight tensor and the order of its k: one int8 copy each.
private struct TensorOrder: Hashable {
    var tensor: Int, tapMajor: Bool
}

/// A weight tensor's scales, from its quantization until the writer asks for them.
private final class PendingScales {
    var scales: [Float]?
}
