// Convolution weights as the kernels read them: "lane-packed".
//
//   OIHW (MXNet, ONNX)   w[o][k]                           k = (ic·kH + ky)·kW + kx,  K = inC/groups · kH · kW
//   lane-packed          p[grp][blk][k][16] = w[grp·ocg + 16·blk + lane][k]      zero in lanes past ocg = outC/groups
//
// Every k step of a block of 16 output channels is one contiguous 64-byte vector, which is what the GEMM
// micro-kernels broadcast from and what the Winograd weight transform loads, so no kernel repacks weights per call.
// Every convolution except the depthwise ones (groups = inC = outC, kept OIHW) is stored this way in a flat file.

/// Output channels per block of lane-packed weights.
package let weightLanes = 16

extension ConvGeometry {
    /// True for a depthwise convolution (one input and one output channel per group), whose weights stay OIHW.
    package var isDepthwise: Bool { groups > 1 && groups == inC && groups == outC }
    /// Blocks of `weightLanes` output channels per group.
    package var weightBlocks: Int { (outC / groups + weightLanes - 1) / weightLanes }
    /// The shape a flat file records for this convolution's weights.
    package var storedWeightShape: [Int] {
        isDepthwise ? [outC, inC / groups, kH, kW] : [groups, weightBlocks, k, weightLanes]
    }
}

/// Rearranges OIHW weights for `g` (not depthwise) into the lane-packed layout above.
package func lanePackedWeights(_ w: [Float], _ g: ConvGeometry) -> [Float] {
    let k = g.k, ocg = g.outC / g.groups, blocks = g.weightBlocks
    var p = [Float](repeating: 0, count: g.groups * blocks * k * weightLanes)
    for grp in 0..<g.groups {
        for o in 0..<ocg {
            let dst = (grp * blocks + o / weightLanes) * k * weightLanes + o % weightLanes
            let src = (grp * ocg + o) * k
            for kk in 0..<k { p[dst + kk * weightLanes] = w[src + kk] }
        }
    }
    return p
}
