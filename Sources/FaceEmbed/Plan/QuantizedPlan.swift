// Int8 layers in a plan and in the flat file (format version 3 and later, Models/FORMAT.md):
//
//   op 7  quantized convolution (groups = 1): op 1's 19 fields, then the weight-scale tensor and the activation bits
//   op 8  quantized fully connected:          op 3's 6 fields, then the weight-scale tensor and the activation bits
//
// The weight tensor is int8 (element type 1), per output channel symmetric (QuantizedWeights.swift), stored as the
// 8-bit kernels read it: shape [B][Kg][16][4], B = ⌈outC/16⌉, Kg = ⌈K/4⌉, element [b][kg][l][j] = q[16b + l][4kg + j],
// zero past outC and past K, k in op 1's order (ic·kH + ky)·kW + kx, except (version 4) for the convolutions the
// direct kernel runs (stride 1, 2·pad = kernel − 1, inC a multiple of 4, 64 pixels: `quantizedDirectApplies`), whose k is
// tap-major, (ky·kW + kx)·inC + ic; the scales are float32 [outC] (w ≈ q · scale[c]). Activations are quantized per tensor
// at run time (max |x| of each input), to 8 bits (u8, `vpdpbusd`) or 16 (s16, `vpdpwssd`, int8 weights widened when
// the model loads). Everything else about a layer (bias, PReLU, residual, input affine) is as for its float op.

/// The element type of a flat-file tensor (format version 3; version 2 files hold only float32).
package enum TensorElementType: UInt32, Sendable {
    /// IEEE-754 binary32.
    case float32 = 0
    /// Signed 8-bit integers (the quantized layers' weights).
    case int8 = 1

    /// Bytes per element.
    package var size: Int { self == .float32 ? 4 : 1 }
}

/// What makes a convolution or fully connected layer an int8 one.
package struct LayerQuantization: Equatable, Sendable {
    /// Tensor index of the float32 weight scales, one per output channel.
    package var scales: Int
    /// The width its input is quantized to at run time.
    package var activations: QuantizedPrecision
    /// Whether the stored weights have K tap-major (`tapMajorOrder`): a convolution the direct kernel runs
    /// (`quantizedDirectApplies`) in a file of version 4 or later; not a field of the record.
    package var tapMajor: Bool

    /// A layer whose weights have K in OIHW order.
    package init(scales: Int, activations: QuantizedPrecision) {
        self.init(scales: scales, activations: activations, tapMajor: false)
    }

    /// A layer whose weights have K tap-major if `tapMajor`.
    package init(scales: Int, activations: QuantizedPrecision, tapMajor: Bool) {
        self.scales = scales; self.activations = activations; self.tapMajor = tapMajor
    }
}

/// The numeric precision of a model's weights, chosen when it is converted (`faceembed convert --precision`).
public enum ModelPrecision: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Every weight and activation float32 (the default).
    case float32
    /// Convolutions with groups = 1 and fully connected layers with int8 weights (one scale per output channel) and
    /// 8-bit activations (one scale per tensor, measured on each image); depthwise convolutions stay float32.
    case int8

    /// "float32" or "int8".
    public var description: String { rawValue }
}

/// The shape of a quantized layer's stored int8 weights for `outC` rows of depth `k` (see the top of the file).
package func quantizedWeightShape(outC: Int, k: Int) -> [Int] {
    [(outC + weightLanes - 1) / weightLanes, (k + 3) / 4, weightLanes, 4]
}

/// Row-major int8 values [outC][k] in the stored layout (see the top of the file).
package func packedInt8Weights(_ values: [Int8], outC: Int, k: Int) -> [Int8] {
    let kGroups = (k + 3) / 4
    var packed = [Int8](repeating: 0, count: quantizedWeightShape(outC: outC, k: k).reduce(1, *))
    for c in 0..<outC {
        for kk in 0..<k {
            packed[((c / weightLanes * kGroups + kk / 4) * weightLanes + c % weightLanes) * 4 + kk % 4] =
                values[c * k + kk]
        }
    }
    return packed
}

