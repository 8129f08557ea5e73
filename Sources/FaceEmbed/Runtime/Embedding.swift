/// A face embedding: the model's raw output vector (`fc1`), compared by cosine similarity or by the distance
/// between the unit vectors.
///
/// ```swift
/// let similar = a.cosineSimilarity(to: b) >= FaceModel.defaultThreshold
/// let alsoSimilar = a.squaredDistance(to: b) <= 1.24   // the same test: d² = 2 − 2·cosine for unit vectors
/// ```
public struct Embedding: Sendable, Equatable, Codable {
    /// The raw values, not normalised (128 for MobileFaceNet, 512 for LResNet-IR).
    public var values: [Float]

    /// Wraps raw values.
    public init(_ values: [Float]) { self.values = values }

    /// Euclidean length.
    public var norm: Float {
        Float(values.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot())
    }

    /// The same direction with unit length (unchanged if all zero).
    public var normalized: Embedding {
        let n = norm
        return n > 0 ? Embedding(values.map { $0 / n }) : self
    }

    /// Cosine of the angle to `other`, in -1...1 (0 when either is all zero). Same person: close to 1.
    public func cosineSimilarity(to other: Embedding) -> Float {
        precondition(
            values.count == other.values.count, "embeddings of different sizes (\(values.count), \(other.values.count))"
        )
        var dot = 0.0, a = 0.0, b = 0.0
        for i in values.indices {
            let x = Double(values[i]), y = Double(other.values[i])
            dot += x * y; a += x * x; b += y * y
        }
        return a > 0 && b > 0 ? Float(dot / (a * b).squareRoot()) : 0
    }

    /// Squared Euclidean distance between the two embeddings scaled to unit length, in 0...4 (`2 − 2·cosine`;
    /// an all-zero embedding stays zero). Same person: close to 0. insightface's verification calls a pair the same
    /// person below 1.24, which is `FaceModel.defaultThreshold` as a cosine.
    public func squaredDistance(to other: Embedding) -> Float { Float(unitSquaredDistance(to: other)) }

    /// Euclidean distance between the two embeddings scaled to unit length, in 0...2 (the square root of
    /// `squaredDistance(to:)`).
    public func distance(to other: Embedding) -> Float { Float(unitSquaredDistance(to: other).squareRoot()) }

    /// `squaredDistance(to:)` in `Double`, as the LFW protocol measures it: each vector scaled by the reciprocal of
    /// its norm, then the squared differences summed.
    package func unitSquaredDistance(to other: Embedding) -> Double {
        precondition(
            values.count == other.values.count, "embeddings of different sizes (\(values.count), \(other.values.count))"
        )
        var na = 0.0, nb = 0.0
        for v in values { na += Double(v) * Double(v) }
        for v in other.values { nb += Double(v) * Double(v) }
        let sa = na > 0 ? 1 / na.squareRoot() : 0, sb = nb > 0 ? 1 / nb.squareRoot() : 0
        var d = 0.0
        for i in values.indices {
            let x = Double(values[i]) * sa - Double(other.values[i]) * sb
            d += x * x
        }
        return d
    }

    /// Element-wise sum, as used for flip-augmented embeddings (`e(img) + e(hflip(img))`).
    public static func + (lhs: Embedding, rhs: Embedding) -> Embedding {
        Embedding(zip(lhs.values, rhs.values).map { $0 + $1 })
    }
}
