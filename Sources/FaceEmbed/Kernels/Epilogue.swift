/// What happens to each accumulated output value of a convolution, in this order:
/// add `bias[c]`; if `slope` is set, PReLU `v > 0 ? v : slope[c] * v`; if `residual` is set, add `residual[i]`.
///
/// Batch norm after a convolution is folded into its weights and bias when the model is converted, so the
/// epilogue is the only pass over the output.
struct Epilogue {
    /// One value per output channel (folded batch norm shift, or the convolution's own bias).
    var bias: UnsafePointer<Float>
    /// Per-channel PReLU slopes, or nil for no activation.
    var slope: UnsafePointer<Float>?
    /// A tensor of the output's shape added last (the residual shortcut), or nil.
    var residual: UnsafePointer<Float>?

    /// Applies the epilogue to `count` contiguous values of channel `c` starting at flat index `offset`,
    /// reading accumulators from `acc` and writing to `out + offset`.
    @inline(__always)
    func apply(channel c: Int, acc: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, offset: Int, count: Int) {
        let b = bias[c]
        let s = slope?[c]
        var i = 0
        let bv = SIMD8<Float>(repeating: b)
        let sv = SIMD8<Float>(repeating: s ?? 1)
        while i + 8 <= count {
            var v = UnsafeRawPointer(acc + i).loadUnaligned(as: SIMD8<Float>.self) + bv
            if s != nil { v = v.replacing(with: v * sv, where: v .< 0) }
            if let r = residual { v += UnsafeRawPointer(r + offset + i).loadUnaligned(as: SIMD8<Float>.self) }
            UnsafeMutableRawPointer(out + offset + i).storeBytes(of: v, as: SIMD8<Float>.self)
            i += 8
        }
        while i < count {
            var v = acc[i] + b
            if let s, v < 0 { v *= s }
            if let r = residual { v += r[offset + i] }
            out[offset + i] = v
            i += 1
        }
    }
}
