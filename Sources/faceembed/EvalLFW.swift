import FaceEmbed
import FaceEmbedEvaluation
import Foundation

// `faceembed eval-lfw`: LFW verification accuracy with insightface's protocol (LFWEvaluation, LFWProtocol), for
// flip-summed and plain embeddings, as MXNet's `Tools/lfw_mxnet.py` measures it. This file parses the arguments and
// prints; the run itself is FaceEmbedEvaluation's.

extension Commands {
    /// `relative` under the current directory if it exists there, else under the folder holding the package the
    /// executable was built in (found by walking up from the executable to a Package.swift), else as given.
    static func sharedDefault(_ relative: String) -> String {
        let fm = FileManager.default
        if fm.fileExists(atPath: relative) { return relative }
        var candidates: [URL] = []
        if let exe = Bundle.main.executableURL { candidates.append(exe.resolvingSymlinksInPath()) }
        candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.resolvingSymlinksInPath())
        for exe in candidates {
            var dir = exe.deletingLastPathComponent()
            while dir.path != "/" && !dir.path.isEmpty {
                if fm.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
                    let p = dir.appendingPathComponent(relative).standardizedFileURL.path
                    if fm.fileExists(atPath: p) { return p }
                    break
                }
                dir = dir.deletingLastPathComponent()
            }
        }
        return relative
    }

    static let evalLFWUsage = """
        usage: faceembed eval-lfw [options]

        LFW verification accuracy with insightface's protocol: the 6000 view2 pairs in 10 folds of
        consecutive pairs; for each fold the squared-distance threshold (grid 0...3.99, step 0.01) that is
        best on the other 9 folds is applied to it; prints the mean ± std of the fold accuracies for
        flip-summed embeddings (fc1(img) + fc1(hflip(img)), normalised) and plain ones, the thresholds
        (mean and per fold) with their cosine equivalent (1 - t/2), and images per second.

        options:
          --model PATH       FaceEmbed weight file (default: $FACEEMBED_MODEL, then \(ModelLookup.candidates.joined(separator: ", ")))
          --pairs FILE       view2 pairs file (default: ../shared/lfw/pairs.txt, relative to the current
                             directory, then to the package the executable was built in)
          --images DIR       aligned 112x112 LFW images as NAME/NAME_000N.EXT (default: ../shared/lfw/lfw-112x112)
          --ext EXT          image file extension (default jpg; e.g. ppm for Pillow-decoded copies
                             made by Tools/lfw_mxnet.py --ppm)
          --threads N        threads to use (default: all cores)
          --batch N          images per embeddings(for:) call (default 32; each image is also run flipped)
          --distances FILE   write every pair's distances and decisions as TSV (the format of
                             Tools/lfw_mxnet.py's distances.tsv)
          --json             print one JSON object instead of text
          -h, --help         show this help
        """

    static func evalLFW(_ argv: [String]) throws -> Int32 {
        let a = try Arguments(
            argv, valued: ["--model", "--pairs", "--images", "--ext", "--threads", "--batch", "--distances"],
            flags: ["--json"])
        if a.flags.contains("--help") { print(evalLFWUsage); return 0 }
        guard a.positional.isEmpty else { throw UsageError("unexpected argument \(a.positional[0])") }
        let batch = try a.int("--batch", default: 32, in: 1...4096)
        let ext = a.options["--ext"] ?? "jpg"
        let json = a.flags.contains("--json")
        let imagesDir = a.options["--images"] ?? sharedDefault("../shared/lfw/lfw-112x112")
        let pairs = try LFWPairs(contentsOf: a.options["--pairs"] ?? sharedDefault("../shared/lfw/pairs.txt"))
        let model = try Commands.model(a)
        guard isDirectory(imagesDir) else {
            throw FaceEmbedError.io(file: imagesDir, reason: "no such image folder (pass --images DIR)")
        }
        let progress = Progress(total: pairs.uniqueImages.count, quiet: json)
        let r = try LFWEvaluation.run(
            model: model, pairs: pairs, imagesDirectory: imagesDir, extension: ext,
            batch: batch, progress: progress.update)
        progress.finish()
        let variants = lfwVariants(r)
        if let out = a.options["--distances"] { try writeLFWDistances(r.pairs, variants, to: out) }
        if json {
            printLFWJSON(r, variants, model: model)
        } else {
            printLFWText(
                r, variants, model: model, images: "\(imagesDir)/*.\(ext)",
                distancesFile: a.options["--distances"])
        }
        return 0
    }

    /// The results of each kind of embedding, named as the outputs name them.
    typealias LFWVariants = [(name: String, label: String, scores: LFWEvaluation.Variant)]

    /// The run's variants as the outputs name them: flip-summed first, then plain.
    private static func lfwVariants(_ r: LFWEvaluation) -> LFWVariants {
        (r.flip.map { [("flip", "flip-sum accuracy:", $0)] } ?? []) + [("plain", "non-flip accuracy:", r.plain)]
    }

    /// Every pair's distances and decisions as TSV, the format of `Tools/lfw_mxnet.py`'s distances.tsv.
    private static func writeLFWDistances(
        _ pairs: LFWPairs, _ variants: LFWVariants,
        to out: String
    ) throws {
        let decisions = variants.map(\.scores.decisions), sizes = variants[0].scores.accuracy.foldSizes
        var text =
            "pair\tfold\tfirst\tsecond\tsame"
            + variants.map { "\t\($0.name)_distance\t\($0.name)_same" }.joined() + "\n"
        var fold = 0, foldEnd = sizes[0]
        for (i, p) in pairs.pairs.enumerated() {
            while i >= foldEnd { fold += 1; foldEnd += sizes[fold] }
            let f = p.first.relativePath(extension: "jpg").dropLast(4)
            let s = p.second.relativePath(extension: "jpg").dropLast(4)
            text += "\(i)\t\(fold)\t\(f)\t\(s)\t\(p.same ? 1 : 0)"
            for (v, d) in zip(variants, decisions) {
                text += "\t\(String(format: "%.7f", v.scores.distances[i]))\t\(d[i] ? 1 : 0)"
            }
            text += "\n"
        }
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: out))
        } catch {
            throw FaceEmbedError.io(file: out, reason: "cannot write: \(error.localizedDescription)")
        }
    }

    /// One JSON object: the run, then each variant's folds and thresholds.
    private static func printLFWJSON(
        _ r: LFWEvaluation, _ variants: LFWVariants,
        model: FaceModel
    ) {
        func variant(_ a: LFWAccuracy) -> String {
            """
            {"accuracy_mean": \(a.mean), "accuracy_std": \(a.standardDeviation), \
            "fold_accuracies": [\(a.foldAccuracies.map { "\($0)" }.joined(separator: ", "))], \
            "fold_thresholds": [\(a.foldThresholds.map { "\($0)" }.joined(separator: ", "))], \
            "threshold_mean": \(a.meanThreshold), "cosine_threshold_mean": \(a.meanCosineThreshold)}
            """
        }
        let run = """
            {"model": \(jsonString(model.path)), "name": \(jsonString(model.name)), "pairs": \(r.pairs.pairs.count), \
            "folds": \(r.pairs.folds), "images": \(r.imageCount), "forward_passes": \(r.forwardPasses), \
            "seconds": \(r.seconds), "decode_seconds": \(r.decodeSeconds), "embed_seconds": \(r.embedSeconds), \
            "images_per_second": \(Double(r.imageCount) / r.seconds), \
            "forward_passes_per_second": \(Double(r.forwardPasses) / r.embedSeconds), "threads": \(model.threads)
            """
        let scores = variants.map { "\"\($0.name)\": \(variant($0.scores.accuracy))" }
        print(run + ", " + scores.joined(separator: ", ") + "}")
    }

    /// The human-readable report: a header, each variant's accuracy, folds and thresholds, and the speed.
    private static func printLFWText(
        _ r: LFWEvaluation, _ variants: LFWVariants,
        model: FaceModel, images: String, distancesFile: String?
    ) {
        func pct(_ v: Double) -> String { String(format: "%.2f%%", 100 * v) }
        print(
            "LFW \(r.pairs.pairs.count) pairs, \(r.pairs.folds) folds: \(model.name) (\(model.path)), "
                + "images \(images)")
        for v in variants {
            let a = v.scores.accuracy
            print(
                """
                \(v.label) \(pct(a.mean)) ± \(pct(a.standardDeviation))   threshold \(String(format: "%.3f", a.meanThreshold)) \
                (cosine \(String(format: "%.4f", a.meanCosineThreshold)))
                    folds:      \(a.foldAccuracies.map { String(format: "%6.2f", 100 * $0) }.joined(separator: " "))
                    thresholds: \(a.foldThresholds.map { String(format: "%6.2f", $0) }.joined(separator: " "))
                """)
        }
        print(
            String(
                format: "%d images (%d forward passes with the flips) in %.1f s: %.1f images/s, %.1f passes/s "
                    + "(decode %.1f s, embed %.1f s, %d threads)",
                r.imageCount, r.forwardPasses, r.seconds, Double(r.imageCount) / r.seconds,
                Double(r.forwardPasses) / r.embedSeconds, r.decodeSeconds, r.embedSeconds, model.threads))
        if let distancesFile { print("distances and decisions written to \(distancesFile)") }
    }
}

