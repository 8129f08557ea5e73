import FaceEmbed
import Foundation

// `faceembed bench`: times embeddings on a synthetic face, prints latency, throughput, effective GFLOP/s and peak
// resident memory, and with --layers the time of every fused layer.

/// What a benchmark ran: a recognition model or a detector at one input size.
struct BenchSubject {
    var path: String, name: String, threads: Int, multiplyAdds: Int
    /// What one image is, for the text output ("per image" for a model, "640x640" for a detector).
    var unit: String = "image"

    init(_ m: FaceModel) { path = m.path; name = m.name; threads = m.threads; multiplyAdds = m.multiplyAdds }

    init(path: String, name: String, threads: Int, multiplyAdds: Int, unit: String) {
        self.path = path; self.name = name; self.threads = threads; self.multiplyAdds = multiplyAdds
        self.unit = unit
    }
}

/// What one `faceembed bench` run measured.
struct BenchResult {
    var batch: Int, iterations: Int, warmup: Int
    var warmupSeconds: Double
    /// Seconds per timed call, sorted.
    var times: [Double]
    var layers: [LayerProfile]
    var peakResidentBytes: Int

    /// The call time at fraction `p` of the sorted times (0.5: the median).
    func percentile(_ p: Double) -> Double { times[min(times.count - 1, Int((Double(times.count - 1) * p).rounded()))] }
    var perImage: Double { percentile(0.5) / Double(batch) }
}

extension Commands {
    static let benchUsage = """
        usage: faceembed bench [options]

        Times the model on a synthetic aligned face (same work as a real one). Batch 1 uses
        FaceModel.embedding(for:) with all threads inside each layer; a larger batch uses
        FaceModel.embeddings(for:), which shares the images out across threads.
        Given a detector (--model scrfd.feb), times the detector's network alone on a synthetic
        --det-size input (what ONNX Runtime's session.run does), and the whole detection of a
        synthetic photo of that size with --photo.

        options:
          --model PATH      FaceEmbed weight file (default: $FACEEMBED_MODEL, then \(ModelLookup.candidates.joined(separator: ", ")))
          --threads N       threads to use (default: all cores)
          --batch N         images per call (default 1)
          --iterations N    timed calls (default 30)
          --warmup N        untimed calls first (default 3)
          --layers          also print the time of every fused layer (batch 1, median over the iterations)
          --det-size WxH    a detector's input size, multiples of 32 (default 640x640; N means NxN)
          --photo           a detector: time faces(in:) on a synthetic photo of --det-size, not the network alone
          --json            print one JSON object instead of text
          -h, --help        show this help
        """

    static func bench(_ argv: [String]) throws -> Int32 {
        let a = try Arguments(
            argv, valued: ["--model", "--threads", "--batch", "--iterations", "--warmup", "--det-size"],
            flags: ["--layers", "--json", "--photo"])
        if a.flags.contains("--help") { print(benchUsage); return 0 }
        let batch = try a.int("--batch", default: 1, in: 1...4096)
        let iterations = try a.int("--iterations", default: 30, in: 1...1_000_000)
        let warmup = try a.int("--warmup", default: 3, in: 0...1_000_000)
        if let detector = try detectorIfOne(a) {
            let r = try timeDetector(detector, a, iterations: iterations, warmup: warmup)
            if a.flags.contains("--json") { printBenchJSON(r.0, r.1) } else { printBenchText(r.0, r.1) }
            return 0
        }
        let m = try model(a)
        let r = try time(m, batch: batch, iterations: iterations, warmup: warmup, layers: a.flags.contains("--layers"))
        let subject = BenchSubject(m)
        if a.flags.contains("--json") { printBenchJSON(r, subject) } else { printBenchText(r, subject) }
        return 0
    }

    /// `batch` synthetic aligned faces, different from one another.
    static func syntheticFaces(_ batch: Int) throws -> [RGBImage] {
        let n = FaceModel.inputSize * FaceModel.inputSize * 3
        return try (0..<batch).map { b in
            var px = [UInt8](repeating: 0, count: n)
            var s = UInt32(truncatingIfNeeded: 0x9E37_79B9 &+ b &* 7919)
            for i in 0..<n { s = s &* 1_664_525 &+ 1_013_904_223; px[i] = UInt8(truncatingIfNeeded: s >> 24) }
            return try RGBImage(width: FaceModel.inputSize, height: FaceModel.inputSize, pixels: px)
        }
    }

    /// Times `iterations` calls (after `warmup` untimed ones) of `embedding(for:)` (batch 1) or `embeddings(for:)`,
    /// then profiles the layers if asked.
    static func time(_ m: FaceModel, batch: Int, iterations: Int, warmup: Int, layers: Bool) throws -> BenchResult {
        let faces = try syntheticFaces(batch)
        return try measure(batch: batch, iterations: iterations, warmup: warmup) {
            if batch == 1 { _ = try m.embedding(for: faces[0]) } else { _ = try m.embeddings(for: faces) }
        } profile: {
            layers ? m.profile(iterations: iterations, warmup: min(warmup, 3)) : []
        }
    }

