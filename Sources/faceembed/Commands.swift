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
                           (without them, a photo that is not an aligned 112x112 face goes through the detector)
          --threads N      threads to use (default: all cores)
        \(detectionHelp)
        """

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
        // of them are valid for the one batch call. The faces of one photo share its pixels: copied once, not per face.
        var all: [UInt8] = [], starts: [Int] = [], copied: [UnsafeRawPointer?: Int] = [:]
        for img in images {
            let storage = img.pixels.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress) }
            if let start = copied[storage] {
                starts.append(start)
            } else {
                copied[storage] = all.count
                starts.append(all.count)
                all += img.pixels
            }
        }
        return try all.withUnsafeBufferPointer { p throws(FaceEmbedError) in
            let buffers = zip(images, starts).map { img, start in
                PixelBuffer(
                    UnsafeBufferPointer(rebasing: p[start..<start + img.pixels.count]),
                    width: img.width, height: img.height, format: .bgr)
            }
            return landmarks.isEmpty
                ? try m.embeddings(for: buffers)
                : try m.embeddings(for: buffers, landmarks: landmarks)
        }
    }

    /// Decodes the command's images, finds their faces, loads the model and embeds them: what `embed` and `compare`
    /// share.
    static func embedImages(_ a: Arguments, largestOnly: Bool) throws -> [(FaceInput, Embedding)] {
        let inputs = try faceInputs(a, largestOnly: largestOnly)
        return Array(zip(inputs, try embeddings(try model(a), inputs, bgr: a.flags.contains("--bgr"))))
    }

    static func model(_ a: Arguments) throws -> FaceModel {
        let threads = try a.int("--threads", default: 0, in: 0...256)
        return try FaceModel(
            contentsOf: try ModelLookup.path(a.options["--model"]), threads: threads == 0 ? nil : threads)
    }

    static func format(_ v: Float) -> String { String(format: "%.6f", v) }

    static let embedUsage = """
        usage: faceembed embed [options] IMAGE [IMAGE ...]

        Prints one embedding per aligned 112x112 face image (PPM, JPEG or PNG), and one per face found in
        any other photo: the raw fc1 values, space-separated on one line per face (the file name first,
        with #N for the Nth face of a photo), or JSON with --json (with the face's box, score and index).

        options:
        \(commonModelHelp)
          --json           print [{"file": ..., "embedding": [...]}, ...] (and "face", "box", "score" for a detected face)
          --normalize      print unit-length embeddings instead of raw fc1
          -h, --help       show this help

        Many files: `faceembed embed --files-from LIST` streams JSON Lines or .npy
        (see `faceembed embed --files-from - --help`).
        """

    static func embed(_ argv: [String]) throws -> Int32 {
        if wantsBatch(argv) { return try batchEmbed(argv) }
        let a = try Arguments(
            argv, valued: detectionOptionNames.union(["--model", "--threads", "--landmarks"]),
            flags: ["--bgr", "--json", "--normalize"])
        if a.flags.contains("--help") { print(embedUsage); return 0 }
        guard !a.positional.isEmpty else { throw UsageError("no image given") }
        let normalize = a.flags.contains("--normalize")
        let faces = try embedImages(a, largestOnly: false).map { ($0, normalize ? $1.normalized : $1) }
        if a.flags.contains("--json") {
            let items = faces.map { f, e in
                "{\"file\": \(jsonString(f.file)), " + detectionJSON(f)
                    + "\"embedding\": [\(e.values.map { "\($0)" }.joined(separator: ", "))]}"
            }
            print("[\n  " + items.joined(separator: ",\n  ") + "\n]")
        } else {
            for (f, e) in faces {
                let name = f.detected.map { "\(f.file)#\($0.index)" } ?? f.file
                print(name + " " + e.values.map { format($0) }.joined(separator: " "))
            }
        }
        return 0
    }

    /// `"face": N, "box": [...], "score": S, ` for a detected face, nothing otherwise.
    static func detectionJSON(_ f: FaceInput) -> String {
        guard let (index, face) = f.detected else { return "" }
        let b = face.box
        return "\"face\": \(index), \"box\": [\(b.x1), \(b.y1), \(b.x2), \(b.y2)], \"score\": \(face.score), "
    }

    static let compareUsage = """
        usage: faceembed compare [options] IMAGE_A IMAGE_B

        Compares two faces: aligned 112x112 images as they are, photos by their largest face (found by
        the detector, or aligned from --landmarks). Prints the cosine similarity and "same" or "different".
        Exit status: 0 same person, 1 different people, 2 error (including a photo with no face).

        options:
        \(commonModelHelp)
          --threshold T    cosine similarity at or above which the faces match (default \(FaceModel.defaultThreshold),
                           insightface's squared-distance threshold 1.24 on unit vectors)
          --json           print {"similarity": ..., "threshold": ..., "same": ...}
          -h, --help       show this help
        """

    static func compare(_ argv: [String]) throws -> Int32 {
        let a = try Arguments(
            argv, valued: detectionOptionNames.union(["--model", "--threads", "--threshold", "--landmarks"]),
            flags: ["--bgr", "--json"])
        if a.flags.contains("--help") { print(compareUsage); return 0 }
        guard a.positional.count == 2 else { throw UsageError("compare takes exactly two images") }
        let threshold = try a.float("--threshold", default: FaceModel.defaultThreshold)
        let e = try embedImages(a, largestOnly: true).map(\.1)
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
               faceembed convert MODEL.onnx -o OUT.feb    (an ONNX recognition model, e.g. insightface's w600k_mbf.onnx,
                                                          or the SCRFD face detector scrfd_500m_bnkps.onnx)

        Converts an insightface MXNet model (MobileFaceNet or LResNet-IR of any depth) into a FaceEmbed weight
        file: batch norms folded, graph checked, every parameter's shape verified.

        options:
          -o, --output PATH   where to write the .feb file (required)
          --precision P       float32 (default) or int8: int8 weights (one scale per output channel) and 8-bit
                              activations for every convolution with groups = 1 and fully connected layer, run on
                              the integer kernels; depthwise convolutions stay float32
          -h, --help          show this help
        """

    static func convert(_ argv: [String]) throws -> Int32 {
        let a = try Arguments(argv, valued: ["--output", "--precision"], flags: [])
        if a.flags.contains("--help") { print(convertUsage); return 0 }
        guard let out = a.options["--output"] else { throw UsageError("-o OUT.feb is required") }
        guard let precision = ModelPrecision(rawValue: a.options["--precision"] ?? "float32") else {
            throw UsageError("--precision must be float32 or int8")
        }
        let s: ConversionSummary
        switch a.positional.count {
        case 1:
            s = try ModelConverter.convert(path: a.positional[0], to: out, precision: precision)
        case 2:
            var (symbol, params) = (a.positional[0], a.positional[1])
            if symbol.hasSuffix(".params") { swap(&symbol, &params) }
            s = try ModelConverter.convertMXNet(symbol: symbol, params: params, to: out, precision: precision)
        default:
            throw UsageError("give a model folder, an .onnx file, or SYMBOL.json and PARAMS")
        }
        let output = s.kind == .faceDetector ? "face detector" : "\(s.embeddingSize)-d embedding"
        let unit = s.kind == .faceDetector ? "640x640 input" : "image"
        print(
            "\(out): \(s.name) (\(s.kind)), \(output), \(s.layers) fused layers, \(s.precision), "
                + "\(s.parameters) weights, \(String(format: "%.3f", Double(s.multiplyAdds) * 2e-9)) GFLOP per \(unit)")
        return 0
    }

    static let alignUsage = """
        usage: faceembed align PHOTO [--landmarks x1,y1,...,x5,y5] [--all] -o FACE.ppm

        Cuts the 112x112 ArcFace crop out of a photo (PPM, JPEG or PNG) from five landmarks in photo pixels:
        left eye, right eye, nose tip, left and right mouth corners (as seen in the image), given with
        --landmarks or found by the detector (the largest face, or every face with --all). A least-squares
        similarity transform onto insightface's template, bilinear sampling, black outside the photo.

        options:
          --landmarks L       the ten numbers, comma-separated (default: detect the face)
          --all               one crop per face found: FACE-0.ppm, FACE-1.ppm, … (most confident first)
          --bgr               the photo stores pixels in BGR order (the crop is written in the same order)
          -o, --output PATH   where to write the crop, as binary PPM (required)
          --threads N         threads to use (default: all cores)
        \(detectionHelp)
          -h, --help          show this help
        """

    static func align(_ argv: [String]) throws -> Int32 {
        let a = try Arguments(
            argv, valued: detectionOptionNames.union(["--landmarks", "--output", "--threads"]),
            flags: ["--bgr", "--all"])
        if a.flags.contains("--help") { print(alignUsage); return 0 }
        guard a.positional.count == 1 else { throw UsageError("align takes one photo") }
        guard let out = a.options["--output"] else { throw UsageError("-o FACE.ppm is required") }
        let photo = try ImageDecoder.load(path: a.positional[0])
        if let landmarks = a.options["--landmarks"] {
            try writePPM(try photo.alignedFace(landmarks: FaceLandmarks(parsing: landmarks)), to: out)
            return 0
        }
        var finder = LazyDetector(a)
        var faces = try finder.faces(in: photo, file: a.positional[0], bgr: a.flags.contains("--bgr"))
        guard a.flags.contains("--all") else {
            let largest = faces.max { $1.isLarger(than: $0) }!
            try writePPM(try photo.alignedFace(landmarks: largest.landmarks), to: out)
            return 0
        }
        faces = faces.sorted { $0.score > $1.score }
        let ext = (out as NSString).pathExtension, stem = (out as NSString).deletingPathExtension
        for (i, face) in faces.enumerated() {
            let path = "\(stem)-\(i)" + (ext.isEmpty ? "" : ".\(ext)")
            try writePPM(try photo.alignedFace(landmarks: face.landmarks), to: path)
            print(path)
        }
        return 0
    }

    static func writePPM(_ image: RGBImage, to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(PPM.encode(image))) else {
            throw FaceEmbedError.io(file: path, reason: "cannot write")
        }
    }

    static let infoUsage = """
        usage: faceembed info [--model PATH | MODEL.feb]

        Describes a FaceEmbed weight file: family, embedding size, weights, cost per image.
        """

    static func info(_ argv: [String]) throws -> Int32 {
        let a = try Arguments(argv, valued: ["--model"], flags: [])
        if a.flags.contains("--help") { print(infoUsage); return 0 }
        let path = try ModelLookup.path(a.positional.first ?? a.options["--model"])
        if DetectorLookup.isDetectorFile(path) { return try detectorInfo(path) }
        let m = try FaceModel(contentsOf: path)
        print(
            """
            file:        \(m.path)
            model:       \(m.name) (\(m.kind))
            embedding:   \(m.embeddingSize) floats
            input:       3x112x112, \(m.channelOrder == .rgb ? "RGB" : "BGR") (any pixel order accepted by the library)
            weights:     \(m.parameterCount) (\(String(format: "%.3f", Double(m.parameterCount) / 1e6)) M after folding)
            precision:   \(m.precision == .int8 ? "int8 (int8 weights and 8-bit activations; depthwise and other grouped layers float32)" : "float32")
            cost:        \(String(format: "%.3f", Double(m.multiplyAdds) * 2e-9)) GFLOP per image
            """)
        return 0
    }

    static func detectorInfo(_ path: String) throws -> Int32 {
        let d = try FaceDetector(contentsOf: path)
        print(
            """
            file:        \(d.path)
            model:       \(d.name) (\(ModelKind.faceDetector))
            input:       3xHxW, H and W multiples of 32 (default 640x640), RGB, (x - 127.5) / 128
            outputs:     scores, boxes and five landmarks at strides 8, 16, 32, two anchors per location
            weights:     \(d.parameterCount) (\(String(format: "%.3f", Double(d.parameterCount) / 1e6)) M after folding)
            cost:        \(String(format: "%.3f", Double(try d.multiplyAdds(height: 640, width: 640)) * 2e-9)) GFLOP at 640x640
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
