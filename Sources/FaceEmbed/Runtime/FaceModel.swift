import Dispatch

/// A loaded face-recognition model: turns aligned 112 × 112 faces into embeddings.
///
/// ```swift
/// let model = try FaceModel(contentsOf: "Models/mobilefacenet.feb")
/// let a = try model.embedding(for: try ImageDecoder.load(path: "a.ppm"))
/// let b = try model.embedding(for: try ImageDecoder.load(path: "b.ppm"))
/// print(a.cosineSimilarity(to: b) >= FaceModel.defaultThreshold ? "same" : "different")
/// ```
///
/// The weights are mapped from the file and never modified; each call uses its own pooled workspace, so one model
/// may serve many threads or tasks at once.
public final class FaceModel: Sendable {
    /// Cosine similarity at or above which two faces are called the same person (insightface's default
    /// verification threshold, squared distance 1.24 between unit vectors, is cosine 0.38).
    public static let defaultThreshold: Float = 0.38
    /// Side of the aligned input image.
    public static let inputSize = 112

    let network: Network
    /// The file the model was loaded from.
    public let path: String

    /// The model family.
    public var kind: ModelKind { network.plan.kind }
    /// A readable name ("MobileFaceNet", "LResNet100E-IR").
    public var name: String { network.plan.name }
    /// Length of the embeddings this model produces.
    public var embeddingSize: Int { network.plan.embeddingSize }
    /// The color order the network itself expects (pixels are reordered for it automatically).
    public var channelOrder: ChannelOrder { network.plan.channelOrder }
    /// Multiply-adds per image.
    public var multiplyAdds: Int { network.plan.macs }
    /// Number of weights.
    public var parameterCount: Int { network.plan.parameterCount }
    /// Threads one call may use.
    public var threads: Int { network.threads }

    /// Loads a FaceEmbed weight file (made by `faceembed convert`). The header says which model it is.
    /// - Parameter threads: threads a call may use (default: all cores).
    public init(contentsOf path: String, threads: Int? = nil) throws(FaceEmbedError) {
        #if _endian(big)
        throw .io(file: path, reason: "big-endian hosts are not supported")
        #else
        let file = try MappedFile(path: path)
        let (plan, offsets) = try FlatFile.read(file.bytes, file: path)
        self.path = path
        network = Network(plan: plan, storage: file, tensorOffsets: offsets,
                          threads: threads ?? ProcessInfoLite.activeProcessorCount)
        #endif
    }

    /// The embedding of an aligned 112 × 112 RGB face.
    public func embedding(for face: RGBImage) throws(FaceEmbedError) -> Embedding {
        try face.pixels.withUnsafeBufferPointer { (p) throws(FaceEmbedError) -> Embedding in
            try embedding(pixels: p, width: face.width, height: face.height, format: .rgb)
        }
    }

    /// The embedding of an aligned 112 × 112 face given as raw 8-bit pixels in any `PixelFormat`
    /// (`.bgr` for an OpenCV buffer, `.rgba` for a bitmap, planar, …). `rowStride` is in bytes and defaults to
    /// tightly packed rows.
    public func embedding(pixels: UnsafeBufferPointer<UInt8>, width: Int, height: Int, format: PixelFormat,
                          rowStride: Int? = nil) throws(FaceEmbedError) -> Embedding {
        let s = FaceModel.inputSize
        guard width == s, height == s else {
            throw .invalidImage(file: nil, reason: "an aligned face must be \(s)x\(s), got \(width)x\(height) (align photos first)")
        }
        guard format.channels >= 1, format.channels <= 64,
              [format.red, format.green, format.blue].allSatisfy({ $0 >= 0 && $0 < format.channels }) else {
            throw .invalidArgument("pixel format channel indices must lie in 0..<\(format.channels) (at most 64 channels)")
        }
        let stride = rowStride ?? (format.planar ? width : width * format.channels)
        let minStride = format.planar ? width : width * format.channels
        // The stride is bounded by the buffer before it is multiplied (a huge caller stride overflowed here).
        guard stride >= minStride, stride <= pixels.count,
              pixels.count >= (format.planar ? (format.channels * height - 1) * stride + width : (height - 1) * stride + minStride) else {
            throw .invalidImage(file: nil, reason: "pixel buffer of \(pixels.count) bytes is too small for \(width)x\(height) with row stride \(stride)")
        }
        let w = network.checkout(threads: network.threads)
        defer { network.checkin(w) }
        return run(w, pixels: pixels, format: format, rowStride: stride, threads: network.threads)
    }

