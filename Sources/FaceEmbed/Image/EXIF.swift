// EXIF.swift — the EXIF orientation tag and the pixel transforms that make an image upright.
//
// Layout:
//   EXIF.orientation(tiff:)     TIFF header ("II"/"MM", 42, offset of IFD0) → IFD0's entry for tag 0x0112
//   RGBImage.oriented(_:)       orientation 1–8 → upright pixels, as Pillow's ImageOps.exif_transpose (and
//                               OpenCV's imread) produce them
//
// Only IFD0 is read (the orientation lives there), so IFD chains, including looping ones, are never followed. A
// malformed header, an offset outside the data, or a value outside 1–8 means "no orientation" (1): the picture
// itself is intact, and Pillow likewise leaves such images as stored. The value may be a BYTE, SHORT or LONG
// with count 1 (Pillow reads any of them as the integer).
//
// Orientation → transform (output pixel (x, y) of an ow × oh image takes input pixel (sx, sy) of a W × H one):
//   1 as is              2 mirror: (W−1−x, y)           3 rotate 180°: (W−1−x, H−1−y)   4 flip: (x, H−1−y)
//   5 transpose: (y, x)  6 rotate 90° clockwise: (y, H−1−x)   7 transverse: (W−1−y, H−1−x)
//   8 rotate 90° counter-clockwise: (W−1−y, x)          (5–8 swap width and height)

/// Reading EXIF metadata.
enum EXIF {
    /// The orientation (1–8) recorded in a TIFF-structured EXIF block, or 1 when absent or unreadable.
    static func orientation(tiff: ArraySlice<UInt8>) -> Int {
        let d = Array(tiff)
        guard d.count >= 8 else { return 1 }
        let little: Bool
        switch (d[0], d[1]) {
        case (0x49, 0x49): little = true
        case (0x4D, 0x4D): little = false
        default: return 1
        }
        func u16(_ i: Int) -> Int? {
            guard i >= 0, i + 2 <= d.count else { return nil }
            return little ? Int(d[i]) | Int(d[i + 1]) << 8 : Int(d[i]) << 8 | Int(d[i + 1])
        }
        func u32(_ i: Int) -> Int? {
            guard let a = u16(i), let b = u16(i + 2) else { return nil }
            return little ? a | b << 16 : a << 16 | b
        }
        guard u16(2) == 42, let ifd = u32(4), let entries = u16(ifd) else { return 1 }
        for e in 0..<entries {
            let at = ifd + 2 + 12 * e
            guard let tag = u16(at), let type = u16(at + 2), let count = u32(at + 4) else { return 1 }
            guard tag == 0x0112 else { continue }
            let value: Int?
            switch (type, count) {
            case (1, 1): value = at + 8 < d.count ? Int(d[at + 8]) : nil
            case (3, 1): value = u16(at + 8)
            case (4, 1): value = u32(at + 8)
            default: value = nil
            }
            guard let v = value, (1...8).contains(v) else { return 1 }
            return v
        }
        return 1
    }
}

extension RGBImage {
    /// The upright image for an EXIF `orientation` (1–8; other values leave the image as it is).
    public func oriented(_ orientation: Int) -> RGBImage {
        guard (2...8).contains(orientation) else { return self }
        let w = width, h = height
        let swaps = orientation >= 5
        let ow = swaps ? h : w, oh = swaps ? w : h
        var out = [UInt8](repeating: 0, count: pixels.count)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<oh {
                    for x in 0..<ow {
                        let (sx, sy) = Self.source(orientation, x, y, w, h)
                        let s = (sy * w + sx) * 3, o = (y * ow + x) * 3
                        dst[o] = src[s]; dst[o + 1] = src[s + 1]; dst[o + 2] = src[s + 2]
                    }
                }
            }
        }
        // Same pixel count as a valid image, sides swapped at most, so this cannot fail.
        return try! RGBImage(width: ow, height: oh, pixels: out)
    }

    /// The input pixel that output pixel (`x`, `y`) takes, for an input of `w` × `h` (table in EXIF.swift's header).
    @inline(__always)
    private static func source(_ orientation: Int, _ x: Int, _ y: Int, _ w: Int, _ h: Int) -> (Int, Int) {
        switch orientation {
        case 2: return (w - 1 - x, y)
        case 3: return (w - 1 - x, h - 1 - y)
        case 4: return (x, h - 1 - y)
        case 5: return (y, x)
        case 6: return (y, h - 1 - x)
        case 7: return (w - 1 - y, h - 1 - x)
        case 8: return (w - 1 - y, x)
        default: return (x, y)
        }
    }
}
