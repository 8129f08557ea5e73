import FaceEmbed

// Turns an ONNX graph (insightface recognition models: MobileFaceNet, IResNet, and relatives exported from PyTorch
// or converted from MXNet) into a fused `ModelPlan`, checking every shape on the way.
//
// 1. Refuse up front, by name, every operator outside the supported set (the keys of `ONNXImporter.handlers`).
// 2. Interpret the nodes in order (ONNX requires a topological order) at input 1 × 3 × 112 × 112 (a detector, a
//    graph with several outputs, at 1 × 3 × 640 × 640), each by its operator's handler (ONNXOperators.swift) over an `ONNXContext`. Values are either constants (initializers,
//    Constant nodes) or computed activations of rank 4 (N, C, H, W) or rank 2 (N, K).
// 3. Fuse with `PlanFusion` (batch norms and constant affines folded into conv/FC weights, PReLU and residual adds
//    into convolution epilogues); tensor data stays in the mapped file until the flat file is written.

enum ONNXImporter {
    /// Turns one node into fusion ops (or into a view of a value it already has) on the context.
    typealias Handler = @Sendable (inout ONNXContext) throws(FaceEmbedError) -> Void

    /// The size a detector (a graph with several outputs) is converted at; it runs at any multiple of 32.
    static let detectorSize = 640

    /// Builds the fused plan of `model`; `fileStem` names a model of no known family.
    static func importModel(_ model: ONNXModel, name fileStem: String) throws(FaceEmbedError) -> ImportedModel {
        let steps = try handlers(for: model)
        let detector = model.graph.outputs.count > 1
        let side = detector ? detectorSize : modelInputShape.h
        var context = try ONNXContext(model, size: (side, side))
        for (node, handle) in zip(model.graph.nodes, steps) {
            context.node = node
            try handle(&context)
        }
        if detector { return try detectorPlan(context) }
        let output = try context.embedding()
        // Family: depthwise/grouped convolutions mark MobileFaceNet; anything else is a generic ArcFace network.
        let grouped = context.graph.ops.contains {
            if case let .conv(_, _, _, geo) = $0 { return geo.groups > 1 } else { return false }
        }
        let name = grouped ? "MobileFaceNet" : String(fileStem.utf8.prefix(23)) ?? "ONNX"
        // Without preprocessing of its own, a model takes insightface's (x − 127.5) / 127.5.
        let own = context.preprocessing, p = own.isPresent ? own : InputPreprocessing(mean: 127.5, scale: 1 / 127.5)
        return PlanFusion.plan(
            context.graph, output: output, kind: grouped ? .mobileFaceNet : .arcface,
            name: name.isEmpty ? "ONNX" : name, channelOrder: .rgb, inputMean: p.mean,
            inputScale: p.scale)
    }

    /// A detector's plan: SCRFD's nine outputs, checked by `DetectorLayout`, with SCRFD's preprocessing unless the
    /// graph has its own.
    private static func detectorPlan(_ context: ONNXContext) throws(FaceEmbedError) -> ImportedModel {
        let outputs = try context.detectorOutputs()
        let own = context.preprocessing
        let p = own.isPresent ? own : InputPreprocessing(mean: 127.5, scale: 1 / 128)
        let model = PlanFusion.plan(
            context.graph, outputs: outputs, kind: .faceDetector, name: "SCRFD", channelOrder: .rgb,
            inputMean: p.mean, inputScale: p.scale)
        _ = try DetectorLayout(model.plan) {
            .unsupportedModel(file: context.model.file, reason: "a graph with several outputs: \($0)")
        }
        return model
    }

    /// Each node's handler; every operator without one is refused, all of them named in one error.
    private static func handlers(for model: ONNXModel) throws(FaceEmbedError) -> [Handler] {
        var steps: [Handler] = [], unknown: [(op: String, node: String)] = []
        for n in model.graph.nodes {
            let domainOK = n.domain.isEmpty || n.domain == "ai.onnx"
            if domainOK, let handle = handlers[n.opType] {
                steps.append(handle)
            } else {
                unknown.append((domainOK ? n.opType : "\(n.domain):\(n.opType)", n.label))
            }
        }
        if let message = unsupportedOperatorsMessage(unknown, format: "ONNX", supported: handlers.keys) {
            throw .unsupportedModel(file: model.file, reason: message)
        }
        return steps
    }
}
