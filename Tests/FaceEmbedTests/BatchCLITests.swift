import Foundation
import Testing

@testable import FaceEmbed

// The batch commands as other programs drive them: `embed --files-from` (JSON Lines and .npy), `enroll`, `search`.
// The records must equal `embed --normalize` float for float, bad files must give error records and exit status 2,
// and hostile records must be refused naming their line.

/// Runs the `faceembed` built beside the test bundle with `input` on its standard input.
private func faceembed(_ args: [String], input: String) throws -> CLIResult {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("faceembed").path), dir.path != "/" {
        dir = dir.deletingLastPathComponent()
    }
    let p = Process()
    p.executableURL = dir.appendingPathComponent("faceembed")
    p.arguments = args
    let stdin = Pipe(), out = Pipe(), err = Pipe()
    p.standardInput = stdin
    p.standardOutput = out
    p.standardError = err
    try p.run()
    stdin.fileHandleForWriting.write(Data(input.utf8))
    try stdin.fileHandleForWriting.close()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return CLIResult(
        status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
        stderr: String(decoding: e, as: UTF8.self))
}

struct BatchCLITests {
    static let tinyFolder = TestPaths.fixtures.appendingPathComponent("tiny-mobilefacenet").path
    static let faces = [tinyFolder + "/input0.ppm", tinyFolder + "/input1.ppm"]

    /// A fresh scratch folder for one test.
    func scratch(_ name: String) throws -> URL {
        let u = TestModels.folder.appendingPathComponent("batch-\(name)")
        try? FileManager.default.removeItem(at: u)
        try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }

    func tinyModel() throws -> String {
        _ = try TestModels.tiny("tiny-mobilefacenet")
        return TestModels.folder.appendingPathComponent("tiny-mobilefacenet.feb").path
    }

    /// `list` written to a file in `folder`.
    func listFile(_ list: [String], in folder: URL) throws -> String {
        let path = folder.appendingPathComponent("list.txt").path
        try Data((list.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The floats of a JSON array as printed, read with Float(String) (so the comparison is of float32 values).
    func floats(_ line: Substring, after key: String) -> [Float] {
        let start = line.range(of: key)!.upperBound
        let end = line[start...].firstIndex(of: "]")!
        return line[start..<end].split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces))! }
    }

    /// `embed --json --normalize`'s embeddings of `images`, as printed.
    func embedNormalized(_ images: [String], model: String) throws -> [[Float]] {
        let r = try faceembed(["embed", "--json", "--normalize", "--model", model] + images)
        #expect(r.status == 0, "\(r.stderr)")
        return r.stdout.split(separator: "\n").filter { $0.contains("\"embedding\"") }.map {
            floats($0, after: "\"embedding\": [")
        }
    }

