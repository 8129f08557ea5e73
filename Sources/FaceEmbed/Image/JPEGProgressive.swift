// JPEGProgressive.swift — progressive (SOF2) JPEG: every scan refines a per-component coefficient store; the
// inverse DCT runs once, after the last scan, as libjpeg does when it is asked for the final image only.
//
// Layout:
//   JPEGCoefficients        one component's blocks, blocksW × blocksH (whole MCUs, like its sample plane), each 64
//                           Int16 in natural order (libjpeg's JCOEF); 2 bytes per coefficient, freed after its IDCT
//   JPEGScanKind            DC first, DC refine, AC first, AC refine: chosen once per scan from Ss, Se, Ah, Al
//   readProgressiveScan     the checks libjpeg makes fatal (band, Ah/Al, one component per AC scan, tables), the
//                           quantization table latched at a component's first scan, and the work limit below
//   decodeProgressiveScan   MCU walk (interleaved DC scans, single-component scans), restart markers, EOB runs
//   finishProgressive       dequantize with the latched table + islow IDCT into the sample planes
//
// Successive approximation: a first scan stores coefficient << Al; a refinement scan adds bit Al (DC: ORs it in;
// AC: a correction bit per already-non-zero coefficient, ±(1 << Al) for a coefficient that becomes non-zero).
// Work limit: over all scans, at most `maxBlockVisitsPerBlock` visits per block of the image on average (a scan
// that ends every block with one EOB run costs a few bytes but walks them all), so a small hostile file cannot
// make the decoder loop for minutes; real encoders use about 10 scans (libjpeg's script), rarely more than 20.

/// One component's quantized DCT coefficients for a progressive decode.
final class JPEGCoefficients {
    let blocksW: Int, blocksH: Int
    let base: UnsafeMutablePointer<Int16>

    init(blocksW: Int, blocksH: Int) {
        self.blocksW = blocksW
        self.blocksH = blocksH
        base = .allocate(capacity: blocksW * blocksH * 64)
        base.initialize(repeating: 0, count: blocksW * blocksH * 64)
    }

    deinit { base.deallocate() }

    /// The 64 coefficients of block (`bx`, `by`); both must be inside the store.
    @inline(__always)
    func block(_ bx: Int, _ by: Int) -> UnsafeMutablePointer<Int16> { base + (by * blocksW + bx) * 64 }
}

/// What a progressive scan carries.
enum JPEGScanKind {
    case dcFirst, dcRefine, acFirst, acRefine
}

extension JPEGDecoder {
    static let maxBlockVisitsPerBlock = 64

    /// Sets up and decodes one progressive scan whose header (`entries`: component index, DC and AC table ids)
    /// has been read; `pos` is at the start of the entropy-coded data.
    mutating func readProgressiveScan(
        _ entries: [(index: Int, td: Int, ta: Int)], ss: Int, se: Int, ah: Int,
        al: Int
    ) throws(FaceEmbedError) {
        let params = "Ss=\(ss) Se=\(se) Ah=\(ah) Al=\(al)"
        if ss == 0 {
            guard se == 0 else { throw JPEG.bad("progressive DC scan has a spectral band (\(params))") }
        } else {
            guard ss <= se, se <= 63 else {
                throw JPEG.bad("progressive scan has an invalid spectral band (\(params))")
            }
            guard entries.count == 1 else { throw JPEG.bad("progressive AC scan has \(entries.count) components") }
        }
        guard al <= 13, ah == 0 || al == ah - 1 else {
            throw JPEG.bad("progressive scan has invalid successive approximation (\(params))")
        }
        let kind: JPEGScanKind = ss == 0 ? (ah == 0 ? .dcFirst : .dcRefine) : (ah == 0 ? .acFirst : .acRefine)
        var dc: [JPEGHuffman] = [], ac: JPEGHuffman? = nil
        for e in entries {
            let id = components[e.index].id
            if kind == .dcFirst {
                guard let t = dcTables[e.td] else { throw JPEG.bad("scan uses undefined DC Huffman table \(e.td)") }
                dc.append(t)
            }
            if ss > 0 {
                guard let t = acTables[e.ta] else { throw JPEG.bad("scan uses undefined AC Huffman table \(e.ta)") }
                ac = t
            }
            if components[e.index].latchedQuant == nil {
                guard let q = quant[components[e.index].tq] else {
                    throw JPEG.bad("component \(id) uses undefined quantization table \(components[e.index].tq)")
                }
                components[e.index].latchedQuant = q
            }
            components[e.index].decoded = true
        }
        let visits =
            entries.count == 1
            ? components[entries[0].index].blocksInScan
            : entries.reduce(0) { $0 + mcusX * mcusY * components[$1.index].h * components[$1.index].v }
        blockVisits += visits
        let totalBlocks = components.reduce(0) { $0 + $1.blocksInScan }
        guard blockVisits <= Self.maxBlockVisitsPerBlock * totalBlocks else {
            throw JPEG.bad("progressive scans revisit the image more than \(Self.maxBlockVisitsPerBlock) times")
        }
        var bits = JPEGBits(data, pos: pos)
        let scan = ProgressiveScan(kind: kind, components: entries.map(\.index), dc: dc, ac: ac, ss: ss, se: se, al: al)
        try decodeProgressiveScan(scan, &bits)
        pos = bits.endOfScan()
    }

