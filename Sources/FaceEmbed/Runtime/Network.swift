import Synchronization

// Executes a `ModelPlan` on weights that stay in the mapped flat file. Each layer's kernel is chosen once, when the
// network is built (`LayerKernel`, `ConvolutionKernel` in Kernels/Convolution.swift), and the workspaces are sized
// from those choices; `run` only dispatches on them.
//
// Activations live in one preplanned arena per workspace: each value gets a fixed offset, reused once the value is
// dead (a layer's output never shares space with its inputs). A workspace also holds per-thread kernel scratch.
// Workspaces are pooled, so concurrent callers each get their own and the steady state allocates nothing.

/// One caller's activation arena and kernel scratch.
final class Workspace: @unchecked Sendable {
    let arena: UnsafeMutablePointer<Float>
    let scratch: UnsafeMutablePointer<Float>
    /// Scratch shared by all threads of one layer (Winograd's transformed weights and tiles).
    let shared: UnsafeMutablePointer<Float>
    let arenaCount: Int, scratchCount: Int, sharedCount: Int

    init(arena: Int, scratch: Int, shared: Int) {
        arenaCount = arena; scratchCount = scratch; sharedCount = shared
        self.arena = Workspace.zeroed(arena)
        self.scratch = Workspace.zeroed(scratch)
        self.shared = Workspace.zeroed(max(1, shared))
    }

    /// Cache-line aligned floats (a default allocation of this size is only 16-byte aligned, so every 64-byte vector
    /// access of the kernels would straddle two cache lines).
    private static func zeroed(_ count: Int) -> UnsafeMutablePointer<Float> {
        let p = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64).bindMemory(
            to: Float.self, capacity: count)
        p.initialize(repeating: 0, count: count)
        return p
    }

    deinit { arena.deallocate(); scratch.deallocate(); shared.deallocate() }
}

/// A plan bound to its weights, with the activation layout and every layer's kernel planned once.
final class Network: @unchecked Sendable {
    let plan: ModelPlan
    /// Keeps the mapped weights alive.
    private let storage: MappedFile
    /// Each tensor's data (int8 tensors too, read through `QuantizedLayerWeights`).
    let tensors: [UnsafePointer<Float>]
    /// Each layer of the plan as it runs.
    let kernels: [LayerKernel]
    /// Sibling convolutions run as one (SiblingConvolutions.swift), whose merged weights and biases this network
    /// owns (the last entries of `tensors`).
    let siblings: [SiblingGroup]
    private let siblingTensors: [UnsafeMutablePointer<Float>]
    /// Arena offset (in floats) of each value.
    let valueOffset: [Int]
    let arenaCount: Int
    /// Scratch floats one thread needs for the most demanding layer.
    let scratchPerThread: Int
    /// Floats of `Workspace.shared` the most demanding layer needs.
    let sharedScratch: Int
    /// Threads a single image may use inside a layer.
    let threads: Int
    private let pool = Mutex<[Workspace]>([])

    /// `winograd: false` runs 3×3 stride-1 convolutions on the direct GEMM instead (to check one against the other).
    init(plan: ModelPlan, storage: MappedFile, tensorOffsets: [Int], threads: Int, winograd: Bool = true) {
        self.plan = plan
        self.storage = storage
        self.threads = max(1, threads)
        let base = storage.bytes.baseAddress!
        let mapped = tensorOffsets.map { UnsafePointer((base + $0).assumingMemoryBound(to: Float.self)) }
        siblings = winograd ? siblingGroups(plan, tensorCount: mapped.count) { mapped[$0] } : []
        siblingTensors = siblings.flatMap { [Network.owned($0.weights), Network.owned($0.bias)] }
        tensors = mapped + siblingTensors.map { UnsafePointer($0) }
        var kernels = plan.layers.map { l in
            LayerKernel.quantized(l, base: base, offsets: tensorOffsets) ?? LayerKernel(l, winograd: winograd)
        }
        for group in siblings {
            let first = group.layers[0]
            kernels[first] = .convolution(group.merged, ConvolutionKernel(group.merged.geometry, inputAffine: false))
            for i in group.layers.dropFirst() { kernels[i] = .merged(into: first) }
        }
        Network.fuseDepthwisePointwise(&kernels, plan)
        Network.fuseQuantizedBlocks(&kernels, plan)
        self.kernels = kernels
        (valueOffset, arenaCount) = Network.planArena(plan, kernels: kernels, siblings: siblings)
        scratchPerThread = ((kernels.map(\.scratchPerThread).max() ?? 0) + 15) / 16 * 16
        sharedScratch = kernels.map { $0.sharedScratch(threads: max(1, threads)) }.max() ?? 0
    }

