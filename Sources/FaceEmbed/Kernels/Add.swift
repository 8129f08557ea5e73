// Element-wise add (residual shortcut), standalone: y[i] = a[i] + b[i] over `count` values.
// Usually fused into the epilogue of the convolution that produces one of its operands.

/// y = a + b elementwise; `output` may alias either input.
func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, count: Int) {
    typealias V = SIMD8<Float>
    var i = 0
    while i + 8 <= count {
        let v = loadVector(UnsafeRawPointer(a + i), as: V.self) + loadVector(UnsafeRawPointer(b + i), as: V.self)
        UnsafeMutableRawPointer(output + i).storeBytes(of: v, as: V.self)
        i += 8
    }
    while i < count { output[i] = a[i] + b[i]; i += 1 }
}
