// JPEG.swift — a pure-Swift JPEG decoder (baseline and progressive) producing 8-bit RGB, tuned to match
// libjpeg(-turbo) as Pillow drives it.
//
// Layout:
//   JPEG.decode(_:)          entry point: runs a JPEGDecoder over the bytes
//   JPEGDecoder              marker walk (SOI, SOF0/1/2, DHT, DQT, DRI, SOS, APPn, COM, EOI), frame and scan set-up
//     .decodeScan            sequential: entropy decoding of one (interleaved or single-component) scan, restarts
//     .decodeBlock           sequential: Huffman decoding of one 8×8 block into dequantized coefficients
//     .output                chroma upsampling (libjpeg "fancy" triangle filters) and colour conversion
//   JPEGProgressive.swift    progressive scans into a coefficient store, IDCT after the last scan
//   JPEGHuffman.swift        bit reader and Huffman tables; JPEGIDCT.swift the islow inverse DCT;
//   JPEGColor.swift          YCbCr → RGB tables and Adobe CMYK/YCCK → RGB as Pillow converts it
//
// Supported: SOF0, SOF1 (8-bit Huffman sequential) and SOF2 (8-bit Huffman progressive), 1, 3 or 4 components,
// sampling factors 1–2 in any combination, several scans (interleaved or not), restart intervals, JFIF/Adobe/COM
// markers; the APP1 Exif segments are kept for the orientation. 3 components: Adobe APP14 transform 0 means RGB.
// 4 components: CMYK, or YCCK with Adobe transform ≠ 0, both in Adobe's inverted polarity. Refused with a clear
// reason: lossless, hierarchical, arithmetic-coded, 12-bit, 2-component and DNL-height JPEGs.
//
// Upsampling and colour conversion follow libjpeg's defaults (what Pillow uses): h2v1/h2v2/h1v2 triangle
// ("fancy") upsampling with edge replication, plain replication for chroma widths of 1–2 samples, and
// fixed-point JFIF YCbCr → RGB with 16 fractional bits. Progressive files are decoded whole, as libjpeg does
// when the final image is all that is asked for: the block smoothing libjpeg applies to coefficients a file
// never completes is not reproduced (complete files, all that encoders write, do not use it).

/// Baseline JPEG decoding to ``RGBImage``.
enum JPEG {
    /// Decodes a baseline or progressive (Huffman, 8-bit) JPEG file's bytes into RGB, pixels as stored.
    static func decode(_ bytes: [UInt8]) throws(FaceEmbedError) -> RGBImage {
        try decodeWithOrientation(bytes).image
    }

    /// Decodes a JPEG and reads the EXIF orientation (1 when absent or unreadable) without applying it.
    static func decodeWithOrientation(_ bytes: [UInt8]) throws(FaceEmbedError) -> (image: RGBImage, orientation: Int) {
        var decoder = JPEGDecoder(bytes)
        let image = try decoder.decode()
        return (image, decoder.exif.isEmpty ? 1 : EXIF.orientation(tiff: decoder.exif[6...]))
    }

    /// Zigzag position → natural (row-major) position in the 8×8 block.
    static let zigzag: [Int] = [
        0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
        12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
        35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
        58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
    ]

    static func bad(_ reason: String) -> FaceEmbedError { .invalidImage(file: nil, reason: reason) }
}

/// One frame component and its decoded sample plane (padded to whole MCUs).
struct JPEGComponent {
    var id: UInt8
    var h: Int, v: Int, tq: Int
    /// Real size of this component's samples: ceil(width * h / hmax) × ceil(height * v / vmax).
    var width = 0, height = 0
    /// Plane size (whole blocks, padded to whole MCUs).
    var stride = 0, rows = 0
    var plane: [UInt8] = []
    var decoded = false
    /// Progressive only: the coefficients (allocated with the frame) and the quantization table latched at the
    /// component's first scan, as libjpeg does.
    var coefficients: JPEGCoefficients? = nil
    var latchedQuant: [Int32]? = nil
    /// Blocks a single-component scan of this component covers.
    var blocksInScan: Int { ((width + 7) / 8) * ((height + 7) / 8) }
}

