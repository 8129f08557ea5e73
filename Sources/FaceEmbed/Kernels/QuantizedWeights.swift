// Quantized weights and activations for the integer kernels (QuantizedConvolution.swift, QuantizedGEMMKernels.swift).
//
// Weights (convolution OIHW, or fully connected [out][in]: w[c][k], K = inC·kH·kW or in): int8, symmetric, one
// scale per output channel, rounded half to even:
//   q[c][k] = clamp(round(w[c][k] · (127 / m_c)), −127, 127)    s_w[c] = m_c / 127    m_c = max_k |w[c][k]|
//   (a row of zeros: q = 0, s_w = 0)
// packed for the micro-kernels with G consecutive k in each 32-bit lane (G = 4 int8 values for 8-bit activations,
// G = 2 int16 for 16-bit):
//   packed[blk][kg][16][G] = q[16·blk + lane][G·kg + j]    zero past outC and past K (rounded up to Kg·G)
//   (k in OIHW order, or tap-major, k = (ky·kW + kx)·inC + ic, for the direct convolution: `tapMajorOrder`)
// so each k-group of a block is 64 bytes: one zmm, the signed operand of vpdpbusd / vpdpwssd, and the 32-bit lane r
// of it is the broadcast that feeds output channel r. 16-bit packing stores the int8 values widened: the broadcast
// then folds into vpdpwssd as a memory operand (`m32bcst`), where sign-extending on the fly would cost an extra
// instruction per channel and k-pair.
//
// Activations, one scale per tensor: range = a calibrated max |x|, or max |x| of the input measured at run time.
//   8-bit   a = clamp(round(x · inv), −128, 127) + 128     u8 with zero point 128 (vpdpbusd multiplies u8 by s8);
//           inv = 127 / range. Σ_k q·a = Σ_k q·(x_q + 128), so the kernels subtract compensation[c] = 128·Σ_k q[c][k].
//   16-bit  a = clamp(round(x · inv), −qmax, qmax)         s16, symmetric; inv = qmax / range with qmax ≤ 32767 small
//           enough that no accumulator can overflow: qmax · max_c Σ_k |q[c][k]| < 2³¹.
//   (8-bit cannot overflow: 255 · max_c Σ_k |q[c][k]| < 2³¹ is checked when the weights are packed.)
// Output: y[c][n] = Float(Σ_k q[c][k] · x_q[k][n]) · (s_x · s_w[c]) with s_x = range / qmax, then the float
// epilogue (bias, PReLU, residual). Rounding x · inv to an integer adds 1.5·2²³ and reads the low mantissa bits: the
// hardware's round half to even, the same as `Float.rounded(.toNearestOrEven)` in the plain reference.

/// Activation precision of a quantized layer (the weights are int8 values either way).
package enum QuantizedPrecision: Int, Sendable, CaseIterable, CustomStringConvertible {
    /// u8 activations with zero point 128, int8 weights: `vpdpbusd`.
    case int8 = 8
    /// s16 activations, int8 weights widened to int16: `vpdpwssd`.
    case int16 = 16

    /// Consecutive k values in one 32-bit lane of the packed weights and of the activation matrix.
    package var group: Int { self == .int8 ? 4 : 2 }
    /// Bytes per packed element.
    package var elementBytes: Int { self == .int8 ? 1 : 2 }
    /// The activation value that stands for x = 0 (the padding of a convolution).
    package var zeroPoint: Int32 { self == .int8 ? 128 : 0 }
    package var description: String { "\(rawValue)-bit" }
}

