#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// The plan's `.sigmoid` layer: the logistic function on every element (SCRFD's score maps, 2 × H/s × W/s values per
// level, too few to be worth vectorising).
//
//   x, y: [count];  y = 1 / (1 + e^-x)

/// y = 1 / (1 + e^-x) over `count` values; in place is allowed.
func sigmoid(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count { output[i] = 1 / (1 + expf(-input[i])) }
}
