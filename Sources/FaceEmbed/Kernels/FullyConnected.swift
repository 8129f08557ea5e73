// Fully connected on one image: x [in] (the NCHW image flattened row-major, index c·H·W + h·W + w),
// W [out][in] row-major, y[o] = Σ W[o][i] · x[i] + b[o]. Batch norms before and after it are folded into W and b.
// A matrix-vector product: memory-bound on the weights (ResNet100's is 51 MB), so rows are split across threads
// and rows go four at a time (four weight streams in flight), each with two SIMD8 accumulators.

/// y = W · x + b for one image; rows split across `threads`.
func fullyConnected(
    input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>,
    output: UnsafeMutablePointer<Float>, inFeatures: Int, outFeatures: Int, threads: Int
) {
    let parts = max(1, min(threads, outFeatures * inFeatures / 65_536))
    parallelFor(parts, threads: threads) { part in
        let rows = chunk(outFeatures, parts: parts, index: part)
        var o = rows.lowerBound
        // Four rows at a time: four weight streams in flight keep more of the memory bandwidth busy than one.
        while o + 4 <= rows.upperBound {
            let w = weights + o * inFeatures
            let s = dot4(w, w + inFeatures, w + 2 * inFeatures, w + 3 * inFeatures, input, count: inFeatures)
            output[o] = s[0] + bias[o]; output[o + 1] = s[1] + bias[o + 1]
            output[o + 2] = s[2] + bias[o + 2]; output[o + 3] = s[3] + bias[o + 3]
            o += 4
        }
        while o < rows.upperBound {
            output[o] = dot(weights + o * inFeatures, input, count: inFeatures) + bias[o]
            o += 1
        }
    }
}

/// (Σ a0[i]·x[i], Σ a1[i]·x[i], Σ a2[i]·x[i], Σ a3[i]·x[i]), each with two SIMD8 accumulators.
@inline(__always)
func dot4(
    _ a0: UnsafePointer<Float>, _ a1: UnsafePointer<Float>, _ a2: UnsafePointer<Float>, _ a3: UnsafePointer<Float>,
    _ x: UnsafePointer<Float>, count: Int
) -> SIMD4<Float> {
    typealias V = SIMD8<Float>
    var s0 = V(), s1 = V(), s2 = V(), s3 = V(), t0 = V(), t1 = V(), t2 = V(), t3 = V()
    let r0 = UnsafeRawPointer(a0), r1 = UnsafeRawPointer(a1), r2 = UnsafeRawPointer(a2), r3 = UnsafeRawPointer(a3)
    let xr = UnsafeRawPointer(x)
    var i = 0
    while i + 16 <= count {
        let b = i * 4
        let x0 = loadVector(xr + b, as: V.self),
            x1 = loadVector(xr + b + 32, as: V.self)
        s0 += loadVector(r0 + b, as: V.self) * x0;
        t0 += loadVector(r0 + b + 32, as: V.self) * x1
        s1 += loadVector(r1 + b, as: V.self) * x0;
        t1 += loadVector(r1 + b + 32, as: V.self) * x1
        s2 += loadVector(r2 + b, as: V.self) * x0;
        t2 += loadVector(r2 + b + 32, as: V.self) * x1
        s3 += loadVector(r3 + b, as: V.self) * x0;
        t3 += loadVector(r3 + b + 32, as: V.self) * x1
        i += 16
    }
    var out = SIMD4((s0 + t0).sum(), (s1 + t1).sum(), (s2 + t2).sum(), (s3 + t3).sum())
    while i < count {
        out += SIMD4(a0[i], a1[i], a2[i], a3[i]) * x[i]
        i += 1
    }
    return out
}

/// Σ a[i] · b[i] for i in 0..<count, 8 lanes at a time in two accumulators (fc rows past the last group of four,
/// and the depthwise 7×7 global head).
@inline(__always)
func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int) -> Float {
    typealias V = SIMD8<Float>
    @inline(__always) func load(_ p: UnsafePointer<Float>, _ i: Int) -> V {
        loadVector(UnsafeRawPointer(p + i), as: V.self)
    }
    var s0 = V(), s1 = V()
    var i = 0
    while i + 16 <= n {
        multiplyAdd(&s0, load(a, i), load(b, i)); multiplyAdd(&s1, load(a, i + 8), load(b, i + 8))
        i += 16
    }
    if i + 8 <= n { multiplyAdd(&s0, load(a, i), load(b, i)); i += 8 }
    var sum = (s0 + s1).sum()
    while i < n { sum += a[i] * b[i]; i += 1 }
    return sum
}