    /// A progressive scan's parameters, resolved.
    struct ProgressiveScan {
        let kind: JPEGScanKind
        let components: [Int]
        let dc: [JPEGHuffman]
        let ac: JPEGHuffman?
        let ss: Int, se: Int, al: Int
    }

    private func decodeProgressiveScan(_ scan: ProgressiveScan, _ bits: inout JPEGBits) throws(FaceEmbedError) {
        let single = scan.components.count == 1
        let first = components[scan.components[0]]
        let unitsX = single ? (first.width + 7) / 8 : mcusX
        let unitsY = single ? (first.height + 7) / 8 : mcusY
        let stores = scan.components.map { components[$0].coefficients }
        let shapes = scan.components.map { single ? (h: 1, v: 1) : (h: components[$0].h, v: components[$0].v) }
        var preds = [Int32](repeating: 0, count: scan.components.count)
        var eobrun = 0
        let total = unitsX * unitsY
        var done = 0
        for my in 0..<unitsY {
            for mx in 0..<unitsX {
                for k in stores.indices {
                    guard let store = stores[k] else { continue }
                    let (h, v) = shapes[k]
                    for by in 0..<v {
                        for bx in 0..<h {
                            let block = store.block(mx * h + bx, my * v + by)
                            switch scan.kind {
                            case .dcFirst: try Self.dcFirst(block, &bits, scan.dc[k], &preds[k], al: scan.al)
                            case .dcRefine: Self.dcRefine(block, &bits, al: scan.al)
                            case .acFirst: try Self.acFirst(block, &bits, scan, &eobrun)
                            case .acRefine: try Self.acRefine(block, &bits, scan, &eobrun)
                            }
                            if bits.overran { throw JPEG.bad("truncated in progressive scan data") }
                        }
                    }
                }
                done += 1
                if restartInterval > 0 && done % restartInterval == 0 && done < total {
                    try bits.restart()
                    for k in preds.indices { preds[k] = 0 }
                    eobrun = 0
                }
            }
        }
    }

    // MARK: The four kinds of block

    @inline(__always)
    private static func dcFirst(
        _ block: UnsafeMutablePointer<Int16>, _ bits: inout JPEGBits, _ table: JPEGHuffman,
        _ pred: inout Int32, al: Int
    ) throws(FaceEmbedError) {
        if bits.count < 32 { bits.fill() }
        let s = try table.decode(&bits)
        if s != 0 { pred = pred &+ bits.receiveExtend(s) }
        block[0] = Int16(truncatingIfNeeded: pred &<< Int32(al))
    }

    @inline(__always)
    private static func dcRefine(_ block: UnsafeMutablePointer<Int16>, _ bits: inout JPEGBits, al: Int) {
        if bits.bit() { block[0] |= Int16(1 << al) }
    }

    @inline(__always)
    private static func acFirst(
        _ block: UnsafeMutablePointer<Int16>, _ bits: inout JPEGBits, _ scan: ProgressiveScan,
        _ eobrun: inout Int
    ) throws(FaceEmbedError) {
        if eobrun > 0 {
            eobrun -= 1
            return
        }
        guard let table = scan.ac else { return }
        var k = scan.ss
        while k <= scan.se {
            if bits.count < 32 { bits.fill() }
            let rs = try table.decode(&bits)
            let r = rs >> 4, s = rs & 15
            if s != 0 {
                k += r
                guard k < 64 else { throw corruptIndex(bits) }
                block[JPEG.zigzag[k]] = Int16(truncatingIfNeeded: bits.receiveExtend(s) &<< Int32(scan.al))
            } else if r == 15 {
                k += 15
            } else {
                eobrun = (1 << r) - 1
                if r > 0 { eobrun += bits.bits(r) }
                return
            }
            k += 1
        }
    }

    /// libjpeg's refinement: zero-history coefficients are skipped by the run length, each non-zero one met on the
    /// way takes a correction bit, and the new coefficient (if any) lands after the run.
    @inline(__always)
    private static func acRefine(
        _ block: UnsafeMutablePointer<Int16>, _ bits: inout JPEGBits, _ scan: ProgressiveScan,
        _ eobrun: inout Int
    ) throws(FaceEmbedError) {
        let p1 = Int16(1 << scan.al), m1 = Int16(truncatingIfNeeded: -1 << scan.al)
        var k = scan.ss
        if eobrun == 0, let table = scan.ac {
            while k <= scan.se {
                if bits.count < 32 { bits.fill() }
                let rs = try table.decode(&bits)
                var r = rs >> 4
                var value: Int16 = 0
                if rs & 15 != 0 {
                    // Sizes other than 1 are invalid; libjpeg warns and reads the sign bit anyway.
                    value = bits.bit() ? p1 : m1
                } else if r != 15 {
                    eobrun = 1 << r
                    if r > 0 { eobrun += bits.bits(r) }
                    break
                }
                while k <= scan.se {
                    let c = block + JPEG.zigzag[k]
                    if c.pointee != 0 {
                        refine(c, &bits, p1, m1)
                    } else {
                        if r == 0 { break }
                        r -= 1
                    }
                    k += 1
                }
                if value != 0 {
                    guard k < 64 else { throw corruptIndex(bits) }
                    block[JPEG.zigzag[k]] = value
                }
                k += 1
            }
        }
        if eobrun > 0 {
            while k <= scan.se {
                let c = block + JPEG.zigzag[k]
                if c.pointee != 0 { refine(c, &bits, p1, m1) }
                k += 1
            }
            eobrun -= 1
        }
    }

    /// A correction bit for a coefficient that is already non-zero: adds 1 << Al away from zero unless that bit
    /// is set.
    @inline(__always)
    private static func refine(_ c: UnsafeMutablePointer<Int16>, _ bits: inout JPEGBits, _ p1: Int16, _ m1: Int16) {
        if bits.bit() && c.pointee & p1 == 0 {
            c.pointee = c.pointee >= 0 ? c.pointee &+ p1 : c.pointee &+ m1
        }
    }

    private static func corruptIndex(_ bits: JPEGBits) -> FaceEmbedError {
        bits.overran
            ? JPEG.bad("truncated in progressive scan data")
            : JPEG.bad("corrupt progressive scan data (coefficient index beyond 63)")
    }

    // MARK: Output

    /// Turns every component's coefficients into samples (dequantized with the table latched at its first scan)
    /// and frees them, component by component, so the coefficients and the planes coexist only briefly.
    mutating func finishProgressive() {
        let coef = UnsafeMutablePointer<Int32>.allocate(capacity: 64)
        coef.initialize(repeating: 0, count: 64)
        let work = UnsafeMutablePointer<Int>.allocate(capacity: 64)
        work.initialize(repeating: 0, count: 64)
        defer { coef.deallocate(); work.deallocate() }
        for i in components.indices {
            guard let store = components[i].coefficients, let q = components[i].latchedQuant else { continue }
            let c = components[i]
            let bw = (c.width + 7) / 8, bh = (c.height + 7) / 8
            components[i].plane.withUnsafeMutableBufferPointer { p in
                // The plane is blocksW*8 × blocksH*8 samples and bw <= blocksW, bh <= blocksH.
                guard let base = p.baseAddress else { return }
                for by in 0..<bh {
                    for bx in 0..<bw {
                        let b = store.block(bx, by)
                        var ac = false
                        for k in 0..<64 {
                            let z = JPEG.zigzag[k]
                            coef[z] = Int32(b[z]) * q[k]
                            if k > 0 && b[z] != 0 { ac = true }
                        }
                        JPEGIDCT.islow(
                            coef, last: ac ? 63 : 0, work: work, out: base + by * 8 * c.stride + bx * 8,
                            stride: c.stride)
                    }
                }
            }
            components[i].coefficients = nil
        }
    }
}
