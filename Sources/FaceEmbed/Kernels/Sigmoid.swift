// The plan's `.sigmoid` layer: the logistic function on every element (SCRFD's score maps).
//
//   x, y: [count];  y = 1 / (1 + e^-x)
//
// e^-x = 2^t with t = -x·log2(e) split into n = round(t) and f = t − n in [−½, ½]: 2^n is built in the exponent
// bits and 2^f is a degree-6 polynomial (Taylor coefficients of 2^f, relative error under 2e-7 on [−½, ½]). t is
// clamped to ±126 first, where y is already 0 or 1 in float32. Sixteen values per step.
//
// n comes from adding 1.5·2^23: the sum's float rounding is round-to-nearest-even, and its low mantissa bits are n
// as an integer. `rounded(.toNearestOrEven)` and `SIMD16<Int32>(_:)` would do the same, but they compile to a
// generic call per vector (a 2×80×80 map took 0.25 ms).

/// y = 1 / (1 + e^-x) over `count` values; in place is allowed.
func sigmoid(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, count: Int) {
    typealias V = SIMD16<Float>
    var i = 0
    while i + 16 <= count {
        let x = loadVector(UnsafeRawPointer(input + i), as: V.self)
        UnsafeMutableRawPointer(output + i).storeBytes(of: logistic(x), as: V.self)
        i += 16
    }
    if i < count {
        var x = V()
        for l in 0..<(count - i) { x[l] = input[i + l] }
        let y = logistic(x)
        for l in 0..<(count - i) { output[i + l] = y[l] }
    }
}

@inline(__always)
private func logistic(_ x: SIMD16<Float>) -> SIMD16<Float> {
    typealias V = SIMD16<Float>
    var t = x * V(repeating: -1.442_695_04)
    // Comparisons and blends, not `clamped`, which compiles lane by lane; NaN goes to the lower bound, as there.
    let lo = V(repeating: -126), hi = V(repeating: 126)
    t = t.replacing(with: lo, where: .!(t .>= lo)).replacing(with: hi, where: t .> hi)
    let magic = V(repeating: 12_582_912)  // 1.5 · 2^23, bit pattern 0x4B40_0000
    let shifted = t + magic
    let n = shifted - magic, f = t - n
    var p = V(repeating: 1.540_353_0e-4)
    p = p * f + V(repeating: 1.333_355_8e-3)
    p = p * f + V(repeating: 9.618_129_1e-3)
    p = p * f + V(repeating: 5.550_410_9e-2)
    p = p * f + V(repeating: 2.402_265_1e-1)
    p = p * f + V(repeating: 6.931_471_8e-1)
    p = p * f + V(repeating: 1)
    let bits = (unsafeBitCast(shifted, to: SIMD16<UInt32>.self) &- 0x4B40_0000 &+ 127) &<< 23
    let e = p * unsafeBitCast(bits, to: V.self)
    return V(repeating: 1) / (V(repeating: 1) + e)
}
