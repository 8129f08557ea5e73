import FaceEmbed
import FaceEmbedEvaluation
import FaceEmbedImport
import Foundation

/// Where the CLI looks for a model when `--model` is not given.
enum ModelLookup {
    static let candidates = ["Models/default.feb", "Models/mobilefacenet.feb", "Models/w600k_mbf.feb"]

    static func path(_ explicit: String?) throws -> String {
        if let explicit { return explicit }
        if let env = ProcessInfo.processInfo.environment["FACEEMBED_MODEL"], !env.isEmpty { return env }
        for c in candidates where FileManager.default.fileExists(atPath: c) { return c }
        throw FaceEmbedError.io(
            file: nil,
            reason:
                "no model: pass --model PATH, set FACEEMBED_MODEL, or put one at \(candidates.joined(separator: " or ")) (see README: faceembed convert)"
        )
    }
}

enum Commands {
    static let commonModelHelp = """
          --model PATH     FaceEmbed weight file (default: $FACEEMBED_MODEL, then \(ModelLookup.candidates.joined(separator: ", ")))
          --bgr            the image files store pixels in BGR order
          --landmarks L    five landmarks x1,y1,...,x5,y5 (left eye, right eye, nose, left and right mouth corners)
                           of a photo: it is aligned to the 112x112 crop first; give one per image, in order
          --threads N      threads to use (default: all cores)
        """

    /// The image files (PPM, JPEG, PNG) decoded, with their landmarks parsed (one set per image, or none: then every
    /// image must already be an aligned 112x112 face).
    static func loadImages(_ paths: [String], landmarks: [String]) throws
        -> (images: [RGBImage], landmarks: [FaceLandmarks])
    {
        guard landmarks.isEmpty || landmarks.count == paths.count else {
            throw UsageError(
                "give --landmarks once per image (\(paths.count) images, \(landmarks.count) landmark sets)")
        }
        var images: [RGBImage] = [], marks: [FaceLandmarks] = []
        for (i, path) in paths.enumerated() {
            let img = try ImageDecoder.load(path: path)
            if landmarks.isEmpty {
                guard img.width == FaceModel.inputSize, img.height == FaceModel.inputSize else {
                    throw FaceEmbedError.invalidImage(
                        file: path,
                        reason:
                            "an aligned face must be 112x112, this is \(img.width)x\(img.height) (give --landmarks to align a photo)"
                    )
                }
            } else {
                marks.append(try FaceLandmarks(parsing: landmarks[i]))
            }
            images.append(img)
        }
        return (images, marks)
    }

    /// The embeddings of `images` (photos aligned first when there are landmarks), read as BGR with `bgr`.
    static func embeddings(_ m: FaceModel, _ images: [RGBImage], landmarks: [FaceLandmarks], bgr: Bool) throws
        -> [Embedding]
    {
        guard bgr else {
            return landmarks.isEmpty
                ? try m.embeddings(for: images)
                : try m.embeddings(for: images, landmarks: landmarks)
        }
        // The files hold BGR bytes: they go to the model as BGR pixel buffers, views into one allocation so that all
        // of them are valid for the one batch call.
        let all = images.flatMap(\.pixels)
        return try all.withUnsafeBufferPointer { p throws(FaceEmbedError) in
            var start = 0
            let buffers = images.map { img in
                defer { start += img.pixels.count }
                return PixelBuffer(
                    UnsafeBufferPointer(rebasing: p[start..<start + img.pixels.count]),
                    width: img.width, height: img.height, format: .bgr)
            }
            return landmarks.isEmpty
                ? try m.embeddings(for: buffers)
                : try m.embeddings(for: buffers, landmarks: landmarks)
        }
    }

    /// Decodes the command's images, loads the model and embeds them: what `embed` and `compare` share.
    static func embedImages(_ a: Arguments) throws -> [Embedding] {
        let (images, landmarks) = try loadImages(a.positional, landmarks: a.repeated["--landmarks"] ?? [])
        return try embeddings(try model(a), images, landmarks: landmarks, bgr: a.flags.contains("--bgr"))
    }

