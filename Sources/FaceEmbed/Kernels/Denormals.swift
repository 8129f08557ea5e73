#if canImport(Glibc) && arch(x86_64)
import Glibc
#endif

// Denormal floats run up to ~100x slower on x86. Weights are flushed when a model is converted; activations are
// kept out by running the kernels with the SSE/AVX "flush to zero" and "denormals are zero" bits (MXCSR 0x8040):
// on the caller's thread only for the duration of a forward pass, on the pool's own workers for their lifetime.
// Elsewhere (arm64, other libcs) this is a no-op; arm64 cores handle denormals at full speed.

/// Flush-to-zero control for the threads that run kernels.
enum Denormals {
    #if canImport(Glibc) && arch(x86_64)
    /// MXCSR flush-to-zero (bit 15) and denormals-are-zero (bit 6).
    private static let flushBits: UInt32 = 0x8040
    #endif

    /// Runs `body` with denormals flushed on this thread, then restores the caller's floating-point mode.
    @inline(__always)
    static func flushed<T>(_ body: () -> T) -> T {
        #if canImport(Glibc) && arch(x86_64)
        var saved = fenv_t()
        fegetenv(&saved)
        if saved.__mxcsr & flushBits != flushBits {
            var env = saved
            env.__mxcsr |= flushBits
            fesetenv(&env)
            defer { fesetenv(&saved) }
            return body()
        }
        #endif
        return body()
    }

    /// Flushes denormals on this thread from now on (for threads FaceEmbed owns).
    static func flushOnThisThread() {
        #if canImport(Glibc) && arch(x86_64)
        var env = fenv_t()
        fegetenv(&env)
        env.__mxcsr |= flushBits
        fesetenv(&env)
        #endif
    }
}
