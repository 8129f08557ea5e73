import FaceEmbedTestSupport
import Foundation
import Testing

@testable import FaceEmbed
@testable import FaceEmbedEvaluation
@testable import FaceEmbedImport

// The faceembed executable as a user runs it: output, exit status (0 same / 1 different / 2 error), messages.

struct CLIResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// The `faceembed` built beside the test bundle.
func faceembedExecutable() -> String {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("faceembed").path), dir.path != "/" {
        dir = dir.deletingLastPathComponent()
    }
    return dir.appendingPathComponent("faceembed").path
}

/// Runs the `faceembed` built beside the test bundle.
func faceembed(_ args: [String], environment: [String: String] = [:]) throws -> CLIResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: faceembedExecutable())
    p.arguments = args
    p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out; p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return CLIResult(
        status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
        stderr: String(decoding: e, as: UTF8.self))
}

struct CLITests {
    static let tiny = TestPaths.fixtures.appendingPathComponent("tiny-mobilefacenet").path

    func tinyModel() throws -> String {
        _ = try TestModels.tiny("tiny-mobilefacenet")
        return TestModels.folder.appendingPathComponent("tiny-mobilefacenet.feb").path
    }

    @Test func helpOnEveryCommand() throws {
        let top = try faceembed(["--help"])
        #expect(top.status == 0 && top.stdout.contains("usage: faceembed"))
        for cmd in ["embed", "compare", "convert", "info", "compare-models"] {
            let r = try faceembed([cmd, "--help"])
            #expect(r.status == 0 && r.stdout.contains("usage: faceembed \(cmd)"), "\(cmd)")
        }
    }

    @Test func embedPrintsRawFc1AsTextAndJSON() throws {
        let model = try tinyModel()
        let expected = floatRows(try loadJSON(Self.tiny + "/expected.json")["fc1"])
        let text = try faceembed(["embed", "--model", model, Self.tiny + "/input0.ppm", Self.tiny + "/input1.ppm"])
        #expect(text.status == 0)
        let lines = text.stdout.split(separator: "\n")
        #expect(lines.count == 2)
        for (i, line) in lines.enumerated() {
            let values = line.split(separator: " ").dropFirst().map { Float($0)! }
            expectClose(values, expected[i], maxAbs: 1e-4, "embed text \(i)")
        }
        let json = try faceembed(["embed", "--json", "--model", model, Self.tiny + "/input0.ppm"])
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [[String: Any]]
        expectClose((parsed[0]["embedding"] as! [Double]).map(Float.init), expected[0], maxAbs: 1e-4, "embed json")
    }

    @Test func convertAndInfo() throws {
        let out = TestModels.folder.appendingPathComponent("cli-convert.feb").path
        let r = try faceembed([
            "convert", Self.tiny + "/model-symbol.json", Self.tiny + "/model-0000.ndarray", "-o", out,
        ])
        #expect(r.status == 0 && r.stdout.contains("MobileFaceNet"), "\(r.stderr)")
        let info = try faceembed(["info", out])
        #expect(info.status == 0 && info.stdout.contains("128 floats"))
    }

    @Test func convertToInt8AndCompareModels() throws {
        let out = TestModels.folder.appendingPathComponent("cli-convert-int8.feb").path
        let r = try faceembed([
            "convert", Self.tiny + "/model-symbol.json", Self.tiny + "/model-0000.ndarray", "-o", out, "--precision",
            "int8",
        ])
        #expect(r.status == 0 && r.stdout.contains("int8"), "\(r.stderr)")
        let info = try faceembed(["info", out])
        #expect(info.status == 0 && info.stdout.contains("precision:   int8"))
        let cosine = try faceembed([
            "compare-models", "--model", out, "--reference", try tinyModel(), "--images", Self.tiny, "--ext", "ppm",
        ])
        #expect(cosine.status == 0 && cosine.stdout.contains("images:      2"), "\(cosine.stderr)")
        let bad = try faceembed(["convert", Self.tiny, "-o", out, "--precision", "int4"])
        #expect(bad.status == 2 && bad.stderr.contains("--precision must be float32 or int8"))
    }

    @Test func errorsExitWithStatus2AndOneLineNamingTheFile() throws {
        let model = try tinyModel()
        let bad = TestModels.folder.appendingPathComponent("bad.ppm").path
        FileManager.default.createFile(atPath: bad, contents: Data("P6\n112 112\n255\nxyz".utf8))
        let cases: [([String], String)] = [
            (["embed", "--model", model, bad], bad),
            (["embed", "--model", model, "/nonexistent.ppm"], "/nonexistent.ppm"),
            (["embed", "--model", Self.tiny + "/input0.ppm", Self.tiny + "/input0.ppm"], "input0.ppm"),
            (["compare", "--model", model, Self.tiny + "/input0.ppm"], "exactly two"),
            (["embed", "--frobnicate"], "unknown option"),
            (["frobnicate"], "unknown command"),
            (
                ["convert", Self.tiny + "/expected.json", Self.tiny + "/model-0000.ndarray", "-o", "/tmp/x.feb"],
                "expected.json"
            ),
        ]
        for (args, mention) in cases {
            let r = try faceembed(args, environment: ["FACEEMBED_MODEL": ""])
            #expect(r.status == 2, "\(args)")
            #expect(
                r.stderr.hasPrefix("faceembed: ") && r.stderr.contains(mention)
                    && r.stderr.split(separator: "\n").count == 1,
                "\(args): \(r.stderr)")
        }
    }

    @Test func compareOnRealLFWPairsMatchesMXNet() throws {
        guard let symbol = TestPaths.shared("models/mobilefacenet-arcface/model-symbol.json"),
            let params = TestPaths.shared("models/mobilefacenet-arcface/model-0000.params"),
            TestPaths.local("lfw-ppm") != nil
        else { return }
        _ = try TestModels.load("y1", symbol: symbol, params: params)
        let model = TestModels.folder.appendingPathComponent("y1.feb").path
        let pairs =
            try loadJSON(TestPaths.fixtures.appendingPathComponent("y1-lfw.json").path)["pairs"] as! [[String: Any]]
        for pair in pairs {
            func ppm(_ k: String, _ folder: String) -> String {
                TestPaths.local.appendingPathComponent("\(folder)/\(String((pair[k] as! String).dropLast(4))).ppm").path
            }
            let mxnet = Float(pair["cosine"] as! Double), same = pair["same"] as! Bool
            for (folder, flags) in [("lfw-ppm", [String]()), ("lfw-ppm-bgr", ["--bgr"])] {
                let r = try faceembed(
                    ["compare", "--json", "--model", model] + flags + [ppm("a", folder), ppm("b", folder)])
                let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
                let sim = Float(j["similarity"] as! Double)
                #expect(abs(sim - mxnet) <= 1e-4, "\(pair) \(folder): FaceEmbed \(sim), MXNet \(mxnet)")
                #expect(r.status == (same ? 0 : 1) && (j["same"] as! Bool) == same)
                print(
                    "compare \(pair["a"]!) \(pair["b"]!) \(folder): FaceEmbed \(sim), MXNet \(mxnet), exit \(r.status)")
            }
        }
    }
}
