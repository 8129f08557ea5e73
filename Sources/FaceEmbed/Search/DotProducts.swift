// Dot products for gallery search.
//
// float32: a row and a query are `lanes` floats (a multiple of 16, zero padded), 64-byte aligned; `dot` sums them
// in a fixed order (two 16-lane accumulators), so a row's similarity is the same bits on every path and thread.
//
// int8: an int8 panel holds 16 rows as [lanes/4][16 rows][4 bytes], each byte the row's int8 value plus 128; a
// query is `lanes/4` 32-bit words of 4 signed bytes, in groups of 8 queries laid out [lanes/4][8 queries]. One
// step multiplies the panel's 64-byte vector by one query word broadcast to all 16 lanes: `vpdpbusd` (AVX-512
// VNNI: unsigned bytes × signed bytes, four products summed into each 32-bit lane). The sums are row·query + 128 ×
// Σ query, and the caller subtracts the second term. Every product is below 2¹⁵ and a row has at most 65,536
// values, so a lane never overflows.
#if FACEEMBED_AVX512 && hasFeature(BuiltinModule)
import Builtin
#endif

/// Σ a[j]·b[j] over `lanes` floats (a multiple of 16).
@inline(__always)
func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, lanes: Int) -> Float {
    var s0 = SIMD16<Float>(), s1 = SIMD16<Float>()
    var j = 0
    while j + 32 <= lanes {
        multiplyAdd(&s0, load16(a + j), load16(b + j))
        multiplyAdd(&s1, load16(a + j + 16), load16(b + j + 16))
        j += 32
    }
    if j < lanes { multiplyAdd(&s0, load16(a + j), load16(b + j)) }
    return (s0 + s1).sum()
}

@inline(__always)
func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self) }

/// `acc` += for each lane, the four unsigned bytes of `rows` times the four signed bytes of `query`, summed.
@inline(__always)
func multiplyAddBytes(_ acc: inout SIMD16<Int32>, _ rows: SIMD16<Int32>, _ query: SIMD16<Int32>) {
    #if FACEEMBED_AVX512 && hasFeature(BuiltinModule)
    acc._storage._value = Builtin.int_x86_avx512_vpdpbusd_512(
        acc._storage._value, rows._storage._value,
        query._storage._value)
    #else
    for b: Int32 in 0..<4 {
        let u = (rows &>> (8 * b)) & 0xFF, s = (query &<< (24 - 8 * b)) &>> 24
        acc &+= u &* s
    }
    #endif
}

/// The int8 dot products of one panel's 16 rows with 8 queries: `out[j]` lane r = Σ (row r + 128) · query j.
@inline(__always)
func panelDots8(
    _ panel: UnsafeRawPointer, _ words: UnsafePointer<Int32>, steps: Int,
    _ out: UnsafeMutablePointer<SIMD16<Int32>>
) {
    var a0 = SIMD16<Int32>(), a1 = SIMD16<Int32>(), a2 = SIMD16<Int32>(), a3 = SIMD16<Int32>()
    var a4 = SIMD16<Int32>(), a5 = SIMD16<Int32>(), a6 = SIMD16<Int32>(), a7 = SIMD16<Int32>()
    for k in 0..<steps {
        let rows = panel.load(fromByteOffset: k * 64, as: SIMD16<Int32>.self)
        let w = words + k * 8
        multiplyAddBytes(&a0, rows, SIMD16(repeating: w[0])); multiplyAddBytes(&a1, rows, SIMD16(repeating: w[1]))
        multiplyAddBytes(&a2, rows, SIMD16(repeating: w[2])); multiplyAddBytes(&a3, rows, SIMD16(repeating: w[3]))
        multiplyAddBytes(&a4, rows, SIMD16(repeating: w[4])); multiplyAddBytes(&a5, rows, SIMD16(repeating: w[5]))
        multiplyAddBytes(&a6, rows, SIMD16(repeating: w[6])); multiplyAddBytes(&a7, rows, SIMD16(repeating: w[7]))
    }
    out[0] = a0; out[1] = a1; out[2] = a2; out[3] = a3; out[4] = a4; out[5] = a5; out[6] = a6; out[7] = a7
}

/// `panelDots8` for the one query whose words are `words[0]`, `words[8]`, … (`steps` is a multiple of 4; four
/// accumulators keep four multiply-adds in flight).
@inline(__always)
func panelDots1(_ panel: UnsafeRawPointer, _ words: UnsafePointer<Int32>, steps: Int) -> SIMD16<Int32> {
    var a0 = SIMD16<Int32>(), a1 = SIMD16<Int32>(), a2 = SIMD16<Int32>(), a3 = SIMD16<Int32>()
    var k = 0
    while k < steps {
        multiplyAddBytes(
            &a0, panel.load(fromByteOffset: k * 64, as: SIMD16<Int32>.self),
            SIMD16(repeating: words[k * 8]))
        multiplyAddBytes(
            &a1, panel.load(fromByteOffset: k * 64 + 64, as: SIMD16<Int32>.self),
            SIMD16(repeating: words[k * 8 + 8]))
        multiplyAddBytes(
            &a2, panel.load(fromByteOffset: k * 64 + 128, as: SIMD16<Int32>.self),
            SIMD16(repeating: words[k * 8 + 16]))
        multiplyAddBytes(
            &a3, panel.load(fromByteOffset: k * 64 + 192, as: SIMD16<Int32>.self),
            SIMD16(repeating: words[k * 8 + 24]))
        k += 4
    }
    return (a0 &+ a1) &+ (a2 &+ a3)
}
