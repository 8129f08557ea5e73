// Netpbm reader and writer: P6 (binary RGB), P3 (ASCII RGB), P5 / P2 (binary / ASCII gray, expanded to RGB).
//
//   "P6" ws width ws height ws maxval one-ws  then width·height·3 samples, 1 byte each (maxval < 256) or
//   2 bytes big-endian (maxval ≥ 256). Comments run from '#' to the end of a header line.
// Samples are scaled to 8 bits as round(v · 255 / maxval); maxval 255 passes through unchanged.

/// PPM/PGM decoding and PPM encoding.
public enum PPM {
    /// Decodes a P2, P3, P5 or P6 file's bytes.
    public static func decode(_ bytes: [UInt8]) throws(FaceEmbedError) -> RGBImage {
        func fail(_ s: String) -> FaceEmbedError { .invalidImage(file: nil, reason: "PPM: \(s)") }
        guard bytes.count >= 2, bytes[0] == UInt8(ascii: "P"),
            let kind = [UInt8(ascii: "2"), UInt8(ascii: "3"), UInt8(ascii: "5"), UInt8(ascii: "6")].firstIndex(
                of: bytes[1])
        else {
            throw fail("not a PPM/PGM file (expected P3, P6, P2 or P5)")
        }
        let ascii = kind == 0 || kind == 1
        let colors = (kind == 1 || kind == 3) ? 3 : 1
        var i = 2
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D || b == 0x0B || b == 0x0C }
        func skipSpaceAndComments() {
            while i < bytes.count {
                if isSpace(bytes[i]) {
                    i += 1
                } else if bytes[i] == UInt8(ascii: "#") {
                    while i < bytes.count, bytes[i] != 0x0A, bytes[i] != 0x0D { i += 1 }
                } else {
                    break
                }
            }
        }
        func number(_ what: String) throws(FaceEmbedError) -> Int {
            skipSpaceAndComments()
            var v = 0, digits = 0
            while i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") {
                v = v * 10 + Int(bytes[i] - UInt8(ascii: "0"))
                digits += 1; i += 1
                guard v <= 1 << 30 else { throw fail("\(what) is too large") }
            }
            guard digits > 0 else {
                throw fail(i >= bytes.count ? "truncated header (no \(what))" : "expected \(what) at byte \(i)")
            }
            return v
        }
        let width = try number("width"), height = try number("height"), maxval = try number("maxval")
        guard width >= 1, height >= 1, width <= ImageLimits.maxSide, height <= ImageLimits.maxSide,
            width * height <= ImageLimits.maxPixels
        else {
            throw fail("dimensions \(width)x\(height) are out of range")
        }
        guard maxval >= 1, maxval <= 65535 else { throw fail("maxval \(maxval) is outside 1...65535") }
        let samples = width * height * colors
        let wide = maxval > 255
        var raw = [Int](repeating: 0, count: 0)
        if ascii {
            // Each ASCII sample takes at least two bytes: refuse before allocating for a header that lies.
            guard (bytes.count - i) / 2 >= samples - 1 else { throw fail("truncated: \(samples) samples expected") }
            raw.reserveCapacity(samples)
            for _ in 0..<samples {
                let v = try number("a sample")
                guard v <= maxval else { throw fail("sample \(v) exceeds maxval \(maxval)") }
                raw.append(v)
            }
        } else {
            guard i < bytes.count, isSpace(bytes[i]) else { throw fail("truncated header") }
            i += 1
            let size = samples * (wide ? 2 : 1)
            guard bytes.count - i >= size else {
                throw fail(
                    "truncated: \(size) bytes of pixels expected for \(width)x\(height), \(bytes.count - i) present")
            }
            raw = [Int](unsafeUninitializedCapacity: samples) { out, n in
                for s in 0..<samples {
                    out[s] = wide ? Int(bytes[i + 2 * s]) << 8 | Int(bytes[i + 2 * s + 1]) : Int(bytes[i + s])
                }
                n = samples
            }
            for v in raw where v > maxval { throw fail("sample \(v) exceeds maxval \(maxval)") }
        }
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for p in 0..<(width * height) {
            for c in 0..<3 {
                let v = raw[p * colors + (colors == 3 ? c : 0)]
                pixels[p * 3 + c] = maxval == 255 ? UInt8(v) : UInt8((v * 255 + maxval / 2) / maxval)
            }
        }
        return try RGBImage(width: width, height: height, pixels: pixels)
    }

    /// Encodes an image as binary P6 with maxval 255.
    public static func encode(_ image: RGBImage) -> [UInt8] {
        Array("P6\n\(image.width) \(image.height)\n255\n".utf8) + image.pixels
    }
}
