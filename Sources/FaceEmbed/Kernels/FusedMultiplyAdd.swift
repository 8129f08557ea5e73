// Multiply-add for the GEMM micro-kernels, chosen at compile time.
//
// Swift never contracts `c += a * b` into a fused multiply-add, and `addingProduct` on a target without FMA
// becomes one libm `fmaf` call per lane (about 150× slower). So the fused form is used only when the build says
// the CPU has FMA, with a custom condition on the command line:
//   -Xswiftc -DFACEEMBED_FMA      x86-64 with FMA3 (Haswell, Zen 1–3), together with -target-cpu native/haswell
//   -Xswiftc -DFACEEMBED_AVX512   x86-64 with AVX-512F (implies FMA), together with -target-cpu native
// arm64 always has FMA. Every other build keeps the separate multiply and add (bit-for-bit the old results).
// The fused form rounds once instead of twice, so results differ from the unfused build in the last bits only.

#if FACEEMBED_AVX512 || FACEEMBED_FMA || arch(arm64)
/// `acc += a * b`, fused.
@inline(__always)
func multiplyAdd(_ acc: inout SIMD8<Float>, _ a: SIMD8<Float>, _ b: SIMD8<Float>) { acc.addProduct(a, b) }
/// `acc += a * b`, fused.
@inline(__always)
func multiplyAdd(_ acc: inout SIMD16<Float>, _ a: SIMD16<Float>, _ b: SIMD16<Float>) { acc.addProduct(a, b) }
#else
/// `acc += a * b` (multiply, then add).
@inline(__always)
func multiplyAdd(_ acc: inout SIMD8<Float>, _ a: SIMD8<Float>, _ b: SIMD8<Float>) { acc += a * b }
/// `acc += a * b` (multiply, then add).
@inline(__always)
func multiplyAdd(_ acc: inout SIMD16<Float>, _ a: SIMD16<Float>, _ b: SIMD16<Float>) { acc += a * b }
#endif