/// The decoder state for one file.
struct JPEGDecoder {
    let data: [UInt8]
    var pos = 0
    var width = 0, height = 0
    var components: [JPEGComponent] = []
    var hmax = 1, vmax = 1
    var mcusX = 0, mcusY = 0
    /// Quantization tables in zigzag order (nil until defined).
    var quant: [[Int32]?] = [nil, nil, nil, nil]
    var dcTables: [JPEGHuffman?] = [nil, nil, nil, nil]
    var acTables: [JPEGHuffman?] = [nil, nil, nil, nil]
    var restartInterval = 0
    var sawJFIF = false
    var adobeTransform: Int? = nil
    var progressive = false
    var blockVisits = 0
    /// The APP1 Exif payloads as Pillow joins them: the first whole ("Exif\0\0" + TIFF), later ones without
    /// their 6-byte prefix.
    var exif: [UInt8] = []

    init(_ data: [UInt8]) { self.data = data }

    // MARK: Markers

    private func u16(_ i: Int) throws(FaceEmbedError) -> Int {
        guard i >= 0, i + 1 < data.count else { throw JPEG.bad("truncated in a marker segment") }
        return Int(data[i]) << 8 | Int(data[i + 1])
    }

    /// The payload range of the marker segment whose length field is at `pos`.
    private func segment(_ name: String) throws(FaceEmbedError) -> Range<Int> {
        let len = try u16(pos)
        guard len >= 2 else { throw JPEG.bad("\(name) segment has invalid length \(len)") }
        guard pos + len <= data.count else { throw JPEG.bad("truncated in \(name) segment") }
        return (pos + 2)..<(pos + len)
    }

    mutating func decode() throws(FaceEmbedError) -> RGBImage {
        guard data.count >= 4, data[0] == 0xFF, data[1] == 0xD8 else {
            throw JPEG.bad("not a JPEG file (no SOI marker)")
        }
        pos = 2
        var sawFrame = false, sawEnd = false
        markers: while true {
            // Find the next marker, tolerating garbage and fill bytes before it as libjpeg does.
            while pos < data.count && data[pos] != 0xFF { pos += 1 }
            while pos < data.count && data[pos] == 0xFF { pos += 1 }
            guard pos < data.count else { break markers }
            let marker = data[pos]
            pos += 1
            switch marker {
            case 0xD9:
                sawEnd = true
                break markers
            case 0xC0, 0xC1, 0xC2:
                guard !sawFrame else { throw JPEG.bad("more than one frame (SOF) marker") }
                progressive = marker == 0xC2
                try readFrame()
                sawFrame = true
            case 0xC3:
                throw JPEG.bad("lossless JPEG is not supported")
            case 0xC5, 0xC6, 0xC7:
                throw JPEG.bad("hierarchical JPEG is not supported")
            case 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF:
                throw JPEG.bad("arithmetic-coded JPEG is not supported")
            case 0xC4:
                try readHuffmanTables()
            case 0xDB:
                try readQuantTables()
            case 0xDD:
                let r = try segment("DRI")
                guard r.count == 2 else { throw JPEG.bad("DRI segment has invalid length") }
                restartInterval = try u16(r.lowerBound)
                pos = r.upperBound
            case 0xDA:
                guard sawFrame else { throw JPEG.bad("scan (SOS) before the frame header (SOF)") }
                try readScan()
            case 0xDC:
                throw JPEG.bad("DNL marker (height defined after the scan) is not supported")
            case 0xE0:
                let r = try segment("APP0")
                if r.count >= 5 && Array(data[r.lowerBound..<(r.lowerBound + 5)]) == Array("JFIF\0".utf8) {
                    sawJFIF = true
                }
                pos = r.upperBound
            case 0xE1:
                let r = try segment("APP1")
                if r.count >= 6 && Array(data[r.lowerBound..<(r.lowerBound + 6)]) == Array("Exif\0\0".utf8) {
                    exif += data[(exif.isEmpty ? r.lowerBound : r.lowerBound + 6)..<r.upperBound]
                }
                pos = r.upperBound
            case 0xEE:
                let r = try segment("APP14")
                if r.count >= 12 && Array(data[r.lowerBound..<(r.lowerBound + 5)]) == Array("Adobe".utf8) {
                    adobeTransform = Int(data[r.lowerBound + 11])
                }
                pos = r.upperBound
            case 0xD0...0xD7, 0x01, 0xD8:
                // Stray RSTn, TEM (no payload); a repeated SOI is ignored likewise.
                continue
            default:
                // APPn, COM, JPG extensions and anything else with a length: skipped.
                pos = try segment("marker 0x\(String(marker, radix: 16, uppercase: true))").upperBound
            }
        }
        guard sawFrame else { throw JPEG.bad("no frame header (SOF) found") }
        for c in components where !c.decoded {
            throw JPEG.bad("truncated: component \(c.id) has no scan data")
        }
        if progressive {
            // libjpeg reads a progressive file to its EOI before it outputs anything; Pillow reports a file that
            // ends earlier as truncated, even between scans.
            guard sawEnd else { throw JPEG.bad("truncated: the progressive JPEG ends before its EOI marker") }
            finishProgressive()
        }
        return try output()
    }

