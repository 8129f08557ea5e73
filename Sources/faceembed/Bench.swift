import FaceEmbed
import FaceEmbedImport
import FaceEmbedEvaluation
import Foundation

// `faceembed bench`: times embeddings on a synthetic face, prints latency, throughput, effective GFLOP/s and peak
// resident memory, and with --layers the time of every fused layer.

extension Commands {
    static func bench(_ argv: [String]) throws -> Int32 {
        let usage = """
            usage: faceembed bench [options]

            Times the model on a synthetic aligned face (same work as a real one). Batch 1 uses
            FaceModel.embedding(for:) with all threads inside each layer; a larger batch uses
            FaceModel.embeddings(for:), which shares the images out across threads.

            options:
              --model PATH      FaceEmbed weight file (default: $FACEEMBED_MODEL, then \(ModelLookup.candidates.joined(separator: ", ")))
              --threads N       threads to use (default: all cores)
              --batch N         images per call (default 1)
              --iterations N    timed calls (default 30)
              --warmup N        untimed calls first (default 3)
              --layers          also print the time of every fused layer (batch 1, median over the iterations)
              --json            print one JSON object instead of text
              -h, --help        show this help
            """
        let a = try Arguments(argv, valued: ["--model", "--threads", "--batch", "--iterations", "--warmup"],
                              flags: ["--layers", "--json"])
        if a.flags.contains("--help") { print(usage); return 0 }
        let batch = try a.int("--batch", default: 1, in: 1...4096)
        let iterations = try a.int("--iterations", default: 30, in: 1...1_000_000)
        let warmup = try a.int("--warmup", default: 3, in: 0...1_000_000)
        let json = a.flags.contains("--json")
        let m = try model(a)

        let n = FaceModel.inputSize * FaceModel.inputSize * 3
        var faces: [RGBImage] = []
        for b in 0..<batch {
            var px = [UInt8](repeating: 0, count: n)
            var s = UInt32(truncatingIfNeeded: 0x9E37_79B9 &+ b &* 7919)
            for i in 0..<n { s = s &* 1_664_525 &+ 1_013_904_223; px[i] = UInt8(truncatingIfNeeded: s >> 24) }
            faces.append(try RGBImage(width: FaceModel.inputSize, height: FaceModel.inputSize, pixels: px))
        }
        func call() throws {
            if batch == 1 { _ = try m.embedding(for: faces[0]) } else { _ = try m.embeddings(for: faces) }
        }
        let clock = ContinuousClock()
        let warmStart = clock.now
        for _ in 0..<warmup { try call() }
        let warmSeconds = seconds(clock.now - warmStart)
        var times: [Double] = []
        times.reserveCapacity(iterations)
        for _ in 0..<iterations {
            let t0 = clock.now
            try call()
            times.append(seconds(clock.now - t0))
        }
        times.sort()
        func pct(_ p: Double) -> Double { times[min(times.count - 1, Int((Double(times.count - 1) * p).rounded()))] }
        let median = pct(0.5), p10 = pct(0.1), p90 = pct(0.9)
        let perImage = median / Double(batch)
        let gflops = Double(m.multiplyAdds) * 2 / perImage / 1e9
        let layers = a.flags.contains("--layers") ? m.profile(iterations: iterations, warmup: min(warmup, 3)) : []
        let rss = peakResidentBytes()

        if json {
            var fields: [String] = [
                "\"model\": \(jsonString(m.path))", "\"name\": \(jsonString(m.name))", "\"batch\": \(batch)",
                "\"threads\": \(m.threads)", "\"iterations\": \(iterations)", "\"warmup\": \(warmup)",
                "\"warmup_ms\": \(ms(warmSeconds))", "\"median_ms\": \(ms(median))", "\"min_ms\": \(ms(times.first!))",
                "\"max_ms\": \(ms(times.last!))", "\"p10_ms\": \(ms(p10))", "\"p90_ms\": \(ms(p90))",
                "\"ms_per_image\": \(ms(perImage))", "\"images_per_s\": \(String(format: "%.2f", 1 / perImage))",
                "\"gflops\": \(String(format: "%.2f", gflops))", "\"multiply_adds\": \(m.multiplyAdds)",
                "\"peak_rss_bytes\": \(rss)",
            ]
            if !layers.isEmpty {
                let items = layers.map { l in
                    "{\"index\": \(l.index), \"kind\": \(jsonString(l.kind)), \"shape\": \(jsonString(l.shape)), " +
                    "\"ms\": \(ms(l.seconds)), \"multiply_adds\": \(l.multiplyAdds)}"
                }
                fields.append("\"layers\": [\n    " + items.joined(separator: ",\n    ") + "\n  ]")
            }
            print("{\n  " + fields.joined(separator: ",\n  ") + "\n}")
            return 0
        }
        print("model       \(m.path): \(m.name), \(String(format: "%.3f", Double(m.multiplyAdds) * 2e-9)) GFLOP per image")
        print("setup       batch \(batch), threads \(m.threads), \(warmup) warm-up calls (\(ms(warmSeconds)) ms), \(iterations) timed")
        print("per call    median \(ms(median)) ms   p10 \(ms(p10))   p90 \(ms(p90))   min \(ms(times.first!))   max \(ms(times.last!))")
        print("per image   \(ms(perImage)) ms, \(String(format: "%.1f", 1 / perImage)) images/s, \(String(format: "%.1f", gflops)) GFLOP/s effective")
        print("peak RSS    \(String(format: "%.1f", Double(rss) / 1_048_576)) MiB")
        if !layers.isEmpty {
            let total = layers.reduce(0) { $0 + $1.seconds }
            print("\nlayers (batch 1, median of \(iterations) runs; sum \(ms(total)) ms):")
            print("  #    kind                    shape                          ms      %   GFLOP/s")
            for l in layers {
                let gf = l.multiplyAdds > 0 && l.seconds > 0 ? String(format: "%7.1f", Double(l.multiplyAdds) * 2 / l.seconds / 1e9) : "      -"
                print("  " + "\(l.index)".padding(toLength: 5, withPad: " ", startingAt: 0)
                      + l.kind.padding(toLength: 24, withPad: " ", startingAt: 0)
                      + l.shape.padding(toLength: 28, withPad: " ", startingAt: 0)
                      + String(format: "%8.3f %6.1f ", l.seconds * 1e3, l.seconds / total * 100) + gf)
            }
        }
        return 0
    }

    private static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
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
