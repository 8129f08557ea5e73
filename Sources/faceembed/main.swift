import FaceEmbed
import FaceEmbedEvaluation
import FaceEmbedImport
import Foundation

// faceembed: the command-line face of the FaceEmbed library. Exit status: 0 success (or "same person" for
// compare), 1 "different people" for compare, 2 any error, with one line on stderr naming the file and the fault.

let commands: [(name: String, summary: String, run: ([String]) throws -> Int32)] = [
    ("embed", "print the embedding of each face (aligned images, or every face found in photos)", Commands.embed),
    ("compare", "compare two faces or photos: cosine similarity and a same/different verdict", Commands.compare),
    ("detect", "find the faces in photos: box, score and five landmarks", Commands.detect),
    ("align", "cut the aligned 112x112 face out of a photo (detected, or from five landmarks)", Commands.align),
    (
        "convert", "convert an MXNet or ONNX model (or the SCRFD detector) into a FaceEmbed weight file",
        Commands.convert
    ),
    ("info", "describe a FaceEmbed weight file", Commands.info),
    ("bench", "time the model: latency, throughput, GFLOP/s, peak memory, per-layer profile", Commands.bench),
    ("enroll", "build a gallery file for 1:N search from JSON Lines records or a folder of faces", Commands.enroll),
    ("search", "find the most similar enrolled faces in a gallery (1:N identification)", Commands.search),
    ("eval-lfw", "LFW verification accuracy (insightface protocol), flip and non-flip", Commands.evalLFW),
    ("compare-models", "cosine of two models' embeddings of the same images", Commands.compareModels),
]

let mainUsage = """
    faceembed: face detection and embeddings (SCRFD, MobileFaceNet, LResNet-IR ArcFace models), in pure Swift

    usage: faceembed <command> [options] [arguments]

    commands:
    \(commands.map { "  \($0.name.padding(toLength: 16, withPad: " ", startingAt: 0))\($0.summary)" }.joined(separator: "\n"))

    Run `faceembed <command> --help` for a command's options.
    Model lookup when --model is not given: $FACEEMBED_MODEL, then \(ModelLookup.candidates.joined(separator: ", ")).
    Exit status: 0 success (compare: same person), 1 compare: different people, 2 error.
    """

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("faceembed: \(message)\n".utf8))
    exit(2)
}

var args = Array(CommandLine.arguments.dropFirst())
guard let first = args.first else { print(mainUsage); exit(2) }
if first == "--help" || first == "-h" || first == "help" { print(mainUsage); exit(0) }
if first == "--version" { print("faceembed \(FaceEmbedVersion.string)"); exit(0) }
guard let command = commands.first(where: { $0.name == first }) else {
    fail("unknown command \(first); see faceembed --help")
}
args.removeFirst()
do {
    exit(try command.run(args))
} catch let e as FaceEmbedError {
    fail(e.description)
} catch let e as UsageError {
    fail("\(command.name): \(e.message) (see faceembed \(command.name) --help)")
} catch {
    fail("\(error)")
}
