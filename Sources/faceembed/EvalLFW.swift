import Dispatch
import FaceEmbed
import FaceEmbedImport
import FaceEmbedEvaluation
import Foundation
import Synchronization

// `faceembed eval-lfw`: LFW verification accuracy with insightface's protocol (LFWProtocol), for flip-summed and
// plain embeddings, as MXNet's `Tools/lfw_mxnet.py` measures it.

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

    static func evalLFW(_ argv: [String]) throws -> Int32 {
        let usage = """
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
        let a = try Arguments(argv, valued: ["--model", "--pairs", "--images", "--ext", "--threads", "--batch", "--distances"],
                              flags: ["--json"])
        if a.flags.contains("--help") { print(usage); return 0 }
        guard a.positional.isEmpty else { throw UsageError("unexpected argument \(a.positional[0])") }
        let batch = try a.int("--batch", default: 32, in: 1...4096)
        let ext = a.options["--ext"] ?? "jpg"
        let json = a.flags.contains("--json")
        let pairsPath = a.options["--pairs"] ?? sharedDefault("../shared/lfw/pairs.txt")
        let imagesDir = a.options["--images"] ?? sharedDefault("../shared/lfw/lfw-112x112")
        let pairs = try LFWPairs(contentsOf: pairsPath)
        let model = try Commands.model(a)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: imagesDir, isDirectory: &isDir), isDir.boolValue else {
            throw FaceEmbedError.io(file: imagesDir, reason: "no such image folder (pass --images DIR)")
        }

        let images = pairs.uniqueImages
        var index: [LFWImage: Int] = [:]
        for (i, im) in images.enumerated() { index[im] = i }
        let paths = images.map { imagesDir + "/" + $0.relativePath(extension: ext) }
        var plain = [Embedding](repeating: Embedding([]), count: images.count)
        var flip = plain
        let progress = Progress(total: images.count, quiet: json)
        let clock = ContinuousClock()
        let start = clock.now
        var decodeSeconds = 0.0, embedSeconds = 0.0
        let workers = max(1, min(model.threads, ProcessInfo.processInfo.activeProcessorCount))
        var first = 0
        while first < images.count {
            let range = first..<min(images.count, first + batch)
            // Decode the batch in parallel.
            let t0 = clock.now
            let decoded = Mutex<[Result<RGBImage, FaceEmbedError>?]>(Array(repeating: nil, count: range.count))
            DispatchQueue.concurrentPerform(iterations: min(workers, range.count)) { part in
                var i = part
                while i < range.count {
                    let path = paths[range.lowerBound + i]
                    let r: Result<RGBImage, FaceEmbedError>
                    do throws(FaceEmbedError) {
                        let img = try ImageDecoder.load(path: path)
                        guard img.width == FaceModel.inputSize, img.height == FaceModel.inputSize else {
                            throw .invalidImage(file: path, reason: "an aligned face must be 112x112, this is \(img.width)x\(img.height)")
                        }
                        r = .success(img)
                    } catch { r = .failure(error) }
                    decoded.withLock { $0[i] = r }
                    i += min(workers, range.count)
                }
            }
            var faces: [RGBImage] = []
            faces.reserveCapacity(2 * range.count)
            for r in decoded.withLock({ $0 }) { faces.append(try r!.get()) }
            for i in 0..<range.count { faces.append(faces[i].horizontallyFlipped()) }
            let t1 = clock.now
            let e = try model.embeddings(for: faces)
            for (k, i) in range.enumerated() {
                plain[i] = e[k]
                flip[i] = e[k] + e[range.count + k]
            }
            let t2 = clock.now
            decodeSeconds += elapsedSeconds(t1 - t0)
            embedSeconds += elapsedSeconds(t2 - t1)
            first = range.upperBound
            progress.update(first, elapsed: elapsedSeconds(t2 - start))
        }
        progress.finish()
        let totalSeconds = elapsedSeconds(clock.now - start)

        let same = pairs.pairs.map(\.same)
        func distances(_ e: [Embedding]) -> [Double] {
            pairs.pairs.map { LFWProtocol.squaredDistance(e[index[$0.first]!], e[index[$0.second]!]) }
        }
        let dFlip = distances(flip), dPlain = distances(plain)
        let rFlip = try LFWProtocol.evaluate(distances: dFlip, same: same, folds: pairs.folds)
        let rPlain = try LFWProtocol.evaluate(distances: dPlain, same: same, folds: pairs.folds)
        let cFlip = rFlip.decisions(distances: dFlip), cPlain = rPlain.decisions(distances: dPlain)

        if let out = a.options["--distances"] {
            var text = "pair\tfold\tfirst\tsecond\tsame\tflip_distance\tflip_same\tplain_distance\tplain_same\n"
            var fold = 0, foldEnd = rFlip.foldSizes[0]
            for (i, p) in pairs.pairs.enumerated() {
                while i >= foldEnd { fold += 1; foldEnd += rFlip.foldSizes[fold] }
                let f = p.first.relativePath(extension: "jpg").dropLast(4), s = p.second.relativePath(extension: "jpg").dropLast(4)
                text += "\(i)\t\(fold)\t\(f)\t\(s)\t\(p.same ? 1 : 0)\t\(String(format: "%.7f", dFlip[i]))\t\(cFlip[i] ? 1 : 0)\t"
                text += "\(String(format: "%.7f", dPlain[i]))\t\(cPlain[i] ? 1 : 0)\n"
            }
            do {
                try Data(text.utf8).write(to: URL(fileURLWithPath: out))
            } catch {
                throw FaceEmbedError.io(file: out, reason: "cannot write: \(error.localizedDescription)")
            }
        }

        let passes = 2 * images.count
        let imagesPerSecond = Double(images.count) / totalSeconds
        if json {
            func variant(_ r: LFWAccuracy) -> String {
                """
                {"accuracy_mean": \(r.mean), "accuracy_std": \(r.standardDeviation), \
                "fold_accuracies": [\(r.foldAccuracies.map { "\($0)" }.joined(separator: ", "))], \
                "fold_thresholds": [\(r.foldThresholds.map { "\($0)" }.joined(separator: ", "))], \
                "threshold_mean": \(r.meanThreshold), "cosine_threshold_mean": \(r.meanCosineThreshold)}
                """
            }
            print("""
                {"model": \(jsonString(model.path)), "name": \(jsonString(model.name)), "pairs": \(pairs.pairs.count), \
                "folds": \(pairs.folds), "images": \(images.count), "forward_passes": \(passes), \
                "seconds": \(totalSeconds), "decode_seconds": \(decodeSeconds), "embed_seconds": \(embedSeconds), \
                "images_per_second": \(imagesPerSecond), "forward_passes_per_second": \(Double(passes) / embedSeconds), \
                "threads": \(model.threads), "flip": \(variant(rFlip)), "plain": \(variant(rPlain))}
                """)
        } else {
            func pct(_ v: Double) -> String { String(format: "%.2f%%", 100 * v) }
            func line(_ label: String, _ r: LFWAccuracy) -> String {
                """
                \(label) \(pct(r.mean)) ± \(pct(r.standardDeviation))   threshold \(String(format: "%.3f", r.meanThreshold)) \
                (cosine \(String(format: "%.4f", r.meanCosineThreshold)))
                    folds:      \(r.foldAccuracies.map { String(format: "%6.2f", 100 * $0) }.joined(separator: " "))
                    thresholds: \(r.foldThresholds.map { String(format: "%6.2f", $0) }.joined(separator: " "))
                """
            }
            print("LFW \(pairs.pairs.count) pairs, \(pairs.folds) folds: \(model.name) (\(model.path)), images \(imagesDir)/*.\(ext)")
            print(line("flip-sum accuracy:", rFlip))
            print(line("non-flip accuracy:", rPlain))
            print(String(format: "%d images (%d forward passes with the flips) in %.1f s: %.1f images/s, %.1f passes/s "
                            + "(decode %.1f s, embed %.1f s, %d threads)",
                         images.count, passes, totalSeconds, imagesPerSecond, Double(passes) / embedSeconds,
                         decodeSeconds, embedSeconds, model.threads))
            if let out = a.options["--distances"] { print("distances and decisions written to \(out)") }
        }
        return 0
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
            write("\r[\(bar)] \(done)/\(total) images  \(String(format: "%.1f", rate)) images/s  ETA \(clockTime(eta))  ")
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

private func elapsedSeconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}
