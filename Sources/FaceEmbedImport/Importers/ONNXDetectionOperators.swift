import FaceEmbed

// The operators a single-stage detector (insightface's SCRFD) adds to a recognition network: ReLU, a nearest 2×
// Resize in the FPN, Sigmoid on the score maps, and each head's Transpose to NHWC + Reshape to (N, rows, k).
//
// ReLU becomes a PReLU of slope 0 (exactly ReLU, and fused into the convolution before it like any PReLU). The
// Transpose and the Reshape are not executed: they only change how the graph sees a head's NCHW map, and the
// detector's decoding reads the NCHW planes directly (row (y·W + x)·A + a, column j of the graph's output is
// channel a·k + j at (y, x)); any other use of such a view is refused.

extension ONNXImporter {
    /// The handlers of the detection operators.
    static let detectionHandlers: [String: Handler] = [
        "Relu": relu, "Sigmoid": sigmoid, "Resize": resize, "Upsample": resize, "Transpose": transpose,
    ]

    private static func relu(_ c: inout ONNXContext) throws(FaceEmbedError) {
        let x = try c.computed(0), n = try c.channels(x)
        c.emit(.prelu(x: x.op, slope: { [Float](repeating: 0, count: n) }), c.shape(x), rank: x.rank)
    }

    /// Sigmoid is elementwise, so it applies to a head's view as well as to a map.
    private static func sigmoid(_ c: inout ONNXContext) throws(FaceEmbedError) {
        let x = try c.computed(0, views: true)
        c.emit(.sigmoid(x: x.op), c.shape(x), rank: x.rank, view: x.view)
    }

    /// Resize (opset 10+: X, scales or X, roi, scales, sizes; or the older Upsample) in nearest mode to exactly twice
    /// the height and width: every coordinate rule ONNX offers with a floor-like nearest rounding picks
    /// `in = out / 2` then.
    private static func resize(_ c: inout ONNXContext) throws(FaceEmbedError) {
        let x = try c.computed(0), s = c.shape(x)
        guard x.rank == 4 else { throw c.fail("\(c.described) on a rank-\(x.rank) value") }
        let mode = try c.string("mode", "nearest"), rule = try c.string("nearest_mode", "round_prefer_floor")
        let coordinates = try c.string("coordinate_transformation_mode", "half_pixel")
        let floorLike = ["floor", "round_prefer_floor"].contains(rule)
        guard mode == "nearest", floorLike, coordinates != "tf_crop_and_resize" else {
            throw c.fail(
                "\(c.described): only nearest resizing with floor rounding is supported (mode \(mode), "
                    + "nearest_mode \(rule), coordinate_transformation_mode \(coordinates))")
        }
        let target = try resizeTarget(c, s)
        guard target == [1, s.c, 2 * s.h, 2 * s.w] else {
            throw c.fail(
                "\(c.described): resizing \(s.c)x\(s.h)x\(s.w) to \(target) is not supported (only 2x upsampling; "
                    + "detectors take input sizes that are multiples of 32)")
        }
        c.emit(.upsample(x: x.op), ValueShape(c: s.c, h: 2 * s.h, w: 2 * s.w), rank: 4)
    }

    /// The output dimensions of a Resize, from its `sizes` input or else from its `scales`.
    private static func resizeTarget(_ c: ONNXContext, _ s: ValueShape) throws(FaceEmbedError) -> [Int] {
        let n = c.node.inputs.count
        let sizesIndex = 3, scalesIndex = c.node.opType == "Upsample" || n == 2 ? 1 : 2
        if n > sizesIndex, !c.node.inputs[sizesIndex].isEmpty {
            return try c.integers(sizesIndex, "sizes").values.map { Int(clamping: $0) }
        }
        guard n > scalesIndex, let t = try c.constant(scalesIndex, "scales"), t.count == 4 else {
            throw c.fail("\(c.described) has neither sizes nor four scales")
        }
        let f = t.floats(c.model.bytes), input = [1, s.c, s.h, s.w]
        guard f.allSatisfy({ $0.isFinite && $0 > 0 && $0 <= 64 }) else { throw c.fail("\(c.described): scales \(f)") }
        return zip(input, f).map { Int((Float($0) * $1).rounded(.down)) }
    }

    /// Transpose NCHW → NHWC (`perm` [0, 2, 3, 1]) of a map, the first half of a detector head's flattening.
    private static func transpose(_ c: inout ONNXContext) throws(FaceEmbedError) {
        let x = try c.computed(0)
        guard x.rank == 4, try c.ints("perm") == [0, 2, 3, 1] else {
            throw c.fail("\(c.described): only the NCHW to NHWC transpose of a map (perm [0, 2, 3, 1]) is supported")
        }
        c.define(.computed(ONNXActivation(op: x.op, rank: 4, view: .nhwc)))
    }

    /// Reshape of an NHWC view to (N, H·W·C / k, k) with k dividing C: a detector head's rows.
    static func reshapeRows(_ c: inout ONNXContext, _ x: ONNXActivation, target: [Int]) throws(FaceEmbedError) {
        let s = c.shape(x)
        guard target.count == 3, target[0] == 1, target[2] >= 1, s.c % target[2] == 0 else {
            throw c.fail(
                "Reshape \(c.label) of a transposed \(s.c)x\(s.h)x\(s.w) map to \(target) is not supported "
                    + "(only (N, rows, k) with k dividing the channels)")
        }
        c.define(.computed(ONNXActivation(op: x.op, rank: 3, view: .rows(target[2]))))
    }
}
