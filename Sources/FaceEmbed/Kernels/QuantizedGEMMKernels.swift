// Integer micro-kernels of the quantized convolution and fully connected layer (layouts: QuantizedWeights.swift and
// QuantizedConvolution.swift).
//
//   a  one block of packed weights, a[kg][16][G]: 64 bytes per k-group, 32-bit lane r = output channel r
//   b  the activation matrix, b[kg][ld][G]: 4 bytes per k-group and pixel; a panel is 16 consecutive pixels, so one
//      k-group of a panel is 64 bytes too
//   `quantizedKernel16x16`  16 output channels × 16 pixels; accumulator r holds channel r's 16 pixels. AVX-512 VNNI:
//      per k-group one 64-byte load of the panel and 16 `vpdpbusd` (u8 × s8, 64 multiply-adds) or `vpdpwssd`
//      (s16 × s16, 32), each with its channel's 32-bit broadcast folded in as the memory operand (`m32bcst`).
//   `quantizedKernel16x4`   16 output channels × 4 pixels, lanes = channels: per k-group one 64-byte load of the
//      weights and, per pixel, its 32 bits broadcast into `vpdpbusd`; two sets of accumulators (k-groups mod 2). The
//      pixels of a partial last panel four at a time (14 × 14 maps end in a panel of 4).
//   `quantizedKernel16x1`   16 output channels × 1 pixel, lanes = channels: the pixel's 32 bits of each k-group
//      broadcast, the weights as the memory operand; four accumulators (k-groups mod 4) hide the instruction's
//      latency. The fully connected layer, and the pixels of a partial last panel left after groups of four.
// Both return Σ_k q_w · x_q exactly: the zero-point compensation of 8-bit activations is subtracted here.
// `runs`: B's k-groups in runs, run t starting `runs[t]` bytes from the pixel's address and `kGroups` k-groups long,
//   its k-groups `ldb` bytes apart; the weights' k-groups follow one another through all runs. A matrix B is one run
//   at offset 0; the direct convolution reads one run per kernel tap from the quantized input itself.
// Other builds run the same layouts in plain SIMD Int32 arithmetic, one channel (or one k-group) at a time: correct
// everywhere, not fast (no VNNI, and AVX2's `vpmaddubsw` saturates u8 × s8 pairs).
#if FACEEMBED_AVX512 && hasFeature(BuiltinModule)
import Builtin

/// The 32 bits at `p` (any alignment), one load wherever it is inlined: the generic `loadUnaligned` was left as a call
/// in the kernels once their k-groups came in runs (4.5× slower).
@inline(__always)
func loadInt32(_ p: UnsafeRawPointer) -> Int32 {
    Builtin.loadRaw(p._rawValue)
}

/// acc += the dot products of each 32-bit lane's G values of `u` (u8, or s16 if `wide`) and `s` (s8, or s16).
@inline(__always)
func dotAccumulate(_ acc: inout SIMD16<Int32>, _ u: SIMD16<Int32>, _ s: SIMD16<Int32>, wide: Bool) {
    if wide {
        acc._storage._value = Builtin.int_x86_avx512_vpdpwssd_512(
            acc._storage._value, u._storage._value, s._storage._value)
    } else {
        acc._storage._value = Builtin.int_x86_avx512_vpdpbusd_512(
            acc._storage._value, u._storage._value, s._storage._value)
    }
}

/// Channels 0 ..< rows of one block × the 16 pixels of a panel (see the top of the file); `store(r, v)` receives
/// channel r's 16 exact sums. `ldb` is the byte stride from one k-group of b to the next.
@inline(__always)
func quantizedKernel16x16(
    wide: Bool, a: UnsafeRawPointer, b: UnsafeRawPointer, ldb: Int, runs: UnsafeBufferPointer<Int>, kGroups: Int,
    compensation: UnsafePointer<Int32>, rows: Int, _ store: (Int, SIMD16<Int32>) -> Void
) {
    // One copy per instruction: a `wide` tested inside the loop kept the broadcasts out of the instructions.
    if wide {
        vnniKernel16x16(
            wide: true, a: a, b: b, ldb: ldb, runs: runs, kGroups: kGroups, compensation: compensation, rows: rows,
            store)
    } else {
        vnniKernel16x16(
            wide: false, a: a, b: b, ldb: ldb, runs: runs, kGroups: kGroups, compensation: compensation, rows: rows,
            store)
    }
}

