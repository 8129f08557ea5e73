// Lane shuffles for the Winograd transforms and the stride-2 im2col.
//
// Swift's SIMD types have no shuffle. Built lane by lane, the 32-float interleave of phase D compiles to about 90
// instructions on AVX-512, and the column split of phase B to about 45. LLVM's `shufflevector`, reachable through
// the compiler's Builtin module (as for `prefetch`), is one permute per vector. LLVM needs its mask to be a
// constant: every function here passes literals to transparent mask builders, so the mask is one at every
// optimisation level. Compiled without the Builtin module, the same lanes are moved one by one.
#if hasFeature(BuiltinModule)
import Builtin

/// `v` with lane `i` set to `x` (`@_transparent`, like the builders below, so that literal arguments fold).
@_transparent
func setLane(_ v: Builtin.Vec8xInt32, _ i: Int32, _ x: Int32) -> Builtin.Vec8xInt32 {
    Builtin.insertelement_Vec8xInt32_Int32_Int32(v, x._value, i._value)
}

/// `v` with lane `i` set to lane `j` of `from`.
@_transparent
func setLane(_ v: Builtin.Vec16xInt32, _ i: Int32, from: Builtin.Vec8xInt32, _ j: Int32) -> Builtin.Vec16xInt32 {
    Builtin.insertelement_Vec16xInt32_Int32_Int32(v, Builtin.extractelement_Vec8xInt32_Int32(from, j._value), i._value)
}

/// An 8-lane shuffle mask from literals: lane k of the result takes lane m_k of the two sources laid end to end.
@_transparent
func shuffleMask(
    _ m0: Int32, _ m1: Int32, _ m2: Int32, _ m3: Int32, _ m4: Int32, _ m5: Int32, _ m6: Int32,
    _ m7: Int32
) -> Builtin.Vec8xInt32 {
    var m: Builtin.Vec8xInt32 = Builtin.zeroInitializer()
    m = setLane(m, 0, m0); m = setLane(m, 1, m1); m = setLane(m, 2, m2); m = setLane(m, 3, m3)
    m = setLane(m, 4, m4); m = setLane(m, 5, m5); m = setLane(m, 6, m6); m = setLane(m, 7, m7)
    return m
}

/// A 16-lane shuffle mask: lanes `lo` then lanes `hi`.
@_transparent
func shuffleMask(_ lo: Builtin.Vec8xInt32, _ hi: Builtin.Vec8xInt32) -> Builtin.Vec16xInt32 {
    var m: Builtin.Vec16xInt32 = Builtin.zeroInitializer()
    m = setLane(m, 0, from: lo, 0); m = setLane(m, 1, from: lo, 1); m = setLane(m, 2, from: lo, 2)
    m = setLane(m, 3, from: lo, 3); m = setLane(m, 4, from: lo, 4); m = setLane(m, 5, from: lo, 5)
    m = setLane(m, 6, from: lo, 6); m = setLane(m, 7, from: lo, 7); m = setLane(m, 8, from: hi, 0)
    m = setLane(m, 9, from: hi, 1); m = setLane(m, 10, from: hi, 2); m = setLane(m, 11, from: hi, 3)
    m = setLane(m, 12, from: hi, 4); m = setLane(m, 13, from: hi, 5); m = setLane(m, 14, from: hi, 6)
    m = setLane(m, 15, from: hi, 7)
    return m
}
#endif

/// x[4j + c] for j < 8, c < 4, where x is the 16 floats at `first` then the 16 at `second` (`first + 16` for 32
/// consecutive floats): split into their four column phases.
@inline(__always)
func columnPhases(
    _ first: UnsafePointer<Float>,
    _ second: UnsafePointer<Float>
) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
    #if hasFeature(BuiltinModule)
    let lo = loadVector(UnsafeRawPointer(first), as: SIMD16<Float>.self)._storage._value
    let hi = loadVector(UnsafeRawPointer(second), as: SIMD16<Float>.self)._storage._value
    var c0 = SIMD8<Float>(), c1 = SIMD8<Float>(), c2 = SIMD8<Float>(), c3 = SIMD8<Float>()
    c0._storage._value = Builtin.shufflevector_Vec16xFPIEEE32_Vec8xInt32(
        lo, hi, shuffleMask(0, 4, 8, 12, 16, 20, 24, 28))
    c1._storage._value = Builtin.shufflevector_Vec16xFPIEEE32_Vec8xInt32(
        lo, hi, shuffleMask(1, 5, 9, 13, 17, 21, 25, 29))
    c2._storage._value = Builtin.shufflevector_Vec16xFPIEEE32_Vec8xInt32(
        lo, hi, shuffleMask(2, 6, 10, 14, 18, 22, 26, 30))
    c3._storage._value = Builtin.shufflevector_Vec16xFPIEEE32_Vec8xInt32(
        lo, hi, shuffleMask(3, 7, 11, 15, 19, 23, 27, 31))
    return (c0, c1, c2, c3)
    #else
    let v = SIMD32(
        lowHalf: loadVector(UnsafeRawPointer(first), as: SIMD16<Float>.self),
        highHalf: loadVector(UnsafeRawPointer(second), as: SIMD16<Float>.self))
    let e = v.evenHalf, o = v.oddHalf
    return (e.evenHalf, o.evenHalf, e.oddHalf, o.oddHalf)
    #endif
}

