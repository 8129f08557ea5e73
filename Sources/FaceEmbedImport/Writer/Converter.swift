import FaceEmbed

/// What a conversion produced.
public struct ConversionSummary: Sendable {
    /// The model family recognised.
    public let kind: ModelKind
    /// A readable name ("MobileFaceNet", "LResNet100E-IR").
    public let name: String
    /// Length of the embedding.
    public let embeddingSize: Int
    /// Layers after fusion.
    public let layers: Int
    /// Weights written (after folding batch norms).
    public let parameters: Int
    /// Multiply-adds per image.
    public let multiplyAdds: Int
    /// The precision the weights were written in.
    public let precision: ModelPrecision
}

/// Converts models from other frameworks into FaceEmbed's flat weight file.
public enum ModelConverter {
    /// Converts the model at `path` into a flat file at `output`, choosing the importer from what `path` is:
    /// a folder holding `model-symbol.json` and `model-0000.params` (an insightface MXNet release), a
    /// `…-symbol.json` whose `…-0000.params` lies beside it, or an ONNX file (`.onnx`).
    ///
    /// ```swift
    /// let summary = try ModelConverter.convert(path: "model-y1-test2", to: "Models/mobilefacenet.feb")
    /// print(summary.name, summary.embeddingSize)
    /// ```
    ///
    /// - Parameter precision: `.float32` (the default) keeps every weight as trained; `.int8` stores the weights of
    ///   every convolution with groups = 1 and every fully connected layer as int8 with one scale per output channel,
    ///   to run on the 8-bit integer kernels (depthwise convolutions stay float32; see `ModelPrecision`).
    @discardableResult
    public static func convert(path: String, to output: String, precision: ModelPrecision = .float32)
        throws(FaceEmbedError) -> ConversionSummary
    {
        switch try ModelSource(path: path) {
        case let .mxnet(symbol, params):
            return try convertMXNet(symbol: symbol, params: params, to: output, precision: precision)
        case let .onnx(file): return try convertONNX(file, to: output, precision: precision)
        }
    }

    /// Converts an MXNet model (`model-symbol.json` + `model-0000.params`) into a flat file at `output`.
    ///
    /// The graph must be one FaceEmbed knows (MobileFaceNet or LResNet-IR of any depth) and every parameter it
    /// needs must be present with the right shape; otherwise the error names what is missing or wrong.
    /// The params file is mapped, and tensors are folded and written one at a time. `precision` as for
    /// `convert(path:to:precision:)`.
    @discardableResult
    public static func convertMXNet(
        symbol symbolPath: String, params paramsPath: String,
        to output: String, precision: ModelPrecision = .float32
    ) throws(FaceEmbedError) -> ConversionSummary {
        let symbol = try MXNetSymbol(json: readFile(symbolPath), file: symbolPath)
        let file = try MappedFile(path: paramsPath)
        // The params stay mapped until every tensor is written: `MXNetParams` only points into the mapping.
        return try withExtendedLifetime(file) { () throws(FaceEmbedError) in
            let params = try MXNetParams(bytes: file.bytes, file: paramsPath)
            let model = try MXNetImporter.importModel(symbol: symbol, params: params, symbolFile: symbolPath)
            return try write(model, to: output, source: symbolPath, precision: precision)
        }
    }

    /// Converts an ONNX recognition model (insightface's `w600k_mbf.onnx`, `w600k_r50.onnx`, MXNet exports, …)
    /// into a flat file at `output`.
    ///
    /// Supported operators: Conv, BatchNormalization, PRelu, Add, Sub, Mul, Div, Flatten, Reshape, Gemm, MatMul,
    /// Identity, Constant, Dropout; any other is refused by name. Sub/Mul on the input are the model's own
    /// preprocessing; without them the model takes insightface's `(x − 127.5) / 127.5` on RGB.
    /// The file is mapped, and tensors are folded and written one at a time. `precision` as for
    /// `convert(path:to:precision:)`.
    @discardableResult
    public static func convertONNX(_ path: String, to output: String, precision: ModelPrecision = .float32)
        throws(FaceEmbedError) -> ConversionSummary
    {
        let onnx = try ONNXModel(path: path)
        let stem = String(path.split(separator: "/").last ?? "").replacingSuffix(".onnx")
        return try withExtendedLifetime(onnx) { () throws(FaceEmbedError) in
            try write(try ONNXImporter.importModel(onnx, name: stem), to: output, source: path, precision: precision)
        }
    }

    /// Quantizes (for `.int8`), lane-packs, validates and writes an imported model; errors in the plan are attributed
    /// to `source`.
    private static func write(
        _ imported: ImportedModel, to output: String,
        source: String, precision: ModelPrecision
    ) throws(FaceEmbedError) -> ConversionSummary {
        let model = (precision == .int8 ? imported.quantized() : imported).lanePacked(), p = model.plan
        try FlatFile.validate(p, embeddingSize: p.embeddingSize) { .unsupportedModel(file: source, reason: $0) }
        try FlatFile.write(model, to: output)
        return ConversionSummary(
            kind: p.kind, name: p.name, embeddingSize: p.embeddingSize, layers: p.layers.count,
            parameters: p.parameterCount, multiplyAdds: p.macs, precision: p.precision)
    }
}

/// Where a model's files are, by kind.
enum ModelSource: Equatable {
    case mxnet(symbol: String, params: String)
    case onnx(String)

    /// Recognises a model folder, an MXNet symbol file or an ONNX file; anything else is an error naming `path`.
    init(path: String) throws(FaceEmbedError) {
        let lower = path.lowercased()
        if lower.hasSuffix(".onnx") { self = .onnx(path); return }
        if lower.hasSuffix("-symbol.json") {
            self = .mxnet(symbol: path, params: String(path.dropLast("-symbol.json".count)) + "-0000.params")
            return
        }
        if isDirectory(path) {
            let dir = path.hasSuffix("/") ? String(path.dropLast()) : path
            self = .mxnet(symbol: dir + "/model-symbol.json", params: dir + "/model-0000.params")
            return
        }
        throw .unsupportedModel(
            file: path,
            reason:
                "not a model: give an MXNet model folder (model-symbol.json + model-0000.params), a -symbol.json file or an .onnx file"
        )
    }
}

extension String {
    fileprivate func replacingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
