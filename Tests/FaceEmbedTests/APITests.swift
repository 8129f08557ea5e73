import Foundation
import Testing

@testable import FaceEmbed
@testable import FaceEmbedEvaluation

// The public API a Swift caller uses, on the committed tiny models: align-and-embed in one call, batches of raw
// pixel buffers, a model from bytes in memory, distances between embeddings, and the cancellable async batch.
// Every shortcut must give exactly (bit for bit) what the longer way gives.

/// A synthetic photo (`width` × `height`, a different pattern per seed) and landmarks of a face inside it.
private func photo(width: Int = 173, height: Int = 149, seed: Int = 1) throws -> (RGBImage, FaceLandmarks) {
    var p = [UInt8](repeating: 0, count: width * height * 3)
    for i in p.indices { p[i] = UInt8(truncatingIfNeeded: (i &* (seed + 7)) ^ (i / (width * 3) &* 13) ^ (i >> 5)) }
    // The template, turned a little, scaled up and moved: a face about 1.3 times crop size in the photo.
    let angle = 0.1 * Double(seed), scale = 1.3, shift = SIMD2(Double(width) / 2 - 70, Double(height) / 2 - 75)
    let points = FaceLandmarks.arcFaceTemplate.map { q in
        SIMD2(cos(angle) * q.x - sin(angle) * q.y, sin(angle) * q.x + cos(angle) * q.y) * scale + shift
    }
    return (try RGBImage(width: width, height: height, pixels: p), try FaceLandmarks(points))
}

/// `image`'s pixels laid out in `format` with `pad` bytes after each row (each plane's row, for planar formats).
private func relayout(_ image: RGBImage, _ format: PixelFormat, pad: Int = 0) -> (bytes: [UInt8], rowStride: Int) {
    let w = image.width, h = image.height
    let stride = (format.planar ? w : w * format.channels) + pad
    var out = [UInt8](repeating: 0x5A, count: stride * h * (format.planar ? format.channels : 1))
    for y in 0..<h {
        for x in 0..<w {
            for (c, ch) in [format.red, format.green, format.blue].enumerated() {
                let o = format.planar ? ch * stride * h + y * stride + x : y * stride + x * format.channels + ch
                out[o] = image.pixels[(y * w + x) * 3 + c]
            }
        }
    }
    return (out, stride)
}

private let formats: [PixelFormat] = [.rgb, .bgr, .rgba, .bgra, .argb, .planarRGB, .planarBGR]

struct APITests {
    // MARK: align and embed

    @Test func alignAndEmbedEqualsAlignThenEmbed() throws {
        let model = try TestModels.tiny("tiny-mobilefacenet", threads: 2)
        let shots = try (1...3).map { try photo(seed: $0) }
        let expected = try shots.map { try model.embedding(for: $0.0.alignedFace(landmarks: $0.1)) }
        for (i, (image, landmarks)) in shots.enumerated() {
            #expect(try model.embedding(for: image, landmarks: landmarks) == expected[i], "photo \(i)")
        }
        #expect(try model.embeddings(for: shots.map(\.0), landmarks: shots.map(\.1)) == expected)
    }

    @Test func alignAndEmbedReadsEveryPixelFormat() throws {
        let model = try TestModels.tiny("tiny-iresnet", threads: 1)
        let (image, landmarks) = try photo(seed: 2)
        let expected = try model.embedding(for: image.alignedFace(landmarks: landmarks))
        for format in formats {
            for pad in [0, 7] {
                let (bytes, stride) = relayout(image, format, pad: pad)
                let e = try bytes.withUnsafeBufferPointer {
                    try model.embedding(
                        for: PixelBuffer(
                            $0, width: image.width, height: image.height, format: format,
                            rowStride: stride), landmarks: landmarks)
                }
                #expect(e == expected, "\(format) pad \(pad)")
            }
        }
    }