    @Test func recordsEqualEmbedNormalizedFloatForFloat() throws {
        let model = try tinyModel()
        let list = try listFile(Self.faces + [Self.faces[0]], in: try scratch("records"))
        let r = try faceembed(["embed", "--model", model, "--files-from", list])
        #expect(r.status == 0 && r.stderr.isEmpty, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        let expected = try embedNormalized(Self.faces, model: model)
        #expect(lines.count == 3)
        for (i, line) in lines.enumerated() {
            let path = Self.faces[i % 2]
            #expect(
                line.hasPrefix(
                    "{\"path\":\"\(path)\",\"face\":0,\"box\":null,\"score\":null,\"landmarks\":null,"
                        + "\"model\":\"MobileFaceNet\",\"dim\":128,\"embedding\":["), "\(line.prefix(200))")
            #expect(line.hasSuffix("]}"))
            #expect(floats(line, after: "\"embedding\":[") == expected[i % 2], "record \(i)")
            #expect(try JSONSerialization.jsonObject(with: Data(line.utf8)) is [String: Any])
        }
    }

    @Test func badFilesGiveErrorRecordsAndTheRunGoesOn() throws {
        let model = try tinyModel()
        let dir = try scratch("bad")
        let text = dir.appendingPathComponent("notes.jpg").path
        try Data("not an image\n".utf8).write(to: URL(fileURLWithPath: text))
        let jpeg = try Data(contentsOf: TestPaths.fixtures.appendingPathComponent("images/e_mixed.jpg"))
        let truncated = dir.appendingPathComponent("truncated.jpg").path
        try jpeg.prefix(jpeg.count / 2).write(to: URL(fileURLWithPath: truncated))
        let wrongSize = TestPaths.fixtures.appendingPathComponent("images/e_mixed.jpg").path
        let missing = dir.appendingPathComponent("missing.jpg").path
        let list = try listFile(
            ["", Self.faces[0], missing, "  ", text, truncated, "", wrongSize, Self.faces[1], ""], in: dir)
        let r = try faceembed(["embed", "--model", model, "--files-from", list])
        #expect(r.status == 2)
        #expect(r.stderr == "faceembed: 4 of 6 files failed\n", "\(r.stderr)")
        let records = r.stdout.split(separator: "\n").map {
            try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        let paths = [Self.faces[0], missing, text, truncated, wrongSize, Self.faces[1]]
        #expect(records.map { $0["path"] as? String } == paths)
        #expect(records[0]["embedding"] != nil && records[5]["embedding"] != nil)
        let errors = records[1...4].map { $0["error"] as? String ?? "" }
        for (error, path) in zip(errors, paths[1...4]) { #expect(error.hasPrefix(path + ": "), "\(error)") }
        #expect(errors[0].contains("no such file"))
        #expect(errors[1].contains("unknown image format"))
        #expect(errors[2].contains("invalid image"))
        // Without a detector the photo is not an aligned face; with one found in Models/, it has no face.
        #expect(
            errors[3].contains("not an aligned 112x112 face") || errors[3].contains("no face found"), "\(errors[3])")
    }

    @Test func filesFromStandardInput() throws {
        let model = try tinyModel()
        let r = try faceembed(
            ["embed", "--model", model, "--files-from", "-"], input: Self.faces.joined(separator: "\r\n"))
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines.map { floats($0, after: "\"embedding\":[") } == (try embedNormalized(Self.faces, model: model)))
    }

    @Test func npyMatrixAndIdsReadBackAsTheRecords() throws {
        let model = try tinyModel()
        let dir = try scratch("npy")
        let list = try listFile(Self.faces + [dir.appendingPathComponent("missing.ppm").path, Self.faces[1]], in: dir)
        let out = dir.appendingPathComponent("faces.npy").path
        let r = try faceembed(["embed", "--model", model, "--files-from", list, "--format", "npy", "-o", out])
        #expect(r.status == 2)
        #expect(r.stdout.contains("\"error\"") && r.stdout.split(separator: "\n").count == 1)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: out)))
        #expect(Array(bytes[0..<8]) == [0x93] + Array("NUMPY".utf8) + [1, 0])
        let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        #expect((10 + headerLength) % 64 == 0)
        let header = String(decoding: bytes[10..<10 + headerLength], as: UTF8.self)
        #expect(
            header.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 128), }") && header.last == "\n")
        let matrix = bytes[(10 + headerLength)...].withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        let expected = try embedNormalized(Self.faces, model: model)
        #expect(matrix == expected[0] + expected[1] + expected[1])
        let ids = try String(contentsOfFile: dir.appendingPathComponent("faces.ids.txt").path, encoding: .utf8)
        #expect(ids == "\(Self.faces[0])\t0\n\(Self.faces[1])\t0\n\(Self.faces[1])\t0\n")
    }

    @Test func enrolledFacesFindThemselvesAtRankOne() throws {
        let model = try tinyModel()
        let dir = try scratch("enroll")
        let folder = dir.appendingPathComponent("people")
        for (i, face) in Self.faces.enumerated() {
            let person = folder.appendingPathComponent("person\(i)")
            try FileManager.default.createDirectory(at: person, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: face, toPath: person.appendingPathComponent("face.ppm").path)
        }
        let fromFolder = dir.appendingPathComponent("folder.feg").path
        let e = try faceembed(["enroll", "--model", model, "--gallery", fromFolder, folder.path])
        #expect(e.status == 0 && e.stdout.contains("2 faces"), "\(e.stderr)")
        let s = try faceembed(["search", "--model", model, "--gallery", fromFolder, "--top", "2"] + Self.faces)
        #expect(s.status == 0, "\(s.stderr)")
        let lines = s.stdout.split(separator: "\n")
        #expect(lines.count == 6 && lines[0] == Self.faces[0] && lines[3] == Self.faces[1])
        #expect(lines[1].hasSuffix("  person0/face.ppm") && lines[4].hasSuffix("  person1/face.ppm"))
        for line in [lines[1], lines[4]] {
            #expect(Float(line.split(separator: " ", omittingEmptySubsequences: true)[1])! > 0.9999, "\(line)")
        }
    }

    @Test func enrollFromAFolderLeavesOutFilesThatFailAndSaysSo() throws {
        let model = try tinyModel()
        let folder = try scratch("folder-failures")
        try FileManager.default.createDirectory(
            at: folder.appendingPathComponent("b"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.faces[0], toPath: folder.appendingPathComponent("a.ppm").path)
        try Data("not an image".utf8).write(to: folder.appendingPathComponent("b/bad.jpg"))
        try Data("ignored: not an image name".utf8).write(to: folder.appendingPathComponent("notes.txt"))
        try FileManager.default.copyItem(
            atPath: Self.faces[1], toPath: folder.appendingPathComponent(".hidden.ppm").path)
        let gallery = TestModels.folder.appendingPathComponent("folder-failures.feg").path
        let r = try faceembed(["enroll", "--model", model, "--gallery", gallery, folder.path])
        #expect(r.status == 2 && r.stdout.contains("1 faces of 1 files"), "\(r.stdout)")
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 2 && lines[0].contains("b/bad.jpg") && lines[1] == "faceembed: 1 of 2 files failed")
        let g = try Gallery(contentsOf: gallery)
        #expect(g.count == 1 && g.id(at: 0) == "a.ppm" && !g.isQuantized)
    }

    @Test func enrollFromRecordsSkipsErrorRecordsAndSearchAnswersInJSON() throws {
        let model = try tinyModel()
        let dir = try scratch("records-enroll")
        let list = try listFile(Self.faces + ["/nonexistent/x.ppm"], in: dir)
        let records = try faceembed(["embed", "--model", model, "--files-from", list])
        #expect(records.status == 2)
        let gallery = dir.appendingPathComponent("g.feg").path
        for extra in [[], ["--int8"]] {
            let e = try faceembed(["enroll", "--gallery", gallery, "-"] + extra, input: records.stdout)
            #expect(e.status == 0 && e.stdout.contains("2 faces") && e.stdout.contains("1 error records"), "\(e)")
            #expect(try Gallery(contentsOf: gallery).isQuantized == !extra.isEmpty)
            let s = try faceembed(["search", "--json", "--model", model, "--gallery", gallery, "--files-from", list])
            #expect(s.status == 2 && s.stderr.contains("1 of 3 queries failed"), "\(s.stderr)")
            let answers = s.stdout.split(separator: "\n").map {
                try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
            }
            #expect(answers.count == 3 && answers[2]["error"] != nil)
            for (i, face) in Self.faces.enumerated() {
                let best = (answers[i]["matches"] as! [[String: Any]])[0]
                #expect(answers[i]["path"] as? String == face && best["id"] as? String == face)
                #expect((best["similarity"] as! Double) > 0.9999)
            }
        }
    }

    @Test func enrollRefusesMalformedRecordsNamingTheLine() throws {
        let model = try tinyModel()
        let good = try faceembed(["embed", "--model", model, "--files-from", "-"], input: Self.faces[0])
        let record = String(good.stdout.split(separator: "\n")[0])
        let gallery = try scratch("hostile").appendingPathComponent("g.feg").path
        let cases: [(String, String)] = [
            ("{\"path\":\"x.jpg\",\"embedding\":[1,2", "not a record"),
            ("[1, 2, 3]", "not a record"),
            ("{\"path\":\"x.jpg\",\"face\":0}", "no \"embedding\""),
            ("{\"path\":\"x.jpg\",\"embedding\":[1,\"a\"]}", "embedding[1]"),
            ("{\"path\":\"x.jpg\",\"dim\":3,\"embedding\":[1,0,0]}", "3 values, but the first record has 128"),
            ("{\"path\":\"x.jpg\",\"dim\":2,\"embedding\":[1,0,0]}", "\"dim\" is 2"),
            ("{\"path\":\"x.jpg\",\"model\":\"Other\",\"embedding\":[1,0,0]}", "model Other differs"),
            ("{\"path\":\"x.jpg\",\"face\":-1,\"embedding\":[1,0,0]}", "below 0"),
            ("{\"path\":\"x.jpg\",\"embedding\":[1e60]}", "not a record"),
        ]
        for (bad, mention) in cases {
            let r = try faceembed(["enroll", "--gallery", gallery, "-"], input: record + "\n\n" + bad + "\n")
            #expect(r.status == 2, "\(bad)")
            #expect(
                r.stderr.hasPrefix("faceembed: standard input line 3: ") && r.stderr.contains(mention), "\(r.stderr)")
            #expect(
                !FileManager.default.fileExists(atPath: gallery)
                    && !FileManager.default.fileExists(atPath: gallery + ".partial"))
        }
        let empty = try faceembed(["enroll", "--gallery", gallery, "-"], input: "{\"path\":\"a\",\"error\":\"x\"}\n")
        #expect(empty.status == 2 && empty.stderr.contains("no face record"), "\(empty.stderr)")
    }

    @Test func usageErrorsAndHelp() throws {
        for args in [["embed", "--files-from", "-", "--help"], ["enroll", "--help"], ["search", "--help"]] {
            let r = try faceembed(args)
            #expect(r.status == 0 && r.stdout.contains("usage: faceembed \(args[0])"), "\(args)")
        }
        let top = try faceembed(["--help"])
        #expect(top.stdout.contains("enroll") && top.stdout.contains("search"))
        let cases: [([String], String)] = [
            (["embed", "--files-from", "-", "x.jpg"], "not as arguments"),
            (["embed", "--files-from", "-", "--format", "csv"], "jsonl or npy"),
            (["embed", "--files-from", "-", "--format", "npy"], "needs -o"),
            (["embed", "--files-from", "/nonexistent/list.txt", "--model", try tinyModel()], "/nonexistent/list.txt"),
            (["enroll", "x.jsonl"], "--gallery"),
            (["search", "--gallery", "/nonexistent.feg", "--model", try tinyModel(), "a.ppm"], "/nonexistent.feg"),
            (["search", "--gallery", "g.feg"], "no query image"),
        ]
        for (args, mention) in cases {
            let r = try faceembed(args)
            #expect(
                r.status == 2 && r.stderr.contains(mention) && r.stderr.split(separator: "\n").count == 1,
                "\(args): \(r.stderr)")
        }
    }
}
