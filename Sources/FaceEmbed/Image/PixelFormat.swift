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

/// A caller's 8-bit pixel buffer, described where it lies (nothing is copied): an aligned 112 × 112 face, or a
/// photo of any size to align with `FaceLandmarks`.
///
/// ```swift
/// let e = try bgrFrame.withUnsafeBufferPointer { p in
///     try model.embedding(for: PixelBuffer(p, width: 640, height: 480, format: .bgr), landmarks: landmarks)
/// }
/// ```
///
/// The memory must stay valid and unchanged while the call that is given the buffer runs.
public struct PixelBuffer {
    /// The bytes.
    public var pixels: UnsafeBufferPointer<UInt8>
    /// Width in pixels.
    public var width: Int
    /// Height in pixels.
    public var height: Int
    /// How the bytes are laid out.
    public var format: PixelFormat
    /// Bytes from one row to the next (of one plane, for planar formats); nil for tightly packed rows.
    public var rowStride: Int?

    /// Describes `pixels`; `rowStride` is in bytes and defaults to tightly packed rows.
    public init(
        _ pixels: UnsafeBufferPointer<UInt8>, width: Int, height: Int, format: PixelFormat, rowStride: Int? = nil
    ) {
        self.pixels = pixels; self.width = width; self.height = height; self.format = format; self.rowStride = rowStride
    }

    /// The buffer with its layout checked against its size: channel indices in range, dimensions in
    /// 1...`ImageLimits.maxSide`, a row stride at least a row long, and every pixel inside `pixels`.
    func checked() throws(FaceEmbedError) -> CheckedPixels {
        let f = format
        guard f.channels >= 1, f.channels <= 64, [f.red, f.green, f.blue].allSatisfy({ $0 >= 0 && $0 < f.channels })
        else {
            throw .invalidArgument("pixel format channel indices must lie in 0..<\(f.channels) (at most 64 channels)")
        }
        guard width >= 1, height >= 1, width <= ImageLimits.maxSide, height <= ImageLimits.maxSide else {
            throw .invalidImage(
                file: nil, reason: "dimensions \(width)x\(height) are outside 1...\(ImageLimits.maxSide)")
        }
        let row = f.planar ? width : width * f.channels
        let stride = rowStride ?? row
        // The stride is bounded by the buffer before it is multiplied (a huge caller stride overflowed here).
        guard stride >= row, stride <= pixels.count,
            pixels.count >= (f.planar ? (f.channels * height - 1) * stride + width : (height - 1) * stride + row)
        else {
            throw .invalidImage(
                file: nil,
                reason:
                    "pixel buffer of \(pixels.count) bytes is too small for \(width)x\(height) with row stride \(stride)"
            )
        }
        return CheckedPixels(pixels: pixels, width: width, height: height, format: f, rowStride: stride)
    }
}

/// A `PixelBuffer` whose layout `checked()` has verified, with the row stride resolved: every `offset` lies inside
/// `pixels`.
struct CheckedPixels {
    let pixels: UnsafeBufferPointer<UInt8>
    let width: Int, height: Int
    let format: PixelFormat
    let rowStride: Int

    /// Tightly packed interleaved RGB, such as an `RGBImage`'s pixels.
    init(rgb pixels: UnsafeBufferPointer<UInt8>, width: Int, height: Int) {
        self.init(pixels: pixels, width: width, height: height, format: .rgb, rowStride: width * 3)
    }

    fileprivate init(pixels: UnsafeBufferPointer<UInt8>, width: Int, height: Int, format: PixelFormat, rowStride: Int) {
        self.pixels = pixels; self.width = width; self.height = height; self.format = format; self.rowStride = rowStride
    }

    /// Where channel `ch` of pixel (`x`, `y`) is.
    @inline(__always) func offset(x: Int, y: Int, channel ch: Int) -> Int {
        format.planar ? ch * rowStride * height + y * rowStride + x : y * rowStride + x * format.channels + ch
    }
}
