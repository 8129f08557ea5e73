import FaceEmbed

// LFW verification accuracy with insightface's protocol (`recognition/.../eval/verification.py`):
// the view2 pairs file, horizontal flips, and the 10-fold threshold selection.

/// One LFW image: a person's name and the image's number (`Abel_Pacheco 1` is `Abel_Pacheco/Abel_Pacheco_0001.jpg`).
public struct LFWImage: Sendable, Hashable, Comparable {
    /// The person's folder name.
    public var name: String
    /// The image number, from 1.
    public var number: Int

    /// The image `number` (from 1) of the person `name`.
    public init(name: String, number: Int) {
        self.name = name
        self.number = number
    }

    /// The path relative to the image folder: `name/name_000N.ext`.
    public func relativePath(extension ext: String = "jpg") -> String {
        let digits = String(number)
        return "\(name)/\(name)_\(String(repeating: "0", count: max(0, 4 - digits.count)))\(digits).\(ext)"
    }

    /// Orders by name, then by number (the order of the image folder's listing).
    public static func < (a: LFWImage, b: LFWImage) -> Bool {
        a.name != b.name ? a.name < b.name : a.number < b.number
    }
}

/// One verification pair: two images and whether they show the same person.
public struct LFWPair: Sendable, Hashable {
    /// The first image of the pair.
    public var first: LFWImage
    /// The second image of the pair.
    public var second: LFWImage
    /// True for a matched pair (same person).
    public var same: Bool

    /// A pair of `first` and `second`, matched when `same`.
    public init(first: LFWImage, second: LFWImage, same: Bool) {
        self.first = first
        self.second = second
        self.same = same
    }
}

/// An LFW view2 pairs file: a header `folds n`, then per fold `n` matched lines `name i j` and `n` mismatched lines
/// `name1 i name2 j` (fields separated by tabs or spaces).
public struct LFWPairs: Sendable, Equatable {
    /// Number of folds the header declares (10 for view2).
    public var folds: Int
    /// Matched pairs per fold, which is also the number of mismatched pairs per fold (300 for view2).
    public var pairsPerFold: Int
    /// All pairs in file order (fold after fold).
    public var pairs: [LFWPair]

    /// Parses the text of a pairs file. Errors name `file` (when given) and the 1-based line.
    public init(text: String, file: String? = nil) throws(FaceEmbedError) {
        func bad(_ line: Int, _ reason: String) -> FaceEmbedError {
            .invalidArgument("\(file.map { "\($0):" } ?? "line ")\(line): \(reason)")
        }
        func number(_ s: Substring, line: Int) throws(FaceEmbedError) -> Int {
            guard let v = Int(s), v >= 1, v <= 9999 else {
                throw bad(line, "image number \"\(s)\" is not a whole number in 1...9999")
            }
            return v
        }
        // "\r\n" is one Character, so it splits as one line break.
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map {
            $0.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
        }
        while let last = lines.last, last.isEmpty { lines.removeLast() }
        guard let header = lines.first, !header.isEmpty else {
            throw bad(1, "empty pairs file (expected a header like \"10 300\")")
        }
        guard header.count == 2, let f = Int(header[0]), let n = Int(header[1]), f >= 1, n >= 1, f <= 10_000,
            n <= 1_000_000
        else {
            throw bad(
                1,
                "expected a header \"FOLDS PAIRS_PER_FOLD\" like \"10 300\", got \"\(header.joined(separator: " "))\"")
        }
        folds = f
        pairsPerFold = n
        pairs = []
        pairs.reserveCapacity(2 * f * n)
        for (i, fields) in lines.enumerated().dropFirst() {
            let line = i + 1
            let index = pairs.count
            guard index < 2 * f * n else { throw bad(line, "more pairs than the header's \(f) folds x \(2 * n)") }
            let matched = index % (2 * n) < n
            if matched {
                guard fields.count == 3 else {
                    throw bad(
                        line,
                        "expected a matched pair \"name i j\" (pair \(index % (2 * n) + 1) of fold \(index / (2 * n) + 1)), got \(fields.count) fields"
                    )
                }
                let name = String(fields[0])
                pairs.append(
                    LFWPair(
                        first: LFWImage(name: name, number: try number(fields[1], line: line)),
                        second: LFWImage(name: name, number: try number(fields[2], line: line)), same: true))
            } else {
                guard fields.count == 4 else {
                    throw bad(
                        line,
                        "expected a mismatched pair \"name1 i name2 j\" (pair \(index % (2 * n) + 1) of fold \(index / (2 * n) + 1)), got \(fields.count) fields"
                    )
                }
                pairs.append(
                    LFWPair(
                        first: LFWImage(name: String(fields[0]), number: try number(fields[1], line: line)),
                        second: LFWImage(name: String(fields[2]), number: try number(fields[3], line: line)),
                        same: false))
            }
        }
        guard pairs.count == 2 * f * n else {
            throw bad(
                lines.count,
                "the header promises \(2 * f * n) pairs (\(f) folds x \(n) matched + \(n) mismatched), the file has \(pairs.count)"
            )
        }
    }