    private mutating func readFrame() throws(FaceEmbedError) {
        let r = try segment("SOF")
        guard r.count >= 6 else { throw JPEG.bad("SOF segment is too short") }
        let precision = Int(data[r.lowerBound])
        guard precision == 8 else { throw JPEG.bad("\(precision)-bit JPEG is not supported (only 8-bit)") }
        height = try u16(r.lowerBound + 1)
        width = try u16(r.lowerBound + 3)
        let n = Int(data[r.lowerBound + 5])
        guard height > 0 else { throw JPEG.bad("height 0 (defined by a DNL marker) is not supported") }
        guard width > 0 else { throw JPEG.bad("width is 0") }
        guard n == 1 || n == 3 || n == 4 else {
            throw JPEG.bad("\(n)-component JPEG is not supported (only grayscale, YCbCr/RGB and CMYK/YCCK)")
        }
        guard r.count == 6 + 3 * n else { throw JPEG.bad("SOF segment length does not match \(n) components") }
        guard width <= ImageLimits.maxSide, height <= ImageLimits.maxSide, width * height <= ImageLimits.maxPixels
        else {
            throw JPEG.bad("dimensions \(width)x\(height) are outside the supported range")
        }
        components = []
        for i in 0..<n {
            let at = r.lowerBound + 6 + 3 * i
            let id = data[at], hv = data[at + 1], tq = Int(data[at + 2])
            let h = Int(hv >> 4), v = Int(hv & 15)
            guard (1...2).contains(h), (1...2).contains(v) else {
                throw JPEG.bad("unsupported sampling factors \(h)x\(v)")
            }
            guard tq <= 3 else { throw JPEG.bad("component \(id) uses quantization table \(tq)") }
            guard !components.contains(where: { $0.id == id }) else { throw JPEG.bad("duplicate component id \(id)") }
            components.append(JPEGComponent(id: id, h: h, v: v, tq: tq))
        }
        hmax = components.map(\.h).max() ?? 1
        vmax = components.map(\.v).max() ?? 1
        mcusX = (width + 8 * hmax - 1) / (8 * hmax)
        mcusY = (height + 8 * vmax - 1) / (8 * vmax)
        // Every block takes at least two bits (a DC code and an end-of-block code), one in a progressive file
        // (its DC code; AC bands can end a run of blocks at once): a small file cannot describe a huge image, so
        // refuse before allocating.
        let blocks = components.reduce(0) { $0 + mcusX * $1.h * mcusY * $1.v }
        guard blocks <= (data.count - pos) * (progressive ? 8 : 4) + 64 else {
            throw JPEG.bad("\(width)x\(height) image cannot fit in the \(data.count) bytes of the file (truncated?)")
        }
        for i in components.indices {
            let c = components[i]
            components[i].width = (width * c.h + hmax - 1) / hmax
            components[i].height = (height * c.v + vmax - 1) / vmax
            components[i].stride = mcusX * c.h * 8
            components[i].rows = mcusY * c.v * 8
            components[i].plane = [UInt8](repeating: 0, count: components[i].stride * components[i].rows)
            if progressive { components[i].coefficients = JPEGCoefficients(blocksW: mcusX * c.h, blocksH: mcusY * c.v) }
        }
        pos = r.upperBound
    }

