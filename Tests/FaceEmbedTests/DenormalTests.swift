import FaceEmbedTestSupport
import Testing

@testable import FaceEmbed
@testable import FaceEmbedEvaluation
@testable import FaceEmbedImport

// Denormal activations are flushed while kernels run (x86-64 Linux), and the caller's floating-point mode is
// restored afterwards.

struct DenormalTests {
    /// A product that is denormal unless the thread flushes denormals (kept opaque to the optimiser).
    static func tinyProduct(_ factors: [Float]) -> Float { factors.reduce(1, *) }
    static let factors: [Float] = [Float(bitPattern: 0x0080_0000), 0.25]  // smallest normal × 1/4

    @Test func kernelsRunWithDenormalsFlushedAndTheCallersModeIsRestored() throws {
        #expect(Self.tinyProduct(Self.factors).isSubnormal, "denormals are not flushed on the test thread")
        let inside = Denormals.flushed { Self.tinyProduct(Self.factors) }
        #if os(Linux) && arch(x86_64)
        #expect(inside == 0)
        #endif
        #expect(Self.tinyProduct(Self.factors).isSubnormal, "the caller's floating-point mode is restored")
        let model = try TestModels.tiny("tiny-mobilefacenet")
        let face = try ImageDecoder.load(
            path: TestPaths.fixtures.appendingPathComponent("tiny-mobilefacenet/input0.ppm").path)
        _ = try model.embedding(for: face)
        #expect(Self.tinyProduct(Self.factors).isSubnormal, "embedding leaves the caller's mode as it was")
    }
}
