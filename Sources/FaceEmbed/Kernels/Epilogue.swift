// The epilogue of a convolution: what happens to each accumulated output value, in this order:
//
//   out[c][i] = prelu_c(acc[c][i] + bias[c]) + residual[c][i]      prelu_c(v) = v > 0 ? v : slope[c] · v
//
// Defined once, in `ChannelEpilogue`, on a vector of one channel's consecutive values: the GEMM micro-kernel
// (16 lanes) and the depthwise kernel (8 lanes) call it on their accumulators in registers; the other kernels call
// `Epilogue.apply` on accumulators they stored, which runs the same code 8 values at a time.
// Batch norm after a convolution is folded into its weights and bias when the model is converted, so the
// epilogue is the only pass over the output.
#if hasFeature(BuiltinModule)
import Builtin
#endif

/// A convolution's epilogue: add `bias[c]`; if `slope` is set, PReLU `v > 0 ? v : slope[c] * v`; if `residual` is
/// set, add `residual[i]`.
struct Epilogue {
    /// One value per output channel (folded batch norm shift, or the convolution's own bias).
    var bias: UnsafePointer<Float>
    /// Per-channel PReLU slopes, or nil for no activation.
    var slope: UnsafePointer<Float>?
    /// A tensor of the output's shape added last (the residual shortcut), or nil.
    var residual: UnsafePointer<Float>?

    /// Channel `c`'s epilogue on vectors of `V`, its residual indexed from flat index `offset` of the tensor.
    @inline(__always)
    func channel<V: EpilogueVector>(_ c: Int, offset: Int, as _: V.Type = V.self) -> ChannelEpilogue<V> {
        var slopes: V?, from: UnsafePointer<Float>?
        if let slope { slopes = V(repeating: slope[c]) }
        if let residual { from = residual + offset }
        return ChannelEpilogue(bias: V(repeating: bias[c]), slope: slopes, residual: from)
    }

    /// The epilogue of the output channels from `c0` on, channels being `plane` values apart: one group's slice of a
    /// grouped convolution.
    func slice(from c0: Int, plane: Int) -> Epilogue {
        Epilogue(bias: bias + c0, slope: slope.map { $0 + c0 }, residual: residual.map { $0 + c0 * plane })
    }

    /// Applies the epilogue to `count` contiguous values of channel `c` starting at flat index `offset`,
    /// reading accumulators from `acc` and writing to `out + offset`.
    @inline(__always)
    func apply(channel c: Int, acc: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, offset: Int, count: Int) {
        let e = channel(c, offset: offset, as: SIMD8<Float>.self)
        var i = 0
        while i + 8 <= count {
            let a = loadVector(UnsafeRawPointer(acc + i), as: SIMD8<Float>.self)
            storeVector(e(a, at: i), to: out + offset + i)
            i += 8
        }
        if i < count {
            var a = SIMD8<Float>()
            for l in 0..<(count - i) { a[l] = acc[i + l] }
            e.store(a, at: i, count: count - i, to: out + offset)
        }
    }
}

/// The vectors the epilogue runs on. Its arithmetic is named here so that generic code calls each width's own
/// operators (one instruction each): the `SIMD` protocol's generic ones work lane by lane (a comparison with a
/// scalar became a loop of eight compares and branches, 4× slower depthwise layers).
protocol EpilogueVector: SIMD where Scalar == Float {
    init(repeating: Float)
    static func + (a: Self, b: Self) -> Self
    static func * (a: Self, b: Self) -> Self
    static func .< (a: Self, b: Self) -> SIMDMask<MaskStorage>
    func replacing(with other: Self, where mask: SIMDMask<MaskStorage>) -> Self
}

extension SIMD8: EpilogueVector where Scalar == Float {}
extension SIMD16: EpilogueVector where Scalar == Float {}

/// One output channel's epilogue with its bias and slope broadcast to the lanes of `V`, for values of that channel
/// at consecutive flat indices (from the `residual` pointer's origin).
struct ChannelEpilogue<V: EpilogueVector> {
    let bias: V
    let slope: V?
    let residual: UnsafePointer<Float>?

    /// The output values for accumulators `acc` at index `i`: bias, PReLU, then residual[i ..< i + lanes].
    @inline(__always)
    func callAsFunction(_ acc: V, at i: Int) -> V {
        let v = activated(acc)
        guard let residual else { return v }
        return v + loadVector(UnsafeRawPointer(residual + i), as: V.self)
    }

    /// Stores the first `n` lanes of the output values for `acc` at `out + i`, reading only those `n` residual
    /// values (the end of a channel, where a whole vector would run past it). Inlined: a call inside the depthwise
    /// loops kept the optimiser from specialising them for each epilogue (PReLU, residual), 20–30 % slower.
    @inline(__always)
    func store(_ acc: V, at i: Int, count n: Int, to out: UnsafeMutablePointer<Float>) {
        var v = activated(acc)
        if let residual {
            var r = V()
            for l in 0..<n { r[l] = residual[i + l] }
            v = v + r
        }
        for l in 0..<n { out[i + l] = v[l] }
    }

    /// Bias, then PReLU.
    @inline(__always)
    private func activated(_ acc: V) -> V {
        var v = acc + bias
        if let slope { v = v.replacing(with: v * slope, where: v .< V()) }
        return v
    }
}

/// `v` stored at `p` (unaligned), one instruction wherever it is inlined: `storeBytes` is a generic function that
/// the optimiser may leave as a call once a kernel is large (all 16 stores of `gemmFullPanel` were calls), so the
/// store is LLVM's own where the Builtin module is available (as for `prefetch`).
@inline(__always)
func storeVector(_ v: SIMD16<Float>, to p: UnsafeMutablePointer<Float>) {
    #if hasFeature(BuiltinModule)
    Builtin.storeRaw(v, UnsafeMutableRawPointer(p)._rawValue)
    #else
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
    #endif
}

/// Any vector stored at raw `p` (unaligned), as the float `storeVector` (the quantized gather's stores of B were calls,
/// 1.5 % of r100 int8).
@inline(__always)
func storeVector<V: SIMD>(_ v: V, to p: UnsafeMutableRawPointer) {
    #if hasFeature(BuiltinModule)
    Builtin.storeRaw(v, p._rawValue)
    #else
    p.storeBytes(of: v, as: V.self)
    #endif
}

/// Any vector loaded from raw `p` (unaligned), one instruction wherever it is inlined (`loadUnaligned` is generic too
/// and was left as a call in the quantized gather).
@inline(__always)
func loadVector<V: SIMD>(_ p: UnsafeRawPointer, as _: V.Type) -> V {
    #if hasFeature(BuiltinModule)
    Builtin.loadRaw(p._rawValue)
    #else
    p.loadUnaligned(as: V.self)
    #endif
}

/// `v` stored at `p` (unaligned), as the 16-lane `storeVector`.
@inline(__always)
func storeVector(_ v: SIMD8<Float>, to p: UnsafeMutablePointer<Float>) {
    #if hasFeature(BuiltinModule)
    Builtin.storeRaw(v, UnsafeMutableRawPointer(p)._rawValue)
    #else
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
    #endif
}