/// A layer's weights quantized to int8 per output channel and packed for the integer micro-kernels (see the top of
/// this file).
package struct QuantizedWeights: Sendable {
    package let precision: QuantizedPrecision
    /// Output channels and the GEMM depth K.
    package let outC: Int, k: Int
    /// `packed[blk][kg][16][G]`, `blocks · kGroups · 64` bytes.
    package let packed: [UInt8]
    /// s_w per output channel.
    package let scales: [Float]
    /// 128 · Σ_k q[c][k] for 8-bit activations, else 0; one per lane of every block (zero past outC).
    package let compensation: [Int32]
    /// max_c Σ_k |q[c][k]|: bounds every accumulator.
    package let maxAbsRowSum: Int
    /// Whether K is tap-major (k = (ky·kW + kx)·inC + ic, `tapMajorOrder`): the direct convolution's order
    /// (QuantizedDirectConvolution.swift), for 8-bit activations.
    package let tapMajor: Bool

    /// Blocks of 16 output channels.
    package var blocks: Int { (outC + weightLanes - 1) / weightLanes }
    /// k-groups: K rounded up to the group size, divided by it.
    package var kGroups: Int { (k + precision.group - 1) / precision.group }

    /// Quantizes `weights`, `outC` rows of `k` floats (OIHW, or a fully connected layer's [out][in]).
    package init(_ weights: [Float], outC: Int, k: Int, precision: QuantizedPrecision) {
        self.init(weights, outC: outC, k: k, precision: precision, tapMajor: false)
    }

    /// Quantizes `weights`, `outC` rows of `k` floats: OIHW, or a fully connected layer's [out][in]; if `tapMajor`,
    /// a convolution's weights in `tapMajorOrder`, for 8-bit activations.
    package init(_ weights: [Float], outC: Int, k: Int, precision: QuantizedPrecision, tapMajor: Bool) {
        precondition(weights.count == outC * k, "quantized weights: \(weights.count) values for \(outC) × \(k)")
        precondition(!tapMajor || precision == .int8, "quantized weights: tap-major order is for 8-bit activations")
        self.precision = precision; self.outC = outC; self.k = k; self.tapMajor = tapMajor
        let (values, scales) = quantizedWeightValues(weights, outC: outC, k: k)
        self.scales = scales
        let g = precision.group, kg = (k + g - 1) / g, blocks = (outC + weightLanes - 1) / weightLanes
        var packed = [UInt8](repeating: 0, count: blocks * kg * 64)
        var compensation = [Int32](repeating: 0, count: blocks * weightLanes)
        var maxSum = 0
        for c in 0..<outC {
            var sum = 0, absSum = 0
            for kk in 0..<k {
                let q = values[c * k + kk]
                sum += Int(q); absSum += abs(Int(q))
                let lane = ((c / weightLanes * kg + kk / g) * weightLanes + c % weightLanes) * g + kk % g
                if precision == .int8 {
                    packed[lane] = UInt8(bitPattern: q)
                } else {
                    let bits = UInt16(bitPattern: Int16(q))
                    packed[2 * lane] = UInt8(truncatingIfNeeded: bits); packed[2 * lane + 1] = UInt8(bits >> 8)
                }
            }
            compensation[c] = precision == .int8 ? Int32(128 * sum) : 0
            maxSum = max(maxSum, absSum)
        }
        precondition(maxSum * 255 <= Int(Int32.max), "quantized weights: K = \(k) could overflow the accumulators")
        self.packed = packed; self.compensation = compensation; maxAbsRowSum = maxSum
    }

    /// Calls `body` with pointers to the packed arrays, valid only during the call.
    package func withPointers<R>(_ body: (QuantizedWeightPointers) -> R) -> R {
        packed.withUnsafeBytes { p in
            scales.withUnsafeBufferPointer { s in
                compensation.withUnsafeBufferPointer { c in
                    body(
                        QuantizedWeightPointers(
                            precision: precision, outC: outC, k: k, packed: p.baseAddress!,
                            scales: s.baseAddress!, compensation: c.baseAddress!,
                            maxAbsRowSum: maxAbsRowSum, tapMajor: tapMajor))
                }
            }
        }
    }
}

/// The int8 values (row-major [outC][k]) and per-channel scales of `weights`, as described at the top of the file.
package func quantizedWeightValues(_ weights: [Float], outC: Int, k: Int) -> (values: [Int8], scales: [Float]) {
    var values = [Int8](repeating: 0, count: outC * k), scales = [Float](repeating: 0, count: outC)
    for c in 0..<outC {
        let row = weights[(c * k)..<(c * k + k)]
        let m = row.reduce(Float(0)) { max($0, abs($1)) }
        guard m > 0 && m.isFinite else { continue }
        let inv = 127 / m
        scales[c] = m / 127
        for kk in 0..<k {
            values[c * k + kk] = Int8(min(max((row[c * k + kk] * inv).rounded(.toNearestOrEven), -127), 127))
        }
    }
    return (values, scales)
}

/// Quantized weights as the kernels read them: pointers into a `QuantizedWeights` (or, later, a mapped file).
package struct QuantizedWeightPointers {
    package var precision: QuantizedPrecision
    package var outC: Int, k: Int
    package var packed: UnsafeRawPointer
    package var scales: UnsafePointer<Float>
    package var compensation: UnsafePointer<Int32>
    package var maxAbsRowSum: Int
    /// K tap-major: the layer runs as a direct convolution (QuantizedDirectConvolution.swift).
    package var tapMajor: Bool

    package var blocks: Int { (outC + weightLanes - 1) / weightLanes }
    package var kGroups: Int { (k + precision.group - 1) / precision.group }
}

