import FaceEmbed
import Foundation

// `faceembed bench` on a detector file: the network alone at one input size (what ONNX Runtime's and OpenVINO's
// timings measure), or with --photo the whole detection of a synthetic photo (letterbox, network, decoding).

extension Commands {
    /// The detector named by --model, if the file is one (its header's kind), else nil.
    static func detectorIfOne(_ a: Arguments) throws -> FaceDetector? {
        let path = try ModelLookup.path(a.options["--model"])
        guard DetectorLookup.isDetectorFile(path) else { return nil }
        return try detector(path: path, a)
    }

    /// Times the detector at --det-size: its network alone, or `faces(in:)` with --photo.
    static func timeDetector(_ d: FaceDetector, _ a: Arguments, iterations: Int, warmup: Int) throws
        -> (BenchResult, BenchSubject)
    {
        let (w, h) = try detectionSize(a)
        let layers = a.flags.contains("--layers"), photo = a.flags.contains("--photo")
        let picture = photo ? try syntheticPhoto(width: w, height: h) : nil
        let options = try detectionOptions(a)
        // The network alone takes a ready input, copied in on each call as ONNX Runtime's session.run copies its own.
        var input = [Float](repeating: 0, count: 3 * w * h)
        input.withUnsafeMutableBufferPointer { FaceDetector.fillSynthetic($0.baseAddress!, count: $0.count) }
        let r = try measure(batch: 1, iterations: iterations, warmup: warmup) {
            if let picture {
                _ = try d.faces(in: picture, options: options)
            } else {
                try input.withUnsafeBufferPointer { x in
                    try d.withOutputs(input: x.baseAddress!, height: h, width: w) { _, _ in }
                }
            }
        } profile: {
            layers ? (try? d.profile(height: h, width: w, iterations: iterations, warmup: min(warmup, 3))) ?? [] : []
        }
        let subject = BenchSubject(
            path: d.path, name: d.name + (photo ? " (whole detection)" : " (network)"), threads: d.threads,
            multiplyAdds: try d.multiplyAdds(height: h, width: w), unit: "\(w)x\(h) input")
        return (r, subject)
    }

    /// A photo of random pixels (no face in it: the decoding does the least work, as with no face found).
    static func syntheticPhoto(width: Int, height: Int) throws -> RGBImage {
        var px = [UInt8](repeating: 0, count: width * height * 3)
        var s: UInt32 = 0x1234_5678
        for i in px.indices { s = s &* 1_664_525 &+ 1_013_904_223; px[i] = UInt8(truncatingIfNeeded: s >> 24) }
        return try RGBImage(width: width, height: height, pixels: px)
    }
}
