/// A face embedding: the model's raw output vector (`fc1`), compared by cosine similarity.
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
        precondition(values.count == other.values.count, "embeddings of different sizes (\(values.count), \(other.values.count))")
        var dot = 0.0, a = 0.0, b = 0.0
        for i in values.indices {
            let x = Double(values[i]), y = Double(other.values[i])
            dot += x * y; a += x * x; b += y * y
        }
        return a > 0 && b > 0 ? Float(dot / (a * b).squareRoot()) : 0
    }

    /// Element-wise sum, as used for flip-augmented embeddings (`e(img) + e(hflip(img))`).
    public static func + (lhs: Embedding, rhs: Embedding) -> Embedding {
        Embedding(zip(lhs.values, rhs.values).map { $0 + $1 })
    }
}
