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
            throw .invalidImage(
                file: nil, reason: "dimensions \(width)x\(height) are outside 1...\(ImageLimits.maxSide)")
        }
        guard pixels.count == width * height * 3 else {
            throw .invalidImage(
                file: nil,
                reason: "expected \(width * height * 3) bytes for \(width)x\(height) RGB, got \(pixels.count)")
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

extension RGBImage {
    /// The image mirrored left to right (the flip of the insightface protocol's `fc1(img) + fc1(hflip(img))`).
    public func horizontallyFlipped() -> RGBImage {
        var out = pixels
        let w = width
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<height {
                    let row = y * w * 3
                    for x in 0..<w {
                        let s = row + x * 3, d = row + (w - 1 - x) * 3
                        dst[d] = src[s]; dst[d + 1] = src[s + 1]; dst[d + 2] = src[s + 2]
                    }
                }
            }
        }
        // Same dimensions and byte count as a valid image, so this cannot fail.
        return try! RGBImage(width: width, height: height, pixels: out)
    }
}
