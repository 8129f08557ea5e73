// Plain reference implementations of every operator, written for clarity, not speed.
// The fast kernels are tested against these; the semantics are MXNet 1.x's (see ../shared/reference/MODELS.md).
// Layout everywhere: NCHW float32, row-major.

/// Straightforward implementations of the operators used by the models, the yardstick for the fast kernels.
public enum Reference {
    /// Convolution (cross-correlation) with symmetric zero padding and groups.
    /// `weight` is OIHW: `[outC][inC / groups][kh][kw]`; `bias` has `outC` values or is empty.
    public static func convolution(
        _ x: Tensor, weight: [Float], bias: [Float], outC: Int, kernel: (Int, Int),
        stride: (Int, Int), pad: (Int, Int), groups: Int
    ) -> Tensor {
        let (kh, kw) = kernel
        let oh = (x.h + 2 * pad.0 - kh) / stride.0 + 1
        let ow = (x.w + 2 * pad.1 - kw) / stride.1 + 1
        let icPerGroup = x.c / groups, ocPerGroup = outC / groups
        precondition(weight.count == outC * icPerGroup * kh * kw, "convolution weight count")
        var y = Tensor(n: x.n, c: outC, h: oh, w: ow)
        for n in 0..<x.n {
            for oc in 0..<outC {
                let g = oc / ocPerGroup
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var sum: Double = bias.isEmpty ? 0 : Double(bias[oc])
                        for icg in 0..<icPerGroup {
                            let ic = g * icPerGroup + icg
                            for ky in 0..<kh {
                                let iy = oy * stride.0 - pad.0 + ky
                                if iy < 0 || iy >= x.h { continue }
                                for kx in 0..<kw {
                                    let ix = ox * stride.1 - pad.1 + kx
                                    if ix < 0 || ix >= x.w { continue }
                                    let wv = weight[((oc * icPerGroup + icg) * kh + ky) * kw + kx]
                                    sum += Double(wv) * Double(x[n, ic, iy, ix])
                                }
                            }
                        }
                        y[n, oc, oy, ox] = Float(sum)
                    }
                }
            }
        }
        return y
    }

    /// Inference batch norm: `(x - mean) / sqrt(var + eps) * gamma + beta`; with `fixGamma` gamma is 1.
    public static func batchNorm(
        _ x: Tensor, gamma: [Float], beta: [Float], mean: [Float], variance: [Float],
        eps: Float, fixGamma: Bool
    ) -> Tensor {
        var y = x
        for n in 0..<x.n {
            for c in 0..<x.c {
                let g = fixGamma ? 1 : gamma[c]
                let inv = 1 / (variance[c] + eps).squareRoot()
                for i in 0..<(x.h * x.w) {
                    let idx = (n * x.c + c) * x.h * x.w + i
                    y.data[idx] = (x.data[idx] - mean[c]) * inv * g + beta[c]
                }
            }
        }
        return y
    }

    /// PReLU with one slope per channel: `x > 0 ? x : slope[c] * x`.
    public static func prelu(_ x: Tensor, slope: [Float]) -> Tensor {
        var y = x
        for n in 0..<x.n {
            for c in 0..<x.c {
                for i in 0..<(x.h * x.w) {
                    let idx = (n * x.c + c) * x.h * x.w + i
                    let v = x.data[idx]
                    y.data[idx] = v > 0 ? v : slope[c] * v
                }
            }
        }
        return y
    }

    /// Fully connected on the row-major flattening of each image (`c*H*W + h*W + w`):
    /// `y = x · Wᵀ + b`, `weight` is `(out, in)`. The result is `n × out × 1 × 1`.
    public static func fullyConnected(_ x: Tensor, weight: [Float], bias: [Float], outFeatures: Int) -> Tensor {
        let inFeatures = x.imageSize
        precondition(weight.count == outFeatures * inFeatures, "fully connected weight count")
        var y = Tensor(n: x.n, c: outFeatures, h: 1, w: 1)
        for n in 0..<x.n {
            for o in 0..<outFeatures {
                var sum: Double = bias.isEmpty ? 0 : Double(bias[o])
                for i in 0..<inFeatures {
                    sum += Double(weight[o * inFeatures + i]) * Double(x.data[n * inFeatures + i])
                }
                y.data[n * outFeatures + o] = Float(sum)
            }
        }
        return y
    }

    /// A per-channel affine map `x · scale[c] + shift[c]` (a batch norm given as its scale and shift).
    public static func channelAffine(_ x: Tensor, scale: [Float], shift: [Float]) -> Tensor {
        var y = x
        let plane = x.h * x.w
        for i in 0..<x.data.count {
            let c = i / plane % x.c
            y.data[i] = x.data[i] * scale[c] + shift[c]
        }
        return y
    }

    /// Element-wise sum of two tensors of one shape (the residual add).
    public static func add(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.data.count == b.data.count, "add shape mismatch")
        var y = a
        for i in 0..<a.data.count { y.data[i] = a.data[i] + b.data[i] }
        return y
    }

    /// The graphs' input scaling: `(x - mean) * scale` (MXNet's `_minus_scalar` then `_mul_scalar`).
    public static func inputScaling(_ x: Tensor, mean: Float, scale: Float) -> Tensor {
        var y = x
        for i in 0..<x.data.count { y.data[i] = (x.data[i] - mean) * scale }
        return y
    }
}