/// What the integer kernels need beyond the stored weights: per lane of every block, 128 · Σ_k q (the 8-bit
/// zero-point compensation), and max_c Σ_k |q|; or the first fault of hostile data (a value of −128, a non-zero
/// padding lane, row sums that could overflow a 32-bit accumulator).
package struct Int8WeightSums {
    package var compensation: [Int32]
    package var maxAbsRowSum: Int

    package init(_ p: UnsafePointer<Int8>, outC: Int, k: Int) throws(Int8WeightFault) {
        let kGroups = (k + 3) / 4, blocks = (outC + weightLanes - 1) / weightLanes
        compensation = [Int32](repeating: 0, count: blocks * weightLanes)
        var sums = [Int](repeating: 0, count: blocks * weightLanes), abs = sums
        for b in 0..<blocks {
            // Lane l of a k-group's 64 bytes is channel 16b + l: summed 16 channels at a time, in 32-bit lanes
            // emptied into `sums` every 4096 k-groups (at most 4096 · 4 · 127 each), scalar code took half a
            // second for r100.
            var kg = 0
            while kg < kGroups {
                let end = min(kGroups, kg + 4096)
                // Arithmetic only (masks compiled to a branch per lane): |q| = (q ^ s) − s with s = q >> 31, and
                // q + 127 is negative only for q = −128, so the or of them all has its sign bit set if any is.
                var sum = SIMD16<Int32>(), absSum = SIMD16<Int32>(), flags = SIMD16<Int32>()
                for g in kg..<end {
                    let v = UnsafeRawPointer(p + (b * kGroups + g) * weightLanes * 4).loadUnaligned(
                        as: SIMD16<Int32>.self)
                    for j in 0..<4 {
                        let q = (v &<< Int32(24 - 8 * j)) &>> 24, s = q &>> 31
                        sum &+= q
                        absSum &+= (q ^ s) &- s
                        flags |= q &+ 127
                    }
                }
                guard flags.min() >= 0 else { throw .outOfRange }
                for l in 0..<weightLanes {
                    sums[b * weightLanes + l] += Int(sum[l]); abs[b * weightLanes + l] += Int(absSum[l])
                }
                kg = end
            }
        }
        try Int8WeightSums.checkPadding(p, outC: outC, k: k)
        maxAbsRowSum = abs.max() ?? 0
        guard maxAbsRowSum * 255 <= Int(Int32.max) else { throw .overflow }
        for c in 0..<outC { compensation[c] = Int32(128 * sums[c]) }
    }

    /// Throws unless every value past outC (the last block's spare lanes) and past K (the last k-group's spare
    /// bytes) is zero.
    private static func checkPadding(_ p: UnsafePointer<Int8>, outC: Int, k: Int) throws(Int8WeightFault) {
        let kGroups = (k + 3) / 4, blocks = (outC + weightLanes - 1) / weightLanes
        @inline(__always) func value(_ b: Int, _ kg: Int, _ l: Int, _ j: Int) -> Int8 {
            p[((b * kGroups + kg) * weightLanes + l) * 4 + j]
        }
        for kg in 0..<kGroups {
            for l in (outC - (blocks - 1) * weightLanes)..<weightLanes {
                for j in 0..<4 where value(blocks - 1, kg, l, j) != 0 { throw .padding }
            }
        }
        for b in 0..<blocks {
            for l in 0..<weightLanes {
                for j in (k - 4 * (kGroups - 1))..<4 where value(b, kGroups - 1, l, j) != 0 { throw .padding }
            }
        }
    }
}

/// Why stored int8 weights are refused.
package enum Int8WeightFault: Error {
    case outOfRange, padding, overflow

    var reason: String {
        switch self {
        case .outOfRange: return "holds −128 (quantized weights lie in −127…127)"
        case .padding: return "has non-zero values in its padding lanes"
        case .overflow: return "has rows too large for 32-bit accumulators"
        }
    }
}