    /// Times `iterations` calls of `call` after `warmup` untimed ones, then runs `profile`.
    static func measure(
        batch: Int, iterations: Int, warmup: Int, _ call: () throws -> Void, profile: () -> [LayerProfile]
    ) throws -> BenchResult {
        let clock = ContinuousClock()
        let warmStart = clock.now
        for _ in 0..<warmup { try call() }
        let warmSeconds = (clock.now - warmStart).inSeconds
        var times: [Double] = []
        times.reserveCapacity(iterations)
        for _ in 0..<iterations {
            let t0 = clock.now
            try call()
            times.append((clock.now - t0).inSeconds)
        }
        return BenchResult(
            batch: batch, iterations: iterations, warmup: warmup, warmupSeconds: warmSeconds,
            times: times.sorted(), layers: profile(), peakResidentBytes: peakResidentBytes())
    }

    static func gflops(_ r: BenchResult, _ m: BenchSubject) -> Double { Double(m.multiplyAdds) * 2 / r.perImage / 1e9 }

    static func printBenchJSON(_ r: BenchResult, _ m: BenchSubject) {
        var fields: [String] = [
            "\"model\": \(jsonString(m.path))", "\"name\": \(jsonString(m.name))", "\"batch\": \(r.batch)",
            "\"threads\": \(m.threads)", "\"iterations\": \(r.iterations)", "\"warmup\": \(r.warmup)",
            "\"warmup_ms\": \(ms(r.warmupSeconds))", "\"median_ms\": \(ms(r.percentile(0.5)))",
            "\"min_ms\": \(ms(r.times.first!))", "\"max_ms\": \(ms(r.times.last!))",
            "\"p10_ms\": \(ms(r.percentile(0.1)))",
            "\"p90_ms\": \(ms(r.percentile(0.9)))", "\"ms_per_image\": \(ms(r.perImage))",
            "\"images_per_s\": \(String(format: "%.2f", 1 / r.perImage))",
            "\"gflops\": \(String(format: "%.2f", gflops(r, m)))",
            "\"multiply_adds\": \(m.multiplyAdds)", "\"peak_rss_bytes\": \(r.peakResidentBytes)",
        ]
        if !r.layers.isEmpty {
            let items = r.layers.map { l in
                "{\"index\": \(l.index), \"kind\": \(jsonString(l.kind)), \"shape\": \(jsonString(l.shape)), "
                    + "\"ms\": \(ms(l.seconds)), \"multiply_adds\": \(l.multiplyAdds)}"
            }
            fields.append("\"layers\": [\n    " + items.joined(separator: ",\n    ") + "\n  ]")
        }
        print("{\n  " + fields.joined(separator: ",\n  ") + "\n}")
    }

    static func printBenchText(_ r: BenchResult, _ m: BenchSubject) {
        let median = r.percentile(0.5), perImage = r.perImage
        print(
            "model       \(m.path): \(m.name), \(String(format: "%.3f", Double(m.multiplyAdds) * 2e-9)) GFLOP per \(m.unit)"
        )
        print(
            "setup       batch \(r.batch), threads \(m.threads), \(r.warmup) warm-up calls (\(ms(r.warmupSeconds)) ms), "
                + "\(r.iterations) timed")
        print(
            "per call    median \(ms(median)) ms   p10 \(ms(r.percentile(0.1)))   p90 \(ms(r.percentile(0.9)))   "
                + "min \(ms(r.times.first!))   max \(ms(r.times.last!))")
        print(
            "per image   \(ms(perImage)) ms, \(String(format: "%.1f", 1 / perImage)) images/s, "
                + "\(String(format: "%.1f", gflops(r, m))) GFLOP/s effective")
        print("peak RSS    \(String(format: "%.1f", Double(r.peakResidentBytes) / 1_048_576)) MiB")
        if !r.layers.isEmpty { printLayers(r.layers, iterations: r.iterations) }
    }

    static func printLayers(_ layers: [LayerProfile], iterations: Int) {
        let total = layers.reduce(0) { $0 + $1.seconds }
        print("\nlayers (batch 1, median of \(iterations) runs; sum \(ms(total)) ms):")
        print("  #    kind                    shape                          ms      %   GFLOP/s")
        for l in layers {
            let gf =
                l.multiplyAdds > 0 && l.seconds > 0
                ? String(format: "%7.1f", Double(l.multiplyAdds) * 2 / l.seconds / 1e9) : "      -"
            print(
                "  " + "\(l.index)".padding(toLength: 5, withPad: " ", startingAt: 0)
                    + l.kind.padding(toLength: 24, withPad: " ", startingAt: 0)
                    + l.shape.padding(toLength: 28, withPad: " ", startingAt: 0)
                    + String(format: "%8.3f %6.1f ", l.seconds * 1e3, l.seconds / total * 100) + gf)
        }
    }

    private static func ms(_ s: Double) -> String { String(format: "%.3f", s * 1e3) }

    /// Peak resident set size of this process in bytes: VmHWM on Linux, ru_maxrss elsewhere.
    static func peakResidentBytes() -> Int {
        #if os(Linux)
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) {
            for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
                let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
                return kb * 1024
            }
        }
        #endif
        var usage = rusage()
        #if canImport(Darwin)
        getrusage(RUSAGE_SELF, &usage)
        return Int(usage.ru_maxrss)
        #else
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Int(usage.ru_maxrss) * 1024
        #endif
    }
}
