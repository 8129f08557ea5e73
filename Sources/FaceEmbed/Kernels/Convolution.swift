// Convolution: its geometry, and the choice of kernel for one layer, made once when a model loads (ncnn's
// `create_pipeline`): `ConvolutionKernel(g, inputAffine:)` picks the algorithm, says how much scratch it needs, and
// runs it. Network.swift sizes the workspaces from the choice and dispatches on it; the tests choose through it too.
//
//   .winograd        3×3 stride-1, groups = 1: Winograd F(4,3)                        Winograd.swift
//   .pointwiseGEMM   AVX-512, unpadded 1×1 without input affine: GEMM, B = the input   ConvolutionGEMM.swift
//   .im2colGEMM      AVX-512, other groups = 1: im2col bands in shared scratch, GEMM   ConvolutionGEMM.swift
//   .packedGEMM      other builds (and AVX-512's 1×1 with input affine): B per panel   ConvolutionGEMM.swift
//   .depthwise       groups = inC = outC                                               DepthwiseConvolution.swift
//   .narrow          stride 1, at most 24 output channels, rows ≥ 16: pixels in lanes  ConvolutionNarrow.swift
//   .grouped(k)      other groups: kernel k (a GEMM, no input affine) on each group's slice of channels
// The GEMM kernels build B with Im2col.swift and compute on GEMMKernels.swift's micro-kernels.
//
// Scratch: `scratchPerThread` floats for each thread (its own block), plus `sharedScratch` floats that all threads
// of the layer share (Winograd's transformed input, the im2col band).

/// Geometry of one convolution on one image.
package struct ConvGeometry: Equatable, Sendable {
    package var inC: Int, inH: Int, inW: Int
    package var outC: Int, outH: Int, outW: Int
    package var kH: Int, kW: Int, strideH: Int, strideW: Int, padH: Int, padW: Int
    package var groups: Int

    /// Output size for the given input, kernel, stride and padding (MXNet's floor rule).
    package init(
        inC: Int, inH: Int, inW: Int, outC: Int, kH: Int, kW: Int, strideH: Int, strideW: Int,
        padH: Int, padW: Int, groups: Int
    ) {
        self.inC = inC; self.inH = inH; self.inW = inW; self.outC = outC
        self.kH = kH; self.kW = kW; self.strideH = strideH; self.strideW = strideW
        self.padH = padH; self.padW = padW; self.groups = groups
        outH = (inH + 2 * padH - kH) / strideH + 1
        outW = (inW + 2 * padW - kW) / strideW + 1
    }

    /// Rows of the implicit GEMM's B matrix (per group).
    package var k: Int { inC / groups * kH * kW }
    /// Output pixels.
    package var pixels: Int { outH * outW }
    /// True for a 1×1, stride-1, unpadded convolution, whose B matrix is the input itself.
    package var isPointwise: Bool { kH == 1 && kW == 1 && strideH == 1 && strideW == 1 && padH == 0 && padW == 0 }
    /// Multiply-adds for one image.
    package var macs: Int { outC * pixels * k }
}

/// A per-input-channel affine map applied to in-bounds taps (a batch norm before a padded convolution).
struct InputAffine {
    var scale: UnsafePointer<Float>
    var shift: UnsafePointer<Float>
}

/// What one call of a convolution kernel reads and writes.
struct ConvolutionOperands {
    var input: UnsafePointer<Float>
    /// Lane-packed (depthwise: OIHW) weights, as a flat file holds them.
    var weights: UnsafePointer<Float>
    var inputAffine: InputAffine?
    var epilogue: Epilogue
    var output: UnsafeMutablePointer<Float>
    /// `threads` blocks of the kernel's `scratchPerThread` floats.
    var scratch: UnsafeMutablePointer<Float>
    /// The kernel's `sharedScratch` floats.
    var shared: UnsafeMutablePointer<Float>
}

/// The algorithm that runs one convolution layer (see the top of this file).
indirect enum ConvolutionKernel: Equatable, Sendable {
    case winograd, pointwiseGEMM, im2colGEMM, packedGEMM, depthwise, narrow
    case grouped(ConvolutionKernel)

    /// The kernel for `g`, with or without an input affine; `winograd: false` keeps 3×3 stride-1 layers on the
    /// direct GEMM (to check one against the other).
    init(_ g: ConvGeometry, inputAffine: Bool, winograd: Bool = true) {
        if g.isDepthwise {
            self = .depthwise
        } else if g.groups > 1 {
            self = .grouped(ConvolutionKernel(g.group, inputAffine: false, winograd: false))
        } else if !inputAffine && narrowApplies(g) {
            self = .narrow
        } else if winograd && winogradApplies(g) {
            self = .winograd
        } else if !gemmWideKernels || (g.isPointwise && inputAffine) {
            self = .packedGEMM
        } else {
            self = g.isPointwise ? .pointwiseGEMM : .im2colGEMM
        }
    }

    /// Floats of scratch each thread needs on `g`.
    func scratchPerThread(_ g: ConvGeometry) -> Int {
        switch self {
        case .winograd: return winogradScratch(g)
        case .pointwiseGEMM, .im2colGEMM: return gemmTileScratch
        case .packedGEMM: return packedGEMMScratch(g)
        case .depthwise: return depthwiseScratch(g)
        case .narrow: return narrowScratch
        case let .grouped(k): return k.scratchPerThread(g.group)
        }
    }

    /// Floats of scratch all threads share on `g`.
    func sharedScratch(_ g: ConvGeometry) -> Int {
        switch self {
        case .winograd: return winogradSharedScratch(g)
        case .im2colGEMM: return im2colGEMMSharedScratch(g)
        case .narrow: return narrowSharedScratch(g)
        case .pointwiseGEMM, .packedGEMM, .depthwise: return 0
        case let .grouped(k): return k.sharedScratch(g.group)
        }
    }

    /// Runs the kernel on `g` with up to `threads` threads.
    func run(_ g: ConvGeometry, _ o: ConvolutionOperands, threads: Int) {
        switch self {
        case .winograd: winogradConvolution(g, o, threads: threads)
        case .pointwiseGEMM: pointwiseGEMMConvolution(g, o, threads: threads)
        case .im2colGEMM: im2colGEMMConvolution(g, o, threads: threads)
        case .packedGEMM: packedGEMMConvolution(g, o, threads: threads)
        case .depthwise: depthwiseConvolution(g, o, threads: threads)
        case .narrow: narrowConvolution(g, o, threads: threads)
        case let .grouped(k): groupedConvolution(g, o, kernel: k, threads: threads)
        }
    }
}

extension ConvGeometry {
    /// One group's convolution (groups = 1).
    var group: ConvGeometry {
        ConvGeometry(
            inC: inC / groups, inH: inH, inW: inW, outC: outC / groups, kH: kH, kW: kW, strideH: strideH,
            strideW: strideW, padH: padH, padW: padW, groups: 1)
    }
}

/// `.grouped`: `kernel` on each group's slice of input channels, weights and output channels in turn.
func groupedConvolution(_ g: ConvGeometry, _ o: ConvolutionOperands, kernel: ConvolutionKernel, threads: Int) {
    let sub = g.group, icg = sub.inC, ocg = sub.outC
    for grp in 0..<g.groups {
        var s = o
        s.input = o.input + grp * icg * g.inH * g.inW
        s.weights = o.weights + grp * sub.weightBlocks * sub.k * weightLanes
        s.inputAffine = nil
        s.epilogue = o.epilogue.slice(from: grp * ocg, plane: sub.pixels)
        s.output = o.output + grp * ocg * sub.pixels
        kernel.run(sub, s, threads: threads)
    }
}
