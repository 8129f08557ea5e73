// The detector's input from a photo, as insightface's SCRFD.detect makes it (Models/SCRFD.md "insightface's
// post-processing", steps 1-2): the photo resized keeping its aspect ratio with OpenCV 4.8's uint8 INTER_LINEAR,
// top-left on a black canvas, then planar RGB float32 `(p - 127.5) / 128`.
//
// Layout:
//   taps (per output column, per output row)  source index i0, i1 and 11-bit weights w0, w1 (OpenCV's rounding)
//   rows: 2 slots × 3 channels × resizedWidth Int32   one photo row after the horizontal pass, `p[i0]·w0 + p[i1]·w1`
//   out:  3 planes × height × width Float             written once, row by row; the padding is `(0 - 127.5) / 128`
// Only the photo rows that some output row samples are resized horizontally, each once (rows are visited in
// order), so the memory beyond the photo is the output plus two resized rows, whatever the photo's size.

/// Where the photo landed in the detector's input: resized by `scale` to `resizedWidth` × `resizedHeight` at the
/// top-left corner of the canvas.
package struct Letterbox: Sendable, Equatable {
    /// `resizedHeight / photo height` (insightface's `det_scale`), one scale for both axes; detections are divided
    /// by `Float(scale)` to return to photo pixels.
    package var scale: Double
    /// The resized photo's width in input pixels.
    package var resizedWidth: Int
    /// The resized photo's height in input pixels.
    package var resizedHeight: Int

    /// insightface's sizes for a `photoWidth` × `photoHeight` photo in a `width` × `height` canvas: the side that
    /// binds fills the canvas, the other is truncated (`int(h / ratio)`, in Double like Python). A side that would
    /// truncate to 0 (a photo hundreds of times longer than wide) is kept at 1 pixel, where OpenCV would fail.
    package init(photoWidth: Int, photoHeight: Int, width: Int, height: Int) {
        let ratio = Double(photoHeight) / Double(photoWidth)
        if ratio > Double(height) / Double(width) {
            resizedHeight = height
            resizedWidth = max(1, Int(Double(height) / ratio))
        } else {
            resizedWidth = width
            resizedHeight = max(1, Int(Double(width) * ratio))
        }
        scale = Double(resizedHeight) / Double(photoHeight)
    }
}

extension RGBImage {
    /// Writes the `width` × `height` detector input (3 planes, RGB, `(p - 127.5) / 128`) of this photo into `input`,
    /// which must hold `3 * width * height` floats, and says where the photo landed.
    package func letterbox(width: Int, height: Int, into input: UnsafeMutablePointer<Float>) -> Letterbox {
        pixels.withUnsafeBufferPointer {
            FaceEmbed.letterbox(
                CheckedPixels(rgb: $0, width: self.width, height: self.height), width: width, height: height,
                into: input)
        }
    }
}

/// `letterbox(width:height:into:)` for any checked pixel layout.
func letterbox(_ src: CheckedPixels, width: Int, height: Int, into input: UnsafeMutablePointer<Float>) -> Letterbox {
    precondition(width >= 1 && height >= 1, "the detector input must be at least 1x1")
    let box = Letterbox(photoWidth: src.width, photoHeight: src.height, width: width, height: height)
    let rows = LinearTaps(count: box.resizedHeight, source: src.height, clampFraction: false)
    let resizer = RowResizer(src, columns: LinearTaps(count: box.resizedWidth, source: src.width, clampFraction: true))
    let plane = width * height, outWidth = box.resizedWidth
    let padding = normalized(0)
    for y in 0..<height {
        guard y < box.resizedHeight else {
            for c in 0..<3 { (input + c * plane + y * width).update(repeating: padding, count: width) }
            continue
        }
        let (top, bottom) = resizer.rows(rows.first[y], rows.second[y])
        let w0 = rows.firstWeight[y], w1 = rows.secondWeight[y]
        for c in 0..<3 {
            let out = input + c * plane + y * width
            let s0 = top + c * outWidth, s1 = bottom + c * outWidth
            for x in 0..<outWidth {
                out[x] = normalized(blendRows(s0[x], s1[x], w0, w1))
            }
            (out + outWidth).update(repeating: padding, count: width - outWidth)
        }
    }
    return box
}

/// `(p - 127.5) / 128` in float32 as numpy computes it (both steps are exact, so the multiply by 2⁻⁷ equals the
/// division bit for bit, and the loop vectorizes).
@inline(__always)
private func normalized(_ level: Int32) -> Float {
    (Float(level) - 127.5) * 0.0078125
}

