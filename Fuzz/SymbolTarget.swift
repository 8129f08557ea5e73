// Fuzz target: MXNet symbol JSON (JSONParser, MXNetSymbol, attribute parsing) and the importer, against the
// committed tiny MobileFaceNet and tiny LResNet-IR params. When a graph imports, its plan is validated, every
// tensor is produced (batch-norm folding), written as a flat file and read back: what the converter writes, the
// loader must accept.
let paramsBytes: [[UInt8]] = [
    FuzzSupport.fixture("tiny-mobilefacenet/model-0000.ndarray"),
    FuzzSupport.fixture("tiny-iresnet/model-0000.ndarray"),
]

/// libFuzzer's entry point: one input of `size` bytes at `data`; returns 0.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = FuzzSupport.bytes(data, size)
    guard let symbol = try? MXNetSymbol(json: bytes, file: "fuzz-symbol.json") else { return 0 }
    for node in symbol.nodes {  // the typed attribute accessors on whatever the graph holds
        _ = try? node.tuple("kernel", default: [0, 0]); _ = try? node.int("num_filter", default: 0)
        _ = try? node.float("eps", default: 0); _ = try? node.bool("no_bias", default: false)
    }
    for p in paramsBytes {
        p.withUnsafeBytes { raw in
            guard let params = try? MXNetParams(bytes: raw, file: "fuzz.params"),
                let model = try? MXNetImporter.importModel(
                    symbol: symbol, params: params, symbolFile: "fuzz-symbol.json"
                ).lanePacked()
            else { return }
            guard
                (try? FlatFile.validate(
                    model.plan, embeddingSize: model.plan.embeddingSize,
                    fail: { .unsupportedModel(file: nil, reason: $0) })) != nil
            else { return }
            guard model.plan.tensors.reduce(0, { $0 + $1.count }) <= 1 << 22 else { return }
            do {
                try FlatFile.write(model, to: FuzzSupport.scratchPath)
            } catch {
                return  // NaN/inf after folding (e.g. a negative variance) is refused: fine
            }
            do {
                let file = try MappedFile(path: FuzzSupport.scratchPath)
                let (plan, _) = try FlatFile.read(file.bytes, file: nil)
                precondition(plan == model.plan, "flat file round trip changed the plan")
            } catch {
                preconditionFailure("the converter wrote a file the loader refuses: \(error)")
            }
        }
    }
    return 0
}