    static func model(_ a: Arguments) throws -> FaceModel {
        let threads = try a.int("--threads", default: 0, in: 0...256)
        return try FaceModel(
            contentsOf: try ModelLookup.path(a.options["--model"]), threads: threads == 0 ? nil : threads)
    }

    static func format(_ v: Float) -> String { String(format: "%.6f", v) }

    static let embedUsage = """
        usage: faceembed embed [options] IMAGE [IMAGE ...]

        Prints one embedding per aligned 112x112 face image (PPM, JPEG or PNG): the raw fc1 values,
        space-separated on one line per image (the file name first), or JSON with --json.

        options:
        \(commonModelHelp)
          --json           print [{"file": ..., "embedding": [...]}, ...]
          --normalize      print unit-length embeddings instead of raw fc1
          -h, --help       show this help

        Many files: `faceembed embed --files-from LIST` streams JSON Lines or .npy
        (see `faceembed embed --files-from - --help`).
        """

    static func embed(_ argv: [String]) throws -> Int32 {
        if wantsBatch(argv) { return try batchEmbed(argv) }
        let a = try Arguments(
            argv, valued: ["--model", "--threads", "--landmarks"], flags: ["--bgr", "--json", "--normalize"])
        if a.flags.contains("--help") { print(embedUsage); return 0 }
        guard !a.positional.isEmpty else { throw UsageError("no image given") }
        var embeddings = try embedImages(a)
        if a.flags.contains("--normalize") { embeddings = embeddings.map(\.normalized) }
        if a.flags.contains("--json") {
            let items = zip(a.positional, embeddings).map { file, e in
                "{\"file\": \(jsonString(file)), \"embedding\": [\(e.values.map { "\($0)" }.joined(separator: ", "))]}"
            }
            print("[\n  " + items.joined(separator: ",\n  ") + "\n]")
        } else {
            for (file, e) in zip(a.positional, embeddings) {
                print(file + " " + e.values.map { format($0) }.joined(separator: " "))
            }
        }
        return 0
    }

    static let compareUsage = """
        usage: faceembed compare [options] IMAGE_A IMAGE_B

        Compares two aligned 112x112 faces. Prints the cosine similarity and "same" or "different".
        Exit status: 0 same person, 1 different people, 2 error.

        options:
        \(commonModelHelp)
          --threshold T    cosine similarity at or above which the faces match (default \(FaceModel.defaultThreshold),
                           insightface's squared-distance threshold 1.24 on unit vectors)
          --json           print {"similarity": ..., "threshold": ..., "same": ...}
          -h, --help       show this help
        """

    static func compare(_ argv: [String]) throws -> Int32 {
        let a = try Arguments(
            argv, valued: ["--model", "--threads", "--threshold", "--landmarks"], flags: ["--bgr", "--json"])
        if a.flags.contains("--help") { print(compareUsage); return 0 }
        guard a.positional.count == 2 else { throw UsageError("compare takes exactly two images") }
        let threshold = try a.float("--threshold", default: FaceModel.defaultThreshold)
        let e = try embedImages(a)
        let sim = e[0].cosineSimilarity(to: e[1])
        let same = sim >= threshold
        if a.flags.contains("--json") {
            print("{\"similarity\": \(sim), \"threshold\": \(threshold), \"same\": \(same)}")
        } else {
            print("similarity \(format(sim)) threshold \(threshold): \(same ? "same" : "different")")
        }
        return same ? 0 : 1
    }

    static let convertUsage = """
        usage: faceembed convert SYMBOL.json PARAMS -o OUT.feb
               faceembed convert MODEL_DIR -o OUT.feb     (a folder with model-symbol.json and model-0000.params)
               faceembed convert MODEL.onnx -o OUT.feb    (an ONNX recognition model, e.g. insightface's w600k_mbf.onnx)

        Converts an insightface MXNet model (MobileFaceNet or LResNet-IR of any depth) into a FaceEmbed weight
        file: batch norms folded, graph checked, every parameter's shape verified.

        options:
          -o, --output PATH   where to write the .feb file (required)
          -h, --help          show this help
        """