    private mutating func readHuffmanTables() throws(FaceEmbedError) {
        let r = try segment("DHT")
        var p = r.lowerBound
        while p < r.upperBound {
            guard p + 17 <= r.upperBound else { throw JPEG.bad("DHT segment is truncated") }
            let tc = Int(data[p] >> 4), th = Int(data[p] & 15)
            guard tc <= 1, th <= 3 else { throw JPEG.bad("DHT has invalid table class \(tc) or id \(th)") }
            let counts = (0..<16).map { Int(data[p + 1 + $0]) }
            let total = counts.reduce(0, +)
            p += 17
            guard total <= 256, p + total <= r.upperBound else {
                throw JPEG.bad("DHT segment is truncated or has too many codes")
            }
            let values = Array(data[p..<(p + total)])
            p += total
            if tc == 0 {
                guard values.allSatisfy({ $0 <= 15 }) else { throw JPEG.bad("DC Huffman table has a symbol above 15") }
                dcTables[th] = try JPEGHuffman(counts: counts, values: values)
            } else {
                acTables[th] = try JPEGHuffman(counts: counts, values: values)
            }
        }
        pos = r.upperBound
    }

    private mutating func readQuantTables() throws(FaceEmbedError) {
        let r = try segment("DQT")
        var p = r.lowerBound
        while p < r.upperBound {
            let pq = Int(data[p] >> 4), tq = Int(data[p] & 15)
            guard pq <= 1, tq <= 3 else { throw JPEG.bad("DQT has invalid precision \(pq) or id \(tq)") }
            let size = pq == 0 ? 64 : 128
            guard p + 1 + size <= r.upperBound else { throw JPEG.bad("DQT segment is truncated") }
            var table = [Int32](repeating: 0, count: 64)
            for k in 0..<64 {
                table[k] =
                    pq == 0 ? Int32(data[p + 1 + k]) : Int32(data[p + 1 + 2 * k]) << 8 | Int32(data[p + 2 + 2 * k])
            }
            quant[tq] = table
            p += 1 + size
        }
        pos = r.upperBound
    }

    // MARK: Scans

