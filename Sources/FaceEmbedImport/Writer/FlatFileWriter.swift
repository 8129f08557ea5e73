#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import FaceEmbed

// Writes FaceEmbed's flat file (Models/FORMAT.md; the reader and validator are in FaceEmbed's Plan/FlatFile.swift).

extension FlatFile {
    // MARK: Writing

    /// Writes `model` to `path`, producing and writing one tensor at a time. Denormal weights are flushed to zero;
    /// NaN or infinite weights are refused.
    static func write(_ model: ImportedModel, to path: String) throws(FaceEmbedError) {
        let plan = model.plan
        var table = ByteWriter()
        for v in plan.values { table.u32(v.c); table.u32(v.h); table.u32(v.w) }
        for layer in plan.layers {
            let fields = layerFields(layer)
            table.u32(layerCode(layer)); table.u32(fields.count)
            for f in fields { table.i32(f) }
        }
        // Offsets are known before any data is produced: the tables' size does not depend on them.
        var tableSize = 0
        do {
            var probe = table
            for t in plan.tensors { tensorRecord(&probe, t, offset: 0) }
            tableSize = probe.bytes.count
        }
        let dataOffset = aligned(headerSize + tableSize)
        var offsets: [Int] = []
        var cursor = dataOffset
        for t in plan.tensors { offsets.append(cursor); cursor = aligned(cursor + t.count * 4) }
        let fileSize = cursor
        for (t, o) in zip(plan.tensors, offsets) { tensorRecord(&table, t, offset: o) }
        table.pad(to: dataOffset - headerSize)

        // Written under a temporary name and renamed into place, so no reader ever sees a half-written file.
        var st = stat()
        if stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
            throw .io(file: path, reason: "cannot create: \(String(cString: strerror(EISDIR)))")
        }
        let partial = "\(path).partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard let f = fopen(partial, "wb") else {
            throw .io(file: path, reason: "cannot create: \(String(cString: strerror(errno)))")
        }
        do {
            try writeContents(f)
        } catch {
            fclose(f); unlink(partial)
            throw error
        }
        guard fclose(f) == 0, rename(partial, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(partial)
            throw .io(file: path, reason: "cannot write: \(reason)")
        }

        func writeContents(_ f: UnsafeMutablePointer<FILE>) throws(FaceEmbedError) {
            var ok = true
            func put(_ b: UnsafeRawBufferPointer) { if b.count > 0, fwrite(b.baseAddress, 1, b.count, f) != b.count { ok = false } }
            var h = fnvOffset
            [UInt8](repeating: 0, count: headerSize).withUnsafeBytes { put($0) }
            table.bytes.withUnsafeBytes { hash($0, into: &h); put($0) }
            for (i, t) in plan.tensors.enumerated() {
                var data = model.produce[i]()
                guard data.count == t.count else {
                    throw .invalidWeights(file: path, reason: "tensor \(t.name) produced \(data.count) values for shape \(t.shape)")
                }
                for j in data.indices {
                    guard data[j].isFinite else {
                        throw .invalidWeights(file: path, reason: "tensor \(t.name) holds a NaN or infinite value at \(j)")
                    }
                    if data[j].isSubnormal { data[j] = 0 }
                }
                var chunk = ByteWriter()
                chunk.bytes.reserveCapacity(aligned(t.count * 4))
                for v in data { chunk.u32(v.bitPattern) }
                chunk.pad(to: aligned(t.count * 4))
                chunk.bytes.withUnsafeBytes { hash($0, into: &h); put($0) }
            }
            var header = ByteWriter()
            header.bytes.append(contentsOf: magic)
            header.u32(version); header.u32(headerSize)
            header.u32(plan.kind.rawValue); header.u32(plan.embeddingSize)
            header.u32(modelInputShape.c); header.u32(modelInputShape.h); header.u32(modelInputShape.w)
            header.u32(plan.channelOrder.rawValue)
            header.u32(plan.inputMean.bitPattern); header.u32(plan.inputScale.bitPattern)
            header.u32(plan.values.count); header.u32(plan.layers.count); header.u32(plan.tensors.count); header.u32(plan.output)
            header.u64(fileSize); header.u64(headerSize); header.u64(tableSize); header.u64(dataOffset); header.u64(h)
            var name = Array(plan.name.utf8.prefix(23))
            name += [UInt8](repeating: 0, count: 24 - name.count)
            header.bytes += name
            guard fseek(f, 0, SEEK_SET) == 0 else { throw .io(file: path, reason: "cannot seek") }
            header.bytes.withUnsafeBytes { put($0) }
            guard ok, fflush(f) == 0 else { throw .io(file: path, reason: "write failed: \(String(cString: strerror(errno)))") }
        }
    }

    private static func tensorRecord(_ w: inout ByteWriter, _ t: TensorInfo, offset: Int) {
        let name = Array(t.name.utf8)
        w.u32(name.count); w.bytes += name
        w.pad(to: (w.bytes.count + 3) / 4 * 4)
        w.u32(t.shape.count)
        for d in t.shape { w.u32(d) }
        w.u64(offset); w.u64(t.count)
    }

}


/// Little-endian byte sink for headers and tables.
struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u32<T: BinaryInteger>(_ v: T) { withUnsafeBytes(of: UInt32(truncatingIfNeeded: v).littleEndian) { bytes += $0 } }
    mutating func i32(_ v: Int) { u32(UInt32(bitPattern: Int32(truncatingIfNeeded: v))) }
    mutating func u64<T: BinaryInteger>(_ v: T) { withUnsafeBytes(of: UInt64(truncatingIfNeeded: v).littleEndian) { bytes += $0 } }
    mutating func pad(to n: Int) { if bytes.count < n { bytes += [UInt8](repeating: 0, count: n - bytes.count) } }
}
