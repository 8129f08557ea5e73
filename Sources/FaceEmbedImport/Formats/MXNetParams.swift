import FaceEmbed

// Reader for MXNet `.params` files (a saved NDArray list), little-endian:
//
//   u64 0x112 (list magic) · u64 0 · u64 N
//   N arrays:  u32 magic: 0xF993FAC8 V1 | 0xF993FAC9 V2 | 0xF993FACA V3 | anything else: legacy, it is ndim
//              i32 storage type (V2, V3; 0 = dense)
//              shape: u32 ndim (i32 in V3, -1 = none) · i64 dims (legacy: u32 ndim already read · u32 dims)
//              i32 dev_type · i32 dev_id · i32 dtype (0 f32, 1 f64, 2 f16) · raw data, C order
//   u64 K (0 or N) · K names: u64 length + UTF-8 bytes ("arg:…" / "aux:…")
//
// The reader records where each array's data lies and converts to float32 only when a tensor is asked for, so a
// 261 MB ResNet100 file is mapped once and never held twice.

/// One array in a `.params` file: its name, shape and where its raw data lies.
struct MXNetArray {
    /// The name without its `arg:` / `aux:` prefix.
    var name: String
    /// `arg` or `aux` (empty when the file has no names).
    var kind: String
    /// Dimensions.
    var shape: [Int]
    /// 0 = float32, 1 = float64, 2 = float16.
    var dtype: Int32
    /// Byte offset of the data in the file.
    var dataOffset: Int
    /// Number of elements.
    var count: Int

    /// The type of `dtype` (checked when the file was read).
    var element: ElementType { ElementType(mxnet: dtype) ?? .float }
}

/// A parsed `.params` file over bytes that stay owned by the caller (usually a `MappedFile`).
struct MXNetParams {
    /// Arrays by name (without prefix).
    private(set) var arrays: [String: MXNetArray] = [:]
    /// The arrays in file order.
    private(set) var ordered: [MXNetArray] = []
    let bytes: UnsafeRawBufferPointer
    let file: String?

    static let listMagic: UInt64 = 0x112
    static let v1: UInt32 = 0xF993_FAC8, v2: UInt32 = 0xF993_FAC9, v3: UInt32 = 0xF993_FACA
    /// More arrays than any model has: a bound on the header's count before anything is allocated.
    static let maxArrays = 100_000

    /// Parses the array headers and names; no data is copied.
    init(bytes: UnsafeRawBufferPointer, file: String?) throws(FaceEmbedError) {
        self.bytes = bytes
        self.file = file
        var r = ByteReader(bytes) { .invalidWeights(file: file, reason: "MXNet params: \($0)") }
        let magic = try r.u64("list magic")
        guard magic == Self.listMagic else {
            throw r.fail("not an MXNet .params file (list magic 0x\(String(magic, radix: 16)), expected 0x112)")
        }
        _ = try r.u64("reserved")
        let n = try r.u64("array count")
        guard n <= UInt64(Self.maxArrays), n * 16 <= UInt64(r.remaining) else {
            throw r.fail("array count \(n) is impossible for a file of \(bytes.count) bytes")
        }
        var list: [MXNetArray] = []
        for i in 0..<Int(n) { list.append(try Self.readArray(&r, index: i)) }
        let k = try r.u64("name count")
        guard k == 0 || k == n else { throw r.fail("\(k) names for \(n) arrays") }
        for i in 0..<Int(k) {
            let len = try r.u64("name length")
            guard len <= 4096 else { throw r.fail("name \(i) is \(len) bytes long") }
            let full = try r.string(count: Int(len), "name \(i)")
            if full.hasPrefix("arg:") || full.hasPrefix("aux:") {
                list[i].kind = String(full.prefix(3))
                list[i].name = String(full.dropFirst(4))
            } else {
                list[i].name = full
            }
        }
        if k == 0 { for i in list.indices { list[i].name = "\(i)" } }
        ordered = list
        for a in list {
            guard arrays[a.name] == nil else { throw r.fail("the name \(a.name) appears twice") }
            arrays[a.name] = a
        }
    }

    private static func readArray(_ r: inout ByteReader, index: Int) throws(FaceEmbedError) -> MXNetArray {
        let what = "array \(index)"
        let magic = try r.u32("\(what) magic")
        var shape: [Int] = []
        var scalar = false
        switch magic {
        case v1, v2, v3:
            if magic != v1 {
                let stype = try r.i32("\(what) storage type")
                guard stype == 0 else {
                    throw r.fail("\(what) has sparse storage type \(stype); only dense arrays are supported")
                }
            }
            let ndim = try r.i32("\(what) ndim")
            if magic == v3 && ndim == -1 {
                return MXNetArray(name: "", kind: "", shape: [], dtype: 0, dataOffset: r.offset, count: 0)
            }
            guard ndim >= 0, ndim <= 8 else { throw r.fail("\(what) has \(ndim) dimensions") }
            for d in 0..<Int(ndim) {
                let v = try r.i64("\(what) dim \(d)")
                guard v >= 0, v <= Int64(Int32.max) else { throw r.fail("\(what) dimension \(v) is out of range") }
                shape.append(Int(v))
            }
            scalar = magic == v3 && ndim == 0
        default:
            // Legacy: the word just read is ndim, then u32 dims.
            guard magic <= 8 else { throw r.fail("\(what) has unknown magic 0x\(String(magic, radix: 16))") }
            for d in 0..<Int(magic) { shape.append(Int(try r.u32("\(what) dim \(d)"))) }
        }
        if shape.isEmpty && !scalar {
            return MXNetArray(name: "", kind: "", shape: [], dtype: 0, dataOffset: r.offset, count: 0)
        }
        _ = try r.i32("\(what) device type")
        _ = try r.i32("\(what) device id")
        let dtype = try r.i32("\(what) dtype")
        guard let element = ElementType(mxnet: dtype) else {
            throw r.fail("\(what) has dtype \(dtype); only float32, float64 and float16 are supported")
        }
        let size = element.size
        var count = 1
        for d in shape {
            let (p, o) = count.multipliedReportingOverflow(by: d)
            guard !o, p <= r.remaining / size else { throw r.fail("\(what) of shape \(shape) is larger than the file") }
            count = p
        }
        let offset = r.offset
        try r.skip(count * size, "\(what) data")
        return MXNetArray(name: "", kind: "", shape: shape, dtype: dtype, dataOffset: offset, count: count)
    }

    /// The array `name`, or an error naming it as missing.
    func array(_ name: String) throws(FaceEmbedError) -> MXNetArray {
        guard let a = arrays[name] else { throw .invalidWeights(file: file, reason: "parameter \(name) is missing") }
        return a
    }

    /// Throws, naming the parameter, if a value is NaN or infinite as float32 (a float64 beyond Float's range
    /// counts as infinite). Reads in place; nothing is allocated.
    func checkFinite(_ a: MXNetArray) throws(FaceEmbedError) {
        let type = a.element
        for i in 0..<a.count {
            let v = type.float(bytes, at: a.dataOffset + i * type.size)
            guard v.isFinite else {
                throw .invalidWeights(
                    file: file,
                    reason:
                        "parameter \(a.name) holds \(v.isNaN ? "NaN" : "an infinite value") at index \(i) of shape \(a.shape)"
                )
            }
        }
    }

    /// The array's values as float32 (float16 and float64 converted).
    func floats(_ a: MXNetArray) -> [Float] { a.element.floats(bytes, at: a.dataOffset, count: a.count) }
}