    private mutating func readScan() throws(FaceEmbedError) {
        let r = try segment("SOS")
        guard r.count >= 1 else { throw JPEG.bad("SOS segment is empty") }
        let n = Int(data[r.lowerBound])
        guard n >= 1, n <= components.count, r.count == 4 + 2 * n else { throw JPEG.bad("SOS segment is malformed") }
        var entries: [(index: Int, td: Int, ta: Int)] = []
        for i in 0..<n {
            let id = data[r.lowerBound + 1 + 2 * i], t = data[r.lowerBound + 2 + 2 * i]
            guard let ci = components.firstIndex(where: { $0.id == id }) else {
                throw JPEG.bad("scan names unknown component \(id)")
            }
            guard !entries.contains(where: { $0.index == ci }) else {
                throw JPEG.bad("scan names component \(id) twice")
            }
            let td = Int(t >> 4), ta = Int(t & 15)
            guard td <= 3, ta <= 3 else { throw JPEG.bad("scan names Huffman table \(td)/\(ta) (at most 3)") }
            entries.append((ci, td, ta))
        }
        var blocksPerMCU = 0
        for e in entries { blocksPerMCU += n == 1 ? 1 : components[e.index].h * components[e.index].v }
        guard blocksPerMCU <= 10 else { throw JPEG.bad("scan has \(blocksPerMCU) blocks per MCU (at most 10 allowed)") }
        let ss = Int(data[r.upperBound - 3]), se = Int(data[r.upperBound - 2]), a = Int(data[r.upperBound - 1])
        pos = r.upperBound
        if progressive {
            try readProgressiveScan(entries, ss: ss, se: se, ah: a >> 4, al: a & 15)
            return
        }
        guard ss == 0, se == 63, a == 0 else {
            throw JPEG.bad("scan has progressive parameters (Ss=\(ss) Se=\(se)) in a sequential JPEG")
        }
        var scan: [(Int, JPEGHuffman, JPEGHuffman, [Int32])] = []
        for e in entries {
            guard let dc = dcTables[e.td], let ac = acTables[e.ta] else {
                throw JPEG.bad("scan uses an undefined Huffman table")
            }
            guard let q = quant[components[e.index].tq] else {
                throw JPEG.bad(
                    "component \(components[e.index].id) uses undefined quantization table \(components[e.index].tq)")
            }
            scan.append((e.index, dc, ac, q))
        }
        var bits = JPEGBits(data, pos: pos)
        try decodeScan(scan, &bits)
        for e in entries { components[e.index].decoded = true }
        pos = bits.endOfScan()
    }

    private mutating func decodeScan(
        _ scan: [(Int, JPEGHuffman, JPEGHuffman, [Int32])],
        _ bits: inout JPEGBits
    ) throws(FaceEmbedError) {
        // MCU geometry: one block per MCU for a single-component scan, h×v blocks per component otherwise.
        let single = scan.count == 1
        let unitsX: Int, unitsY: Int
        if single {
            let c = components[scan[0].0]
            unitsX = (c.width + 7) / 8
            unitsY = (c.height + 7) / 8
        } else {
            unitsX = mcusX
            unitsY = mcusY
        }
        // Move the planes out so the hot loop works on local storage.
        var planes: [[UInt8]] = []
        for s in scan {
            planes.append(components[s.0].plane)
            components[s.0].plane = []
        }
        defer { for (k, s) in scan.enumerated() { components[s.0].plane = planes[k] } }
        let geometry = scan.map { s in
            single
                ? (h: 1, v: 1, stride: components[s.0].stride)
                : (h: components[s.0].h, v: components[s.0].v, stride: components[s.0].stride)
        }
        var preds = [Int32](repeating: 0, count: scan.count)
        let coef = UnsafeMutablePointer<Int32>.allocate(capacity: 64)
        coef.initialize(repeating: 0, count: 64)
        let work = UnsafeMutablePointer<Int>.allocate(capacity: 64)
        work.initialize(repeating: 0, count: 64)
        defer { coef.deallocate(); work.deallocate() }
        let total = unitsX * unitsY
        var done = 0
        for my in 0..<unitsY {
            for mx in 0..<unitsX {
                for (k, s) in scan.enumerated() {
                    let (h, v, stride) = geometry[k]
                    for by in 0..<v {
                        for bx in 0..<h {
                            let last = try decodeBlock(&bits, dc: s.1, ac: s.2, quant: s.3, pred: &preds[k], coef: coef)
                            let x = (mx * h + bx) * 8, y = (my * v + by) * 8
                            planes[k].withUnsafeMutableBufferPointer { p in
                                // x+8 <= stride and y+8 <= rows by construction of the padded plane.
                                guard let base = p.baseAddress else { return }
                                JPEGIDCT.islow(coef, last: last, work: work, out: base + y * stride + x, stride: stride)
                            }
                        }
                    }
                }
                done += 1
                if restartInterval > 0 && done % restartInterval == 0 && done < total {
                    try bits.restart()
                    for k in preds.indices { preds[k] = 0 }
                }
            }
        }
    }