    /// Reads and parses a pairs file.
    public init(contentsOf path: String) throws(FaceEmbedError) {
        let bytes = try readFile(path)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw .invalidArgument("\(path): not a text file")
        }
        try self.init(text: text, file: path)
    }

    /// Every image the pairs refer to, once each, sorted by name and number.
    public var uniqueImages: [LFWImage] {
        var seen = Set<LFWImage>()
        for p in pairs { seen.insert(p.first); seen.insert(p.second) }
        return seen.sorted()
    }
}

/// The result of `LFWProtocol.evaluate`: per-fold accuracies and thresholds.
public struct LFWAccuracy: Sendable, Equatable {
    /// Accuracy on each held-out fold, 0...1.
    public var foldAccuracies: [Double]
    /// The squared-distance threshold chosen for each fold (on the other folds).
    public var foldThresholds: [Double]
    /// Number of pairs in each fold.
    public var foldSizes: [Int]

    /// Mean of the fold accuracies.
    public var mean: Double { foldAccuracies.reduce(0, +) / Double(max(1, foldAccuracies.count)) }
    /// Population standard deviation of the fold accuracies (numpy's `std`, as insightface reports).
    public var standardDeviation: Double { LFWProtocol.populationStd(foldAccuracies) }
    /// Mean of the chosen squared-distance thresholds.
    public var meanThreshold: Double { foldThresholds.reduce(0, +) / Double(max(1, foldThresholds.count)) }
    /// The cosine similarity equivalent to `meanThreshold` for unit vectors (`1 − t/2`).
    public var meanCosineThreshold: Double { LFWProtocol.cosine(forSquaredDistance: meanThreshold) }

    /// Each pair's decision ("same" when its distance is below its fold's threshold), in pair order.
    public func decisions(distances: [Double]) -> [Bool] {
        var out: [Bool] = []
        out.reserveCapacity(distances.count)
        var start = 0
        for (size, t) in zip(foldSizes, foldThresholds) {
            for i in start..<min(start + size, distances.count) { out.append(distances[i] < t) }
            start += size
        }
        return out
    }
}

/// insightface's LFW verification protocol (`verification.py`, `calculate_roc`), exactly:
///
/// - The pairs are split into `folds` folds of consecutive pairs (scikit-learn `KFold` without shuffling: the
///   first `count % folds` folds get one pair more).
/// - For each fold, every threshold of the grid `0, 0.01, …, 3.99` (`np.arange(0, 4, 0.01)`, threshold `i` is
///   `Double(i) * 0.01`) is scored on the other folds, a pair being called "same" when its distance is strictly
///   below the threshold; the first threshold with the best accuracy is chosen (numpy `argmax`).
/// - The fold's accuracy is that threshold's accuracy on the fold itself. Report the mean ± the population
///   standard deviation of the fold accuracies.
///
/// Distances are squared Euclidean distances between unit-length embeddings (0…4; cosine = 1 − d/2). The
/// embedding is either plain (`fc1(img)`) or flip-summed (`fc1(img) + fc1(hflip(img))`), normalised after summing.
public enum LFWProtocol {
    /// Number of thresholds in the grid.
    public static let gridCount = 400
    /// Grid spacing.
    public static let gridStep = 0.01
    /// The threshold grid, `np.arange(0, 4, 0.01)`.
    public static var thresholds: [Double] { (0..<gridCount).map { threshold($0) } }
    @inline(__always) static func threshold(_ i: Int) -> Double { Double(i) * gridStep }

