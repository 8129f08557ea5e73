// Per-layer timing for benchmarks (`faceembed bench --layers`): a tool of this package, not part of the public API.

/// One layer's time in `FaceModel.profile`.
package struct LayerProfile: Sendable {
    /// Position in the fused layer list.
    package var index: Int
    /// What the layer is: "conv KxK/sS", "dwconv KxK/sS", "fc", "affine", "add".
    package var kind: String
    /// Input and output shapes, "CxHxW->CxHxW".
    package var shape: String
    /// Multiply-adds per image.
    package var multiplyAdds: Int
    /// Median seconds per run over the profiled runs.
    package var seconds: Double
}

extension FaceModel {
    /// Times every fused layer: runs the network `iterations` times (after `warmup` untimed runs) on a fixed
    /// synthetic face with `threads` threads (default: the model's), and returns each layer's median time.
    /// The clock reads add well under a microsecond per layer.
    package func profile(iterations: Int = 20, warmup: Int = 3, threads: Int? = nil) -> [LayerProfile] {
        let plan = network.plan
        let s = FaceModel.inputSize, n = s * s * 3
        var pixels = [UInt8](repeating: 0, count: n)
        for i in 0..<n { pixels[i] = UInt8(truncatingIfNeeded: (i &* 2_654_435_761) >> 13) }
        return network.profile(iterations: iterations, warmup: warmup, threads: threads ?? network.threads) { input in
            pixels.withUnsafeBufferPointer { p in
                fillInput(
                    input, from: CheckedPixels(rgb: p, width: s, height: s), order: plan.channelOrder,
                    mean: plan.inputMean, scale: plan.inputScale)
            }
        }
    }
}

extension Network {
    /// Each layer's median time over `iterations` runs (after `warmup` untimed ones) on the input `fill` writes.
    func profile(iterations: Int, warmup: Int, threads: Int, fill: (UnsafeMutablePointer<Float>) -> Void)
        -> [LayerProfile]
    {
        let t = max(1, threads)
        let w = checkout(threads: t)
        defer { checkin(w) }
        var samples = [[Double]](repeating: [], count: plan.layers.count)
        for it in 0..<(max(0, warmup) + max(1, iterations)) {
            fill(input(w))
            if it < warmup { run(w, threads: t); continue }
            run(w, threads: t) { i, d in samples[i].append(d.inSeconds) }
        }
        return plan.layers.enumerated().map { i, layer in
            let s = samples[i].sorted()
            return LayerProfile(
                index: i, kind: layerKind(layer) + mergeNote(i), shape: layerShape(layer, plan),
                multiplyAdds: multiplyAdds(i), seconds: s[s.count / 2])
        }
    }

    /// Layer i's multiply-adds as it runs: a merged sibling convolution's all on its first layer.
    private func multiplyAdds(_ i: Int) -> Int {
        if case .merged = kernels[i] { return 0 }
        if case .depthwisePointwise = kernels[i] { return plan.layers[i].macs + plan.layers[i + 1].macs }
        if case .quantizedBlock = kernels[i] { return (i..<(i + 3)).map { plan.layers[$0].macs }.reduce(0, +) }
        guard let group = siblings.first(where: { $0.layers[0] == i }) else { return plan.layers[i].macs }
        return group.layers.map { plan.layers[$0].macs }.reduce(0, +)
    }

    /// " +siblings" on a layer that runs its sibling convolutions too, " +1x1" on a depthwise layer fused with the
    /// 1×1 after it, " +dw+1x1" on the expansion of a quantized block, " (in #i)" on each layer run by layer i.
    private func mergeNote(_ i: Int) -> String {
        if case let .merged(first) = kernels[i] { return " (in #\(first))" }
        if case .depthwisePointwise = kernels[i] { return " +1x1" }
        if case .quantizedBlock = kernels[i] { return " +dw+1x1" }
        return siblings.contains { $0.layers[0] == i } ? " +siblings" : ""
    }

    private func layerKind(_ layer: Layer) -> String {
        switch layer {
        case let .convolution(c):
            let g = c.geometry
            let dw = g.groups > 1 && g.groups == g.inC && g.groups == g.outC
            return "\(dw ? "dwconv" : g.groups > 1 ? "gconv" : "conv") \(g.kH)x\(g.kW)/s\(g.strideH)"
                + (c.inputScale != nil ? "+bn" : "") + (c.slope != nil ? "+prelu" : "")
                + (c.residual != nil ? "+add" : "") + quantizedKind(c.quantization)
        case .affine: return "affine"
        case let .fullyConnected(f): return "fc" + quantizedKind(f.quantization)
        case .add: return "add"
        case .upsample: return "upsample 2x"
        case .sigmoid: return "sigmoid"
        }
    }

    /// " int8" (8-bit activations) or " int8/16" (16-bit), or nothing for a float layer.
    private func quantizedKind(_ q: LayerQuantization?) -> String {
        q.map { $0.activations == .int8 ? " int8" : " int8/16" } ?? ""
    }

    private func layerShape(_ layer: Layer, _ plan: ModelPlan) -> String {
        func s(_ v: Int) -> String { let x = plan.values[v]; return "\(x.c)x\(x.h)x\(x.w)" }
        return "\(s(layer.inputs[0]))->\(s(layer.output))"
    }
}