/// The inverse of `columnPhases`: c0[0], c1[0], c2[0], c3[0], c0[1], … as two vectors of 16 (floats 0–15, 16–31).
@inline(__always)
func interleavingColumnPhases(
    _ c0: SIMD8<Float>, _ c1: SIMD8<Float>, _ c2: SIMD8<Float>,
    _ c3: SIMD8<Float>
) -> (SIMD16<Float>, SIMD16<Float>) {
    #if hasFeature(BuiltinModule)
    let halves = shuffleMask(shuffleMask(0, 1, 2, 3, 4, 5, 6, 7), shuffleMask(8, 9, 10, 11, 12, 13, 14, 15))
    let a = Builtin.shufflevector_Vec8xFPIEEE32_Vec16xInt32(c0._storage._value, c1._storage._value, halves)
    let b = Builtin.shufflevector_Vec8xFPIEEE32_Vec16xInt32(c2._storage._value, c3._storage._value, halves)
    var lo = SIMD16<Float>(), hi = SIMD16<Float>()
    lo._storage._value = Builtin.shufflevector_Vec16xFPIEEE32_Vec16xInt32(
        a, b, shuffleMask(shuffleMask(0, 8, 16, 24, 1, 9, 17, 25), shuffleMask(2, 10, 18, 26, 3, 11, 19, 27)))
    hi._storage._value = Builtin.shufflevector_Vec16xFPIEEE32_Vec16xInt32(
        a, b, shuffleMask(shuffleMask(4, 12, 20, 28, 5, 13, 21, 29), shuffleMask(6, 14, 22, 30, 7, 15, 23, 31)))
    return (lo, hi)
    #else
    @inline(__always) func interleave(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD16<Float> {
        SIMD16(a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3], a[4], b[4], a[5], b[5], a[6], b[6], a[7], b[7])
    }
    let even = interleave(c0, c2), odd = interleave(c1, c3)
    return (interleave(even.lowHalf, odd.lowHalf), interleave(even.highHalf, odd.highHalf))
    #endif
}

/// x[0], x[2], …, x[30]: every other float of the 31 from `x` (a stride-2 im2col row), read as two overlapping
/// vectors so that nothing past x[30] is touched.
@inline(__always)
func evenFloats16(_ x: UnsafePointer<Float>) -> SIMD16<Float> {
    #if hasFeature(BuiltinModule)
    let lo = loadVector(UnsafeRawPointer(x), as: SIMD16<Float>.self)._storage._value
    let hi = loadVector(UnsafeRawPointer(x + 15), as: SIMD16<Float>.self)._storage._value
    var r = SIMD16<Float>()
    r._storage._value = Builtin.shufflevector_Vec16xFPIEEE32_Vec16xInt32(
        lo, hi, shuffleMask(shuffleMask(0, 2, 4, 6, 8, 10, 12, 14), shuffleMask(17, 19, 21, 23, 25, 27, 29, 31)))
    return r
    #else
    return SIMD16(
        x[0], x[2], x[4], x[6], x[8], x[10], x[12], x[14],
        x[16], x[18], x[20], x[22], x[24], x[26], x[28], x[30])
    #endif
}

/// x[0], x[2], …, x[14]: `evenFloats16` for 15 floats.
@inline(__always)
func evenFloats8(_ x: UnsafePointer<Float>) -> SIMD8<Float> {
    #if hasFeature(BuiltinModule)
    let lo = loadVector(UnsafeRawPointer(x), as: SIMD8<Float>.self)._storage._value
    let hi = loadVector(UnsafeRawPointer(x + 7), as: SIMD8<Float>.self)._storage._value
    var r = SIMD8<Float>()
    r._storage._value = Builtin.shufflevector_Vec8xFPIEEE32_Vec8xInt32(lo, hi, shuffleMask(0, 2, 4, 6, 9, 11, 13, 15))
    return r
    #else
    return SIMD8(x[0], x[2], x[4], x[6], x[8], x[10], x[12], x[14])
    #endif
}
