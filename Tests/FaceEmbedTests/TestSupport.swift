import Foundation
import Testing

/// Where the tests find things: the project's root, `../shared`, and the ignored local fixture folder.
enum TestPaths {
    /// The package root (two levels above this file's folder).
    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// Committed fixtures made by `Tools/make_fixtures.py`.
    static let fixtures = root.appendingPathComponent("Tests/FaceEmbedTests/Fixtures")

    /// Files made on demand (PPM copies, Pillow decodes, the random r100 params): never committed.
    static let local = root.appendingPathComponent("Fixtures-local")

    /// `../shared`, or `FACEEMBED_SHARED` when set.
    static let shared: URL = {
        if let p = ProcessInfo.processInfo.environment["FACEEMBED_SHARED"] { return URL(fileURLWithPath: p) }
        return root.deletingLastPathComponent().appendingPathComponent("shared")
    }()

    /// True when CI demands that `../shared` and the generated local fixtures be present.
    static var required: Bool { ProcessInfo.processInfo.environment["FACEEMBED_REQUIRE_SHARED"] == "1" }

    /// The path of `relative` under `base` if it exists. If it does not, the test is failed when
    /// `FACEEMBED_REQUIRE_SHARED=1`, and otherwise skipped with `how` printed (returns nil).
    static func require(_ relative: String, in base: URL, how: String) -> String? {
        let path = base.appendingPathComponent(relative).path
        if FileManager.default.fileExists(atPath: path) { return path }
        if required {
            Issue.record("missing \(path) (FACEEMBED_REQUIRE_SHARED=1): \(how)")
        } else {
            print("skipped: \(path) is missing; \(how)")
        }
        return nil
    }

    /// A file under `../shared`.
    static func shared(_ relative: String) -> String? {
        require(relative, in: shared, how: "the shared data folder belongs at ../shared")
    }

    /// A file under `Fixtures-local`, made by `bash Tools/make_local_fixtures.sh`.
    static func local(_ relative: String) -> String? {
        require(relative, in: local, how: "run `bash Tools/make_local_fixtures.sh` to make it")
    }
}
