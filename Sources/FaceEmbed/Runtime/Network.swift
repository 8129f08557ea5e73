import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Executes a `ModelPlan` on weights that stay in the mapped flat file.
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
        let p = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64).bindMemory(to: Float.self, capacity: count)
        p.initialize(repeating: 0, count: count)
        return p
    }

    deinit { arena.deallocate(); scratch.deallocate(); shared.deallocate() }
}

/// A plan bound to its weights, with the activation layout planned once.
final class Network: @unchecked Sendable {
    let plan: ModelPlan
    /// Keeps the mapped weights alive.
    private let storage: MappedFile
    private let tensors: [UnsafePointer<Float>]
    /// Arena offset (in floats) of each value.
    let valueOffset: [Int]
    let arenaCount: Int
    /// Scratch floats one thread needs for the most demanding layer.
    let scratchPerThread: Int
    /// Floats of `Workspace.shared` the most demanding layer needs.
    let sharedScratch: Int
    /// Threads a single image may use inside a layer.
    let threads: Int
    /// Whether 3x3 stride-1 convolutions use Winograd F(4,3) (set FACEEMBED_NO_WINOGRAD=1 to check against the
    /// direct implicit GEMM).
    let winograd: Bool
    private let pool = Mutex<[Workspace]>([])

    init(plan: ModelPlan, storage: MappedFile, tensorOffsets: [Int], threads: Int) {
        self.plan = plan
        self.storage = storage
        self.threads = max(1, threads)
        let base = storage.bytes.baseAddress!
        tensors = tensorOffsets.map { (base + $0).assumingMemoryBound(to: Float.self) }
        (valueOffset, arenaCount) = Network.planArena(plan)
        winograd = getenv("FACEEMBED_NO_WINOGRAD").map { String(cString: $0) != "1" } ?? true
        var scratch = 0, shared = 0
        for case let .convolution(c) in plan.layers {
            if winograd && winogradApplies(c.geometry) {
                scratch = max(scratch, winogradScratch(c.geometry))
                shared = max(shared, winogradSharedScratch(c.geometry))
            }
            let g = c.geometry
            let need = g.groups == 1 || g.groups != g.inC || g.groups != g.outC
                ? convolutionScratch(ConvGeometry(inC: g.inC / g.groups, inH: g.inH, inW: g.inW, outC: g.outC / g.groups,
                                                  kH: g.kH, kW: g.kW, strideH: g.strideH, strideW: g.strideW,
                                                  padH: g.padH, padW: g.padW, groups: 1))
                : depthwiseScratch(g)
            scratch = max(scratch, need)
        }
        scratchPerThread = (scratch + 15) / 16 * 16
        sharedScratch = shared
    }

    /// Assigns each value an arena offset: values are placed first-fit into space freed by dead values.
    private static func planArena(_ plan: ModelPlan) -> ([Int], Int) {
        var lastUse = [Int](repeating: -1, count: plan.values.count)
        for (i, l) in plan.layers.enumerated() { for v in l.inputs { lastUse[v] = i } }
        lastUse[plan.output] = Int.max
        var offset = [Int](repeating: 0, count: plan.values.count)
        var free: [(start: Int, size: Int)] = []
        var top = 0
        func size(_ v: Int) -> Int { (plan.values[v].count + 15) / 16 * 16 }
        func allocate(_ v: Int) {
            let need = size(v)
            if let i = free.indices.filter({ free[$0].size >= need }).min(by: { free[$0].size < free[$1].size }) {
                offset[v] = free[i].start
                free[i].start += need; free[i].size -= need
                if free[i].size == 0 { free.remove(at: i) }
            } else {
                offset[v] = top; top += need
            }
        }
        func release(_ v: Int) {
            free.append((offset[v], size(v)))
            free.sort { $0.start < $1.start }
            var merged: [(start: Int, size: Int)] = []
            for b in free {
                if let last = merged.last, last.start + last.size == b.start { merged[merged.count - 1].size += b.size }
                else { merged.append(b) }
            }
            free = merged
        }
        allocate(0)
        for (i, l) in plan.layers.enumerated() {
            allocate(l.output)
            for v in Set(l.inputs) where lastUse[v] == i { release(v) }
        }
        return (offset, top)
    }