    static func convert(_ argv: [String]) throws -> Int32 {
        let a = try Arguments(argv, valued: ["--output"], flags: [])
        if a.flags.contains("--help") { print(convertUsage); return 0 }
        guard let out = a.options["--output"] else { throw UsageError("-o OUT.feb is required") }
        let s: ConversionSummary
        switch a.positional.count {
        case 1:
            s = try ModelConverter.convert(path: a.positional[0], to: out)
        case 2:
            var (symbol, params) = (a.positional[0], a.positional[1])
            if symbol.hasSuffix(".params") { swap(&symbol, &params) }
            s = try ModelConverter.convertMXNet(symbol: symbol, params: params, to: out)
        default:
            throw UsageError("give a model folder, an .onnx file, or SYMBOL.json and PARAMS")
        }
        print(
            "\(out): \(s.name) (\(s.kind)), \(s.embeddingSize)-d embedding, \(s.layers) fused layers, "
                + "\(s.parameters) weights, \(String(format: "%.3f", Double(s.multiplyAdds) * 2e-9)) GFLOP per image")
        return 0
    }

    static let alignUsage = """
        usage: faceembed align PHOTO --landmarks x1,y1,...,x5,y5 -o FACE.ppm

        Cuts the 112x112 ArcFace crop out of a photo (PPM, JPEG or PNG) from five landmarks in photo pixels:
        left eye, right eye, nose tip, left and right mouth corners (as seen in the image). A least-squares
        similarity transform onto insightface's template, bilinear sampling, black outside the photo.

        options:
          --landmarks L       the ten numbers, comma-separated (required)
          --bgr               the photo stores pixels in BGR order (the crop is written in the same order)
          -o, --output PATH   where to write the crop, as binary PPM (required)
          -h, --help          show this help
        """

    static func align(_ argv: [String]) throws -> Int32 {
        let a = try Arguments(argv, valued: ["--landmarks", "--output"], flags: ["--bgr"])
        if a.flags.contains("--help") { print(alignUsage); return 0 }
        guard a.positional.count == 1 else { throw UsageError("align takes one photo") }
        guard let landmarks = a.options["--landmarks"] else { throw UsageError("--landmarks is required") }
        guard let out = a.options["--output"] else { throw UsageError("-o FACE.ppm is required") }
        let photo = try ImageDecoder.load(path: a.positional[0])
        let face = try photo.alignedFace(landmarks: FaceLandmarks(parsing: landmarks))
        guard FileManager.default.createFile(atPath: out, contents: Data(PPM.encode(face))) else {
            throw FaceEmbedError.io(file: out, reason: "cannot write")
        }
        return 0
    }

    static let infoUsage = """
        usage: faceembed info [--model PATH | MODEL.feb]

        Describes a FaceEmbed weight file: family, embedding size, weights, cost per image.
        """

    static func info(_ argv: [String]) throws -> Int32 {
        let a = try Arguments(argv, valued: ["--model"], flags: [])
        if a.flags.contains("--help") { print(infoUsage); return 0 }
        let m = try FaceModel(contentsOf: try ModelLookup.path(a.positional.first ?? a.options["--model"]))
        print(
            """
            file:        \(m.path)
            model:       \(m.name) (\(m.kind))
            embedding:   \(m.embeddingSize) floats
            input:       3x112x112, \(m.channelOrder == .rgb ? "RGB" : "BGR") (any pixel order accepted by the library)
            weights:     \(m.parameterCount) (\(String(format: "%.3f", Double(m.parameterCount) / 1e6)) M after folding)
            cost:        \(String(format: "%.3f", Double(m.multiplyAdds) * 2e-9)) GFLOP per image
            """)
        return 0
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out += ch.value < 0x20 ? String(format: "\\u%04x", ch.value) : String(ch)
            }
        }
        return out + "\""
    }
}
