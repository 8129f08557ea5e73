import FaceEmbed

// The shape sub-graph of an exported detector, folded while the graph is interpreted. PyTorch exports an FPN's
// Resize sizes and a head's Reshape target as arithmetic on `Shape(x)`; at a known input size every one of them is
// a constant, so each handler here turns integer constants into an integer constant, and `Shape` turns a computed
// value into its dimensions. Only what such sub-graphs use is supported: vectors of at most 64 integers, axis 0.

extension ONNXImporter {
    /// The shape-folding handlers.
    static let shapeHandlers: [String: Handler] = [
        "Shape": shape, "Gather": gather, "Unsqueeze": unsqueeze, "Concat": concat, "Slice": slice, "Cast": cast,
    ]

    /// Shape of a computed value: its dimensions as the graph sees them (batch 1).
    private static func shape(_ c: inout ONNXContext) throws(FaceEmbedError) {
        let x = try c.computed(0, views: true), d = c.dims(x)
        c.defineIntegers(d.map(Int64.init), dims: [d.count])
    }

    /// Gather along axis 0 of a vector: a scalar index gives a scalar, a vector of indices a vector.
    private static func gather(_ c: inout ONNXContext) throws(FaceEmbedError) {
        let data = try c.integers(0, "data"), indices = try c.integers(1, "indices")
        guard try c.int("axis", 0) == 0, data.dims.count == 1, indices.dims.count <= 1 else {
            throw c.fail("Gather \(c.label): only axis 0 of a vector is supported")
        }
        var out: [Int64] = []
        for i in indices.values {
            let j = i < 0 ? i + Int64(data.values.count) : i
            guard j >= 0, j < data.values.count else { throw c.fail("Gather \(c.label): index \(i) out of range") }
            out.append(data.values[Int(j)])
        }
        c.defineIntegers(out, dims: indices.dims)
    }

    /// Unsqueeze (axes as an attribute up to opset 12, as an input from 13) of a scalar or a vector.
    private static func unsqueeze(_ c: inout ONNXContext) throws(FaceEmbedError) {
        let data = try c.integers(0, "data")
        var axes = try c.ints("axes") ?? []
        if axes.isEmpty { axes = try c.integers(1, "axes").values.map { Int($0) } }
        var dims = data.dims
        let rank = dims.count + axes.count
        for a in axes.map({ $0 < 0 ? $0 + rank : $0 }).sorted() {
            guard a >= 0, a <= dims.count else { throw c.fail("Unsqueeze \(c.label): axis \(a) out of range") }
            dims.insert(1, at: a)
        }
        c.defineIntegers(data.values, dims: dims)
    }

    /// Concat of vectors along axis 0.
    private static func concat(_ c: inout ONNXContext) throws(FaceEmbedError) {
        let axis = try c.int("axis", 0)
        guard axis == 0 || axis == -1 else {
            throw c.fail("Concat \(c.label): only vectors along axis 0 are supported")
        }
        var out: [Int64] = []
        for i in c.node.inputs.indices {
            let part = try c.integers(i, "input")
            guard part.dims.count == 1 else { throw c.fail("Concat \(c.label): input \(i) is not a vector") }
            out += part.values
        }
        c.defineIntegers(out, dims: [out.count])
    }

    /// Slice (opset 10+: starts, ends, axes, steps as inputs) of a vector along axis 0, step 1.
    private static func slice(_ c: inout ONNXContext) throws(FaceEmbedError) {
        let data = try c.integers(0, "data"), n = Int64(data.values.count)
        let starts = try c.integers(1, "starts").values, ends = try c.integers(2, "ends").values
        let axes = c.node.inputs.count > 3 && !c.node.inputs[3].isEmpty ? try c.integers(3, "axes").values : [0]
        let steps = c.node.inputs.count > 4 && !c.node.inputs[4].isEmpty ? try c.integers(4, "steps").values : [1]
        guard data.dims.count == 1, starts.count == 1, ends.count == 1, axes == [0] || axes == [-1], steps == [1]
        else {
            throw c.fail("Slice \(c.label): only a step-1 slice of a vector is supported")
        }
        func clamp(_ v: Int64) -> Int { Int(min(max(v < 0 ? v + n : v, 0), n)) }
        let (from, to) = (clamp(starts[0]), clamp(ends[0]))
        let out = from < to ? Array(data.values[from..<to]) : []
        c.defineIntegers(out, dims: [out.count])
    }

    /// Cast of an integer constant to another integer type (a shape stays a shape).
    private static func cast(_ c: inout ONNXContext) throws(FaceEmbedError) {
        let data = try c.integers(0, "input"), to = try c.int("to", 0)
        guard let type = ElementType(rawValue: to), !type.isFloatingPoint, type != .bool else {
            throw c.fail("Cast \(c.label) to data type \(to) is not supported (only shape arithmetic on integers)")
        }
        c.defineIntegers(data.values, dims: data.dims)
    }
}
