// Fuzz target: MXNet .params (NDArray list: V1/V2/V3/legacy headers, names, float32/float64/float16 data),
// MXNetParams.floats on every array, and the importer with the tiny MobileFaceNet and LResNet-IR symbols.
let symbols: [MXNetSymbol] = ["tiny-mobilefacenet/model-symbol.json", "tiny-iresnet/model-symbol.json"].map {
    try! MXNetSymbol(json: FuzzSupport.fixture($0), file: $0)
}

/// libFuzzer's entry point: one input of `size` bytes at `data`; returns 0.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let raw = UnsafeRawBufferPointer(start: data, count: size)
    guard let params = try? MXNetParams(bytes: raw, file: "fuzz.params") else { return 0 }
    for a in params.ordered {
        let v = params.floats(a)
        precondition(v.count == a.count && a.count == a.shape.reduce(1, *) || (a.shape.isEmpty && a.count == 0))
    }
    for s in symbols {
        guard let model = try? MXNetImporter.importModel(symbol: s, params: params, symbolFile: nil) else { continue }
        for produce in model.produce { _ = produce() }
    }
    return 0
}
