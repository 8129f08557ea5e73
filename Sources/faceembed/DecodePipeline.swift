import FaceEmbed
import Foundation

// The producer side of the batch commands: decoder threads take paths from a `PathSource` one at a time, decode
// each file and find its faces (`FaceFinder`), and leave the result for the consumer, which takes them back in list
// order. A decoder does not start a file more than `ahead` files past the one the consumer waits for, so at most
// `ahead` decoded files (aligned crops, not photos) are held at once however long the list.

/// One listed file after decoding: its faces, or why it gave none.
struct DecodedFile: Sendable {
    let path: String
    let faces: Result<[FoundFace], FaceEmbedError>
}

/// Decodes files on background threads ahead of the caller and hands them back in list order.
final class DecodePipeline: @unchecked Sendable {
    // Every mutable field below is guarded by `condition`.
    private let condition = NSCondition()
    private let source: PathSource
    private let finder: any FaceFinder
    private let ahead: Int
    /// Files handed to decoders so far; the next file's position in the list.
    private var issued = 0
    /// Files handed back to the consumer so far.
    private var taken = 0
    private var ready: [Int: DecodedFile] = [:]
    /// The number of files in the list, once the source has ended (or failed).
    private var total: Int?
    private var failure: FaceEmbedError?

    /// Starts `decoders` threads reading `source`.
    init(source: PathSource, finder: any FaceFinder, decoders: Int, ahead: Int) {
        self.source = source
        self.finder = finder
        self.ahead = max(1, ahead)
        for _ in 0..<max(1, decoders) {
            let thread = Thread { [self] in decodeLoop() }
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    /// The next file in list order, or nil after the last; throws when the list itself cannot be read (after
    /// handing back every file before the fault).
    func next() throws(FaceEmbedError) -> DecodedFile? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let file = ready.removeValue(forKey: taken) {
                taken += 1
                condition.broadcast()
                return file
            }
            if let total, taken == total {
                if let failure { throw failure }
                return nil
            }
            condition.wait()
        }
    }

    private func decodeLoop() {
        condition.lock()
        while let (position, path) = claim() {
            condition.unlock()
            let faces: Result<[FoundFace], FaceEmbedError>
            do { faces = .success(try finder.faces(atPath: path)) } catch { faces = .failure(error) }
            condition.lock()
            ready[position] = DecodedFile(path: path, faces: faces)
            condition.broadcast()
        }
        condition.unlock()
    }

    /// The next path and its position, waiting while the decoders are `ahead` files in front of the consumer; nil
    /// at the end of the list. Called with the lock held.
    private func claim() -> (Int, String)? {
        while total == nil, issued - taken >= ahead { condition.wait() }
        guard total == nil else { return nil }
        do {
            if let path = try source.next() {
                issued += 1
                return (issued - 1, path)
            }
        } catch {
            failure = error
        }
        total = issued
        condition.broadcast()
        return nil
    }
}