    /// The squared distance of two embeddings after normalising each to unit length (computed in `Double`).
    public static func squaredDistance(_ a: Embedding, _ b: Embedding) -> Double { a.unitSquaredDistance(to: b) }

    /// The cosine similarity of unit vectors at squared distance `d`: `1 − d/2`.
    public static func cosine(forSquaredDistance d: Double) -> Double { 1 - d / 2 }

    /// The fold sizes scikit-learn's `KFold(n_splits: folds)` gives `count` items.
    public static func foldSizes(count: Int, folds: Int) -> [Int] {
        (0..<folds).map { count / folds + ($0 < count % folds ? 1 : 0) }
    }

    /// Runs the protocol on per-pair `distances` and ground truth `same` (pair order, fold after fold).
    public static func evaluate(distances: [Double], same: [Bool], folds: Int = 10) throws(FaceEmbedError)
        -> LFWAccuracy
    {
        guard distances.count == same.count else {
            throw .invalidArgument("\(distances.count) distances but \(same.count) labels")
        }
        guard folds >= 2, distances.count >= folds else {
            throw .invalidArgument(
                "need at least 2 folds and a pair per fold, got \(folds) folds of \(distances.count) pairs")
        }
        if let bad = distances.firstIndex(where: { $0.isNaN }) { throw .invalidArgument("distance \(bad) is NaN") }
        let sizes = foldSizes(count: distances.count, folds: folds)
        let g = gridCount
        // correct[f][i]: pairs of fold f judged correctly at threshold i. A pair with distance d is called "same" at
        // every threshold index ≥ k, where k is the first index whose threshold exceeds d; count by k, then prefix-sum.
        var correct = [[Int]](repeating: [Int](repeating: 0, count: g), count: folds)
        var start = 0
        for f in 0..<folds {
            var sameFrom = [Int](repeating: 0, count: g + 1), diffFrom = [Int](repeating: 0, count: g + 1)
            var diffTotal = 0
            for p in start..<(start + sizes[f]) {
                let d = distances[p]
                var k = d < 0 ? 0 : (d >= Double(g) * gridStep ? g : max(0, min(g, Int(d / gridStep))))
                while k > 0 && threshold(k - 1) > d { k -= 1 }
                while k < g && !(threshold(k) > d) { k += 1 }
                if same[p] { sameFrom[k] += 1 } else { diffFrom[k] += 1; diffTotal += 1 }
            }
            var sameBelow = 0, diffBelow = 0
            for i in 0..<g {
                sameBelow += sameFrom[i]; diffBelow += diffFrom[i]
                correct[f][i] = sameBelow + (diffTotal - diffBelow)
            }
            start += sizes[f]
        }
        var total = [Int](repeating: 0, count: g)
        for f in 0..<folds { for i in 0..<g { total[i] += correct[f][i] } }
        var accuracies: [Double] = [], chosen: [Double] = []
        for f in 0..<folds {
            var best = 0, bestCount = -1
            for i in 0..<g {
                let c = total[i] - correct[f][i]
                if c > bestCount { bestCount = c; best = i }
            }
            chosen.append(threshold(best))
            accuracies.append(Double(correct[f][best]) / Double(sizes[f]))
        }
        return LFWAccuracy(foldAccuracies: accuracies, foldThresholds: chosen, foldSizes: sizes)
    }

    /// Population standard deviation (divides by the count, like numpy's default `ddof=0`).
    public static func populationStd(_ v: [Double]) -> Double {
        guard !v.isEmpty else { return 0 }
        let m = v.reduce(0, +) / Double(v.count)
        return (v.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(v.count)).squareRoot()
    }
}