/// Progress on stderr: a redrawn bar when stderr is a terminal, otherwise a line every 10 % or so.
private final class Progress {
    let total: Int
    let terminal: Bool
    let quiet: Bool
    var lastReported = 0
    var lastDraw = -1.0

    init(total: Int, quiet: Bool) {
        self.total = total
        self.quiet = quiet
        terminal = isatty(2) != 0
    }

    func update(_ done: Int, elapsed: Double) {
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        if terminal {
            guard elapsed - lastDraw >= 0.1 || done == total else { return }
            lastDraw = elapsed
            let width = 30, filled = total > 0 ? width * done / total : width
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            write(
                "\r[\(bar)] \(done)/\(total) images  \(String(format: "%.1f", rate)) images/s  ETA \(clockTime(eta))  ")
        } else if !quiet, done == total || done - lastReported >= max(1, total / 10) {
            lastReported = done
            write("eval-lfw: embedded \(done)/\(total) images (\(String(format: "%.1f", rate)) images/s)\n")
        }
    }

    func finish() {
        if terminal { write("\r" + String(repeating: " ", count: 90) + "\r") }
    }

    private func clockTime(_ s: Double) -> String {
        let t = Int(s.rounded())
        return String(format: "%d:%02d", t / 60, t % 60)
    }

    private func write(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }
}
