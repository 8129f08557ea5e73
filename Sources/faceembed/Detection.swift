import FaceEmbed
import Foundation

// What the commands share for photos: finding the detector file, the detection options, and turning each image
// argument into the faces to embed: an aligned 112x112 image as it is, a photo with --landmarks aligned from them,
// any other photo through the detector (every face, or the largest).

/// Where the CLI looks for a detector when `--detector` is not given.
enum DetectorLookup {
    static let candidates = ["Models/scrfd_500m_bnkps.feb", "Models/detector.feb"]

    static func path(_ explicit: String?) throws -> String {
        if let explicit { return explicit }
        if let env = ProcessInfo.processInfo.environment["FACEEMBED_DETECTOR"], !env.isEmpty { return env }
        for c in candidates where FileManager.default.fileExists(atPath: c) { return c }
        throw FaceEmbedError.io(
            file: nil,
            reason:
                "no face detector to find faces in a photo: pass --detector PATH, set FACEEMBED_DETECTOR, or put one at \(candidates.joined(separator: " or ")) (bash Models/fetch_default_model.sh makes it), or give --landmarks"
        )
    }

    /// Whether the file at `path` is a FaceEmbed detector file (its header's magic and model kind).
    static func isDetectorFile(_ path: String) -> Bool {
        guard let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        guard let head = try? h.read(upToCount: 20), head.count == 20 else { return false }
        let bytes = [UInt8](head)
        let kind = UInt32(bytes[16]) | UInt32(bytes[17]) << 8 | UInt32(bytes[18]) << 16 | UInt32(bytes[19]) << 24
        return bytes.prefix(7).elementsEqual("FACEEMB".utf8) && kind == ModelKind.faceDetector.rawValue
    }
}

/// One face to embed: an aligned image, or a photo with the landmarks to align it by (given or detected).
struct FaceInput {
    let file: String
    let image: RGBImage
    let landmarks: FaceLandmarks?
    /// The detection that found it, with its index among the photo's faces.
    let detected: (index: Int, face: DetectedFace)?
}

extension Commands {
    static let detectionHelp = """
          --detector PATH  face detector for photos (default: $FACEEMBED_DETECTOR, then \(DetectorLookup.candidates.joined(separator: ", ")))
          --det-size S     detector input, WxH or N for NxN, multiples of 32 (default 640)
          --det-threshold T  lowest face score kept, in (0, 1] (default 0.5)
          --max-faces N    at most N faces per photo, largest and most central first (default 0: all)
        """
    static let detectionOptionNames: Set<String> = ["--detector", "--det-size", "--det-threshold", "--max-faces"]

    /// Every face in `image`; with `bgr`, the file's bytes are read as BGR through a pixel-buffer view (no copy).
    static func faces(in image: RGBImage, bgr: Bool, detector: FaceDetector, options: DetectionOptions) throws
        -> [DetectedFace]
    {
        guard bgr else { return try detector.faces(in: image, options: options) }
        return try image.pixels.withUnsafeBufferPointer {
            try detector.faces(
                in: PixelBuffer($0, width: image.width, height: image.height, format: .bgr), options: options)
        }
    }

    static func detector(path: String, _ a: Arguments) throws -> FaceDetector {
        let threads = try a.int("--threads", default: 0, in: 0...256)
        return try FaceDetector(contentsOf: path, threads: threads == 0 ? nil : threads)
    }

    /// --det-size as (width, height), each side a multiple of 32 in `DetectionOptions.inputSides`.
    static func detectionSize(_ a: Arguments) throws -> (Int, Int) {
        guard let s = a.options["--det-size"] else { return (640, 640) }
        let parts = s.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
        let sides = DetectionOptions.inputSides
        guard (1...2).contains(parts.count), let w = parts[0], let h = parts.last!,
            [w, h].allSatisfy({ sides.contains($0) && $0 % 32 == 0 })
        else {
            throw UsageError(
                "--det-size must be N or WxH, multiples of 32 in \(sides.lowerBound)...\(sides.upperBound), got \(s)")
        }
        return (w, h)
    }

    /// The detection options; each value out of range is a usage error naming its option.
    static func detectionOptions(_ a: Arguments) throws -> DetectionOptions {
        let (w, h) = try detectionSize(a)
        let threshold = try a.float("--det-threshold", default: 0.5)
        guard threshold > 0, threshold <= 1 else {
            throw UsageError("--det-threshold must lie in (0, 1], got \(threshold)")
        }
        let options = DetectionOptions(
            inputWidth: w, inputHeight: h, scoreThreshold: threshold,
            maxFaces: try a.int("--max-faces", default: 0, in: 0...100_000))
        try options.validate()
        return options
    }

    /// The faces of the command's image arguments: every face of each photo (`largestOnly` false) or its largest.
    static func faceInputs(_ a: Arguments, largestOnly: Bool) throws -> [FaceInput] {
        let landmarks = a.repeated["--landmarks"] ?? []
        guard landmarks.isEmpty || landmarks.count == a.positional.count else {
            throw UsageError(
                "give --landmarks once per image (\(a.positional.count) images, \(landmarks.count) landmark sets)")
        }
        var finder = LazyDetector(a)
        var inputs: [FaceInput] = []
        for (i, path) in a.positional.enumerated() {
            let img = try ImageDecoder.load(path: path)
            if !landmarks.isEmpty {
                inputs.append(
                    FaceInput(
                        file: path, image: img, landmarks: try FaceLandmarks(parsing: landmarks[i]), detected: nil))
            } else if img.width == FaceModel.inputSize, img.height == FaceModel.inputSize {
                inputs.append(FaceInput(file: path, image: img, landmarks: nil, detected: nil))
            } else {
                var faces = Array(try finder.faces(in: img, file: path, bgr: a.flags.contains("--bgr")).enumerated())
                if largestOnly { faces = [faces.max { $1.element.isLarger(than: $0.element) }!] }
                for (n, face) in faces {
                    inputs.append(FaceInput(file: path, image: img, landmarks: face.landmarks, detected: (n, face)))
                }
            }
        }
        return inputs
    }

    /// The embeddings of `inputs`, in order: one batch when all are aligned or all have landmarks.
    static func embeddings(_ m: FaceModel, _ inputs: [FaceInput], bgr: Bool) throws -> [Embedding] {
        let withLandmarks = inputs.compactMap(\.landmarks)
        if withLandmarks.isEmpty || withLandmarks.count == inputs.count {
            return try embeddings(m, inputs.map(\.image), landmarks: withLandmarks, bgr: bgr)
        }
        return try inputs.flatMap { f in
            try embeddings(m, [f.image], landmarks: f.landmarks.map { [$0] } ?? [], bgr: bgr)
        }
    }
}

/// The detector, loaded the first time a photo needs it (aligned faces and --landmarks need none).
struct LazyDetector {
    let arguments: Arguments
    private var loaded: (FaceDetector, DetectionOptions)?

    init(_ a: Arguments) { arguments = a }

    /// Every face in `image`, most confident first; "no face found" (naming `file`) when there is none.
    mutating func faces(in image: RGBImage, file: String, bgr: Bool) throws -> [DetectedFace] {
        if loaded == nil {
            let path = try DetectorLookup.path(arguments.options["--detector"])
            loaded = (try Commands.detector(path: path, arguments), try Commands.detectionOptions(arguments))
        }
        let (detector, options) = loaded!
        let faces = try Commands.faces(in: image, bgr: bgr, detector: detector, options: options)
        guard !faces.isEmpty else { throw FaceEmbedError.invalidImage(file: file, reason: "no face found") }
        return faces
    }
}
