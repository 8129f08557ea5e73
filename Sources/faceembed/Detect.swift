import FaceEmbed
import Foundation

// `faceembed detect`: every face in each photo, with its box, score and five landmarks in photo pixels.

extension Commands {
    static let detectUsage = """
        usage: faceembed detect [options] PHOTO [PHOTO ...]

        Finds the faces in each photo (PPM, JPEG or PNG; EXIF orientation applied) with insightface's
        SCRFD detector, as insightface's SCRFD.detect does: box (x1 y1 x2 y2), score and five landmarks
        (left eye, right eye, nose, left and right mouth corners), in photo pixels, most confident first.
        A photo without a face prints "no face found" (JSON: an empty list) and is not an error.

        options:
        \(detectionHelp)
          --bgr            the photo files store pixels in BGR order
          --threads N      threads to use (default: all cores)
          --json           print one JSON object per photo: {"file", "width", "height", "faces": [...]}
          -h, --help       show this help
        """

    static func detect(_ argv: [String]) throws -> Int32 {
        let a = try Arguments(argv, valued: detectionOptionNames.union(["--threads"]), flags: ["--json", "--bgr"])
        if a.flags.contains("--help") { print(detectUsage); return 0 }
        guard !a.positional.isEmpty else { throw UsageError("no photo given") }
        let detector = try detector(path: try DetectorLookup.path(a.options["--detector"]), a)
        let options = try detectionOptions(a)
        for path in a.positional {
            let photo = try ImageDecoder.load(path: path)
            let faces = try faces(in: photo, bgr: a.flags.contains("--bgr"), detector: detector, options: options)
            if a.flags.contains("--json") {
                print(detectionJSON(path, photo, faces))
            } else {
                print(
                    "\(path): \(photo.width)x\(photo.height), \(faces.isEmpty ? "no face found" : "\(faces.count) face\(faces.count == 1 ? "" : "s")")"
                )
                for (i, f) in faces.enumerated() { print("  \(i) " + faceText(f)) }
            }
        }
        return 0
    }

    static func faceText(_ f: DetectedFace) -> String {
        let b = f.box
        let marks = f.landmarks.points.map { "\(format2($0.x)),\(format2($0.y))" }.joined(separator: " ")
        return
            "box \(format2(b.x1)) \(format2(b.y1)) \(format2(b.x2)) \(format2(b.y2))  score \(String(format: "%.4f", f.score))  landmarks \(marks)"
    }

    static func format2<T: BinaryFloatingPoint>(_ v: T) -> String { String(format: "%.2f", Double(v)) }

    static func detectionJSON(_ path: String, _ photo: RGBImage, _ faces: [DetectedFace]) -> String {
        let items = faces.map { f in
            let b = f.box
            let marks = f.landmarks.points.map { "[\(Float($0.x)), \(Float($0.y))]" }.joined(separator: ", ")
            return "{\"box\": [\(b.x1), \(b.y1), \(b.x2), \(b.y2)], \"score\": \(f.score), \"landmarks\": [\(marks)]}"
        }
        return "{\"file\": \(jsonString(path)), \"width\": \(photo.width), \"height\": \(photo.height), \"faces\": ["
            + items.joined(separator: ", ") + "]}"
    }
}