/// How one tensor's floats become integers: a = clamp(round(x · inverse), low, high) + zeroPoint.
package struct ActivationQuantization: Sendable, Equatable {
    package var precision: QuantizedPrecision
    /// s_x: the float value of one integer step (0 for an all-zero range).
    package var scale: Float
    /// The multiplier applied before rounding (0 for an all-zero range).
    package var inverse: Float
    /// The clamp of round(x · inverse), before the zero point is added.
    package var low: Int32, high: Int32
    /// The precision's zero point, stored: in a large kernel the optimiser left the enum's getter as a call, each
    /// call flushing the vector registers to the stack.
    package var zeroPoint: Int32

    /// The quantization of activations whose max |x| is `range`, for a layer with weights bounded by `maxAbsRowSum`.
    package init(range: Float, precision: QuantizedPrecision, maxAbsRowSum: Int) {
        self.precision = precision
        zeroPoint = precision.zeroPoint
        let qmax: Int32 = precision == .int8 ? 127 : Int32(min(32767, Int(Int32.max) / max(1, maxAbsRowSum)))
        (low, high) = precision == .int8 ? (-128, 127) : (-qmax, qmax)
        if range > 0 && range.isFinite {
            scale = range / Float(qmax); inverse = Float(qmax) / range
        } else {
            scale = 0; inverse = 0
        }
    }

    /// The stored integer for one float (the scalar form of `quantize16`; NaN becomes the zero point).
    @inline(__always)
    package func quantize(_ x: Float) -> Int32 {
        let v = x * inverse
        return (v.isNaN ? 0 : Int32(min(max(v, Float(low)), Float(high)).rounded(.toNearestOrEven)))
            + zeroPoint
    }

    /// The stored integers for 16 floats: round half to even by adding 1.5·2²³ (exact for |v| < 2²²; v is clamped
    /// to at most 32767 first), then the low mantissa bits less the magic's, plus the zero point. NaN becomes the
    /// zero point. Comparisons and blends, not `clamped` or `pointwiseMin`, which compile lane by lane.
    @inline(__always)
    func quantize16(_ x: SIMD16<Float>) -> SIMD16<Int32> {
        typealias V = SIMD16<Float>
        var v = x * inverse
        let lo = V(repeating: Float(low)), hi = V(repeating: Float(high))
        v = v.replacing(with: lo, where: v .< lo).replacing(with: hi, where: v .> hi).replacing(with: 0, where: v .!= v)
        let bits = unsafeBitCast(v + V(repeating: 12_582_912), to: SIMD16<Int32>.self)
        return bits &- SIMD16(repeating: 0x4B40_0000 &- zeroPoint)
    }
}

/// max over channels `channels` of the input [c][plane] of |x · scale[c] + shift[c]|, NaN ignored. The affine is
/// monotonic in x, rounding included, so each lane's extreme is at its smallest or largest x; lane j of a channel
/// sees the values at j mod 16 (and the last 16 again, which changes no extreme). Comparisons and blends, as in
/// `maxAbs`, and one reduction at the end.
func affineMaxAbs(
    _ input: UnsafePointer<Float>, plane: Int, channels: Range<Int>, scale: UnsafePointer<Float>,
    shift: UnsafePointer<Float>
) -> Float {
    typealias V = SIMD16<Float>
    var m = V(), r: Float = 0
    for c in channels {
        let x = input + c * plane, s = scale[c], t = shift[c]
        guard plane >= 16 else {
            for i in 0..<plane { let y = abs(x[i] * s + t); if y > r { r = y } }
            continue
        }
        var low = V(repeating: .infinity), high = V(repeating: -.infinity), i = 0
        while i < plane {
            i = min(i, plane - 16)
            let v = loadVector(UnsafeRawPointer(x + i), as: V.self)
            low = low.replacing(with: v, where: v .< low)
            high = high.replacing(with: v, where: v .> high)
            i += 16
        }
        let seen = low .<= high, sv = V(repeating: s), tv = V(repeating: t)
        let a = absolute(low * sv + tv).replacing(with: 0, where: .!seen)
        let b = absolute(high * sv + tv).replacing(with: 0, where: .!seen)
        m = m.replacing(with: a, where: a .> m)
        m = m.replacing(with: b, where: b .> m)
    }
    for j in 0..<16 where m[j] > r { r = m[j] }
    return r
}

/// |v| by clearing the sign bits.
@inline(__always)
private func absolute(_ v: SIMD16<Float>) -> SIMD16<Float> {
    unsafeBitCast(unsafeBitCast(v, to: SIMD16<UInt32>.self) & 0x7FFF_FFFF, to: SIMD16<Float>.self)
}

/// max |x[i]| over `count` floats (NaN ignored). |x| by clearing the sign bit, the maximum by compare and blend:
/// `pointwiseMax` compiles lane by lane.
func maxAbs(_ x: UnsafePointer<Float>, count: Int) -> Float {
    var m = SIMD16<Float>(), i = 0
    while i + 16 <= count {
        let v = absolute(loadVector(UnsafeRawPointer(x + i), as: SIMD16<Float>.self))
        m = m.replacing(with: v, where: v .> m)
        i += 16
    }
    var r: Float = 0
    for j in 0..<16 where m[j] > r { r = m[j] }
    while i < count { if abs(x[i]) > r { r = abs(x[i]) }; i += 1 }
    return r
}