    /// Decodes one block's coefficients, dequantized, into `coef` (natural order); returns the last zigzag
    /// index written (0 = DC only). `coef` must be all zero on entry; the IDCT clears it again.
    @inline(__always)
    private func decodeBlock(
        _ bits: inout JPEGBits, dc: JPEGHuffman, ac: JPEGHuffman, quant: [Int32],
        pred: inout Int32, coef: UnsafeMutablePointer<Int32>
    ) throws(FaceEmbedError) -> Int {
        if bits.count < 32 { bits.fill() }
        let s = try dc.decode(&bits)
        if s != 0 { pred = pred &+ bits.receiveExtend(s) }
        // libjpeg keeps coefficients as 16-bit values.
        coef[0] = Int32(Int16(truncatingIfNeeded: pred)) * quant[0]
        var k = 1
        var last = 0
        while k < 64 {
            if bits.count < 32 { bits.fill() }
            let rs = try ac.decode(&bits)
            let r = rs >> 4, size = rs & 15
            if size == 0 {
                if r != 15 { break }
                k += 16
                continue
            }
            k += r
            guard k < 64 else {
                throw bits.overran
                    ? JPEG.bad("truncated in scan data") : JPEG.bad("corrupt scan data (coefficient index beyond 63)")
            }
            let value = bits.receiveExtend(size)
            coef[JPEG.zigzag[k]] = value * quant[k]
            last = k
            k += 1
        }
        if bits.overran { throw JPEG.bad("truncated in scan data") }
        return last
    }

    // MARK: Output

    private mutating func output() throws(FaceEmbedError) -> RGBImage {
        let n = width * height
        // Full-resolution planes, one per component; each decoded plane is freed once upsampled, so the peak is
        // the full planes plus the RGB output.
        var full: [[UInt8]] = []
        for i in components.indices {
            let c = components[i]
            components[i].plane = []
            full.append(upsample(c, rx: hmax / c.h, ry: vmax / c.v))
        }
        var out = [UInt8](repeating: 0, count: n * 3)
        out.withUnsafeMutableBufferPointer { o in
            switch full.count {
            case 1: JPEGColor.gray(full[0], into: o)
            case 3 where isRGB: JPEGColor.rgb(full[0], full[1], full[2], into: o)
            case 3: JPEGColor.ycc(full[0], full[1], full[2], into: o)
            default:
                // libjpeg reads 4 components as YCCK when an Adobe marker says transform ≠ 0, else as CMYK.
                JPEGColor.cmyk(full[0], full[1], full[2], full[3], ycck: (adobeTransform ?? 0) != 0, into: o)
            }
        }
        return try RGBImage(width: width, height: height, pixels: out)
    }

    /// Whether 3 components are RGB rather than YCbCr, by libjpeg's rules: JFIF means YCbCr, then the Adobe
    /// transform (0 = RGB), then component ids 'R' 'G' 'B'.
    private var isRGB: Bool {
        if sawJFIF { return false }
        if let t = adobeTransform { return t == 0 }
        return components[0].id == 0x52 && components[1].id == 0x47 && components[2].id == 0x42
    }

