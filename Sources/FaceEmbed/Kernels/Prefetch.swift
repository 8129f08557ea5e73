// Software prefetch. Swift has no public API for it; LLVM's `llvm.prefetch` is reachable through the compiler's
// Builtin module, which Package.swift enables as an experimental feature (a compiler setting, not an unsafe flag, so
// the package stays usable as a versioned dependency). Compiled without that feature, `prefetch` does nothing.
#if hasFeature(BuiltinModule)
import Builtin
#endif

/// Asks the CPU to start loading the cache line holding `p` into every cache level: a hint, which never faults and
/// never changes a result. Used where a stream of weights is read once per call faster than the hardware
/// prefetcher alone brings it in.
@inline(__always)
func prefetch(_ p: UnsafeRawPointer) {
    #if hasFeature(BuiltinModule)
    Builtin.int_prefetch_RawPointer(p._rawValue, Int32(0)._value, Int32(3)._value, Int32(1)._value)
    #endif
}

/// Like `prefetch`, with the hint that the line is needed later rather than next (LLVM locality 1, x86
/// `prefetcht2`). Measured on r100: a stream issued this way while a GEMM runs costs that GEMM a third of what
/// `prefetch` costs it.
@inline(__always)
func prefetchLater(_ p: UnsafeRawPointer) {
    #if hasFeature(BuiltinModule)
    Builtin.int_prefetch_RawPointer(p._rawValue, Int32(0)._value, Int32(1)._value, Int32(1)._value)
    #endif
}

/// Cache lines for a micro-kernel to request while it runs, one every four k steps (`prefetchLater`), so that data
/// needed after it (the next block's Winograd weights) streams in under its arithmetic rather than in a burst,
/// which stalls the kernel's own loads.
struct PrefetchSpread {
    /// The first line, or nil for none.
    let base: UnsafeRawPointer?
    /// Lines to request: at most ⌈k/4⌉ are, for a kernel of depth k.
    let lines: Int

    static var none: PrefetchSpread { PrefetchSpread(base: nil, lines: 0) }

    /// Called by the kernel at each k step `kk`.
    @inline(__always)
    func step(_ kk: Int) {
        if kk & 3 == 0 && kk >> 2 < lines, let base { prefetchLater(base + (kk >> 2) * 64) }
    }
}
