// Fuzz target: ONNX models (protobuf wire format, ModelProto/GraphProto/NodeProto/TensorProto/attributes, raw and
// typed tensor data) and the ONNX importer. When a graph imports, its plan is validated, every tensor is produced
// (folding), written as a flat file and read back: what the converter writes, the loader must accept.
/// libFuzzer's entry point: one input of `size` bytes at `data`; returns 0.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let raw = UnsafeRawBufferPointer(start: data, count: size)
    guard let onnx = try? ONNXModel(bytes: raw, file: "fuzz.onnx", owner: nil) else { return 0 }
    _ = onnx.defaultOpset
    guard let model = try? ONNXImporter.importModel(onnx, name: "fuzz").lanePacked() else { return 0 }
    guard
        (try? FlatFile.validate(
            model.plan, embeddingSize: model.plan.embeddingSize, fail: { .unsupportedModel(file: nil, reason: $0) }))
            != nil,
        model.plan.tensors.reduce(0, { $0 + $1.count }) <= 1 << 22
    else { return 0 }
    do {
        try FlatFile.write(model, to: FuzzSupport.scratchPath)
    } catch {
        return 0  // NaN/inf after folding is refused: fine
    }
    do {
        let file = try MappedFile(path: FuzzSupport.scratchPath)
        let (plan, _) = try FlatFile.read(file.bytes, file: nil)
        precondition(plan == model.plan, "flat file round trip changed the plan")
    } catch {
        preconditionFailure("the ONNX converter wrote a file the loader refuses: \(error)")
    }
    return 0
}
