// JPEG.swift — a pure-Swift baseline JPEG decoder producing 8-bit RGB, tuned to match libjpeg(-turbo) / Pillow.
//
// Layout:
//   JPEG.decode(_:)          entry point: runs a JPEGDecoder over the bytes
//   JPEGDecoder              marker walk (SOI, SOF0/1, DHT, DQT, DRI, SOS, APPn, COM, EOI), frame and scan set-up
//     .decodeScan            entropy decoding of one (interleaved or single-component) scan, restart markers
//     .decodeBlock           Huffman decoding of one 8×8 block into dequantized coefficients (natural order)
//     .output                chroma upsampling (libjpeg "fancy" triangle filters) and YCbCr → RGB
//   JPEGBits                 MSB-first bit reader with 0xFF00 unstuffing; it stops at markers and pads with zero
//                            bits, counting them, so consuming data that is not there is detected as truncation
//   JPEGHuffman              canonical Huffman table: 9-bit lookup plus per-length maximum codes
//   JPEGIDCT                 the accurate integer IDCT (the islow algorithm: Loeffler–Ligtenberg–Moschytz with
//                            13-bit constants and 2 extra bits between passes), bit-exact with libjpeg's default
//
// Supported: SOF0 and SOF1 (8-bit Huffman sequential), 1 or 3 components, sampling factors 1–2 in any
// combination, several scans (interleaved or not), restart intervals, JFIF/EXIF/Adobe/COM markers (skipped;
// Adobe APP14 transform 0 means RGB). Refused with a clear reason: progressive, lossless, hierarchical,
// arithmetic-coded, 12-bit, 2- or 4-component (CMYK/YCCK) and DNL-height JPEGs.
//
// Upsampling and colour conversion follow libjpeg's defaults (what Pillow uses): h2v1/h2v2/h1v2 triangle
// ("fancy") upsampling with edge replication, plain replication for chroma widths of 1–2 samples, and
// fixed-point JFIF YCbCr → RGB with 16 fractional bits.

/// Baseline JPEG decoding to ``RGBImage``.
enum JPEG {
    /// Decodes a baseline (sequential, Huffman, 8-bit) JPEG file's bytes into RGB.
    static func decode(_ bytes: [UInt8]) throws(FaceEmbedError) -> RGBImage {
        var decoder = JPEGDecoder(bytes)
        return try decoder.decode()
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
}

/// MSB-first entropy-coded-segment reader. Stops at any marker; past it (or past the end) it supplies zero
/// bits and counts them in `fake`, so `count < fake` after consuming means the data ran out.
struct JPEGBits {
    let data: [UInt8]
    var pos: Int
    /// Next bit is bit 63.
    var acc: UInt64 = 0
    var count = 0
    var fake = 0
    var atMarker = false

    init(_ data: [UInt8], pos: Int) {
        self.data = data
        self.pos = pos
    }

    /// Tops the buffer up to at least 57 bits (real or padding).
    @inline(__always)
    mutating func fill() {
        while count <= 56 {
            var byte: UInt8 = 0
            if !atMarker && pos < data.count {
                byte = data[pos]
                if byte == 0xFF {
                    if pos + 1 < data.count && data[pos + 1] == 0 {
                        pos += 2
                    } else {
                        atMarker = true
                        byte = 0
                    }
                } else {
                    pos += 1
                }
            } else {
                atMarker = true
            }
            if atMarker { fake += 8 }
            acc |= UInt64(byte) << UInt64(56 - count)
            count += 8
        }
    }

    @inline(__always)
    mutating func consume(_ n: Int) {
        acc <<= UInt64(n)
        count -= n
    }

    /// True when bits that are not in the file have been consumed.
    @inline(__always)
    var overran: Bool { count < fake }

