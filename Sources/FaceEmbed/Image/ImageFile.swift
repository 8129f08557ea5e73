// ImageFile.swift — format sniffing and file loading for the image decoders.
//
// Layout:
//   ImageDecoder.decode(_:)      magic bytes → JPEG (FF D8), PNG (89 'PNG' …), PPM ("P3"/"P6"); EXIF orientation
//                                (JPEG APP1 Exif, PNG eXIf) applied unless the caller asks for the stored pixels
//   ImageDecoder.load(path:)     maps a regular file and decodes it; errors name the file

/// Decodes image files (baseline and progressive JPEG, PNG, PPM) into 8-bit RGB.
public enum ImageDecoder {
    /// The largest file `load(path:)` reads (1 GiB).
    public static let maxFileBytes = 1 << 30

    /// Decodes an in-memory JPEG, PNG or PPM file, chosen by its first bytes.
    ///
    /// With `applyingOrientation` (the default), a JPEG or PNG whose EXIF orientation is 2–8 comes back upright,
    /// as Pillow's `ImageOps.exif_transpose` and OpenCV's `imread` return it; pass `false` for the pixels as stored.
    /// Throws ``FaceEmbedError/invalidImage(file:reason:)`` (with `file` nil) for unknown formats and for malformed,
    /// truncated or unsupported files (lossless or arithmetic-coded JPEG, for example).
    public static func decode(_ bytes: [UInt8], applyingOrientation: Bool = true) throws(FaceEmbedError) -> RGBImage {
        let decoded: (image: RGBImage, orientation: Int)
        if bytes.count >= 2 && bytes[0] == 0xFF && bytes[1] == 0xD8 {
            decoded = try JPEG.decodeWithOrientation(bytes)
        } else if bytes.count >= 8 && Array(bytes[0..<8]) == PNG.signature {
            decoded = try PNG.decodeWithOrientation(bytes)
        } else if bytes.count >= 2 && bytes[0] == UInt8(ascii: "P")
            && (bytes[1] == UInt8(ascii: "3") || bytes[1] == UInt8(ascii: "6"))
        {
            return try PPM.decode(bytes)
        } else if bytes.isEmpty {
            throw .invalidImage(file: nil, reason: "the file is empty")
        } else {
            throw .invalidImage(file: nil, reason: "unknown image format (expected JPEG, PNG or PPM)")
        }
        return applyingOrientation ? decoded.image.oriented(decoded.orientation) : decoded.image
    }

    /// Reads and decodes the image file at `path` (upright unless `applyingOrientation` is false; see
    /// ``decode(_:applyingOrientation:)``).
    ///
    /// A missing, unreadable or directory path throws ``FaceEmbedError/io(file:reason:)``; decoding errors are
    /// attributed to `path`.
    public static func load(path: String, applyingOrientation: Bool = true) throws(FaceEmbedError) -> RGBImage {
        let bytes = try imageBytes(path)
        do {
            return try decode(bytes, applyingOrientation: applyingOrientation)
        } catch {
            throw error.attributed(to: path)
        }
    }

    /// The bytes of the image file at `path`, with I/O failures as ``FaceEmbedError/io(file:reason:)``: a missing
    /// path or a directory named as such; MappedFile opens without blocking and refuses what is not a regular file (a
    /// FIFO, /dev/zero, which a read-to-end would wait on or read forever); the size limit is checked before copying.
    static func imageBytes(_ path: String) throws(FaceEmbedError) -> [UInt8] {
        guard fileExists(path) else { throw .io(file: path, reason: "no such file") }
        guard !isDirectory(path) else { throw .io(file: path, reason: "is a directory, not an image file") }
        return try readFile(path, limit: maxFileBytes)
    }
}
