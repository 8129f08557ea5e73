import FaceEmbedTestSupport
import Foundation
import Testing

@testable import FaceEmbed
@testable import FaceEmbedEvaluation
@testable import FaceEmbedImport

/// How far apart two float vectors are: the largest absolute difference and the cosine of their angle.
struct Closeness: CustomStringConvertible {
    var maxAbs: Float
    var cosine: Double

    init(_ a: [Float], _ b: [Float]) {
        precondition(a.count == b.count, "compared vectors differ in length: \(a.count) vs \(b.count)")
        var m: Float = 0, dot = 0.0, na = 0.0, nb = 0.0
        for i in a.indices {
            m = max(m, abs(a[i] - b[i]))
            dot += Double(a[i]) * Double(b[i]); na += Double(a[i]) * Double(a[i]); nb += Double(b[i]) * Double(b[i])
        }
        maxAbs = m
        cosine = na == 0 && nb == 0 ? 1 : dot / (na * nb).squareRoot()
        if a.contains(where: { !$0.isFinite }) || b.contains(where: { !$0.isFinite }) { maxAbs = .infinity; cosine = 0 }
    }

    var description: String { "max abs \(maxAbs), cosine \(String(format: "%.9f", cosine))" }
}

/// Expects `a` within `maxAbs` of `b` everywhere and at cosine ≥ `cosine`.
func expectClose(
    _ a: [Float], _ b: [Float], maxAbs: Float, cosine: Double = 0.99999, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let c = Closeness(a, b)
    #expect(
        c.maxAbs <= maxAbs && c.cosine >= cosine, "\(what): \(c) (limits \(maxAbs), \(cosine))",
        sourceLocation: sourceLocation)
}

/// A seeded generator (SplitMix64), so random tests are reproducible and differ by seed.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func floats(_ n: Int, _ range: ClosedRange<Float> = -1...1) -> [Float] {
        (0..<n).map { _ in Float.random(in: range, using: &self) }
    }
}

/// Reads a JSON fixture.
func loadJSON(_ path: String) throws -> [String: Any] {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    return try JSONSerialization.jsonObject(with: data) as! [String: Any]
}

/// Rows of floats from a JSON array of arrays.
func floatRows(_ any: Any?) -> [[Float]] {
    (any as? [[Double]] ?? (any as? [[NSNumber]])?.map { $0.map(\.doubleValue) } ?? []).map { $0.map(Float.init) }
}
