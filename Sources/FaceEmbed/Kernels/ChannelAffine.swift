// The plan's `.affine` layer: a per-channel affine map (a batch norm at inference that could not be folded into a
// convolution), optionally followed by PReLU, or a standalone PReLU.
//
//   x, y: [C][H·W];  y = x · scale[c] + shift[c], then PReLU y > 0 ? y : slope[c] · y when `slope` is set
//   (without scale and shift this is a standalone PReLU).
//   scale = gamma / sqrt(var + eps) (gamma = 1 under fix_gamma), shift = beta − mean · scale: computed once when
//   the model is converted. Batch norms that follow a convolution never get here: they are folded into it.

/// y = x · scale[c] + shift[c] (then PReLU) over `channels` planes of `plane` values each; in place is allowed.
/// A missing scale is 1 and a missing shift 0.
func channelAffine(
    input: UnsafePointer<Float>, scale: UnsafePointer<Float>?, shift: UnsafePointer<Float>?,
    slope: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, channels: Int, plane: Int
) {
    typealias V = SIMD8<Float>
    for c in 0..<channels {
        let sc = scale?[c] ?? 1, sh = shift?[c] ?? 0
        let s = V(repeating: sc), t = V(repeating: sh), a = V(repeating: slope?[c] ?? 1)
        let src = UnsafeRawPointer(input + c * plane), dst = UnsafeMutableRawPointer(output + c * plane)
        var i = 0
        while i + 8 <= plane {
            var v = loadVector(src + i * 4, as: V.self) * s + t
            if slope != nil { v = v.replacing(with: v * a, where: v .< 0) }
            dst.storeBytes(of: v, toByteOffset: i * 4, as: V.self)
            i += 8
        }
        while i < plane {
            var v = input[c * plane + i] * sc + sh
            if let slope, v < 0 { v *= slope[c] }
            output[c * plane + i] = v
            i += 1
        }
    }
}