    /// Reads `s` (1…15) bits and sign-extends them as JPEG's EXTEND does.
    @inline(__always)
    mutating func receiveExtend(_ s: Int) -> Int32 {
        let v = Int32(truncatingIfNeeded: acc >> UInt64(64 - s))
        consume(s)
        return v < (1 << Int32(s - 1)) ? v - (1 << Int32(s)) + 1 : v
    }

    /// Discards buffered bits and moves past the next RSTn marker. Throws if another marker or the end comes first.
    mutating func restart() throws(FaceEmbedError) {
        acc = 0
        count = 0
        fake = 0
        atMarker = false
        while pos + 1 < data.count {
            if data[pos] != 0xFF { pos += 1; continue }
            let m = data[pos + 1]
            if m >= 0xD0 && m <= 0xD7 { pos += 2; return }
            if m == 0xFF { pos += 1; continue }
            if m == 0x00 { pos += 2; continue }
            throw JPEG.bad("expected a restart marker, found marker 0x\(String(m, radix: 16, uppercase: true))")
        }
        throw JPEG.bad("truncated in scan data (before a restart marker)")
    }

    /// The position of the next marker that is not RSTn, after the scan; `data.count` if there is none.
    mutating func endOfScan() -> Int {
        while pos + 1 < data.count {
            if data[pos] == 0xFF {
                let m = data[pos + 1]
                if m != 0 && m != 0xFF && !(m >= 0xD0 && m <= 0xD7) { return pos }
                pos += m == 0xFF ? 1 : 2
            } else {
                pos += 1
            }
        }
        return data.count
    }
}

/// A canonical JPEG Huffman table (DHT).
struct JPEGHuffman {
    /// Indexed by the next 9 bits: `length << 8 | symbol`, or 0 when the code is longer.
    var fast = [UInt16](repeating: 0, count: 512)
    /// Largest code of each length 0…16 (−1 when none).
    var maxCode = [Int32](repeating: -1, count: 17)
    /// Index of a code's symbol in `values` is `code + valueOffset[length]`.
    var valueOffset = [Int32](repeating: 0, count: 17)
    var values: [UInt8] = []

    /// Builds the table from BITS (codes per length 1…16) and HUFFVAL. Over-full tables are refused.
    init(counts: [Int], values: [UInt8]) throws(FaceEmbedError) {
        self.values = values
        var code: Int32 = 0
        var k: Int32 = 0
        var codes: [(Int32, Int)] = []
        for len in 1...16 {
            let n = Int32(counts[len - 1])
            if n > 0 {
                valueOffset[len] = k - code
                for _ in 0..<n { codes.append((code, len)); code += 1 }
                k += n
                maxCode[len] = code - 1
            }
            guard code <= (1 << Int32(len)) else { throw JPEG.bad("Huffman table has too many codes of length \(len)") }
            code <<= 1
        }
        for (i, (c, len)) in codes.enumerated() where len <= 9 {
            let shift = 9 - len
            let first = Int(c) << shift
            for j in first..<(first + (1 << shift)) { fast[j] = UInt16(len << 8) | UInt16(values[i]) }
        }
    }