/// `quantizedKernel16x16` for one instruction: 16 accumulators and one panel register, each channel's broadcast a
/// memory operand.
@inline(__always)
private func vnniKernel16x16(
    wide: Bool, a: UnsafeRawPointer, b: UnsafeRawPointer, ldb: Int, runs: UnsafeBufferPointer<Int>, kGroups: Int,
    compensation: UnsafePointer<Int32>, rows: Int, _ store: (Int, SIMD16<Int32>) -> Void
) {
    typealias V = SIMD16<Int32>
    var c0 = V(), c1 = V(), c2 = V(), c3 = V(), c4 = V(), c5 = V(), c6 = V(), c7 = V()
    var c8 = V(), c9 = V(), c10 = V(), c11 = V(), c12 = V(), c13 = V(), c14 = V(), c15 = V()
    var ak = a
    for run in runs {
        var x = b + run
        for _ in 0..<kGroups {
            let xv = loadVector(x, as: V.self)
            @inline(__always) func w(_ r: Int) -> V {
                V(repeating: loadInt32(ak + 4 &* r))
            }
            dotAccumulate(&c0, xv, w(0), wide: wide); dotAccumulate(&c1, xv, w(1), wide: wide)
            dotAccumulate(&c2, xv, w(2), wide: wide); dotAccumulate(&c3, xv, w(3), wide: wide)
            dotAccumulate(&c4, xv, w(4), wide: wide); dotAccumulate(&c5, xv, w(5), wide: wide)
            dotAccumulate(&c6, xv, w(6), wide: wide); dotAccumulate(&c7, xv, w(7), wide: wide)
            dotAccumulate(&c8, xv, w(8), wide: wide); dotAccumulate(&c9, xv, w(9), wide: wide)
            dotAccumulate(&c10, xv, w(10), wide: wide); dotAccumulate(&c11, xv, w(11), wide: wide)
            dotAccumulate(&c12, xv, w(12), wide: wide); dotAccumulate(&c13, xv, w(13), wide: wide)
            dotAccumulate(&c14, xv, w(14), wide: wide); dotAccumulate(&c15, xv, w(15), wide: wide)
            x += ldb; ak += 64
        }
    }
    @inline(__always) func put(_ r: Int, _ v: V) { if r < rows { store(r, v &- V(repeating: compensation[r])) } }
    put(0, c0); put(1, c1); put(2, c2); put(3, c3); put(4, c4); put(5, c5); put(6, c6); put(7, c7)
    put(8, c8); put(9, c9); put(10, c10); put(11, c11); put(12, c12); put(13, c13); put(14, c14); put(15, c15)
}

/// The 16 channels of one block × pixels 0 ..< 4, pixel j's k-group kg the 32 bits at x + 4j + kg · ldx: lane r of
/// result j is channel r's exact sum for pixel j.
@inline(__always)
func quantizedKernel16x4(
    wide: Bool, a: UnsafeRawPointer, x: UnsafeRawPointer, ldx: Int, runs: UnsafeBufferPointer<Int>, kGroups: Int,
    compensation: UnsafePointer<Int32>
) -> (SIMD16<Int32>, SIMD16<Int32>, SIMD16<Int32>, SIMD16<Int32>) {
    wide
        ? vnniKernel16x4(wide: true, a: a, x: x, ldx: ldx, runs: runs, kGroups: kGroups, compensation: compensation)
        : vnniKernel16x4(wide: false, a: a, x: x, ldx: ldx, runs: runs, kGroups: kGroups, compensation: compensation)
}

