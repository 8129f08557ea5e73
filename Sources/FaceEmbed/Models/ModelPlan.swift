// A model as FaceEmbed runs it: a topologically ordered list of fused layers over numbered values.
//
// Converters (MXNet, ONNX) build a plan with batch norms already folded; the flat file stores it (see
// Models/FORMAT.md); `Network` executes it. Value 0 is the preprocessed input image; `output` is the embedding.

/// Which family a model belongs to; recorded in the flat file's header.
public enum ModelKind: UInt32, Sendable, CustomStringConvertible {
    /// MobileFaceNet (insightface `y1` and relatives).
    case mobileFaceNet = 1
    /// LResNet-IR ("improved residual") of any depth: r18, r34, r50, r100.
    case iresnet = 2
    /// Another ArcFace-style network imported from ONNX (no depthwise convolutions, or an unrecognised layout).
    case arcface = 3

    /// The family's name.
    public var description: String {
        switch self {
        case .mobileFaceNet: return "MobileFaceNet"
        case .iresnet: return "LResNet-IR"
        case .arcface: return "ArcFace network"
        }
    }
}

/// Order of the color channels a model expects at its input.
public enum ChannelOrder: UInt32, Sendable {
    /// Red, green, blue (MXNet insightface models).
    case rgb = 0
    /// Blue, green, red (Open Model Zoo's converted models).
    case bgr = 1
}

/// The shape of one activation (one image): channels × height × width.
struct ValueShape: Equatable, Sendable {
    var c: Int, h: Int, w: Int
    var count: Int { c * h * w }
}

/// A fused convolution: optional per-input-channel affine (a batch norm before a zero-padded convolution),
/// the convolution with folded bias, optional PReLU, optional residual add (in that order).
struct ConvLayer: Equatable, Sendable {
    var input: Int, output: Int
    var geometry: ConvGeometry
    /// Tensor indices: weights (OIHW from an importer; lane-packed in a flat file unless depthwise, see
    /// Weights/WeightLayout.swift) and per-output-channel bias.
    var weight: Int, bias: Int
    var slope: Int?
    var residual: Int?
    /// Per-input-channel scale and shift applied to in-bounds taps only (both or neither).
    var inputScale: Int?, inputShift: Int?
}

/// Per-channel affine map (an unfolded batch norm) and/or PReLU.
struct AffineLayer: Equatable, Sendable {
    var input: Int, output: Int
    var scale: Int?, shift: Int?, slope: Int?
}

/// Fully connected over the flattened image, bias folded.
struct FullyConnectedLayer: Equatable, Sendable {
    var input: Int, output: Int
    var weight: Int, bias: Int
    var inFeatures: Int, outFeatures: Int
}

/// One step of a plan.
enum Layer: Equatable, Sendable {
    case convolution(ConvLayer)
    case affine(AffineLayer)
    case fullyConnected(FullyConnectedLayer)
    case add(a: Int, b: Int, output: Int)

    /// The value this layer writes.
    var output: Int {
        switch self {
        case let .convolution(l): return l.output
        case let .affine(l): return l.output
        case let .fullyConnected(l): return l.output
        case let .add(_, _, o): return o
        }
    }

    /// The values this layer reads.
    var inputs: [Int] {
        switch self {
        case let .convolution(l): return [l.input] + (l.residual.map { [$0] } ?? [])
        case let .affine(l): return [l.input]
        case let .fullyConnected(l): return [l.input]
        case let .add(a, b, _): return [a, b]
        }
    }

    /// Multiply-adds for one image.
    var macs: Int {
        switch self {
        case let .convolution(l): return l.geometry.outC * l.geometry.pixels * l.geometry.k
        case let .fullyConnected(l): return l.inFeatures * l.outFeatures
        default: return 0
        }
    }
}

/// A named tensor of the plan: its shape; its data lives in the flat file.
struct TensorInfo: Equatable, Sendable {
    var name: String
    var shape: [Int]
    var count: Int { shape.reduce(1, *) }
}

/// A complete model: header facts, values, layers and tensor table.
struct ModelPlan: Equatable, Sendable {
    var kind: ModelKind
    /// A human-readable name such as "MobileFaceNet" or "LResNet100E-IR".
    var name: String
    var channelOrder: ChannelOrder
    /// Input preprocessing: `(pixel - inputMean) * inputScale`.
    var inputMean: Float, inputScale: Float
    var values: [ValueShape]
    var layers: [Layer]
    var tensors: [TensorInfo]
    /// The embedding value (C = embedding size, 1 × 1).
    var output: Int

    /// Length of the embedding.
    var embeddingSize: Int { values[output].count }
    /// Multiply-adds for one image.
    var macs: Int { layers.reduce(0) { $0 + $1.macs } }
}