    /// One forward pass in workspace `w` on a checked 112 × 112 pixel buffer.
    private func run(_ w: Workspace, pixels: UnsafeBufferPointer<UInt8>, format: PixelFormat, rowStride: Int,
                     threads: Int) -> Embedding {
        let plan = network.plan, s = FaceModel.inputSize
        fillInput(network.input(w), from: pixels, width: s, height: s, format: format, rowStride: rowStride,
                  order: plan.channelOrder, mean: plan.inputMean, scale: plan.inputScale)
        network.run(w, threads: threads)
        return Embedding(Array(UnsafeBufferPointer(start: network.output(w), count: plan.embeddingSize)))
    }

    /// Embeddings of several aligned faces. With more than one thread the images are shared out across threads,
    /// each image running single-threaded, which is the fastest way to embed many faces.
    public func embeddings(for faces: [RGBImage]) throws(FaceEmbedError) -> [Embedding] {
        for (i, f) in faces.enumerated() where f.width != FaceModel.inputSize || f.height != FaceModel.inputSize {
            throw .invalidImage(file: nil, reason: "face \(i) is \(f.width)x\(f.height), not \(FaceModel.inputSize)x\(FaceModel.inputSize)")
        }
        let parts = min(network.threads, faces.count)
        if parts <= 1 {
            var out: [Embedding] = []
            for f in faces { out.append(try embedding(for: f)) }
            return out
        }
        let results = Mutex<[Embedding?]>(Array(repeating: nil, count: faces.count))
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let w = network.checkout(threads: 1)
            defer { network.checkin(w) }
            for i in chunk(faces.count, parts: parts, index: part) {
                let e = faces[i].pixels.withUnsafeBufferPointer { p in
                    run(w, pixels: p, format: .rgb, rowStride: FaceModel.inputSize * 3, threads: 1)
                }
                results.withLock { $0[i] = e }
            }
        }
        return results.withLock { $0.map { $0! } }
    }
}

import Synchronization

/// One layer's time in `FaceModel.profile`.
public struct LayerProfile: Sendable {
    /// Position in the fused layer list.
    public var index: Int
    /// What the layer is: "conv KxK/sS", "dwconv KxK/sS", "fc", "affine", "add".
    public var kind: String
    /// Input and output shapes, "CxHxW->CxHxW".
    public var shape: String
    /// Multiply-adds per image.
    public var multiplyAdds: Int
    /// Median seconds per run over the profiled runs.
    public var seconds: Double
}

extension FaceModel {
    /// Times every fused layer: runs the network `iterations` times (after `warmup` untimed runs) on a fixed
    /// synthetic face with `threads` threads (default: the model's), and returns each layer's median time.
    /// Meant for benchmarks (`faceembed bench --layers`); the clock reads add well under a microsecond per layer.
    public func profile(iterations: Int = 20, warmup: Int = 3, threads: Int? = nil) -> [LayerProfile] {
        let plan = network.plan
        let t = max(1, threads ?? network.threads)
        let w = network.checkout(threads: t)
        defer { network.checkin(w) }
        let n = FaceModel.inputSize * FaceModel.inputSize * 3
        var pixels = [UInt8](repeating: 0, count: n)
        for i in 0..<n { pixels[i] = UInt8(truncatingIfNeeded: (i &* 2_654_435_761) >> 13) }
        var samples = [[Double]](repeating: [], count: plan.layers.count)
        for it in 0..<(max(0, warmup) + max(1, iterations)) {
            pixels.withUnsafeBufferPointer { p in
                fillInput(network.input(w), from: p, width: FaceModel.inputSize, height: FaceModel.inputSize,
                          format: .rgb, rowStride: FaceModel.inputSize * 3, order: plan.channelOrder,
                          mean: plan.inputMean, scale: plan.inputScale)
            }
            if it < warmup { network.run(w, threads: t); continue }
            network.run(w, threads: t) { i, d in
                samples[i].append(Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
            }
        }
        return plan.layers.enumerated().map { i, layer in
            let s = samples[i].sorted()
            return LayerProfile(index: i, kind: layerKind(layer), shape: layerShape(layer, plan),
                                multiplyAdds: layer.macs, seconds: s[s.count / 2])
        }
    }

    private func layerKind(_ layer: Layer) -> String {
        switch layer {
        case let .convolution(c):
            let g = c.geometry
            let dw = g.groups > 1 && g.groups == g.inC && g.groups == g.outC
            return "\(dw ? "dwconv" : g.groups > 1 ? "gconv" : "conv") \(g.kH)x\(g.kW)/s\(g.strideH)"
                + (c.inputScale != nil ? "+bn" : "") + (c.slope != nil ? "+prelu" : "") + (c.residual != nil ? "+add" : "")
        case .affine: return "affine"
        case .fullyConnected: return "fc"
        case .add: return "add"
        }
    }

    private func layerShape(_ layer: Layer, _ plan: ModelPlan) -> String {
        func s(_ v: Int) -> String { let x = plan.values[v]; return "\(x.c)x\(x.h)x\(x.w)" }
        return "\(s(layer.inputs[0]))->\(s(layer.output))"
    }
}
