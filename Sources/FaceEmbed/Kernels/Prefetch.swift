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
