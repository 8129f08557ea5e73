// A plan for another input size. A detector is converted at one size (SCRFD at 640 × 640) but runs at any size the
// caller picks; nothing in its layers depends on the size but the value shapes and the convolution geometries,
// which follow from the input layer by layer. The weights do not change (lane-packed weights depend on channels and
// kernel only), so the resized plan runs on the same mapped tensors.

extension ModelPlan {
    /// The plan with a `height` × `width` input: every value's shape and every convolution's geometry recomputed from
    /// it. Throws (through `fail`) when a layer cannot take that size: a convolution whose kernel no longer fits or
    /// whose map exceeds `PlanLimits`, an add of two maps that no longer match, a fully connected layer.
    package func resized(height: Int, width: Int, fail: (String) -> FaceEmbedError) throws(FaceEmbedError)
        -> ModelPlan
    {
        var out = self
        out.values[0] = ValueShape(c: values[0].c, h: height, w: width)
        for (i, layer) in layers.enumerated() {
            let (resizedLayer, shape) = try Self.resize(layer, out.values) { fail("layer \(i): \($0)") }
            out.layers[i] = resizedLayer
            out.values[layer.output] = shape
        }
        let activations = out.values.reduce(0) { $0 + $1.count }
        guard activations <= FlatFile.maxActivations else {
            throw fail("\(width)x\(height) needs \(activations) floats of activations, more than the limit")
        }
        return out
    }

    /// One layer for the input shapes in `values` (already resized), and the shape of its output.
    private static func resize(_ layer: Layer, _ values: [ValueShape], fail: (String) -> FaceEmbedError)
        throws(FaceEmbedError) -> (Layer, ValueShape)
    {
        switch layer {
        case var .convolution(c):
            let g = c.geometry, x = values[c.input]
            guard
                let r = ConvGeometry.checked(
                    inC: g.inC, inH: x.h, inW: x.w, outC: g.outC, kH: g.kH, kW: g.kW, strideH: g.strideH,
                    strideW: g.strideW, padH: g.padH, padW: g.padW, groups: g.groups)
            else {
                throw fail("a \(g.kH)x\(g.kW) convolution does not fit a \(x.h)x\(x.w) map")
            }
            c.geometry = r
            let shape = ValueShape(c: r.outC, h: r.outH, w: r.outW)
            if let residual = c.residual, values[residual] != shape {
                throw fail("the residual no longer matches the convolution's output")
            }
            return (.convolution(c), shape)
        case let .affine(a): return (layer, values[a.input])
        case let .sigmoid(x, _): return (layer, values[x])
        case let .upsample(x, _):
            let s = values[x]
            return (layer, ValueShape(c: s.c, h: s.h * 2, w: s.w * 2))
        case let .add(a, b, _):
            guard values[a] == values[b] else {
                throw fail("an add of a \(values[a].h)x\(values[a].w) and a \(values[b].h)x\(values[b].w) map")
            }
            return (layer, values[a])
        case let .fullyConnected(f):
            guard values[f.input].count == f.inFeatures else { throw fail("a fully connected layer fixes the size") }
            return (layer, values[f.output])
        }
    }
}