    deinit { for t in siblingTensors { t.deallocate() } }

    /// Fuses each depthwise layer with the 1×1 layer after it when that layer is its only reader
    /// (Kernels/DepthwisePointwise.swift).
    private static func fuseDepthwisePointwise(_ kernels: inout [LayerKernel], _ plan: ModelPlan) {
        let readers = readerCounts(plan)
        for i in kernels.indices.dropLast() {
            guard case let .convolution(dw, .depthwise) = kernels[i], case let .convolution(pw, _) = kernels[i + 1],
                readers[dw.output] == 1, depthwisePointwiseApplies(dw: dw, pw: pw)
            else { continue }
            kernels[i] = .depthwisePointwise(dw, pw)
            kernels[i + 1] = .merged(into: i)
        }
    }

    /// Fuses each int8 expansion, float32 depthwise and int8 projection whose intermediate values have no other
    /// reader into one block (Kernels/QuantizedBlock.swift).
    private static func fuseQuantizedBlocks(_ kernels: inout [LayerKernel], _ plan: ModelPlan) {
        let readers = readerCounts(plan)
        var i = 0
        while i + 2 < kernels.count {
            guard case let .quantizedConvolution(e, ew) = kernels[i],
                case let .convolution(dw, .depthwise) = kernels[i + 1],
                case let .quantizedConvolution(p, pw) = kernels[i + 2],
                readers[e.output] == 1, readers[dw.output] == 1,
                quantizedBlockApplies(expansion: e, depthwise: dw, projection: p)
            else {
                i += 1
                continue
            }
            kernels[i] = .quantizedBlock(
                QuantizedBlockLayers(
                    expansion: e, expansionWeights: ew, depthwise: dw, projection: p, projectionWeights: pw))
            kernels[i + 1] = .merged(into: i)
            kernels[i + 2] = .merged(into: i)
            i += 3
        }
    }

    /// How many layers read each value, an output of the plan counting as one more.
    private static func readerCounts(_ plan: ModelPlan) -> [Int] {
        var readers = [Int](repeating: 0, count: plan.values.count)
        for l in plan.layers { for v in l.inputs { readers[v] += 1 } }
        for o in plan.outputs { readers[o.value] += 1 }
        return readers
    }

