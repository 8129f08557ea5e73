// The network's input from caller pixels: the three colour planes in the order the model expects, each pixel p
// mapped to `(p - mean) * scale` (the preprocessing a `.feb` header records).

/// Writes the model input (3 planes in `order`, `(p - mean) * scale`) from 8-bit pixels.
func fillInput(
    _ dst: UnsafeMutablePointer<Float>, from src: CheckedPixels, order: ChannelOrder, mean: Float, scale: Float
) {
    let f = src.format, plane = src.width * src.height
    let colors = order == .rgb ? [f.red, f.green, f.blue] : [f.blue, f.green, f.red]
    for (k, ch) in colors.enumerated() {
        let out = dst + k * plane
        for y in 0..<src.height {
            for x in 0..<src.width {
                out[y * src.width + x] = (Float(src.pixels[src.offset(x: x, y: y, channel: ch)]) - mean) * scale
            }
        }
    }
}
