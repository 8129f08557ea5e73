// The network's input from caller pixels: the three colour planes in the order the model expects, each pixel p
// mapped to `(p - mean) * scale` (the preprocessing a `.feb` header records).

/// Writes the model input (3 planes in `order`, `(p - mean) * scale`) from 8-bit pixels.
func fillInput(
    _ dst: UnsafeMutablePointer<Float>, from src: CheckedPixels, order: ChannelOrder, mean: Float, scale: Float
) {
    let f = src.format, plane = src.width * src.height
    let colors = order == .rgb ? [f.red, f.green, f.blue] : [f.blue, f.green, f.red]
    // Row by row from a base pointer and a pixel step (the offset computed per value, with bounds checks, took
    // 2 % of y1 int8); CheckedPixels has checked that every offset is inside `pixels`.
    guard let base = src.pixels.baseAddress else { return }  // no pixels: nothing to fill
    for (k, ch) in colors.enumerated() {
        let out = dst + k * plane, step = src.offset(x: 1, y: 0, channel: ch) - src.offset(x: 0, y: 0, channel: ch)
        for y in 0..<src.height {
            let row = base + src.offset(x: 0, y: y, channel: ch), o = out + y * src.width
            for x in 0..<src.width { o[x] = (Float(row[x &* step]) - mean) * scale }
        }
    }
}