    /// A cache-line aligned copy of `values`.
    private static func owned(_ values: [Float]) -> UnsafeMutablePointer<Float> {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(1, values.count) * 4, alignment: 64)
            .bindMemory(to: Float.self, capacity: max(1, values.count))
        p.initialize(from: values, count: values.count)
        return p
    }

    /// Assigns each value an arena offset: values are placed first-fit into space freed by dead values. The outputs
    /// of a sibling group get one block, back to back, when its first member runs, freed when all of them are dead.
    /// A fused depthwise layer's output is never written, so it gets no space; its input stays alive through the
    /// 1×1 layer, which writes while it is read. The values inside a quantized block keep theirs: on too few threads
    /// for two bands the block runs layer by layer.
    private static func planArena(_ plan: ModelPlan, kernels: [LayerKernel], siblings: [SiblingGroup]) -> ([Int], Int) {
        var lastUse = [Int](repeating: -1, count: plan.values.count)
        for (i, l) in plan.layers.enumerated() { for v in l.inputs { lastUse[v] = i } }
        var unwritten = Set<Int>()
        for (i, k) in kernels.enumerated() {
            guard case let .depthwisePointwise(dw, _) = k else { continue }
            lastUse[dw.input] = max(lastUse[dw.input], i + 1)
            unwritten.insert(dw.output)
        }
        for o in plan.outputs { lastUse[o.value] = Int.max }
        var dying = [[Int]](repeating: [], count: plan.layers.count)
        for (v, i) in lastUse.enumerated() where i >= 0 && i < plan.layers.count && !unwritten.contains(v) {
            dying[i].append(v)
        }
        var offset = [Int](repeating: 0, count: plan.values.count)
        var free: [(start: Int, size: Int)] = []
        var top = 0
        func size(_ v: Int) -> Int { (plan.values[v].count + 15) / 16 * 16 }
        func allocate(_ v: Int, floats need: Int) {
            if let i = free.indices.filter({ free[$0].size >= need }).min(by: { free[$0].size < free[$1].size }) {
                offset[v] = free[i].start
                free[i].start += need; free[i].size -= need
                if free[i].size == 0 { free.remove(at: i) }
            } else {
                offset[v] = top; top += need
            }
        }
        func release(_ v: Int, floats: Int) {
            free.append((offset[v], floats))
            free.sort { $0.start < $1.start }
            var merged: [(start: Int, size: Int)] = []
            for b in free {
                if let last = merged.last, last.start + last.size == b.start {
                    merged[merged.count - 1].size += b.size
                } else {
                    merged.append(b)
                }
            }
            free = merged
        }
        func blockSize(_ values: [Int]) -> Int { (values.map { plan.values[$0].count }.reduce(0, +) + 15) / 16 * 16 }
        var groupOf: [Int: Int] = [:]
        var alive = siblings.map(\.outputs.count)
        for (n, group) in siblings.enumerated() { for v in group.outputs { groupOf[v] = n } }
        allocate(0, floats: size(0))
        for (i, l) in plan.layers.enumerated() {
            if let n = groupOf[l.output] {
                let values = siblings[n].outputs
                if siblings[n].layers[0] == i {
                    allocate(values[0], floats: blockSize(values))
                    for (v, before) in zip(values.dropFirst(), values) {
                        offset[v] = offset[before] + plan.values[before].count
                    }
                }
            } else if !unwritten.contains(l.output) {
                allocate(l.output, floats: size(l.output))
            }
            for v in dying[i] {
                guard let n = groupOf[v] else { release(v, floats: size(v)); continue }
                alive[n] -= 1
                if alive[n] == 0 { release(siblings[n].outputs[0], floats: blockSize(siblings[n].outputs)) }
            }
        }
        return (offset, top)
    }

    /// Takes a workspace from the pool (or makes one) for `threads` threads.
    func checkout(threads: Int) -> Workspace {
        let need = scratchPerThread * max(1, threads)
        if let w = pool.withLock({ p -> Workspace? in
            guard let i = p.firstIndex(where: { $0.scratchCount >= need }) else { return nil }
            return p.remove(at: i)
        }) {
            return w
        }
        return Workspace(arena: arenaCount, scratch: need, shared: sharedScratch)
    }

    /// Returns a workspace to the pool.
    func checkin(_ w: Workspace) { pool.withLock { $0.append(w) } }

    /// Where the preprocessed input image goes (3 × 112 × 112 for a recognition model) in `w`.
    func input(_ w: Workspace) -> UnsafeMutablePointer<Float> { w.arena + valueOffset[0] }

    /// Where the embedding is after `run`.
    func output(_ w: Workspace) -> UnsafeMutablePointer<Float> { w.arena + valueOffset[plan.output] }

    /// Where value `v` (an output of the plan) is after `run`.
    func value(_ v: Int, in w: Workspace) -> UnsafePointer<Float> { UnsafePointer(w.arena + valueOffset[v]) }

    /// Runs every layer on the image in `input(w)`; `timing`, when given, receives each layer's nanoseconds.
    func run(_ w: Workspace, threads: Int, timing: ((Int, Duration) -> Void)? = nil) {
        let clock = ContinuousClock()
        Denormals.flushed {
            for (i, kernel) in kernels.enumerated() {
                let start = timing == nil ? nil : clock.now
                execute(kernel, w, threads: threads)
                if let start, let timing { timing(i, clock.now - start) }
            }
        }
    }

    private func execute(_ kernel: LayerKernel, _ w: Workspace, threads: Int) {
        switch kernel {
        case let .convolution(c, k): k.run(c.geometry, operands(c, w), threads: threads)
        case let .depthwisePointwise(dw, pw):
            depthwisePointwiseConvolution(
                dw.geometry, operands(dw, w), pw.geometry, operands(pw, w), threads: threads)
        case let .affine(a): affine(a, w)
        case let .fullyConnected(f): fullyConnect(f, w, threads: threads)
        case let .add(a, b, o): add(value(a, w), value(b, w), output: value(o, w), count: plan.values[o].count)
        case let .upsample(x, o):
            let s = plan.values[x]
            upsampleNearest2x(input: value(x, w), output: value(o, w), channels: s.c, height: s.h, width: s.w)
        case let .sigmoid(x, o): sigmoid(input: value(x, w), output: value(o, w), count: plan.values[o].count)
        case let .quantizedConvolution(c, q): quantizedConvolve(c, q, w, threads: threads)
        case let .quantizedFullyConnected(f, q): quantizedFullyConnect(f, q, w, threads: threads)
        case let .quantizedBlock(b): runQuantizedBlock(b, w, threads: threads)
        case .merged: break
        }
    }

    func value(_ v: Int, _ w: Workspace) -> UnsafeMutablePointer<Float> { w.arena + valueOffset[v] }

    func operands(_ c: ConvLayer, _ w: Workspace) -> ConvolutionOperands {
        let epilogue = Epilogue(
            bias: tensors[c.bias], slope: c.slope.map { tensors[$0] },
            residual: c.residual.map { UnsafePointer(value($0, w)) })
        let affine = c.inputScale.flatMap { s in
            c.inputShift.map { InputAffine(scale: tensors[s], shift: tensors[$0]) }
        }
        return ConvolutionOperands(
            input: value(c.input, w), weights: tensors[c.weight], inputAffine: affine, epilogue: epilogue,
            output: value(c.output, w), scratch: w.scratch, shared: w.shared)
    }

    private func affine(_ a: AffineLayer, _ w: Workspace) {
        let s = plan.values[a.output]
        channelAffine(
            input: value(a.input, w), scale: a.scale.map { tensors[$0] }, shift: a.shift.map { tensors[$0] },
            slope: a.slope.map { tensors[$0] }, output: value(a.output, w), channels: s.c, plane: s.h * s.w)
    }

    private func fullyConnect(_ f: FullyConnectedLayer, _ w: Workspace, threads: Int) {
        fullyConnected(
            input: value(f.input, w), weights: tensors[f.weight], bias: tensors[f.bias],
            output: value(f.output, w), inFeatures: f.inFeatures, outFeatures: f.outFeatures,
            threads: threads)
    }
}

