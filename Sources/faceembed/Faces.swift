import FaceEmbed

// The per-file step of the batch commands (embed --files-from, enroll from a folder, search): the faces of one
// decoded image, each with its aligned 112x112 crop: `AlignedFaceFinder` without a detector, `DetectingFaceFinder`
// with one.

/// One face of an image, ready to embed.
struct FoundFace: Sendable {
    /// The face's index in its image, from 0.
    var index: Int
    /// Where a detector found it: box x1, y1, x2, y2 in image pixels; nil when the image was given aligned.
    var box: [Float]?
    /// The detector's confidence; nil when the image was given aligned.
    var score: Float?
    /// Five landmarks (left eye, right eye, nose, left and right mouth corners) in image pixels; nil when the image
    /// was given aligned.
    var landmarks: [SIMD2<Float>]?
    /// The aligned 112x112 crop the model embeds.
    var aligned: RGBImage
}

/// Finds the faces of one decoded image: zero or more, in a stable order (their indices).
protocol FaceFinder: Sendable {
    /// The faces of `image`, read from `file` (named in errors).
    func faces(in image: RGBImage, file: String) throws(FaceEmbedError) -> [FoundFace]
}

extension FaceFinder {
    /// Decodes the image at `path` and finds its faces.
    func faces(atPath path: String) throws(FaceEmbedError) -> [FoundFace] {
        try faces(in: try ImageDecoder.load(path: path), file: path)
    }
}

/// Takes an image that is exactly 112x112 as one aligned face (face 0); any other image is an error, since finding a
/// face in a photo needs landmarks or a detector.
struct AlignedFaceFinder: FaceFinder {
    func faces(in image: RGBImage, file: String) throws(FaceEmbedError) -> [FoundFace] {
        let s = FaceModel.inputSize
        guard image.width == s, image.height == s else {
            throw .invalidImage(
                file: file,
                reason: "\(image.width)x\(image.height) is not an aligned \(s)x\(s) face "
                    + "(a photo needs its face located first: landmarks or detection)")
        }
        return [FoundFace(index: 0, aligned: image)]
    }
}

/// Takes an image that is exactly 112x112 as one aligned face (face 0), and finds the faces of any other image with
/// the detector: every face, most confident first, aligned from its five landmarks. A photo without a face gives
/// none, which `EmbedPipeline` reports as the file's error ("no face found"), so that every file gives a record.
struct DetectingFaceFinder: FaceFinder {
    let detector: FaceDetector
    let options: DetectionOptions

    func faces(in image: RGBImage, file: String) throws(FaceEmbedError) -> [FoundFace] {
        let s = FaceModel.inputSize
        if image.width == s, image.height == s { return [FoundFace(index: 0, aligned: image)] }
        let found = try detector.faces(in: image, options: options)
        var faces: [FoundFace] = []
        for (i, f) in found.enumerated() {
            faces.append(
                FoundFace(
                    index: i, box: [f.box.x1, f.box.y1, f.box.x2, f.box.y2], score: f.score,
                    landmarks: f.landmarks.points.map { SIMD2(Float($0.x), Float($0.y)) },
                    aligned: try image.alignedFace(landmarks: f.landmarks)))
        }
        return faces
    }
}
