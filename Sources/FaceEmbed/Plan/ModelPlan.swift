// A model as FaceEmbed runs it: a topologically ordered list of fused layers over numbered values.
//
// Converters (MXNet, ONNX) build a plan with batch norms already folded; the flat file stores it (see
// Models/FORMAT.md); `Network` executes it. Value 0 is the preprocessed input image; `outputs` are the named results
// (one, the embedding, for a recognition model; nine score, box and landmark maps for the SCRFD detector).

/// Which family a model belongs to; recorded in the flat file's header.
public enum ModelKind: UInt32, Sendable, CustomStringConvertible {
    /// MobileFaceNet (insightface `y1` and relatives).
    case mobileFaceNet = 1
    /// LResNet-IR ("improved residual") of any depth: r18, r34, r50, r100.
    case iresnet = 2
    /// Another ArcFace-style network imported from ONNX (no depthwise convolutions, or an unrecognised layout).
    case arcface = 3
    /// A face detector: insightface's SCRFD with five landmarks (boxes, scores and landmarks at strides 8, 16, 32).
    case faceDetector = 4

    /// The family's name.
    public var description: String {
        switch self {
        case .mobileFaceNet: return "MobileFaceNet"
        case .iresnet: return "LResNet-IR"
        case .arcface: return "ArcFace network"
        case .faceDetector: return "SCRFD face detector"
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
package struct ValueShape: Equatable, Sendable {
    package var c: Int, h: Int, w: Int
    package var count: Int { c * h * w }

    package init(c: Int, h: Int, w: Int) { self.c = c; self.h = h; self.w = w }
}

/// A fused convolution: optional per-input-channel affine (a batch norm before a zero-padded convolution),
/// the convolution with folded bias, optional PReLU, optional residual add (in that order).
package struct ConvLayer: Equatable, Sendable {
    package var input: Int, output: Int
    package var geometry: ConvGeometry
    /// Tensor indices: weights (OIHW from an importer; lane-packed in a flat file unless depthwise, see
    /// Weights/WeightLayout.swift) and per-output-channel bias.
    package var weight: Int, bias: Int
    package var slope: Int?
    package var residual: Int?
    /// Per-input-channel scale and shift applied to in-bounds taps only (both or neither).
    package var inputScale: Int?, inputShift: Int?
    /// Set for an int8 layer (Plan/QuantizedPlan.swift): `weight` then names an int8 tensor.
    package var quantization: LayerQuantization?

    package init(
        input: Int, output: Int, geometry: ConvGeometry, weight: Int, bias: Int, slope: Int? = nil,
        residual: Int? = nil, inputScale: Int? = nil, inputShift: Int? = nil, quantization: LayerQuantization? = nil
    ) {
        self.input = input; self.output = output; self.geometry = geometry; self.weight = weight; self.bias = bias
        self.slope = slope; self.residual = residual; self.inputScale = inputScale; self.inputShift = inputShift
        self.quantization = quantization
    }
}

/// Per-channel affine map (an unfolded batch norm) and/or PReLU.
package struct AffineLayer: Equatable, Sendable {
    package var input: Int, output: Int
    package var scale: Int?, shift: Int?, slope: Int?

    package init(input: Int, output: Int, scale: Int?, shift: Int?, slope: Int?) {
        self.input = input; self.output = output; self.scale = scale; self.shift = shift; self.slope = slope
    }
}

/// Fully connected over the flattened image, bias folded.
package struct FullyConnectedLayer: Equatable, Sendable {
    package var input: Int, output: Int
    package var weight: Int, bias: Int
    package var inFeatures: Int, outFeatures: Int
    /// Set for an int8 layer (Plan/QuantizedPlan.swift): `weight` then names an int8 tensor.
    package var quantization: LayerQuantization?

    package init(
        input: Int, output: Int, weight: Int, bias: Int, inFeatures: Int, outFeatures: Int,
        quantization: LayerQuantization? = nil
    ) {
        self.input = input; self.output = output; self.weight = weight; self.bias = bias
        self.inFeatures = inFeatures; self.outFeatures = outFeatures; self.quantization = quantization
    }
}

/// One step of a plan.
package enum Layer: Equatable, Sendable {
    case convolution(ConvLayer)
    case affine(AffineLayer)
    case fullyConnected(FullyConnectedLayer)
    case add(a: Int, b: Int, output: Int)
    /// Nearest-neighbour upsampling by 2 in both directions: `out[c][y][x] = in[c][y / 2][x / 2]`.
    case upsample(input: Int, output: Int)
    /// The logistic function `1 / (1 + e^-x)` on every element.
    case sigmoid(input: Int, output: Int)

    /// The value this layer writes.
    package var output: Int {
        switch self {
        case let .convolution(l): return l.output
        case let .affine(l): return l.output
        case let .fullyConnected(l): return l.output
        case let .add(_, _, o), let .upsample(_, o), let .sigmoid(_, o): return o
        }
    }

    /// The values this layer reads.
    package var inputs: [Int] {
        switch self {
        case let .convolution(l): return [l.input] + (l.residual.map { [$0] } ?? [])
        case let .affine(l): return [l.input]
        case let .fullyConnected(l): return [l.input]
        case let .add(a, b, _): return [a, b]
        case let .upsample(x, _), let .sigmoid(x, _): return [x]
        }
    }

    /// Multiply-adds for one image.
    package var macs: Int {
        switch self {
        case let .convolution(l): return l.geometry.outC * l.geometry.pixels * l.geometry.k
        case let .fullyConnected(l): return l.inFeatures * l.outFeatures
        default: return 0
        }
    }
}

/// A named tensor of the plan: its shape and element type; its data lives in the flat file.
package struct TensorInfo: Equatable, Sendable {
    package var name: String
    package var shape: [Int]
    package var elementType: TensorElementType
    package var count: Int { shape.reduce(1, *) }

    package init(name: String, shape: [Int], elementType: TensorElementType = .float32) {
        self.name = name; self.shape = shape; self.elementType = elementType
    }
}

/// A named result of a plan.
package struct PlanOutput: Equatable, Sendable {
    package var name: String
    package var value: Int

    package init(name: String, value: Int) { self.name = name; self.value = value }
}

/// A complete model: header facts, values, layers and tensor table.
package struct ModelPlan: Equatable, Sendable {
    package var kind: ModelKind
    /// A human-readable name such as "MobileFaceNet" or "LResNet100E-IR".
    package var name: String
    package var channelOrder: ChannelOrder
    /// Input preprocessing: `(pixel - inputMean) * inputScale`.
    package var inputMean: Float, inputScale: Float
    package var values: [ValueShape]
    package var layers: [Layer]
    package var tensors: [TensorInfo]
    /// The results, at least one; a recognition model has one, the embedding (C = embedding size, 1 × 1).
    package var outputs: [PlanOutput]

    /// The first result: a recognition model's embedding.
    package var output: Int { outputs[0].value }
    /// Length of the embedding (0 for a detector).
    package var embeddingSize: Int { kind == .faceDetector ? 0 : values[output].count }
    /// Multiply-adds for one image.
    package var macs: Int { layers.reduce(0) { $0 + $1.macs } }

    package init(
        kind: ModelKind, name: String, channelOrder: ChannelOrder, inputMean: Float, inputScale: Float,
        values: [ValueShape], layers: [Layer], tensors: [TensorInfo], outputs: [PlanOutput]
    ) {
        self.kind = kind; self.name = name; self.channelOrder = channelOrder
        self.inputMean = inputMean; self.inputScale = inputScale
        self.values = values; self.layers = layers; self.tensors = tensors; self.outputs = outputs
    }

    /// A recognition model's plan, whose one result is the embedding value `output`.
    package init(
        kind: ModelKind, name: String, channelOrder: ChannelOrder, inputMean: Float, inputScale: Float,
        values: [ValueShape], layers: [Layer], tensors: [TensorInfo], output: Int
    ) {
        self.init(
            kind: kind, name: name, channelOrder: channelOrder, inputMean: inputMean, inputScale: inputScale,
            values: values, layers: layers, tensors: tensors, outputs: [PlanOutput(name: "embedding", value: output)])
    }
}

/// The input size every recognition model takes.
package let modelInputShape = ValueShape(c: 3, h: 112, w: 112)

extension ModelPlan {
    /// Weights of the model, not counting the zero lanes that pad lane-packed blocks.
    package var parameterCount: Int {
        var n = tensors.reduce(0) { $0 + $1.count }
        for case let .convolution(c) in layers where !c.geometry.isDepthwise {
            n -= tensors[c.weight].count - c.geometry.outC * c.geometry.k
        }
        for case let .fullyConnected(f) in layers where f.quantization != nil {
            n -= tensors[f.weight].count - f.inFeatures * f.outFeatures
        }
        // An int8 layer's scales are not weights.
        for case let rows? in layers.map(\.quantizedRows) { n -= rows.outC }
        return n
    }
}
