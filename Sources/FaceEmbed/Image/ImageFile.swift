// ImageFile.swift — format sniffing and file loading for the image decoders.
//
// Layout:
//   ImageDecoder.decode(_:)      magic bytes → JPEG (FF D8), PNG (89 'PNG' …), PPM ("P3"/"P6")
//   ImageDecoder.load(path:)     maps a regular file and decodes it; errors name the file

/// Decodes image files (baseline JPEG, PNG, PPM) into 8-bit RGB.
public enum ImageDecoder {
    /// The largest file `load(path:)` reads (1 GiB).
    public static let maxFileBytes = 1 << 30

    /// Decodes an in-memory JPEG, PNG or PPM file, chosen by its first bytes.
    ///
    /// Throws ``FaceEmbedError/invalidImage(file:reason:)`` (with `file` nil) for unknown formats and for malformed,
    /// truncated or unsupported files (progressive JPEG, for example).
    public static func decode(_ bytes: [UInt8]) throws(FaceEmbedError) -> RGBImage {
        if bytes.count >= 2 && bytes[0] == 0xFF && bytes[1] == 0xD8 {
            return try JPEG.decode(bytes)
        }
        if bytes.count >= 8 && Array(bytes[0..<8]) == PNG.signature {
            return try PNG.decode(bytes)
        }
        if bytes.count >= 2 && bytes[0] == UInt8(ascii: "P") && (bytes[1] == UInt8(ascii: "3") || bytes[1] == UInt8(ascii: "6")) {
            return try PPM.decode(bytes)
        }
        if bytes.isEmpty { throw .invalidImage(file: nil, reason: "the file is empty") }
        throw .invalidImage(file: nil, reason: "unknown image format (expected JPEG, PNG or PPM)")
    }

    /// Reads and decodes the image file at `path`.
    ///
    /// A missing, unreadable or directory path throws ``FaceEmbedError/io(file:reason:)``; decoding errors are
    /// attributed to `path`.
    public static func load(path: String) throws(FaceEmbedError) -> RGBImage {
        let bytes = try readFile(path)
        do {
            return try decode(bytes)
        } catch {
            throw error.attributed(to: path)
        }
    }

    /// The bytes of the file at `path`, with I/O failures as ``FaceEmbedError/io(file:reason:)``.
    static func readFile(_ path: String) throws(FaceEmbedError) -> [UInt8] {
        guard fileExists(path) else { throw .io(file: path, reason: "no such file") }
        guard !isDirectory(path) else { throw .io(file: path, reason: "is a directory, not an image file") }
        // MappedFile opens without blocking and refuses what is not a regular file (a FIFO, /dev/zero, which a
        // read-to-end would wait on or read forever); the size limit is checked before anything is copied.
        let file = try MappedFile(path: path)
        guard file.bytes.count <= maxFileBytes else {
            throw .io(file: path, reason: "the file is \(file.bytes.count) bytes, more than the \(maxFileBytes)-byte limit")
        }
        return file.array
    }
}
