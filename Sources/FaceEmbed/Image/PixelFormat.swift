/// How 8-bit pixels are laid out in a caller's buffer, so any common bitmap can be embedded without a copy.
///
/// Interleaved formats hold `channels` bytes per pixel; planar formats hold `channels` planes of `width × height`
/// bytes (rows may be padded with `rowStride`). `red`, `green` and `blue` give each color's channel index.
public struct PixelFormat: Sendable, Equatable {
    /// Bytes per pixel (interleaved) or number of planes (planar).
    public let channels: Int
    /// Index of the red, green and blue channels.
    public let red: Int, green: Int, blue: Int
    /// True for planar (one plane per channel), false for interleaved.
    public let planar: Bool

    /// A custom layout; channel indices must lie in `0..<channels`.
    public init(channels: Int, red: Int, green: Int, blue: Int, planar: Bool) {
        self.channels = channels; self.red = red; self.green = green; self.blue = blue; self.planar = planar
    }

    /// Interleaved `r g b`.
    public static let rgb = PixelFormat(channels: 3, red: 0, green: 1, blue: 2, planar: false)
    /// Interleaved `b g r` (OpenCV's `Mat` order).
    public static let bgr = PixelFormat(channels: 3, red: 2, green: 1, blue: 0, planar: false)
    /// Interleaved `r g b a`.
    public static let rgba = PixelFormat(channels: 4, red: 0, green: 1, blue: 2, planar: false)
    /// Interleaved `b g r a`.
    public static let bgra = PixelFormat(channels: 4, red: 2, green: 1, blue: 0, planar: false)
    /// Interleaved `a r g b`.
    public static let argb = PixelFormat(channels: 4, red: 1, green: 2, blue: 3, planar: false)
    /// Planes R, G, B.
    public static let planarRGB = PixelFormat(channels: 3, red: 0, green: 1, blue: 2, planar: true)
    /// Planes B, G, R.
    public static let planarBGR = PixelFormat(channels: 3, red: 2, green: 1, blue: 0, planar: true)
}

/// Writes the model input (3 planes in `order`, `(p - mean) * scale`) from 8-bit pixels.
/// `rowStride` is in bytes (interleaved: a row of pixels; planar: a row of one plane).
func fillInput(_ dst: UnsafeMutablePointer<Float>, from src: UnsafeBufferPointer<UInt8>, width: Int, height: Int,
               format f: PixelFormat, rowStride: Int, order: ChannelOrder, mean: Float, scale: Float) {
    let plane = width * height
    let colors = order == .rgb ? [f.red, f.green, f.blue] : [f.blue, f.green, f.red]
    for (k, ch) in colors.enumerated() {
        let out = dst + k * plane
        for y in 0..<height {
            for x in 0..<width {
                let i = f.planar ? ch * rowStride * height + y * rowStride + x : y * rowStride + x * f.channels + ch
                out[y * width + x] = (Float(src[i]) - mean) * scale
            }
        }
    }
}
