import Dispatch
import FaceEmbedTestSupport
import Foundation
import Testing

@testable import FaceEmbed
@testable import FaceEmbedEvaluation
@testable import FaceEmbedImport

// One loaded FaceModel shared by many callers at once: 8 tasks and 8 threads embed over the committed tiny models,
// each result bit-identical to a serial run. Run under Thread Sanitizer with
//   swift test --sanitize=thread --scratch-path .build-tsan --filter Concurrency

/// Compiles only if `T` is Sendable.
private func requireSendable<T: Sendable>(_: T.Type) {}

/// Faces to embed: the committed inputs plus synthetic patterns (a different result for each).
private func faces(_ model: String) throws -> [RGBImage] {
    let dir = TestPaths.fixtures.appendingPathComponent(model)
    var out = try ["input0.ppm", "input1.ppm"].map { try ImageDecoder.load(path: dir.appendingPathComponent($0).path) }
    for k in 0..<1 {
        var p = [UInt8](repeating: 0, count: 112 * 112 * 3)
        for i in p.indices { p[i] = UInt8(truncatingIfNeeded: i &* (k + 3) &+ i / 336 &* (k + 1)) }
        out.append(try RGBImage(width: 112, height: 112, pixels: p))
    }
    return out
}

/// A mutable box for results written by several threads, each to its own slot.
private final class Slots<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [T?]
    init(_ n: Int) { items = Array(repeating: nil, count: n) }
    func set(_ i: Int, _ v: T) { lock.lock(); items[i] = v; lock.unlock() }
    var all: [T?] { lock.lock(); defer { lock.unlock() }; return items }
}

struct ConcurrencyTests {
    static let callers = 8
    static let rounds = 1

    @Test func modelAndResultsAreSendable() {
        requireSendable(FaceModel.self)
        requireSendable(Embedding.self)
        requireSendable(RGBImage.self)
        requireSendable(FaceEmbedError.self)
        requireSendable(FaceLandmarks.self)
        requireSendable(PixelFormat.self)
        requireSendable(LFWEvaluation.self)
    }

    // (Debug builds, and TSan builds even more, run the tiny models slowly: few faces, one round per caller.)
    @Test(arguments: [("tiny-mobilefacenet", 2), ("tiny-iresnet", 1)])
    func eightTasksMatchSerial(model name: String, threads: Int) async throws {
        let model = try TestModels.tiny(name, threads: threads)
        let input = try faces(name)
        let serial = try input.map { try model.embedding(for: $0) }
        #expect(Set(serial.map(\.values)).count == input.count, "every face gives its own embedding")
        let results = try await withThrowingTaskGroup(of: (Int, [Embedding]).self) { group in
            for caller in 0..<Self.callers {
                group.addTask {
                    var mine: [Embedding] = []
                    for round in 0..<Self.rounds {
                        // Each caller walks the faces from a different start, so different images overlap in time.
                        for j in 0..<input.count {
                            let i = (j + caller + round) % input.count
                            let e = try model.embedding(for: input[i])
                            mine.append(e)
                            #expect(e == serial[i], "caller \(caller) round \(round) face \(i)")
                        }
                    }
                    if caller % 2 == 1 { mine += try await model.embeddings(for: input) }  // the (async) batch path too
                    return (caller, mine)
                }
            }
            var all: [(Int, [Embedding])] = []
            for try await r in group { all.append(r) }
            return all
        }
        #expect(results.count == Self.callers)
        for (caller, embeddings) in results where caller % 2 == 1 {
            #expect(Array(embeddings.suffix(input.count)) == serial, "batch of caller \(caller)")
        }
    }

    @Test(arguments: ["tiny-iresnet"])
    func eightThreadsMatchSerial(model name: String) throws {
        let model = try TestModels.tiny(name, threads: 2)
        let input = try faces(name)
        let serial = try input.map { try model.embedding(for: $0) }
        let out = Slots<[Embedding]>(Self.callers)
        let failures = Slots<FaceEmbedError>(Self.callers)
        let threads = (0..<Self.callers).map { caller in
            Thread {
                do {
                    var mine: [Embedding] = []
                    for round in 0..<Self.rounds {
                        for j in 0..<input.count {
                            mine.append(try model.embedding(for: input[(j + caller + round) % input.count]))
                        }
                    }
                    out.set(caller, mine)
                } catch let e as FaceEmbedError {
                    failures.set(caller, e)
                } catch {}
            }
        }
        for thread in threads {
            thread.stackSize = 8 << 20; thread.start()
        }
        let deadline = Date().addingTimeInterval(300)
        while threads.contains(where: { !$0.isFinished }) && Date() < deadline { usleep(2000) }
        let finished = threads.filter { $0.isFinished }.count
        #expect(finished == Self.callers, "threads finished")
        let failed = failures.all.compactMap { $0 }
        #expect(failed.isEmpty)
        let all = out.all
        for (caller, mine) in all.enumerated() {
            guard let mine else { Issue.record("caller \(caller) has no results"); continue }
            for (k, e) in mine.enumerated() {
                let round = k / input.count, j = k % input.count
                #expect(e == serial[(j + caller + round) % input.count], "thread \(caller) call \(k)")
            }
        }
    }

    @Test func twoModelsSharedAcrossThreadsAtOnce() throws {
        // Different models (different pools and arenas) used from the same threads, interleaved.
        let a = try TestModels.tiny("tiny-mobilefacenet", threads: 2),
            b = try TestModels.tiny("tiny-iresnet", threads: 2)
        let fa = try faces("tiny-mobilefacenet"), fb = try faces("tiny-iresnet")
        let sa = try fa.map { try a.embedding(for: $0) }, sb = try fb.map { try b.embedding(for: $0) }
        let bad = Slots<String>(Self.callers)
        DispatchQueue.concurrentPerform(iterations: Self.callers) { caller in
            for i in 0..<fa.count {
                let (model, face, want) = caller % 2 == 0 ? (a, fa[i], sa[i]) : (b, fb[i], sb[i])
                if (try? model.embedding(for: face)) != want { bad.set(caller, "face \(i)") }
            }
        }
        let wrong = bad.all.compactMap { $0 }
        #expect(wrong.isEmpty, "\(wrong)")
    }
}
