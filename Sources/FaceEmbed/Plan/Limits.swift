// The geometry a plan may hold, written once: the importers refuse a model outside these bounds and the flat file
// reader refuses a file outside them, so every file an importer writes reads back, and no kernel meets a shape its
// scratch sizing was not written for.

/// Bounds on the layers of a plan.
package enum PlanLimits {
    /// Largest kernel side of a convolution.
    package static let maxKernel = 15
    /// Largest stride of a convolution.
    package static let maxStride = 8
    /// Largest zero padding on one side of a convolution.
    package static let maxPad = 15
    /// Most channels of a convolution's input or output, or features of a fully connected layer.
    package static let maxChannels = 65_536
    /// Longest side of a convolution's input.
    package static let maxSide = 4096
}

extension ConvGeometry {
    /// The geometry of these fields if it is one FaceEmbed runs, else nil: every bound of `PlanLimits` holds,
    /// `groups` divides both channel counts and the kernel fits the padded input (so the output is at least 1 × 1).
    /// Checked before `init`, which divides by the strides.
    package static func checked(
        inC: Int, inH: Int, inW: Int, outC: Int, kH: Int, kW: Int, strideH: Int, strideW: Int,
        padH: Int, padW: Int, groups: Int
    ) -> ConvGeometry? {
        let channels = 1...PlanLimits.maxChannels, sides = 1...PlanLimits.maxSide
        let kernels = 1...PlanLimits.maxKernel, strides = 1...PlanLimits.maxStride, pads = 0...PlanLimits.maxPad
        guard channels.contains(inC), channels.contains(outC), sides.contains(inH), sides.contains(inW),
            kernels.contains(kH), kernels.contains(kW), strides.contains(strideH), strides.contains(strideW),
            pads.contains(padH), pads.contains(padW), groups >= 1, inC % groups == 0, outC % groups == 0,
            kH <= inH + 2 * padH, kW <= inW + 2 * padW
        else { return nil }
        return ConvGeometry(
            inC: inC, inH: inH, inW: inW, outC: outC, kH: kH, kW: kW, strideH: strideH,
            strideW: strideW, padH: padH, padW: padW, groups: groups)
    }
}