/// `quantizedKernel16x4` for one instruction.
@inline(__always)
private func vnniKernel16x4(
    wide: Bool, a: UnsafeRawPointer, x: UnsafeRawPointer, ldx: Int, runs: UnsafeBufferPointer<Int>, kGroups: Int,
    compensation: UnsafePointer<Int32>
) -> (SIMD16<Int32>, SIMD16<Int32>, SIMD16<Int32>, SIMD16<Int32>) {
    typealias V = SIMD16<Int32>
    var s0 = V(), s1 = V(), s2 = V(), s3 = V(), t0 = V(), t1 = V(), t2 = V(), t3 = V()
    var xp = x, ap = a
    @inline(__always) func step(_ p0: inout V, _ p1: inout V, _ p2: inout V, _ p3: inout V, _ i: Int) {
        let w = loadVector(ap + i &* 64, as: V.self), row = xp + i &* ldx
        @inline(__always) func pixel(_ j: Int) -> V {
            V(repeating: loadInt32(row + 4 &* j))
        }
        dotAccumulate(&p0, pixel(0), w, wide: wide); dotAccumulate(&p1, pixel(1), w, wide: wide)
        dotAccumulate(&p2, pixel(2), w, wide: wide); dotAccumulate(&p3, pixel(3), w, wide: wide)
    }
    for run in runs {
        xp = x + run
        for _ in 0..<(kGroups / 2) {
            step(&s0, &s1, &s2, &s3, 0); step(&t0, &t1, &t2, &t3, 1)
            xp += 2 &* ldx; ap += 128
        }
        if kGroups % 2 == 1 { step(&s0, &s1, &s2, &s3, 0); ap += 64 }
    }
    let c = loadVector(UnsafeRawPointer(compensation), as: V.self)
    return (s0 &+ t0 &- c, s1 &+ t1 &- c, s2 &+ t2 &- c, s3 &+ t3 &- c)
}

/// The 16 channels of one block × one pixel, whose k-group kg is the 32 bits at x + kg · ldx: lane r of the result
/// is channel r's exact sum.
@inline(__always)
func quantizedKernel16x1(
    wide: Bool, a: UnsafeRawPointer, x: UnsafeRawPointer, ldx: Int, runs: UnsafeBufferPointer<Int>, kGroups: Int,
    compensation: UnsafePointer<Int32>
) -> SIMD16<Int32> {
    wide
        ? vnniKernel16x1(wide: true, a: a, x: x, ldx: ldx, runs: runs, kGroups: kGroups, compensation: compensation)
        : vnniKernel16x1(wide: false, a: a, x: x, ldx: ldx, runs: runs, kGroups: kGroups, compensation: compensation)
}

/// `quantizedKernel16x1` for one instruction.
@inline(__always)
private func vnniKernel16x1(
    wide: Bool, a: UnsafeRawPointer, x: UnsafeRawPointer, ldx: Int, runs: UnsafeBufferPointer<Int>, kGroups: Int,
    compensation: UnsafePointer<Int32>
) -> SIMD16<Int32> {
    typealias V = SIMD16<Int32>
    var s0 = V(), s1 = V(), s2 = V(), s3 = V()
    var xp = x, ap = a
    @inline(__always) func step(_ s: inout V, _ i: Int) {
        let xv = V(repeating: loadInt32(xp + i &* ldx))
        dotAccumulate(&s, xv, loadVector(ap + i &* 64, as: V.self), wide: wide)
    }
    for run in runs {
        xp = x + run
        for _ in 0..<(kGroups / 4) {
            step(&s0, 0); step(&s1, 1); step(&s2, 2); step(&s3, 3)
            xp += 4 &* ldx; ap += 256
        }
        for i in 0..<(kGroups % 4) { step(&s0, i) }
        ap += (kGroups % 4) &* 64
    }
    return (s0 &+ s1) &+ (s2 &+ s3) &- loadVector(UnsafeRawPointer(compensation), as: V.self)
}
#else

