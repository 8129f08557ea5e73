// Symmetric int8 quantisation of unit vectors, one scale per vector, and the error bound that makes an int8 first
// pass exact (Models/GALLERY.md, "Why the int8 pass is exact").
//
//   scale = max|x| / 127,  q[j] = round(x[j] / scale) in -127...127,  x ≈ scale · q
//   error = ‖x − scale · q‖, computed in Double and rounded up to the next float, so the stored bound is never below
//   the true distance. The loader recomputes it from the stored bytes and refuses a file whose bound is smaller.

enum Quantizer {
    /// Quantises `x[0..<count]` into `q` and returns the scale and the error bound.
    static func quantize(
        _ x: UnsafePointer<Float>, count: Int,
        into q: UnsafeMutablePointer<Int8>
    ) -> (scale: Float, error: Float) {
        var m: Float = 0
        for j in 0..<count { m = max(m, abs(x[j])) }
        guard m > 0 else {
            q.update(repeating: 0, count: count)
            return (0, 0)
        }
        let scale = m / 127, inverse = 127 / m
        for j in 0..<count { q[j] = Int8(max(-127, min(127, (x[j] * inverse).rounded()))) }
        return (scale, Float(error(x, { Int(q[$0]) }, scale: scale, count: count)).nextUp)
    }

    /// ‖x − scale · q‖ over `count` values, in Double.
    @inline(__always)
    static func error(_ x: UnsafePointer<Float>, _ q: (Int) -> Int, scale: Float, count: Int) -> Double {
        var s = 0.0
        for j in 0..<count {
            let e = Double(x[j]) - Double(q(j)) * Double(scale)
            s += e * e
        }
        return s.squareRoot()
    }

    /// ‖scale · q‖, rounded up.
    static func norm(_ q: UnsafePointer<Int8>, scale: Float, count: Int) -> Float {
        var s = 0.0
        for j in 0..<count { s += Double(q[j]) * Double(q[j]) }
        return Float(s.squareRoot() * Double(scale)).nextUp
    }
}
