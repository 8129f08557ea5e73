// The plan's `.upsample` layer: nearest-neighbour upsampling by 2 (the FPN's top-down path in SCRFD, ONNX Resize
// with mode nearest, coordinate_transformation_mode asymmetric, nearest_mode floor, output exactly twice the input).
//
//   x: [C][H][W], y: [C][2H][2W];  y[c][oy][ox] = x[c][oy / 2][ox / 2]
//
// Each input row is widened once into the first output row and copied to the second.

/// Nearest 2× upsampling of `channels` planes of `height` × `width`.
func upsampleNearest2x(
    input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, channels: Int, height: Int, width: Int
) {
    let ow = 2 * width
    for c in 0..<channels {
        for y in 0..<height {
            let src = input + (c * height + y) * width
            let row = output + (c * 2 * height + 2 * y) * ow
            for x in 0..<width {
                let v = src[x]
                row[2 * x] = v
                row[2 * x + 1] = v
            }
            (row + ow).update(from: row, count: ow)
        }
    }
}