/// A layer of the plan with its kernel, chosen once when the network is built.
enum LayerKernel {
    case convolution(ConvLayer, ConvolutionKernel)
    case affine(AffineLayer)
    case fullyConnected(FullyConnectedLayer)
    case add(a: Int, b: Int, output: Int)
    case upsample(input: Int, output: Int)
    case sigmoid(input: Int, output: Int)
    /// An int8 layer (QuantizedLayers.swift).
    case quantizedConvolution(ConvLayer, QuantizedLayerWeights)
    case quantizedFullyConnected(FullyConnectedLayer, QuantizedLayerWeights)
    /// A depthwise layer and the 1×1 layer after it, fused (Kernels/DepthwisePointwise.swift).
    case depthwisePointwise(ConvLayer, ConvLayer)
    /// An int8 expansion, float32 depthwise and int8 projection run by bands of rows (Kernels/QuantizedBlock.swift).
    case quantizedBlock(QuantizedBlockLayers)
    /// A layer computed by layer `into`: a sibling convolution (SiblingConvolutions.swift), the 1×1 layer of a
    /// fused depthwise one, or the second or third layer of a quantized block.
    case merged(into: Int)

    init(_ layer: Layer, winograd: Bool) {
        switch layer {
        case let .convolution(c):
            self = .convolution(c, ConvolutionKernel(c.geometry, inputAffine: c.inputScale != nil, winograd: winograd))
        case let .affine(a): self = .affine(a)
        case let .fullyConnected(f): self = .fullyConnected(f)
        case let .add(a, b, o): self = .add(a: a, b: b, output: o)
        case let .upsample(x, o): self = .upsample(input: x, output: o)
        case let .sigmoid(x, o): self = .sigmoid(input: x, output: o)
        }
    }

    /// Scratch floats one thread needs for this layer.
    var scratchPerThread: Int {
        switch self {
        case let .convolution(c, k): return k.scratchPerThread(c.geometry)
        case let .depthwisePointwise(dw, _): return depthwisePointwiseScratch(dw.geometry)
        case let .quantizedBlock(b): return ConvolutionKernel.depthwise.scratchPerThread(b.depthwise.geometry)
        default: return 0
        }
    }

    /// Floats of `Workspace.shared` this layer needs on up to `threads` threads.
    func sharedScratch(threads: Int) -> Int {
        if case let .convolution(c, k) = self { return k.sharedScratch(c.geometry) }
        return LayerKernel.quantizedSharedScratch(self, threads: threads)
    }
}
