import FaceEmbed
import Foundation

// `faceembed compare-models`: how far one model's embeddings are from another's on the same images (an int8
// conversion against its float32 original): the distribution of the per-image cosine similarity.

extension Commands {
    static let compareModelsUsage = """
        usage: faceembed compare-models --model A.feb --reference B.feb [options]

        Embeds every image under a folder (recursively, in file-name order) with both models and prints the
        distribution of the cosine similarity between A's and B's embedding of each image: median, 5th and 1st
        percentiles, minimum and mean. For an int8 model, B is its float32 original.

        options:
          --model PATH       the model under test (required)
          --reference PATH   the model it is compared with (required)
          --images DIR       the images (default: ../shared/lfw/lfw-112x112, aligned 112x112 LFW)
          --ext EXT          image file extension (default jpg)
          --limit N          only N images, evenly spaced in file-name order (default: all)
          --threads N        threads to use (default: all cores)
          --batch N          images per embeddings(for:) call (default 32)
          --identification   also LFW 1:N identification, rank-1, for each model and for A's probes against B's
                             gallery: the images are NAME/FILE (one folder per person); the first image of each
                             person with two or more is enrolled, with the single image of every other person as
                             a distractor, and every other image is a probe
          -h, --help         show this help
        """

    static func compareModels(_ argv: [String]) throws -> Int32 {
        let a = try Arguments(
            argv, valued: ["--model", "--reference", "--images", "--ext", "--limit", "--threads", "--batch"],
            flags: ["--identification"])
        if a.flags.contains("--help") { print(compareModelsUsage); return 0 }
        guard a.positional.isEmpty else { throw UsageError("unexpected argument \(a.positional[0])") }
        guard let modelPath = a.options["--model"], let referencePath = a.options["--reference"] else {
            throw UsageError("--model and --reference are required")
        }
        let threads = try a.int("--threads", default: 0, in: 0...256)
        let batch = try a.int("--batch", default: 32, in: 1...4096)
        let model = try FaceModel(contentsOf: modelPath, threads: threads == 0 ? nil : threads)
        let reference = try FaceModel(contentsOf: referencePath, threads: threads == 0 ? nil : threads)
        let files = try imageFiles(
            a.options["--images"] ?? sharedDefault("../shared/lfw/lfw-112x112"), ext: a.options["--ext"] ?? "jpg",
            limit: try a.int("--limit", default: 0, in: 0...10_000_000))
        var e: [Embedding] = [], r: [Embedding] = []
        for start in stride(from: 0, to: files.count, by: batch) {
            let faces = try files[start..<min(start + batch, files.count)].map { try ImageDecoder.load(path: $0) }
            e += try model.embeddings(for: faces)
            r += try reference.embeddings(for: faces)
        }
        printCosines(zip(e, r).map { $0.cosineSimilarity(to: $1) }.sorted(), model: model, reference: reference)
        if a.flags.contains("--identification") {
            let people = files.map { URL(fileURLWithPath: $0).deletingLastPathComponent().lastPathComponent }
            let split = IdentificationSplit(people: people)
            print("identification: \(split.gallery.count) enrolled, \(split.probes.count) probes; rank-1")
            for (label, probes, gallery) in [
                ("model", e, e), ("reference", r, r), ("model vs reference gallery", e, r),
            ] {
                let rank1 = String(format: "%.2f%%", 100 * split.rank1(probes: probes, gallery: gallery))
                print("  \(label.padding(toLength: 28, withPad: " ", startingAt: 0)) \(rank1)")
            }
        }
        return 0
    }

    /// The files with extension `ext` under `dir`, in path order; `limit` > 0 keeps that many, evenly spaced.
    private static func imageFiles(_ dir: String, ext: String, limit: Int) throws -> [String] {
        guard isDirectory(dir), let walk = FileManager.default.enumerator(atPath: dir) else {
            throw FaceEmbedError.io(file: dir, reason: "no such image folder (pass --images DIR)")
        }
        let all = walk.compactMap { $0 as? String }.filter { $0.hasSuffix("." + ext) }.sorted().map { dir + "/" + $0 }
        guard !all.isEmpty else { throw FaceEmbedError.io(file: dir, reason: "no .\(ext) images") }
        guard limit > 0, limit < all.count else { return all }
        return (0..<limit).map { all[$0 * all.count / limit] }
    }

    private static func printCosines(_ c: [Float], model: FaceModel, reference: FaceModel) {
        func at(_ q: Double) -> String { String(format: "%.5f", c[min(c.count - 1, Int(q * Double(c.count)))]) }
        let mean = c.reduce(0) { $0 + Double($1) } / Double(c.count)
        print(
            """
            model:       \(model.path) (\(model.precision))
            reference:   \(reference.path) (\(reference.precision))
            images:      \(c.count)
            cosine:      median \(at(0.5)), 5th percentile \(at(0.05)), 1st percentile \(at(0.01)), \
            min \(String(format: "%.5f", c[0])), mean \(String(format: "%.5f", mean))
            """)
    }
}

/// LFW 1:N identification (issue 14's protocol): every person's first image in file order is enrolled (for a person
/// with one image, a distractor); every other image is a probe.
struct IdentificationSplit {
    /// Image indices enrolled, and the probes' indices.
    var gallery: [Int] = [], probes: [Int] = []
    let people: [String]

    init(people: [String]) {
        self.people = people
        var enrolled = Set<String>()
        for (i, p) in people.enumerated() {
            if enrolled.insert(p).inserted { gallery.append(i) } else { probes.append(i) }
        }
    }

    /// The share of probes whose most similar enrolled image (cosine) is the same person's.
    func rank1(probes p: [Embedding], gallery g: [Embedding]) -> Double {
        let enrolled = gallery.map { g[$0].normalized.values }
        var hits = 0
        for i in probes {
            let x = p[i].normalized.values
            var best = -Float.infinity, who = -1
            for (j, y) in enrolled.enumerated() {
                var dot: Float = 0
                for k in x.indices { dot += x[k] * y[k] }
                if dot > best { best = dot; who = gallery[j] }
            }
            if people[who] == people[i] { hits += 1 }
        }
        return Double(hits) / Double(max(1, probes.count))
    }
}