extension ModelPlan {
    /// int8 if any layer is quantized.
    package var precision: ModelPrecision {
        layers.contains { $0.quantization != nil } ? .int8 : .float32
    }
}

extension Layer {
    /// The layer's quantization, if it is an int8 convolution or fully connected layer.
    package var quantization: LayerQuantization? {
        switch self {
        case let .convolution(c): return c.quantization
        case let .fullyConnected(f): return f.quantization
        default: return nil
        }
    }

    /// Output channels and GEMM depth of a quantized layer's weights.
    package var quantizedRows: (outC: Int, k: Int)? {
        switch self {
        case let .convolution(c) where c.quantization != nil: return (c.geometry.outC, c.geometry.k)
        case let .fullyConnected(f) where f.quantization != nil: return (f.outFeatures, f.inFeatures)
        default: return nil
        }
    }
}

extension FlatFile {
    /// The two fields a quantized layer adds to its float op's record.
    static func quantizationFields(_ q: LayerQuantization?) -> [Int] {
        q.map { [$0.scales, $0.activations.rawValue] } ?? []
    }

    /// `layer` with `tapMajor` set as a file of `version` stores it: a quantized convolution the direct kernel runs,
    /// from version 4.
    package static func tapMajorMarked(_ layer: Layer, version: UInt32) -> Layer {
        guard case var .convolution(c) = layer, var q = c.quantization else { return layer }
        q.tapMajor = version >= 4 && quantizedDirectApplies(c.geometry)
        c.quantization = q
        return .convolution(c)
    }

    /// Op 7 or 8 (see the top of the file) from its fields: the float layer decoded from the first fields, then the
    /// quantization from the last two.
    static func decodeQuantizedLayer(
        code: UInt32, fields f: [Int], index i: Int, fail: (String) -> FaceEmbedError
    ) throws(FaceEmbedError) -> Layer {
        let base = try decodeLayer(code: code == 7 ? 1 : 3, fields: Array(f.dropLast(2)), index: i, fail: fail)
        guard let bits = f.last, let activations = QuantizedPrecision(rawValue: bits) else {
            throw fail("layer \(i): activation width \(f.last ?? 0) is neither 8 nor 16")
        }
        let q = LayerQuantization(scales: f[f.count - 2], activations: activations)
        switch base {
        case var .convolution(c):
            guard c.geometry.groups == 1 else { throw fail("layer \(i): a quantized convolution needs groups = 1") }
            c.quantization = q
            return .convolution(c)
        case var .fullyConnected(fc):
            fc.quantization = q
            return .fullyConnected(fc)
        default:
            throw fail("layer \(i): unknown operator \(code) with \(f.count) fields")
        }
    }

    /// The data of every quantized layer: scales finite (checked with every float tensor) and not negative, int8
    /// weights as `Int8WeightSums` requires.
    static func checkQuantizedData(
        _ plan: ModelPlan, _ bytes: UnsafeRawBufferPointer, offsets: [Int], fail: (String) -> FaceEmbedError
    ) throws(FaceEmbedError) {
        for layer in plan.layers {
            guard let q = layer.quantization, let rows = layer.quantizedRows else { continue }
            let scales = plan.tensors[q.scales], weights = plan.tensors[layer.weightTensor]
            for c in 0..<rows.outC
            where bytes.loadUnaligned(fromByteOffset: offsets[q.scales] + 4 * c, as: Float.self) < 0 {
                throw fail("tensor \(scales.name) holds a negative scale at \(c)")
            }
            let p = (bytes.baseAddress! + offsets[layer.weightTensor]).assumingMemoryBound(to: Int8.self)
            do {
                _ = try Int8WeightSums(p, outC: rows.outC, k: rows.k)
            } catch {
                throw fail("tensor \(weights.name) \(error.reason)")
            }
        }
    }
}

extension Layer {
    /// The weight tensor of a convolution or fully connected layer (−1 for other layers).
    var weightTensor: Int {
        switch self {
        case let .convolution(c): return c.weight
        case let .fullyConnected(f): return f.weight
        default: return -1
        }
    }
}
