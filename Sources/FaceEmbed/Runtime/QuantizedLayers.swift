// The network's int8 layers (Plan/QuantizedPlan.swift): the weights stay in the mapped file, in the layout the 8-bit
// kernels read; what the kernels need beyond them (the zero-point compensation, and for a layer with 16-bit
// activations the weights widened to int16) is computed once when the model loads. Each run quantizes the layer's
// input with a scale from its own max |x| (QuantizedConvolution.swift), so no activation ranges are stored. An
// inverted bottleneck (int8 1×1, float32 depthwise, int8 1×1) runs as one block by bands of rows when the threads
// allow two bands (Kernels/QuantizedBlock.swift), otherwise layer by layer; the results are the same.
//
// Scratch (all in `Workspace.shared`): for a convolution with an input affine, the affine's output first (the
// quantized kernels take the input as it is, and padding stays the zero point); then the kernel's own bytes. A
// block's bands take theirs from the start.

/// A quantized layer's weights as the integer kernels read them.
final class QuantizedLayerWeights: @unchecked Sendable {
    let outC: Int, k: Int
    let activations: QuantizedPrecision
    private let packed: UnsafeRawPointer
    private let scales: UnsafePointer<Float>
    private let compensation: [Int32]
    private let maxAbsRowSum: Int
    /// The int16 weights of a 16-bit layer, [blk][⌈K/2⌉][16][2] (QuantizedWeights.swift), K in OIHW order; nil for
    /// 8 bits.
    private let widened: [Int16]?
    /// Whether the kernels read K tap-major: an 8-bit layer stored so (the direct convolution).
    private let tapMajor: Bool

    /// k-groups of B the kernels read (QuantizedConvolution.swift).
    var kGroups: Int { (k + activations.group - 1) / activations.group }

    /// `packed` and `scales` point into the mapped file, whose data `FlatFile.read` has checked. `tapMajor` gives
    /// the input channels and taps of a layer stored with K tap-major (`LayerQuantization.tapMajor`).
    init(
        packed: UnsafePointer<Int8>, scales: UnsafePointer<Float>, outC: Int, k: Int, activations: QuantizedPrecision,
        tapMajor: (inC: Int, taps: Int)?
    ) {
        self.outC = outC; self.k = k; self.activations = activations; self.scales = scales
        self.packed = UnsafeRawPointer(packed)
        // Checked by `FlatFile.checkQuantizedData` when the file was read.
        let sums = try! Int8WeightSums(packed, outC: outC, k: k)
        maxAbsRowSum = sums.maxAbsRowSum
        self.tapMajor = tapMajor != nil && activations == .int8
        if activations == .int8 {
            compensation = sums.compensation; widened = nil
            return
        }
        // 16-bit layers run on the gathered B, K in OIHW order: a tap-major layer's k is mapped back.
        let k4 = (k + 3) / 4, k2 = (k + 1) / 2, blocks = (outC + weightLanes - 1) / weightLanes
        var wide = [Int16](repeating: 0, count: blocks * k2 * weightLanes * 2)
        for c in 0..<outC {
            for kk in 0..<k {
                let stored = tapMajor.map { kk % $0.taps * $0.inC + kk / $0.taps } ?? kk
                let q = packed[((c / weightLanes * k4 + stored / 4) * weightLanes + c % weightLanes) * 4 + stored % 4]
                wide[((c / weightLanes * k2 + kk / 2) * weightLanes + c % weightLanes) * 2 + kk % 2] = Int16(q)
            }
        }
        widened = wide
        compensation = [Int32](repeating: 0, count: blocks * weightLanes)
    }

    /// Calls `body` with the kernels' view of the weights, valid only during the call.
    func withPointers<R>(_ body: (QuantizedWeightPointers) -> R) -> R {
        compensation.withUnsafeBufferPointer { c in
            func call(_ weights: UnsafeRawPointer) -> R {
                body(
                    QuantizedWeightPointers(
                        precision: activations, outC: outC, k: k, packed: weights, scales: scales,
                        compensation: c.baseAddress!, maxAbsRowSum: maxAbsRowSum, tapMajor: tapMajor))
            }
            guard let widened else { return call(packed) }
            return widened.withUnsafeBytes { call($0.baseAddress!) }
        }
    }
}

extension LayerKernel {
    /// The kernel of a quantized layer, its weights at `base + offsets[tensor]`; nil for any other layer.
    static func quantized(_ layer: Layer, base: UnsafeRawPointer, offsets: [Int]) -> LayerKernel? {
        guard let q = layer.quantization, let rows = layer.quantizedRows else { return nil }
        var tapMajor: (inC: Int, taps: Int)?
        if case let .convolution(c) = layer, q.tapMajor { tapMajor = (c.geometry.inC, c.geometry.kH * c.geometry.kW) }
        let weights = QuantizedLayerWeights(
            packed: (base + offsets[layer.weightTensor]).assumingMemoryBound(to: Int8.self),
            scales: (base + offsets[q.scales]).assumingMemoryBound(to: Float.self), outC: rows.outC, k: rows.k,
            activations: q.activations, tapMajor: tapMajor)
        switch layer {
        case let .convolution(c): return .quantizedConvolution(c, weights)
        case let .fullyConnected(f): return .quantizedFullyConnected(f, weights)
        default: return nil
        }
    }

