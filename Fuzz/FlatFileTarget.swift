// Fuzz target: FaceEmbed flat files (.feb): FlatFile.read as given, then with the header's file size and FNV
// checksum repaired so mutations reach the tables, layer decoding and plan validation. A file that loads is
// mapped as a FaceModel and run on one face (when its cost is small enough for a fuzzer), and the embedding must
// be finite.
/// libFuzzer's entry point: one input of `size` bytes at `data`; returns 0.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    _ = try? FlatFile.read(UnsafeRawBufferPointer(start: data, count: size), file: nil)
    guard size >= FlatFile.headerSize else { return 0 }
    var bytes = FuzzSupport.bytes(data, size)
    withUnsafeBytes(of: UInt64(size).littleEndian) { for i in 0..<8 { bytes[64 + i] = $0[i] } }
    var h = FlatFile.fnvOffset
    bytes.withUnsafeBytes { FlatFile.hash(UnsafeRawBufferPointer(rebasing: $0[FlatFile.headerSize...]), into: &h) }
    withUnsafeBytes(of: h.littleEndian) { for i in 0..<8 { bytes[96 + i] = $0[i] } }
    guard let (plan, _) = try? bytes.withUnsafeBytes({ try FlatFile.read($0, file: nil) }) else { return 0 }
    guard plan.macs <= 200_000_000, plan.values.reduce(0, { $0 + $1.count }) <= 1 << 24,
        FuzzSupport.writeScratch(bytes)
    else { return 0 }
    do {
        let model = try FaceModel(contentsOf: FuzzSupport.scratchPath, threads: 1)
        let e = try model.embedding(for: FuzzSupport.face)
        precondition(e.values.count == model.embeddingSize)
    } catch {
        preconditionFailure("FlatFile.read accepted what FaceModel refuses: \(error)")
    }
    return 0
}