/// Value j of every 32-bit lane of `v` holding G = 4 (8-bit) or 2 (16-bit, `wide`) values: unsigned bytes (the
/// 8-bit activations) unless `signed`; 16-bit values are always signed.
@inline(__always)
func quantizedLanes(_ v: SIMD16<UInt32>, _ j: Int, wide: Bool, signed: Bool) -> SIMD16<Int32> {
    if wide { return SIMD16<Int32>(truncatingIfNeeded: v &<< UInt32(16 - 16 * j)) &>> 16 }
    if signed { return SIMD16<Int32>(truncatingIfNeeded: v &<< UInt32(24 - 8 * j)) &>> 24 }
    return SIMD16<Int32>(truncatingIfNeeded: (v &>> UInt32(8 * j)) & 0xFF)
}

/// Value j of a 32-bit lane (see `quantizedLanes`).
@inline(__always)
func quantizedLane(_ v: UInt32, _ j: Int, wide: Bool, signed: Bool) -> Int32 {
    if wide { return Int32(truncatingIfNeeded: v &<< UInt32(16 - 16 * j)) &>> 16 }
    if signed { return Int32(truncatingIfNeeded: v &<< UInt32(24 - 8 * j)) &>> 24 }
    return Int32(truncatingIfNeeded: (v &>> UInt32(8 * j)) & 0xFF)
}

/// Portable form of the AVX-512 kernel of the same name: one channel at a time over all k-groups.
@inline(__always)
func quantizedKernel16x16(
    wide: Bool, a: UnsafeRawPointer, b: UnsafeRawPointer, ldb: Int, runs: UnsafeBufferPointer<Int>, kGroups: Int,
    compensation: UnsafePointer<Int32>, rows: Int, _ store: (Int, SIMD16<Int32>) -> Void
) {
    let group = wide ? 2 : 4
    for r in 0..<rows {
        var acc = SIMD16<Int32>(), ak = a
        for run in runs {
            for kg in 0..<kGroups {
                let x = b.loadUnaligned(fromByteOffset: run + kg * ldb, as: SIMD16<UInt32>.self)
                let w = ak.loadUnaligned(fromByteOffset: 4 * r, as: UInt32.self)
                for j in 0..<group {
                    acc &+=
                        quantizedLanes(x, j, wide: wide, signed: false) &* quantizedLane(w, j, wide: wide, signed: true)
                }
                ak += 64
            }
        }
        store(r, acc &- compensation[r])
    }
}

/// Portable form of the AVX-512 kernel of the same name: `quantizedKernel16x1` for each pixel.
@inline(__always)
func quantizedKernel16x4(
    wide: Bool, a: UnsafeRawPointer, x: UnsafeRawPointer, ldx: Int, runs: UnsafeBufferPointer<Int>, kGroups: Int,
    compensation: UnsafePointer<Int32>
) -> (SIMD16<Int32>, SIMD16<Int32>, SIMD16<Int32>, SIMD16<Int32>) {
    @inline(__always) func pixel(_ j: Int) -> SIMD16<Int32> {
        quantizedKernel16x1(
            wide: wide, a: a, x: x + 4 * j, ldx: ldx, runs: runs, kGroups: kGroups, compensation: compensation)
    }
    return (pixel(0), pixel(1), pixel(2), pixel(3))
}

/// Portable form of the AVX-512 kernel of the same name.
@inline(__always)
func quantizedKernel16x1(
    wide: Bool, a: UnsafeRawPointer, x: UnsafeRawPointer, ldx: Int, runs: UnsafeBufferPointer<Int>, kGroups: Int,
    compensation: UnsafePointer<Int32>
) -> SIMD16<Int32> {
    let group = wide ? 2 : 4
    var acc = SIMD16<Int32>(), ak = a
    for run in runs {
        for kg in 0..<kGroups {
            let xv = x.loadUnaligned(fromByteOffset: run + kg * ldx, as: UInt32.self)
            let w = ak.loadUnaligned(as: SIMD16<UInt32>.self)
            for j in 0..<group {
                acc &+=
                    quantizedLanes(w, j, wide: wide, signed: true) &* quantizedLane(xv, j, wide: wide, signed: false)
            }
            ak += 64
        }
    }
    return acc &- UnsafeRawPointer(compensation).loadUnaligned(as: SIMD16<Int32>.self)
}
#endif
