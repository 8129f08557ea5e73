import FaceEmbed

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Writes FaceEmbed's flat file (Models/FORMAT.md; the reader and validator are in FaceEmbed's Plan/FlatFile.swift).

extension FlatFile {
    // MARK: Writing

    /// Writes `model` to `path`, producing and writing one tensor at a time. Denormal weights are flushed to zero;
    /// NaN or infinite weights are refused. `version` 2 (no element types; float32 models only) and 3 (int8 weights
    /// with K in OIHW order everywhere) are for the tests that check old files still load.
    static func write(_ model: ImportedModel, to path: String, version: UInt32 = version) throws(FaceEmbedError) {
        guard version >= 3 || model.plan.tensors.allSatisfy({ $0.elementType == .float32 }) else {
            throw .invalidArgument("format version \(version) cannot hold int8 tensors")
        }
        for layer in model.plan.layers where tapMajorMarked(layer, version: version) != layer {
            throw .invalidArgument("format version \(version) stores another order of \(layer)'s int8 weights")
        }
        guard version >= 3 || (model.plan.outputs.count == 1 && model.plan.kind != .faceDetector) else {
            throw .invalidArgument("format version \(version) holds one output, the embedding")
        }
        let layout = FileLayout(model.plan, typed: version >= 3)
        try writeAtomically(path) { (f: UnsafeMutablePointer<FILE>) throws(FaceEmbedError) in
            var sink = FileSink(file: f), h = fnvOffset
            sink.put([UInt8](repeating: 0, count: headerSize))  // the header, written last, when the checksum is known
            layout.table.bytes.withUnsafeBytes { hash($0, into: &h) }
            sink.put(layout.table.bytes)
            for i in model.plan.tensors.indices {
                let chunk = try tensorBytes(model, i, path: path)
                chunk.withUnsafeBytes { hash($0, into: &h) }
                sink.put(chunk)
            }
            guard fseek(f, 0, SEEK_SET) == 0 else { throw .io(file: path, reason: "cannot seek") }
            sink.put(header(model.plan, layout, version: version, checksum: h))
            guard sink.ok, fflush(f) == 0 else {
                throw .io(file: path, reason: "write failed: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Writes through `body` to a temporary name renamed to `path` at the end, so that no reader ever sees a
    /// half-written file; on failure the temporary file is removed.
    private static func writeAtomically(
        _ path: String, _ body: (UnsafeMutablePointer<FILE>) throws(FaceEmbedError) -> Void
    ) throws(FaceEmbedError) {
        var st = stat()
        if stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
            throw .io(file: path, reason: "cannot create: \(String(cString: strerror(EISDIR)))")
        }
        let partial = "\(path).partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard let f = fopen(partial, "wb") else {
            throw .io(file: path, reason: "cannot create: \(String(cString: strerror(errno)))")
        }
        do {
            try body(f)
        } catch {
            fclose(f); unlink(partial)
            throw error
        }
        guard fclose(f) == 0, rename(partial, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(partial)
            throw .io(file: path, reason: "cannot write: \(reason)")
        }
    }

    /// Tensor `i`'s data as stored: float32 little-endian, denormals flushed, or int8 (from floats holding whole
    /// numbers in −127…127), padded to the alignment.
    private static func tensorBytes(_ model: ImportedModel, _ i: Int, path: String) throws(FaceEmbedError) -> [UInt8] {
        let t = model.plan.tensors[i]
        let data = model.produce[i]()
        guard data.count == t.count else {
            throw .invalidWeights(
                file: path,
                reason: "tensor \(t.name) produced \(data.count) values for shape \(t.shape)")
        }
        var chunk = ByteWriter()
        if t.elementType == .int8 {
            for (j, v) in data.enumerated() {
                guard v == v.rounded(), abs(v) <= 127 else {
                    throw .invalidWeights(file: path, reason: "tensor \(t.name) holds \(v) at \(j), not an int8 weight")
                }
                chunk.bytes.append(UInt8(bitPattern: Int8(v)))
            }
            chunk.pad(to: aligned(t.count))
            return chunk.bytes
        }
        chunk.bytes.reserveCapacity(aligned(t.count * 4))
        for (j, v) in data.enumerated() {
            guard v.isFinite else {
                throw .invalidWeights(file: path, reason: "tensor \(t.name) holds a NaN or infinite value at \(j)")
            }
            chunk.u32(v.isSubnormal ? 0 : v.bitPattern)
        }
        chunk.pad(to: aligned(t.count * 4))
        return chunk.bytes
    }

    private static func header(_ plan: ModelPlan, _ layout: FileLayout, version: UInt32, checksum: UInt64) -> [UInt8] {
        var header = ByteWriter()
        header.bytes.append(contentsOf: magic)
        header.u32(version); header.u32(headerSize)
        header.u32(plan.kind.rawValue); header.u32(plan.embeddingSize)
        header.u32(plan.values[0].c); header.u32(plan.values[0].h); header.u32(plan.values[0].w)
        header.u32(plan.channelOrder.rawValue)
        header.u32(plan.inputMean.bitPattern); header.u32(plan.inputScale.bitPattern)
        header.u32(plan.values.count); header.u32(plan.layers.count); header.u32(plan.tensors.count)
        header.u32(version >= 3 ? plan.outputs.count : plan.output)
        header.u64(layout.fileSize); header.u64(headerSize); header.u64(layout.tableSize); header.u64(layout.dataOffset)
        header.u64(checksum)
        var name = Array(plan.name.utf8.prefix(23))
        name += [UInt8](repeating: 0, count: 24 - name.count)
        header.bytes += name
        return header.bytes
    }

    /// Where everything goes: the tables (values, layers, tensors with their offsets) and the sizes.
    private struct FileLayout {
        /// The tables, padded to the data.
        var table = ByteWriter()
        var tableSize = 0, dataOffset = 0, fileSize = 0

        init(_ plan: ModelPlan, typed: Bool) {
            for v in plan.values { table.u32(v.c); table.u32(v.h); table.u32(v.w) }
            for layer in plan.layers {
                let fields = layerFields(layer)
                table.u32(layerCode(layer)); table.u32(fields.count)
                for f in fields { table.i32(f) }
            }
            for o in plan.outputs where typed {
                let name = Array(o.name.utf8)
                table.u32(o.value); table.u32(name.count); table.bytes += name
                table.pad(to: (table.bytes.count + 3) / 4 * 4)
            }
            // Offsets are known before any data is produced: the tables' size does not depend on them.
            var probe = table
            for t in plan.tensors { tensorRecord(&probe, t, offset: 0, typed: typed) }
            tableSize = probe.bytes.count
            dataOffset = aligned(headerSize + tableSize)
            var cursor = dataOffset
            for t in plan.tensors {
                tensorRecord(&table, t, offset: cursor, typed: typed)
                cursor = aligned(cursor + t.count * t.elementType.size)
            }
            fileSize = cursor
            table.pad(to: dataOffset - headerSize)
        }
    }

    fileprivate static func tensorRecord(_ w: inout ByteWriter, _ t: TensorInfo, offset: Int, typed: Bool) {
        let name = Array(t.name.utf8)
        w.u32(name.count); w.bytes += name
        w.pad(to: (w.bytes.count + 3) / 4 * 4)
        w.u32(t.shape.count)
        for d in t.shape { w.u32(d) }
        w.u64(offset); w.u64(t.count)
        if typed { w.u32(t.elementType.rawValue) }
    }
}

/// A `FILE` written in pieces; `ok` turns false at the first short write.
private struct FileSink {
    let file: UnsafeMutablePointer<FILE>
    var ok = true

    mutating func put(_ bytes: [UInt8]) {
        let n = bytes.withUnsafeBytes { $0.isEmpty ? 0 : fwrite($0.baseAddress, 1, $0.count, file) }
        if n != bytes.count { ok = false }
    }
}

/// Little-endian byte sink for headers and tables.
struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u32<T: BinaryInteger>(_ v: T) {
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: v).littleEndian) { bytes += $0 }
    }
    mutating func i32(_ v: Int) { u32(UInt32(bitPattern: Int32(truncatingIfNeeded: v))) }
    mutating func u64<T: BinaryInteger>(_ v: T) {
        withUnsafeBytes(of: UInt64(truncatingIfNeeded: v).littleEndian) { bytes += $0 }
    }
    mutating func pad(to n: Int) { if bytes.count < n { bytes += [UInt8](repeating: 0, count: n - bytes.count) } }
}
