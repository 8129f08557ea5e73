/// An 8-bit RGB image, interleaved (`r, g, b, r, g, b, …`), rows top to bottom.
///
/// This is what the decoders (PPM, JPEG, PNG) produce and what alignment consumes.
public struct RGBImage: Sendable, Equatable {
    /// Width in pixels.
    public let width: Int
    /// Height in pixels.
    public let height: Int
    /// `width * height * 3` bytes, interleaved RGB.
    public var pixels: [UInt8]

    /// Wraps interleaved RGB bytes; `pixels.count` must be `width * height * 3`.
    public init(width: Int, height: Int, pixels: [UInt8]) throws(FaceEmbedError) {
        guard width > 0, height > 0, width <= ImageLimits.maxSide, height <= ImageLimits.maxSide else {
            throw .invalidImage(file: nil, reason: "dimensions \(width)x\(height) are outside 1...\(ImageLimits.maxSide)")
        }
        guard pixels.count == width * height * 3 else {
            throw .invalidImage(file: nil, reason: "expected \(width * height * 3) bytes for \(width)x\(height) RGB, got \(pixels.count)")
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// Sanity limits applied to every image header before anything is allocated.
public enum ImageLimits {
    /// The largest width or height any decoder accepts.
    public static let maxSide = 32_768
    /// The largest pixel count any decoder accepts (about 16k × 16k).
    public static let maxPixels = 1 << 28
}
