// Shared by every fuzz target (compiled together with the library sources, so internal API is visible).
// Targets never trap on purpose: a FaceEmbedError is the expected outcome for almost every input; anything else
// (a trap, an out-of-bounds access under ASan, a leak, an allocation over -rss_limit_mb, a hang) is a finding.

#if canImport(Glibc)
import Glibc
#endif

enum FuzzSupport {
    /// The input as an array.
    static func bytes(_ data: UnsafePointer<UInt8>, _ size: Int) -> [UInt8] {
        Array(UnsafeBufferPointer(start: data, count: size))
    }

    /// A committed fixture, relative to the package root ($FACEEMBED_ROOT, default: the working directory).
    static func fixture(_ relative: String) -> [UInt8] {
        let root = getenv("FACEEMBED_ROOT").map { String(cString: $0) } ?? "."
        let path = root + "/Tests/FaceEmbedTests/Fixtures/" + relative
        do { return try readFile(path) } catch {
            print("fuzz target: cannot read fixture \(path): \(error)")
            exit(1)
        }
    }

    /// A per-process scratch file for targets that must go through a path (mapping a model).
    static let scratchPath: String = {
        let dir = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        return "\(dir)/faceembed-fuzz-\(getpid()).bin"
    }()

    /// Writes `bytes` to `scratchPath`.
    static func writeScratch(_ bytes: [UInt8]) -> Bool {
        guard let f = fopen(scratchPath, "wb") else { return false }
        defer { fclose(f) }
        return bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) } == bytes.count
    }

    /// A fixed aligned 112x112 face (a smooth gradient).
    static let face: RGBImage = {
        var p = [UInt8](repeating: 0, count: 112 * 112 * 3)
        for y in 0..<112 {
            for x in 0..<112 { for c in 0..<3 { p[(y * 112 + x) * 3 + c] = UInt8((x * 2 + y + c * 40) & 0xFF) } }
        }
        return try! RGBImage(width: 112, height: 112, pixels: p)
    }()
}
