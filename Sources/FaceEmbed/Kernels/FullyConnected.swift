// Fully connected on one image: x [in] (the NCHW image flattened row-major, index c·H·W + h·W + w),
// W [out][in] row-major, y[o] = Σ W[o][i] · x[i] + b[o]. Batch norms before and after it are folded into W and b.
// A matrix-vector product: memory-bound on the weights (ResNet100's is 51 MB), so rows are split across threads
// and each row is one pass of 4 SIMD8 accumulators.

/// y = W · x + b for one image; rows split across `threads`.
func fullyConnected(input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                    output: UnsafeMutablePointer<Float>, inFeatures: Int, outFeatures: Int, threads: Int) {
    let parts = max(1, min(threads, outFeatures * inFeatures / 65_536))
    parallelFor(parts, threads: threads) { part in
        for o in chunk(outFeatures, parts: parts, index: part) {
            output[o] = dot(weights + o * inFeatures, input, count: inFeatures) + bias[o]
        }
    }
}

/// Σ a[i] · b[i] with four independent SIMD8 accumulators.
@inline(__always)
func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
    typealias V = SIMD8<Float>
    var s0 = V(), s1 = V(), s2 = V(), s3 = V()
    let ar = UnsafeRawPointer(a), br = UnsafeRawPointer(b)
    var i = 0
    while i + 32 <= count {
        s0 += ar.loadUnaligned(fromByteOffset: i * 4, as: V.self) * br.loadUnaligned(fromByteOffset: i * 4, as: V.self)
        s1 += ar.loadUnaligned(fromByteOffset: i * 4 + 32, as: V.self) * br.loadUnaligned(fromByteOffset: i * 4 + 32, as: V.self)
        s2 += ar.loadUnaligned(fromByteOffset: i * 4 + 64, as: V.self) * br.loadUnaligned(fromByteOffset: i * 4 + 64, as: V.self)
        s3 += ar.loadUnaligned(fromByteOffset: i * 4 + 96, as: V.self) * br.loadUnaligned(fromByteOffset: i * 4 + 96, as: V.self)
        i += 32
    }
    var sum = ((s0 + s1) + (s2 + s3)).sum()
    while i < count { sum += a[i] * b[i]; i += 1 }
    return sum
}