    /// Takes a workspace from the pool (or makes one) for `threads` threads.
    func checkout(threads: Int) -> Workspace {
        let need = scratchPerThread * max(1, threads)
        if let w = pool.withLock({ p -> Workspace? in
            guard let i = p.firstIndex(where: { $0.scratchCount >= need }) else { return nil }
            return p.remove(at: i)
        }) { return w }
        return Workspace(arena: arenaCount, scratch: need, shared: sharedScratch)
    }

    /// Returns a workspace to the pool.
    func checkin(_ w: Workspace) { pool.withLock { $0.append(w) } }

    /// Where the preprocessed input image goes (3 × 112 × 112) in `w`.
    func input(_ w: Workspace) -> UnsafeMutablePointer<Float> { w.arena + valueOffset[0] }

    /// Where the embedding is after `run`.
    func output(_ w: Workspace) -> UnsafeMutablePointer<Float> { w.arena + valueOffset[plan.output] }

    /// Runs every layer on the image in `input(w)`; `timing`, when given, receives each layer's nanoseconds.
    func run(_ w: Workspace, threads: Int, timing: ((Int, Duration) -> Void)? = nil) {
        let clock = ContinuousClock()
        Denormals.flushed {
            for (i, layer) in plan.layers.enumerated() {
                let start = timing == nil ? nil : clock.now
                execute(layer, w, threads: threads)
                if let start, let timing { timing(i, clock.now - start) }
            }
        }
    }

    private func execute(_ layer: Layer, _ w: Workspace, threads: Int) {
        func value(_ v: Int) -> UnsafeMutablePointer<Float> { w.arena + valueOffset[v] }
        switch layer {
        case let .convolution(c):
            let g = c.geometry
            let ep = Epilogue(bias: tensors[c.bias], slope: c.slope.map { tensors[$0] },
                              residual: c.residual.map { UnsafePointer(value($0)) })
            if g.groups == 1 && winograd && winogradApplies(g) {
                let affine = c.inputScale.flatMap { s in c.inputShift.map { InputAffine(scale: tensors[s], shift: tensors[$0]) } }
                winogradConvolution(g, input: value(c.input), weights: tensors[c.weight], inputAffine: affine, epilogue: ep,
                                    output: value(c.output), scratch: w.scratch, shared: w.shared, threads: threads)
            } else if g.groups == 1 {
                let affine = c.inputScale.flatMap { s in c.inputShift.map { InputAffine(scale: tensors[s], shift: tensors[$0]) } }
                convolution(g, input: value(c.input), weights: tensors[c.weight], inputAffine: affine, epilogue: ep,
                            output: value(c.output), scratch: w.scratch, threads: threads)
            } else if g.groups == g.inC && g.groups == g.outC {
                depthwiseConvolution(g, input: value(c.input), weights: tensors[c.weight], epilogue: ep,
                                     output: value(c.output), scratch: w.scratch, threads: threads)
            } else {
                // Grouped: one GEMM per group on its slice of channels.
                let icg = g.inC / g.groups, ocg = g.outC / g.groups
                let sub = ConvGeometry(inC: icg, inH: g.inH, inW: g.inW, outC: ocg, kH: g.kH, kW: g.kW, strideH: g.strideH,
                                       strideW: g.strideW, padH: g.padH, padW: g.padW, groups: 1)
                for grp in 0..<g.groups {
                    let e = Epilogue(bias: ep.bias + grp * ocg, slope: ep.slope.map { $0 + grp * ocg },
                                     residual: ep.residual.map { $0 + grp * ocg * sub.pixels })
                    convolution(sub, input: value(c.input) + grp * icg * g.inH * g.inW,
                                weights: tensors[c.weight] + grp * sub.weightBlocks * sub.k * weightLanes, inputAffine: nil, epilogue: e,
                                output: value(c.output) + grp * ocg * sub.pixels, scratch: w.scratch, threads: threads)
                }
            }
        case let .affine(a):
            let s = plan.values[a.output]
            batchNormAffine(input: value(a.input), scale: a.scale.map { tensors[$0] }, shift: a.shift.map { tensors[$0] },
                            slope: a.slope.map { tensors[$0] }, output: value(a.output), channels: s.c, plane: s.h * s.w)
        case let .fullyConnected(f):
            fullyConnected(input: value(f.input), weights: tensors[f.weight], bias: tensors[f.bias], output: value(f.output),
                           inFeatures: f.inFeatures, outFeatures: f.outFeatures, threads: threads)
        case let .add(a, b, o):
            add(value(a), value(b), output: value(o), count: plan.values[o].count)
        }
    }
}
