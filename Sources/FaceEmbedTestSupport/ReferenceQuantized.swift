// Plain integer references for the quantized kernels (FaceEmbed's Kernels/QuantizedWeights.swift states the scheme):
// the same quantization written as loops over NCHW, with integer accumulation and no packing, zero point or SIMD.
//   weights      q[c][k] = clamp(round(w[c][k] · (127 / m_c)), −127, 127), s_w[c] = m_c / 127, m_c = max_k |w[c][k]|
//   activations  x_q = clamp(round(x · inverse), low, high)                (the signed value, no zero point)
//   accumulators acc[oc][oy][ox] = Σ q · x_q over the in-bounds taps        (padding is x = 0, so x_q = 0)
// Rounding is half to even everywhere (`Float.rounded(.toNearestOrEven)`).

/// Integer reference implementations of the quantized convolution and fully connected layer.
public enum ReferenceQuantized {
    /// Per-output-channel symmetric int8 quantization of `outC` rows of `k` weights: values row-major and scales.
    public static func quantizeWeights(_ w: [Float], outC: Int, k: Int) -> (values: [Int8], scales: [Float]) {
        precondition(w.count == outC * k, "quantizeWeights: \(w.count) values for \(outC) × \(k)")
        var values = [Int8](repeating: 0, count: outC * k), scales = [Float](repeating: 0, count: outC)
        for c in 0..<outC {
            var m: Float = 0
            for i in 0..<k { m = max(m, abs(w[c * k + i])) }
            if m == 0 { continue }
            scales[c] = m / 127
            let inverse = 127 / m
            for i in 0..<k {
                let r = (w[c * k + i] * inverse).rounded(.toNearestOrEven)
                values[c * k + i] = Int8(min(max(r, -127), 127))
            }
        }
        return (values, scales)
    }

    /// x_q = clamp(round(x · inverse), low, high) for every value.
    public static func quantize(_ x: [Float], inverse: Float, low: Int32, high: Int32) -> [Int32] {
        x.map { Int32(min(max($0 * inverse, Float(low)), Float(high)).rounded(.toNearestOrEven)) }
    }

    /// Σ q · x_q over the taps of a zero-padded cross-correlation, groups = 1: `xq` is [inC][h][w], `weights`
    /// [outC][inC][kH][kW]; the result is [outC][outH][outW] (MXNet's floor rule for the output size).
    public static func convolution(
        _ xq: [Int32], inC: Int, h: Int, w: Int, weights: [Int8], outC: Int,
        kernel: (Int, Int), stride: (Int, Int), pad: (Int, Int)
    ) -> [Int32] {
        let (kh, kw) = kernel
        let oh = (h + 2 * pad.0 - kh) / stride.0 + 1, ow = (w + 2 * pad.1 - kw) / stride.1 + 1
        precondition(xq.count == inC * h * w && weights.count == outC * inC * kh * kw, "quantized convolution shapes")
        var acc = [Int32](repeating: 0, count: outC * oh * ow)
        for oc in 0..<outC {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    var sum: Int64 = 0
                    for ic in 0..<inC {
                        for ky in 0..<kh {
                            let iy = oy * stride.0 - pad.0 + ky
                            if iy < 0 || iy >= h { continue }
                            for kx in 0..<kw {
                                let ix = ox * stride.1 - pad.1 + kx
                                if ix < 0 || ix >= w { continue }
                                let q = Int64(weights[((oc * inC + ic) * kh + ky) * kw + kx])
                                sum += q * Int64(xq[(ic * h + iy) * w + ix])
                            }
                        }
                    }
                    precondition(sum >= Int64(Int32.min) && sum <= Int64(Int32.max), "accumulator overflow")
                    acc[(oc * oh + oy) * ow + ox] = Int32(sum)
                }
            }
        }
        return acc
    }

    /// Σ_i q[o][i] · x_q[i] for a fully connected layer (`weights` [out][in]).
    public static func fullyConnected(_ xq: [Int32], weights: [Int8], outFeatures: Int) -> [Int32] {
        convolution(
            xq, inC: xq.count, h: 1, w: 1, weights: weights, outC: outFeatures, kernel: (1, 1), stride: (1, 1),
            pad: (0, 0))
    }

    /// Float outputs from exact sums: acc · (s_x · s_w[c]), `pixels` values per channel.
    public static func dequantize(_ acc: [Int32], scale: Float, weightScales: [Float], pixels: Int) -> [Float] {
        acc.indices.map { Float(acc[$0]) * (scale * weightScales[$0 / pixels]) }
    }
}