    @Test func alignAndEmbedRejectsMismatchedOrDegenerateLandmarks() throws {
        let model = try TestModels.tiny("tiny-mobilefacenet")
        let (image, landmarks) = try photo()
        expectError(
            thrown { try model.embeddings(for: [image, image], landmarks: [landmarks]) }, "invalidArgument",
            "one set of landmarks per photo", "2 photos, 1 sets")
        let point = try FaceLandmarks(Array(repeating: SIMD2(5, 5), count: 5))
        expectError(
            thrown { try model.embeddings(for: [image, image], landmarks: [landmarks, point]) }, "invalidArgument",
            "face 1: ", "coincide")
        expectError(thrown { try model.embedding(for: image, landmarks: point) }, "invalidArgument", "coincide")
    }

    // MARK: raw pixel buffers

    @Test func batchOfRawBuffersEqualsOneByOne() throws {
        let model = try TestModels.tiny("tiny-mobilefacenet", threads: 2)
        let faces = try (1...formats.count).map { try photo(seed: $0).0.alignedFace(landmarks: photo(seed: $0).1) }
        let layouts = zip(faces, formats).enumerated().map { i, f in relayout(f.0, f.1, pad: i % 2 == 0 ? 0 : 5) }
        let reference = try model.embeddings(for: faces)
        // One contiguous allocation holds every buffer, so that all of them are valid for the batch call.
        let all = layouts.flatMap(\.bytes)
        let batch = try all.withUnsafeBufferPointer { p throws(FaceEmbedError) in
            var start = 0
            let buffers = zip(layouts, formats).map { layout, format in
                defer { start += layout.bytes.count }
                return PixelBuffer(
                    UnsafeBufferPointer(rebasing: p[start..<start + layout.bytes.count]), width: 112, height: 112,
                    format: format, rowStride: layout.rowStride)
            }
            return try model.embeddings(for: buffers)
        }
        for (i, layout) in layouts.enumerated() {
            let one = try layout.bytes.withUnsafeBufferPointer {
                try model.embedding(
                    pixels: $0, width: 112, height: 112, format: formats[i], rowStride: layout.rowStride)
            }
            #expect(one == reference[i] && batch[i] == one, "\(formats[i])")
        }
    }

    @Test func badBufferInABatchIsNamed() throws {
        let model = try TestModels.tiny("tiny-mobilefacenet")
        let bytes = [UInt8](repeating: 0, count: 112 * 112 * 3)
        try bytes.withUnsafeBufferPointer { p throws(FaceEmbedError) in
            let good = PixelBuffer(p, width: 112, height: 112, format: .rgb)
            let short = PixelBuffer(UnsafeBufferPointer(rebasing: p[0..<1000]), width: 112, height: 112, format: .rgb)
            let wide = PixelBuffer(p, width: 113, height: 112, format: .rgb)
            expectError(thrown { try model.embeddings(for: [good, short]) }, "invalidImage", "face 1: ", "too small")
            expectError(thrown { try model.embeddings(for: [good, good, wide]) }, "invalidImage", "face 2 is 113x112")
            #expect(try model.embeddings(for: [PixelBuffer]()).isEmpty)
        }
    }

    // MARK: model from memory