    /// Decodes one symbol; the reader must hold at least 16 bits.
    @inline(__always)
    func decode(_ bits: inout JPEGBits) throws(FaceEmbedError) -> Int {
        let e = Int(fast[Int(bits.acc >> 55)])
        if e != 0 {
            bits.consume(e >> 8)
            return e & 0xFF
        }
        var len = 10
        while len <= 16 {
            let code = Int32(truncatingIfNeeded: bits.acc >> UInt64(64 - len))
            if code <= maxCode[len] {
                bits.consume(len)
                let i = Int(code + valueOffset[len])
                guard i >= 0 && i < values.count else { break }
                return Int(values[i])
            }
            len += 1
        }
        if bits.fake > 0 {
            throw JPEG.bad("truncated in scan data")
        }
        throw JPEG.bad("invalid Huffman code in scan data")
    }
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
        guard data.count >= 4, data[0] == 0xFF, data[1] == 0xD8 else { throw JPEG.bad("not a JPEG file (no SOI marker)") }
        pos = 2
        var sawFrame = false
        markers: while true {
            // Find the next marker, tolerating garbage and fill bytes before it as libjpeg does.
            while pos < data.count && data[pos] != 0xFF { pos += 1 }
            while pos < data.count && data[pos] == 0xFF { pos += 1 }
            guard pos < data.count else { break markers }
            let marker = data[pos]
            pos += 1
            switch marker {
            case 0xD9:
                break markers
            case 0xC0, 0xC1:
                guard !sawFrame else { throw JPEG.bad("more than one frame (SOF) marker") }
                try readFrame()
                sawFrame = true
            case 0xC2:
                throw JPEG.bad("progressive JPEG is not supported")
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
                if r.count >= 5 && Array(data[r.lowerBound..<(r.lowerBound + 5)]) == Array("JFIF\0".utf8) { sawJFIF = true }
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
        guard n == 1 || n == 3 else {
            throw JPEG.bad("\(n)-component JPEG is not supported (only grayscale and YCbCr/RGB)")
        }
        guard r.count == 6 + 3 * n else { throw JPEG.bad("SOF segment length does not match \(n) components") }
        guard width <= ImageLimits.maxSide, height <= ImageLimits.maxSide, width * height <= ImageLimits.maxPixels else {
            throw JPEG.bad("dimensions \(width)x\(height) are outside the supported range")
        }
        components = []
        for i in 0..<n {
            let at = r.lowerBound + 6 + 3 * i
            let id = data[at], hv = data[at + 1], tq = Int(data[at + 2])
            let h = Int(hv >> 4), v = Int(hv & 15)
            guard (1...2).contains(h), (1...2).contains(v) else { throw JPEG.bad("unsupported sampling factors \(h)x\(v)") }
            guard tq <= 3 else { throw JPEG.bad("component \(id) uses quantization table \(tq)") }
            guard !components.contains(where: { $0.id == id }) else { throw JPEG.bad("duplicate component id \(id)") }
            components.append(JPEGComponent(id: id, h: h, v: v, tq: tq))
        }
        hmax = components.map(\.h).max() ?? 1
        vmax = components.map(\.v).max() ?? 1
        mcusX = (width + 8 * hmax - 1) / (8 * hmax)
        mcusY = (height + 8 * vmax - 1) / (8 * vmax)
        // Every block takes at least two bits (a DC code and an end-of-block code): a small file cannot
        // describe a huge image, so refuse before allocating.
        let blocks = components.reduce(0) { $0 + mcusX * $1.h * mcusY * $1.v }
        guard blocks <= (data.count - pos) * 4 + 64 else {
            throw JPEG.bad("\(width)x\(height) image cannot fit in the \(data.count) bytes of the file (truncated?)")
        }
        for i in components.indices {
            let c = components[i]
            components[i].width = (width * c.h + hmax - 1) / hmax
            components[i].height = (height * c.v + vmax - 1) / vmax
            components[i].stride = mcusX * c.h * 8
            components[i].rows = mcusY * c.v * 8
            components[i].plane = [UInt8](repeating: 0, count: components[i].stride * components[i].rows)
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
            guard total <= 256, p + total <= r.upperBound else { throw JPEG.bad("DHT segment is truncated or has too many codes") }
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
                table[k] = pq == 0 ? Int32(data[p + 1 + k]) : Int32(data[p + 1 + 2 * k]) << 8 | Int32(data[p + 2 + 2 * k])
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
        var scan: [(index: Int, dc: JPEGHuffman, ac: JPEGHuffman, quant: [Int32])] = []
        for i in 0..<n {
            let id = data[r.lowerBound + 1 + 2 * i], t = data[r.lowerBound + 2 + 2 * i]
            guard let ci = components.firstIndex(where: { $0.id == id }) else { throw JPEG.bad("scan names unknown component \(id)") }
            guard !scan.contains(where: { $0.index == ci }) else { throw JPEG.bad("scan names component \(id) twice") }
            let td = Int(t >> 4), ta = Int(t & 15)
            guard td <= 3, ta <= 3, let dc = dcTables[td], let ac = acTables[ta] else {
                throw JPEG.bad("scan uses an undefined Huffman table")
            }
            guard let q = quant[components[ci].tq] else {
                throw JPEG.bad("component \(id) uses undefined quantization table \(components[ci].tq)")
            }
            scan.append((ci, dc, ac, q))
        }
        let ss = data[r.upperBound - 3], se = data[r.upperBound - 2], a = data[r.upperBound - 1]
        guard ss == 0, se == 63, a == 0 else {
            throw JPEG.bad("scan has progressive parameters (Ss=\(ss) Se=\(se)) in a sequential JPEG")
        }
        var blocksPerMCU = 0
        for s in scan { blocksPerMCU += n == 1 ? 1 : components[s.index].h * components[s.index].v }
        guard blocksPerMCU <= 10 else { throw JPEG.bad("scan has \(blocksPerMCU) blocks per MCU (at most 10 allowed)") }
        pos = r.upperBound
        var bits = JPEGBits(data, pos: pos)
        try decodeScan(scan.map { ($0.index, $0.dc, $0.ac, $0.quant) }, &bits)
        for s in scan { components[s.index].decoded = true }
        pos = bits.endOfScan()
    }

    private mutating func decodeScan(_ scan: [(Int, JPEGHuffman, JPEGHuffman, [Int32])],
                                     _ bits: inout JPEGBits) throws(FaceEmbedError) {
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
            single ? (h: 1, v: 1, stride: components[s.0].stride) : (h: components[s.0].h, v: components[s.0].v, stride: components[s.0].stride)
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
    private func decodeBlock(_ bits: inout JPEGBits, dc: JPEGHuffman, ac: JPEGHuffman, quant: [Int32],
                             pred: inout Int32, coef: UnsafeMutablePointer<Int32>) throws(FaceEmbedError) -> Int {
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
                throw bits.overran ? JPEG.bad("truncated in scan data") : JPEG.bad("corrupt scan data (coefficient index beyond 63)")
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

    private func output() throws(FaceEmbedError) -> RGBImage {
        let w = width, h = height
        // Full-resolution planes, one per component.
        var full: [[UInt8]] = []
        for c in components {
            full.append(upsample(c, rx: hmax / c.h, ry: vmax / c.v))
        }
        var out = [UInt8](repeating: 0, count: w * h * 3)
        if components.count == 1 {
            let y = full[0]
            out.withUnsafeMutableBufferPointer { o in
                for i in 0..<(w * h) { let v = y[i]; o[3 * i] = v; o[3 * i + 1] = v; o[3 * i + 2] = v }
            }
            return try RGBImage(width: w, height: h, pixels: out)
        }
        let rgb: Bool
        if sawJFIF {
            rgb = false
        } else if let t = adobeTransform {
            rgb = t == 0
        } else {
            rgb = components[0].id == 0x52 && components[1].id == 0x47 && components[2].id == 0x42
        }
        let p0 = full[0], p1 = full[1], p2 = full[2]
        let t = YCbCr.tables
        let n = w * h
        out.withUnsafeMutableBufferPointer { ob in
            p0.withUnsafeBufferPointer { a in
                p1.withUnsafeBufferPointer { b in
                    p2.withUnsafeBufferPointer { c in
                        guard var o = ob.baseAddress, a.count >= n, b.count >= n, c.count >= n, ob.count >= 3 * n else { return }
                        if rgb {
                            for i in 0..<n { o[0] = a[i]; o[1] = b[i]; o[2] = c[i]; o += 3 }
                            return
                        }
                        t.limit.withUnsafeBufferPointer { lim in
                        t.crR.withUnsafeBufferPointer { crR in
                            t.cbB.withUnsafeBufferPointer { cbB in
                                t.crG.withUnsafeBufferPointer { crG in
                                    t.cbG.withUnsafeBufferPointer { cbG in
                                        for i in 0..<n {
                                            let y = Int32(a[i]), cb = Int(b[i]), cr = Int(c[i])
                                            // Every sum lies in -227...480, so the offset index is in 157...864.
                                            o[0] = lim[Int(y &+ crR[cr]) &+ 384]
                                            o[1] = lim[Int(y &+ ((cbG[cb] &+ crG[cr]) >> 16)) &+ 384]
                                            o[2] = lim[Int(y &+ cbB[cb]) &+ 384]
                                            o += 3
                                        }
                                    }
                                }
                            }
                        }
                        }
                    }
                }
            }
        }
        return try RGBImage(width: w, height: h, pixels: out)
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
                guard let p = pb.baseAddress, let o = ob.baseAddress, pb.count >= ch * s, cw >= 1, ch >= 1 else { return }
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
                        line[2 * cw - 2] = UInt8(truncatingIfNeeded: (3 &* Int32(row[cw - 1]) &+ Int32(row[cw - 2]) &+ 1) >> 2)
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

/// libjpeg's fixed-point YCbCr → RGB tables (16 fractional bits, JFIF full range).
enum YCbCr {
    struct Tables {
        var crR = [Int32](repeating: 0, count: 256)
        var cbB = [Int32](repeating: 0, count: 256)
        var crG = [Int32](repeating: 0, count: 256)
        var cbG = [Int32](repeating: 0, count: 256)
        /// Clamps `v` to 0...255 when indexed by `v + 384` (v in -384..<640).
        var limit = [UInt8](repeating: 0, count: 1024)
    }

    static let tables: Tables = {
        func fix(_ x: Double) -> Int32 { Int32(x * 65536 + 0.5) }
        let half: Int32 = 1 << 15
        var t = Tables()
        for i in 0..<256 {
            let x = Int32(i) - 128
            t.crR[i] = (fix(1.40200) * x + half) >> 16
            t.cbB[i] = (fix(1.77200) * x + half) >> 16
            t.crG[i] = -fix(0.71414) * x
            t.cbG[i] = -fix(0.34414) * x + half
        }
        for i in 0..<1024 { t.limit[i] = UInt8(min(max(i - 384, 0), 255)) }
        return t
    }()
}

/// The accurate integer inverse DCT (the "islow" method): separable 1-D LLM transforms, columns then rows,
/// 13-bit fixed-point constants, 2 extra fraction bits kept between the passes, output level-shifted by 128
/// and clamped.
enum JPEGIDCT {
    private static let constBits = 13, pass1Bits = 2
    private static let f0_298631336 = 2446, f0_390180644 = 3196, f0_541196100 = 4433, f0_765366865 = 6270
    private static let f0_899976223 = 7373, f1_175875602 = 9633, f1_501321110 = 12299, f1_847759065 = 15137
    private static let f1_961570560 = 16069, f2_053119869 = 16819, f2_562915447 = 20995, f3_072711026 = 25172

    /// Transforms the dequantized coefficients in `coef` (natural order; cleared on return) into 8×8 samples at
    /// `out` with row pitch `stride`. `last` is the last zigzag index that may be non-zero.
    @inline(__always)
    static func islow(_ coef: UnsafeMutablePointer<Int32>, last: Int, work: UnsafeMutablePointer<Int>,
                      out: UnsafeMutablePointer<UInt8>, stride: Int) {
        if last == 0 {
            // DC only: both passes reduce to a rounded division by 8.
            let v = clampSample(((Int(coef[0]) + 4) >> 3) + 128)
            coef[0] = 0
            for y in 0..<8 {
                let row = out + y * stride
                for x in 0..<8 { row[x] = v }
            }
            return
        }
        // Pass 1: columns, into `work` scaled up by 2^pass1Bits.
        for col in 0..<8 {
            let c = coef + col
            if c[8] == 0 && c[16] == 0 && c[24] == 0 && c[32] == 0 && c[40] == 0 && c[48] == 0 && c[56] == 0 {
                let dc = Int(c[0]) << pass1Bits
                for r in 0..<8 { work[r * 8 + col] = dc }
                continue
            }
            let r = oneD(Int(c[0]), Int(c[8]), Int(c[16]), Int(c[24]), Int(c[32]), Int(c[40]), Int(c[48]), Int(c[56]))
            let shift = constBits - pass1Bits, round = 1 << (shift - 1)
            work[col] = (r.0 + round) >> shift
            work[8 + col] = (r.1 + round) >> shift
            work[16 + col] = (r.2 + round) >> shift
            work[24 + col] = (r.3 + round) >> shift
            work[32 + col] = (r.4 + round) >> shift
            work[40 + col] = (r.5 + round) >> shift
            work[48 + col] = (r.6 + round) >> shift
            work[56 + col] = (r.7 + round) >> shift
        }
        for i in 0..<64 { coef[i] = 0 }
        // Pass 2: rows, descaled by 2^(constBits + pass1Bits + 3), level-shifted and clamped.
        let shift = constBits + pass1Bits + 3, round = 1 << (shift - 1)
        for row in 0..<8 {
            let w = work + row * 8
            let o = out + row * stride
            let r = oneD(w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7])
            o[0] = clampSample(((r.0 + round) >> shift) + 128)
            o[1] = clampSample(((r.1 + round) >> shift) + 128)
            o[2] = clampSample(((r.2 + round) >> shift) + 128)
            o[3] = clampSample(((r.3 + round) >> shift) + 128)
            o[4] = clampSample(((r.4 + round) >> shift) + 128)
            o[5] = clampSample(((r.5 + round) >> shift) + 128)
            o[6] = clampSample(((r.6 + round) >> shift) + 128)
            o[7] = clampSample(((r.7 + round) >> shift) + 128)
        }
    }

    /// One 8-point LLM inverse transform with outputs scaled by 2^constBits (before descaling).
    @inline(__always)
    private static func oneD(_ i0: Int, _ i1: Int, _ i2: Int, _ i3: Int, _ i4: Int, _ i5: Int, _ i6: Int, _ i7: Int)
        -> (Int, Int, Int, Int, Int, Int, Int, Int) {
        // Even part: the rotation of inputs 2 and 6, and the butterflies of 0 and 4.
        let z1 = (i2 + i6) * f0_541196100
        let t2 = z1 - i6 * f1_847759065
        let t3 = z1 + i2 * f0_765366865
        let t0 = (i0 + i4) << constBits
        let t1 = (i0 - i4) << constBits
        let e10 = t0 + t3, e13 = t0 - t3, e11 = t1 + t2, e12 = t1 - t2
        // Odd part: inputs 7, 5, 3, 1.
        let za = i7 + i1, zb = i5 + i3, zc = i7 + i3, zd = i5 + i1
        let z5 = (zc + zd) * f1_175875602
        let ma = -za * f0_899976223, mb = -zb * f2_562915447
        let mc = -zc * f1_961570560 + z5, md = -zd * f0_390180644 + z5
        let o0 = i7 * f0_298631336 + ma + mc
        let o1 = i5 * f2_053119869 + mb + md
        let o2 = i3 * f3_072711026 + mb + mc
        let o3 = i1 * f1_501321110 + ma + md
        return (e10 + o3, e11 + o2, e12 + o1, e13 + o0, e13 - o0, e12 - o1, e11 - o2, e10 - o3)
    }

    @inline(__always)
    private static func clampSample(_ v: Int) -> UInt8 { UInt8(truncatingIfNeeded: min(max(v, 0), 255)) }
}
