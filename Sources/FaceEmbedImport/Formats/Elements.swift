// Stored tensor elements, for the ONNX and MXNet readers alike: each element type's size and how one little-endian
// element at a byte offset becomes a float32 (or, for ONNX shapes, an integer). Tensor data stays in the mapped file
// until a converter asks for it.

/// An element type of stored tensor data; the raw values are ONNX's `TensorProto.DataType` codes.
enum ElementType: Int, Sendable {
    case float = 1, uint8 = 2, int8 = 3, int32 = 6, int64 = 7, bool = 9, float16 = 10, double = 11, bfloat16 = 16

    /// The type of an MXNet dtype code (0 float32, 1 float64, 2 float16), or nil for any other.
    init?(mxnet dtype: Int32) {
        switch dtype {
        case 0: self = .float
        case 1: self = .double
        case 2: self = .float16
        default: return nil
        }
    }

    /// Bytes per element.
    var size: Int {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .float16, .bfloat16: return 2
        case .float, .int32: return 4
        case .int64, .double: return 8
        }
    }

    var isFloatingPoint: Bool { self == .float || self == .float16 || self == .double || self == .bfloat16 }

    /// The element at byte `offset` of `bytes`, as float32 (a double rounded, an integer converted).
    func float(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Float {
        switch self {
        case .float: return Float(bitPattern: bytes.littleEndian(at: offset))
        case .double: return Float(Double(bitPattern: bytes.littleEndian(at: offset)))
        case .float16: return halfToFloat(bytes.littleEndian(at: offset))
        case .bfloat16: return bfloat16ToFloat(bytes.littleEndian(at: offset))
        case .int64, .int32, .int8, .uint8, .bool: return Float(integer(bytes, at: offset))
        }
    }

    /// The integer element at byte `offset` of `bytes` (a floating-point type is read as its first byte).
    func integer(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Int64 {
        switch self {
        case .int64: return bytes.littleEndian(at: offset)
        case .int32: return Int64(Int32(bitPattern: bytes.littleEndian(at: offset)))
        case .int8: return Int64(Int8(bitPattern: bytes[offset]))
        default: return Int64(bytes[offset])
        }
    }

    /// `count` elements from byte `offset` of `bytes`, as float32.
    func floats(_ bytes: UnsafeRawBufferPointer, at offset: Int, count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { out, n in
            for i in 0..<count { out[i] = float(bytes, at: offset + i * size) }
            n = count
        }
    }

    /// The offsets of the whole elements within `range` (a trailing partial element is left out).
    func offsets(in range: Range<Int>) -> StrideTo<Int> {
        stride(from: range.lowerBound, to: range.upperBound - size + 1, by: size)
    }
}

extension UnsafeRawBufferPointer {
    /// The little-endian integer at byte `offset` (unaligned).
    func littleEndian<T: FixedWidthInteger>(at offset: Int) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

/// IEEE 754 binary16 → binary32, exact (subnormals, infinities and NaN included), without relying on the platform's
/// `Float16`.
func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exp = Int(h >> 10) & 0x1F, frac = UInt32(h & 0x3FF)
    if exp == 0 {
        let v = Float(frac) * 0x1p-24  // subnormal or zero
        return sign != 0 ? -v : v
    }
    if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (frac << 13)) }
    return Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | (frac << 13))
}

/// bfloat16 → binary32: the upper half of a float32's bits.
func bfloat16ToFloat(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }
