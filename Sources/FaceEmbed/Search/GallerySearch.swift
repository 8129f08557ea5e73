// Exact top-k search over a gallery.
//
// float32 path (`exactSearch`): every row's dot product with every query, blocks of 32 rows reused across all
// queries while in L1, a `TopK` heap per query; each thread scans a contiguous range of rows and the per-thread
// heaps are merged.
//
// int8 path (`quantizedSearch`), for a gallery with the int8 copy:
//   1. first pass: each query is quantised like the rows. Per panel of 16 rows and group of 8 queries,
//      `panelDots8` gives the int8 dot products; a block of 4 panels (32 KB at d = 512) stays in L1 while every
//      query group passes over it. Row r's approximate similarity ŝ = scale_r · scale_q · Σ q_r q_q is within
//      β_r = ‖x_r‖·err_q + err_r·‖ŷ‖ + ε of its float32 similarity (Models/GALLERY.md). A heap keeps the k largest
//      lower bounds ŝ − β; its smallest is the threshold L, and a row is a candidate while ŝ + β ≥ L (a vector
//      compare of 16 rows, almost always false after the first panels).
//   2. the threads' heaps are merged into the final L; candidates with upper bound ≥ L are re-ranked with `dot`.
//   Any row outside the candidates has a float32 similarity below L, and k rows have similarities ≥ L, so the
//   re-ranked top k (ties included) is the float32 brute-force top k, bit for bit.

extension Gallery {
    /// The `k` rows most similar to `query` (cosine similarity, highest first, ties by lower index); fewer when
    /// the gallery holds fewer rows. `query` is normalised; it must have `dimension` finite values, not all zero.
    public func search(
        _ query: Embedding, top k: Int,
        threads: Int = Gallery.defaultThreads
    ) throws(FaceEmbedError) -> [Match] {
        try search([query], top: k, threads: threads)[0]
    }

    /// `search(_:top:threads:)` for many queries at once: each block of rows is reused by every query while it is
    /// in cache, so a batch of 100 queries costs far less than 100 single searches. Results are in query order and
    /// identical to single searches.
    public func search(
        _ queries: [Embedding], top k: Int,
        threads: Int = Gallery.defaultThreads
    ) throws(FaceEmbedError) -> [[Match]] {
        guard k >= 0 else { throw .invalidArgument("search: top k must be 0 or more, not \(k)") }
        guard !queries.isEmpty else { return [] }
        let batch = try QueryBatch(queries, lanes: layout.lanes, dimension: dimension)
        let ranked = rank(batch, k: min(k, count), threads: max(1, threads), quantized: isQuantized)
        return ranked.map { $0.map { Match(id: id(at: $0.index), index: $0.index, similarity: $0.score) } }
    }

    /// The top `k` (similarity, row) pairs of every query, through the int8 pass or the float32 scan.
    func rank(_ batch: QueryBatch, k: Int, threads: Int, quantized: Bool) -> [[(score: Float, index: Int)]] {
        guard k > 0 else { return Array(repeating: [], count: batch.count) }
        return quantized ? quantizedSearch(batch, k: k, threads: threads) : exactSearch(batch, k: k, threads: threads)
    }

    /// float32 brute force over every row.
    func exactSearch(_ batch: QueryBatch, k: Int, threads: Int) -> [[(score: Float, index: Int)]] {
        let parts = max(1, min(threads, count / 256 + 1))
        let results = (0..<parts).map { _ in PartResult<TopK>() }
        let lanes = layout.lanes
        parallelFor(parts, threads: threads) { part in
            let rows = chunk(count, parts: parts, index: part)
            var tops = (0..<batch.count).map { _ in TopK(k: k) }
            var start = rows.lowerBound
            while start < rows.upperBound {
                let end = min(start + 32, rows.upperBound)
                for j in 0..<batch.count {
                    let q = batch.query(j)
                    for i in start..<end { tops[j].insert(dot(row(i), q, lanes: lanes), i) }
                }
                start = end
            }
            results[part].states = tops
        }
        return (0..<batch.count).map { j in
            var top = TopK(k: k)
            for r in results { for e in r.states[j].heap { top.insert(e.score, e.index) } }
            return top.sorted()
        }
    }

    /// int8 first pass, then float32 re-ranking of the candidates it cannot rule out.
    func quantizedSearch(_ batch: QueryBatch, k: Int, threads: Int) -> [[(score: Float, index: Int)]] {
        let parts = max(1, min(threads, layout.panels))
        let results = (0..<parts).map { _ in PartResult<FirstPass>() }
        parallelFor(parts, threads: threads) { part in
            results[part].states = firstPass(batch, k: k, panels: chunk(layout.panels, parts: parts, index: part))
        }
        return (0..<batch.count).map { j in
            var bounds = LowerBounds(k: k)
            for r in results { for x in r.states[j].bounds.values { bounds.insert(x) } }
            var top = TopK(k: k)
            let q = batch.query(j)
            for r in results {
                for c in r.states[j].candidates where c.upper >= bounds.threshold {
                    top.insert(dot(row(Int(c.index)), q, lanes: layout.lanes), Int(c.index))
                }
            }
            return top.sorted()
        }
    }

    /// The first pass over `panels` for every query of `batch`.
    func firstPass(_ batch: QueryBatch, k: Int, panels: Range<Int>) -> [FirstPass] {
        var states = (0..<batch.count).map { _ in FirstPass(k: k) }
        let base = storage.bytes.baseAddress!, steps = layout.lanes / 4
        let dots = UnsafeMutablePointer<SIMD16<Int32>>.allocate(capacity: 8)
        defer { dots.deallocate() }
        var block = panels.lowerBound
        while block < panels.upperBound {
            let blockEnd = min(block + 4, panels.upperBound)
            for g in 0..<batch.groups {
                let first = g * 8, n = min(8, batch.count - first), words = batch.words + g * steps * 8
                for p in block..<blockEnd {
                    let panel = UnsafeRawPointer(base + layout.int8Offset + p * layout.panelBytes)
                    let side = RowSide(base: base, layout: layout, panel: p)
                    if n >= 3 {
                        panelDots8(panel, words, steps: steps, dots)
                        for j in 0..<n { screen(dots[j], side, batch.constants[first + j], &states[first + j]) }
                    } else {
                        for j in 0..<n {
                            let d = panelDots1(panel, words + j, steps: steps)
                            screen(d, side, batch.constants[first + j], &states[first + j])
                        }
                    }
                }
            }
            block = blockEnd
        }
        return states
    }

    /// Bounds of one panel's 16 rows for one query; offers the rows whose upper bound reaches the threshold.
    @inline(__always)
    func screen(_ dots: SIMD16<Int32>, _ side: RowSide, _ q: QueryConstants, _ state: inout FirstPass) {
        let s = SIMD16<Float>(dots &- q.correction) * side.scales * q.scale
        let b = side.errors * q.norm + q.margin
        let upper = s + b
        guard any(upper .>= state.bounds.threshold) else { return }
        let lower = s - b
        for lane in 0..<min(16, count - side.first) {
            state.offer(side.first + lane, lower: lower[lane], upper: upper[lane])
        }
    }
}

/// One thread's per-query results.
final class PartResult<State>: @unchecked Sendable {
    var states: [State] = []
}

/// The scales and error bounds of one panel's 16 rows.
struct RowSide {
    let first: Int
    let scales: SIMD16<Float>
    let errors: SIMD16<Float>

    @inline(__always)
    init(base: UnsafeRawPointer, layout: GalleryLayout, panel: Int) {
        first = panel * 16
        scales = (base + layout.scalesOffset + panel * 64).load(as: SIMD16<Float>.self)
        errors = (base + layout.errorsOffset + panel * 64).load(as: SIMD16<Float>.self)
    }
}

/// One query's first-pass state in one thread: the k largest lower bounds and the rows not yet ruled out.
struct FirstPass {
    var bounds: LowerBounds
    var candidates: [(index: Int32, upper: Float)] = []
    private var limit: Int

    init(k: Int) {
        bounds = LowerBounds(k: k)
        limit = max(1024, 4 * k)
    }

    @inline(__always)
    mutating func offer(_ index: Int, lower: Float, upper: Float) {
        guard upper >= bounds.threshold else { return }
        candidates.append((Int32(index), upper))
        bounds.insert(lower)
        if candidates.count >= limit {
            let threshold = bounds.threshold
            candidates.removeAll { $0.upper < threshold }
            limit = max(limit, 2 * candidates.count)
        }
    }
}

/// Per query: what turns its int8 dot products into bounds of its float32 similarities.
struct QueryConstants {
    /// 128 × Σ q, the offset the unsigned row bytes add.
    let correction: SIMD16<Int32>
    /// The query's int8 scale.
    let scale: Float
    /// ‖ŷ‖, the norm of the dequantised query (rounded up).
    let norm: Float
    /// `rowNormBound` × the query's quantisation error + ε for float32 rounding (Models/GALLERY.md).
    let margin: Float
}

/// Queries normalised (float32, zero padded to `lanes`) and quantised (words in groups of 8, `[lanes/4][8]`).
final class QueryBatch {
    let count: Int
    let lanes: Int
    let groups: Int
    let floats: UnsafeMutablePointer<Float>
    let words: UnsafeMutablePointer<Int32>
    private(set) var constants: [QueryConstants] = []

    init(_ queries: [Embedding], lanes: Int, dimension: Int) throws(FaceEmbedError) {
        count = queries.count
        self.lanes = lanes
        groups = (count + 7) / 8
        floats = .allocate(capacity: count * lanes)
        words = .allocate(capacity: groups * lanes / 4 * 8)
        words.initialize(repeating: 0, count: groups * lanes / 4 * 8)
        let q = UnsafeMutablePointer<Int8>.allocate(capacity: lanes)
        defer { q.deallocate() }
        // ε bounds the float32 rounding of `dot` (below lanes · 2⁻²⁴ for unit vectors) and of the bounds themselves.
        let epsilon = Float(lanes + 16) * 0x1p-22
        for (i, e) in queries.enumerated() {
            // Every property is set, so a throw here still runs deinit, which frees the buffers.
            try RowEncoder.normalize(
                e, dimension: dimension, lanes: lanes, into: floats + i * lanes,
                what: "query \(i)")
            let (scale, error) = Quantizer.quantize(floats + i * lanes, count: lanes, into: q)
            var sum: Int32 = 0
            for j in 0..<lanes { sum += Int32(q[j]) }
            let g = i / 8, steps = lanes / 4
            for k in 0..<steps {
                let w =
                    UInt32(UInt8(bitPattern: q[4 * k])) | UInt32(UInt8(bitPattern: q[4 * k + 1])) << 8
                    | UInt32(UInt8(bitPattern: q[4 * k + 2])) << 16 | UInt32(UInt8(bitPattern: q[4 * k + 3])) << 24
                words[(g * steps + k) * 8 + i % 8] = Int32(bitPattern: w)
            }
            constants.append(
                QueryConstants(
                    correction: SIMD16(repeating: 128 * sum), scale: scale,
                    norm: Quantizer.norm(q, scale: scale, count: lanes),
                    margin: GalleryFile.rowNormBound * error + epsilon))
        }
    }

    deinit {
        floats.deallocate()
        words.deallocate()
    }

    @inline(__always)
    func query(_ j: Int) -> UnsafePointer<Float> { UnsafePointer(floats + j * lanes) }
}