    @Test func modelFromBytesEqualsModelFromFile() throws {
        let fromFile = try TestModels.tiny("tiny-iresnet", threads: 1)
        let bytes = try readFile(fromFile.path)
        let face = try ImageDecoder.load(
            path: TestPaths.fixtures.appendingPathComponent("tiny-iresnet/input0.ppm").path)
        // An array, and a slice that starts one byte in: the weights are copied to aligned memory either way.
        let shifted = [0] + bytes
        for model in [try FaceModel(bytes: bytes, threads: 1), try FaceModel(bytes: shifted[1...], threads: 1)] {
            #expect(
                model.path == "<memory>" && model.name == fromFile.name && model.embeddingSize == fromFile.embeddingSize
            )
            #expect(try model.embedding(for: face) == fromFile.embedding(for: face))
        }
    }

    @Test func badBytesAreInvalidWeightsNamingNoFile() throws {
        let bytes = try readFile(TestModels.tiny("tiny-mobilefacenet").path)
        for bad in [[], Array(bytes.prefix(40)), [UInt8](repeating: 7, count: 4096)] {
            do {
                _ = try FaceModel(bytes: bad)
                Issue.record("accepted \(bad.count) bad bytes")
            } catch {
                guard case .invalidWeights(nil, _) = error else { Issue.record("\(error)"); continue }
                #expect(error.attributed(to: "x.feb").description.hasPrefix("x.feb: invalid weights"))
            }
        }
    }

    // MARK: distances

    @Test func distanceIsThatOfTheUnitVectors() throws {
        let a = Embedding([3, 4]), b = Embedding([-4, 3]), c = Embedding([6, 8])
        #expect(a.squaredDistance(to: b) == 2 && a.distance(to: b) == Float(2).squareRoot())
        #expect(a.squaredDistance(to: c) == 0 && a.distance(to: c) == 0)
        #expect(a.squaredDistance(to: Embedding([-3, -4])) == 4 && a.distance(to: Embedding([-3, -4])) == 2)
        #expect(Embedding([0, 0]).squaredDistance(to: a) == 1, "an all-zero embedding stays at the origin")
        var rng = SeededRandom(seed: 5)
        for _ in 0..<50 {
            let x = Embedding(rng.floats(128)), y = Embedding(rng.floats(128))
            let d = x.squaredDistance(to: y), cosine = x.cosineSimilarity(to: y)
            #expect(abs(d - (2 - 2 * cosine)) < 1e-5)
            #expect(Double(d) == Double(Float(LFWProtocol.squaredDistance(x, y))), "the LFW protocol's distance")
        }
    }

    @Test func defaultThresholdIsInsightfaceSquaredDistance() {
        // Cosine 0.38 on unit vectors is squared distance 2 - 2 * 0.38 = 1.24, insightface's verification threshold.
        #expect(abs(2 - 2 * Double(FaceModel.defaultThreshold) - 1.24) < 1e-6)
    }

    // MARK: async

    @Test func asyncBatchEqualsSyncBatch() async throws {
        let model = try TestModels.tiny("tiny-mobilefacenet", threads: 2)
        let faces = try (1...3).map { try photo(seed: $0).0.alignedFace(landmarks: photo(seed: $0).1) }
        // (In an async context `embeddings(for:)` is the async call; one by one is the synchronous reference.)
        let expected = try faces.map { try model.embedding(for: $0) }
        #expect(try await model.embeddings(for: faces) == expected)
    }

    @Test func cancelledBatchThrowsCancellationError() async throws {
        let model = try TestModels.tiny("tiny-mobilefacenet", threads: 2)
        let faces = try (1...4).map { try photo(seed: $0).0.alignedFace(landmarks: photo(seed: $0).1) }
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await model.embeddings(for: faces)
        }
        await #expect(throws: CancellationError.self) { try await task.value }
    }

    @Test(arguments: [1, 2])
    func stopBetweenImagesSkipsTheRest(threads: Int) throws {
        // What cancellation does inside the batch: the flag is raised while the first image is read; no image is
        // started after a worker sees it, and the batch reports nil (the async call throws CancellationError).
        let model = try TestModels.tiny("tiny-mobilefacenet", threads: threads)
        let faces = try (1...8).map { try photo(seed: $0).0.alignedFace(landmarks: photo(seed: $0).1) }
        let stop = StopFlag()
        let source = CountingSource(faces: faces, stop: stop)
        #expect(model.embed(count: faces.count, crops: nil, stop: stop, source) == nil)
        #expect(source.reads < faces.count, "\(source.reads) of \(faces.count) images were read")
    }
}

/// Faces that raise `stop` when the first is read, and count the reads.
private final class CountingSource: FaceSource, @unchecked Sendable {
    let faces: [RGBImage]
    let stop: StopFlag
    private let lock = NSLock()
    private var count = 0

    init(faces: [RGBImage], stop: StopFlag) { self.faces = faces; self.stop = stop }

    var reads: Int { lock.withLock { count } }

    func withPixels<R>(_ i: Int, _ body: (CheckedPixels) -> R) -> R {
        lock.withLock { count += 1 }
        if i == 0 { stop.set() }
        return RGBSource(faces: faces).withPixels(i, body)
    }
}