    /// A component's samples upsampled by `rx`×`ry` (1 or 2 each) to a `width`×`height` plane, as libjpeg does by
    /// default: triangle filters for 2×1, 2×2 and 1×2 (plain replication when the component is at most 2 samples
    /// wide for the horizontal cases), using the component's real edge samples, replicated, at the borders.
    private func upsample(_ c: JPEGComponent, rx: Int, ry: Int) -> [UInt8] {
        let w = width, h = height, cw = c.width, ch = c.height, s = c.stride
        var out = [UInt8](repeating: 0, count: w * h)
        let fancyH = rx == 2 && cw > 2
        let sums = UnsafeMutablePointer<Int32>.allocate(capacity: cw)
        let line = UnsafeMutablePointer<UInt8>.allocate(capacity: 2 * cw)
        defer { sums.deallocate(); line.deallocate() }
        c.plane.withUnsafeBufferPointer { pb in
            out.withUnsafeMutableBufferPointer { ob in
                // The plane holds at least `ch` rows of `s >= cw` samples; `out` holds `h` rows of `w`;
                // 2 * cw >= w when rx == 2 and 2 * ch >= h when ry == 2.
                guard let p = pb.baseAddress, let o = ob.baseAddress, pb.count >= ch * s, cw >= 1, ch >= 1 else {
                    return
                }
                for y in 0..<h {
                    let dst = o + y * w
                    let sy = ry == 2 ? y >> 1 : y
                    let row = p + sy * s
                    if rx == 1 && ry == 1 {
                        dst.update(from: row, count: w)
                        continue
                    }
                    if ry == 2 && (rx == 1 || fancyH) {
                        // Vertical triangle: 3 × nearer row + 1 × farther row (the row above for even output rows).
                        let other = p + (y & 1 == 0 ? max(sy - 1, 0) : min(sy + 1, ch - 1)) * s
                        for x in 0..<cw { sums[x] = 3 &* Int32(row[x]) &+ Int32(other[x]) }
                        if rx == 1 {
                            let bias: Int32 = y & 1 == 0 ? 1 : 2
                            for x in 0..<w { dst[x] = UInt8(truncatingIfNeeded: (sums[x] &+ bias) >> 2) }
                            continue
                        }
                        // Then horizontal: 3 × this column sum + 1 × the neighbour's, edges replicated.
                        line[0] = UInt8(truncatingIfNeeded: (4 &* sums[0] &+ 8) >> 4)
                        line[1] = UInt8(truncatingIfNeeded: (3 &* sums[0] &+ sums[1] &+ 7) >> 4)
                        for x in 1..<(cw - 1) {
                            let t = 3 &* sums[x]
                            line[2 * x] = UInt8(truncatingIfNeeded: (t &+ sums[x - 1] &+ 8) >> 4)
                            line[2 * x + 1] = UInt8(truncatingIfNeeded: (t &+ sums[x + 1] &+ 7) >> 4)
                        }
                        let t = 3 &* sums[cw - 1]
                        line[2 * cw - 2] = UInt8(truncatingIfNeeded: (t &+ sums[cw - 2] &+ 8) >> 4)
                        line[2 * cw - 1] = UInt8(truncatingIfNeeded: (t &+ sums[cw - 1] &+ 7) >> 4)
                        dst.update(from: line, count: w)
                    } else if fancyH {
                        // 2×1 triangle: 3 × this sample + 1 × the neighbour, edges replicated.
                        line[0] = row[0]
                        line[1] = UInt8(truncatingIfNeeded: (3 &* Int32(row[0]) &+ Int32(row[1]) &+ 2) >> 2)
                        for x in 1..<(cw - 1) {
                            let t = 3 &* Int32(row[x])
                            line[2 * x] = UInt8(truncatingIfNeeded: (t &+ Int32(row[x - 1]) &+ 1) >> 2)
                            line[2 * x + 1] = UInt8(truncatingIfNeeded: (t &+ Int32(row[x + 1]) &+ 2) >> 2)
                        }
                        line[2 * cw - 2] = UInt8(
                            truncatingIfNeeded: (3 &* Int32(row[cw - 1]) &+ Int32(row[cw - 2]) &+ 1) >> 2)
                        line[2 * cw - 1] = row[cw - 1]
                        dst.update(from: line, count: w)
                    } else {
                        // Replication (narrow components).
                        for x in 0..<w { dst[x] = row[x / rx] }
                    }
                }
            }
        }
        return out
    }
}