    /// Floats of `Workspace.shared` a quantized layer needs on up to `threads` threads (see the top of the file).
    static func quantizedSharedScratch(_ layer: LayerKernel, threads: Int) -> Int {
        switch layer {
        case let .quantizedConvolution(c, w):
            let bytes = quantizedConvolutionScratch(c.geometry, precision: w.activations, threads: threads)
            return affineScratch(c) + (bytes + 63) / 64 * 16
        case let .quantizedFullyConnected(f, w):
            let bytes = quantizedFullyConnectedScratch(
                inFeatures: f.inFeatures, outFeatures: w.outC, precision: w.activations, threads: threads)
            return (bytes + 63) / 64 * 16
        case let .quantizedBlock(b):
            let layers = [
                quantizedSharedScratch(.quantizedConvolution(b.expansion, b.expansionWeights), threads: threads),
                quantizedSharedScratch(.quantizedConvolution(b.projection, b.projectionWeights), threads: threads),
            ]
            return max(
                layers.max()!,
                quantizedBlockScratch(
                    b.depthwise.geometry, expansionGroups: b.expansionWeights.kGroups,
                    projectionGroups: b.projectionWeights.kGroups, threads: threads))
        default:
            return 0
        }
    }

    /// Floats that hold a quantized convolution's input after its input affine, whole cache lines: only for the 1×1
    /// fast path, which reads the float input directly; the others apply the affine as they quantize.
    static func affineScratch(_ c: ConvLayer) -> Int {
        c.inputScale == nil || !c.geometry.isPointwise
            ? 0 : (c.geometry.inC * c.geometry.inH * c.geometry.inW + 15) / 16 * 16
    }
}

extension Network {
    /// Runs a quantized convolution: the integer kernel, with the input affine if there is one (applied first, into
    /// scratch, on the 1×1 fast path).
    func quantizedConvolve(_ c: ConvLayer, _ weights: QuantizedLayerWeights, _ w: Workspace, threads: Int) {
        let g = c.geometry
        var input = UnsafePointer(value(c.input, w)), affine: InputAffine?
        if let s = c.inputScale, let t = c.inputShift {
            if g.isPointwise {
                channelAffine(
                    input: input, scale: tensors[s], shift: tensors[t], slope: nil, output: w.shared,
                    channels: g.inC, plane: g.inH * g.inW)
                input = UnsafePointer(w.shared)
            } else {
                affine = InputAffine(scale: tensors[s], shift: tensors[t])
            }
        }
        let epilogue = Epilogue(
            bias: tensors[c.bias], slope: c.slope.map { tensors[$0] },
            residual: c.residual.map { UnsafePointer(value($0, w)) })
        weights.withPointers { p in
            _ = quantizedConvolution(
                g, input: input, affine: affine, weights: p, range: nil, output: .float(value(c.output, w), epilogue),
                scratch: UnsafeMutableRawPointer(w.shared + LayerKernel.affineScratch(c)), threads: threads)
        }
    }

    /// Runs a quantized block by bands of rows, or layer by layer when the map is too short for two bands.
    func runQuantizedBlock(_ b: QuantizedBlockLayers, _ w: Workspace, threads: Int) {
        guard quantizedBlockBands(b.depthwise.geometry, threads: threads) >= 2 else {
            quantizedConvolve(b.expansion, b.expansionWeights, w, threads: threads)
            ConvolutionKernel.depthwise.run(b.depthwise.geometry, operands(b.depthwise, w), threads: threads)
            quantizedConvolve(b.projection, b.projectionWeights, w, threads: threads)
            return
        }
        func epilogue(_ c: ConvLayer) -> Epilogue { operands(c, w).epilogue }
        b.expansionWeights.withPointers { expansion in
            b.projectionWeights.withPointers { projection in
                quantizedBlock(
                    QuantizedBlockOperands(
                        input: value(b.expansion.input, w), expansion: expansion,
                        expansionEpilogue: epilogue(b.expansion), depthwise: b.depthwise.geometry,
                        depthwiseWeights: tensors[b.depthwise.weight], depthwiseEpilogue: epilogue(b.depthwise),
                        projection: projection, projectionEpilogue: epilogue(b.projection),
                        output: value(b.projection.output, w)),
                    scratch: w.shared, threads: threads)
            }
        }
    }

    /// Runs a quantized fully connected layer.
    func quantizedFullyConnect(
        _ f: FullyConnectedLayer, _ weights: QuantizedLayerWeights, _ w: Workspace, threads: Int
    ) {
        let epilogue = Epilogue(bias: tensors[f.bias], slope: nil, residual: nil)
        weights.withPointers { p in
            _ = quantizedFullyConnected(
                input: value(f.input, w), weights: p, range: nil, output: .float(value(f.output, w), epilogue),
                scratch: UnsafeMutableRawPointer(w.shared), threads: threads)
        }
    }
}

/// The three layers of an int8 inverted bottleneck (Kernels/QuantizedBlock.swift).
struct QuantizedBlockLayers {
    let expansion: ConvLayer, expansionWeights: QuantizedLayerWeights
    let depthwise: ConvLayer
    let projection: ConvLayer, projectionWeights: QuantizedLayerWeights
}

/// Whether three consecutive layers run as a quantized block: an int8 1×1 expansion without input affine or
/// residual, a 3×3 depthwise layer of stride 1 or 2 and padding 1 reading it (no input affine or residual), and an
/// int8 1×1 projection reading that, without input affine.
func quantizedBlockApplies(expansion e: ConvLayer, depthwise dw: ConvLayer, projection p: ConvLayer) -> Bool {
    let d = dw.geometry
    return e.geometry.isPointwise && e.inputScale == nil && e.residual == nil
        && d.isDepthwise && d.kH == 3 && d.kW == 3 && d.strideH == d.strideW && (d.strideH == 1 || d.strideH == 2)
        && d.padH == 1 && d.padW == 1
        && dw.input == e.output && dw.inputScale == nil && dw.residual == nil && dw.quantization == nil
        && p.geometry.isPointwise && p.input == dw.output && p.inputScale == nil
        && p.residual != e.output && p.residual != dw.output
}