/// OpenCV's vertical step: each horizontally resized value (scaled by 2048) shifted right by 4, times its 11-bit
/// weight keeping the high 16 bits (a 16-bit SIMD multiply-high), summed and rounded with `(+ 2) >> 2`, clamped.
@inline(__always)
private func blendRows(_ s0: Int32, _ s1: Int32, _ w0: Int32, _ w1: Int32) -> Int32 {
    let v = ((((s0 >> 4) &* w0) >> 16) &+ (((s1 >> 4) &* w1) >> 16) &+ 2) >> 2
    return min(max(v, 0), 255)
}

/// The two taps of OpenCV's INTER_LINEAR along one axis for each of `count` outputs from `source` inputs.
///
/// Source position `f = float32((d + 0.5) · source / count − 0.5)`, `i = floor(f)`, fraction `t = f − i`; weights
/// `rint((1 − t) · 2048)` and `rint(t · 2048)`, rounded separately. Columns (`clampFraction`) use t = 0 where
/// `i < 0` or `i ≥ source − 1`; rows keep t and only clamp the indices.
struct LinearTaps {
    /// Source index of the first and second tap, clamped to `0..<source`.
    var first: [Int], second: [Int]
    /// Their 11-bit weights.
    var firstWeight: [Int32], secondWeight: [Int32]

    init(count: Int, source: Int, clampFraction: Bool) {
        first = []; second = []; firstWeight = []; secondWeight = []
        let step = Double(source) / Double(count)
        for d in 0..<count {
            let f = Float((Double(d) + 0.5) * step - 0.5)
            let i = Int(f.rounded(.down))
            var t = f - Float(i)
            if clampFraction && (i < 0 || i >= source - 1) { t = 0 }
            first.append(min(max(i, 0), source - 1))
            second.append(min(max(i + 1, 0), source - 1))
            firstWeight.append(Int32(((1 - t) * 2048).rounded(.toNearestOrEven)))
            secondWeight.append(Int32((t * 2048).rounded(.toNearestOrEven)))
        }
    }
}

/// The horizontal pass, one photo row at a time, into two slots that keep the last rows made: output rows ask for
/// photo rows in increasing order, so each photo row is resized at most once.
private final class RowResizer {
    let src: CheckedPixels
    let count: Int
    /// Per output column: the byte offsets of its two taps from a row's first pixel (`count` each, first taps
    /// then second), and their weights in the same order.
    let offsets: UnsafeMutablePointer<Int>, weights: UnsafeMutablePointer<Int32>
    /// Two slots of 3 channel rows (R, G, B) of `count` values each.
    let slots: UnsafeMutablePointer<Int32>
    /// The photo row each slot holds (-1: none).
    var held = [-1, -1]

    init(_ src: CheckedPixels, columns: LinearTaps) {
        self.src = src
        count = columns.first.count
        let step = src.format.planar ? 1 : src.format.channels
        offsets = .allocate(capacity: 2 * count)
        offsets.initialize(from: columns.first.map { $0 * step } + columns.second.map { $0 * step }, count: 2 * count)
        weights = .allocate(capacity: 2 * count)
        weights.initialize(from: columns.firstWeight + columns.secondWeight, count: 2 * count)
        slots = .allocate(capacity: 2 * 3 * count)
    }

    deinit {
        offsets.deallocate(); weights.deallocate(); slots.deallocate()
    }

    /// Photo rows `y0 <= y1` resized, each 3 channel rows; valid until the next call.
    func rows(_ y0: Int, _ y1: Int) -> (UnsafePointer<Int32>, UnsafePointer<Int32>) {
        let first = slot(for: y0, keeping: -1)
        let second = slot(for: y1, keeping: first)
        return (UnsafePointer(slots + first * 3 * count), UnsafePointer(slots + second * 3 * count))
    }

    /// The slot holding photo row `y`, resizing it into the slot with the older row (never `keeping`) if needed.
    private func slot(for y: Int, keeping: Int) -> Int {
        if let s = held.firstIndex(of: y) { return s }
        let s = keeping >= 0 ? 1 - keeping : (held[0] <= held[1] ? 0 : 1)
        held[s] = y
        resize(row: y, into: slots + s * 3 * count)
        return s
    }

    private func resize(row y: Int, into out: UnsafeMutablePointer<Int32>) {
        let f = src.format, n = count
        let o0 = offsets, o1 = offsets + n, w0 = weights, w1 = weights + n
        for (c, ch) in [f.red, f.green, f.blue].enumerated() {
            let p = src.pixels.baseAddress! + src.offset(x: 0, y: y, channel: ch)
            let o = out + c * n
            for x in 0..<n {
                o[x] = Int32(p[o0[x]]) &* w0[x] &+ Int32(p[o1[x]]) &* w1[x]
            }
        }
    }
}
