import FaceEmbed
import Foundation

// Where the batch commands get their file names: a list file or standard input read line by line, the command
// line, or a folder walked in sorted order. Each yields one path at a time, so a list of any length costs constant
// memory.

/// A stream of file paths, read one at a time.
protocol PathSource: AnyObject {
    /// The next path, or nil at the end.
    func next() throws(FaceEmbedError) -> String?
}

/// Reads a file, or standard input for `-`, one line at a time through a fixed buffer.
final class LineReader {
    /// The file's name in errors (`standard input` for `-`).
    let name: String
    /// The number of the line `next` returned last, from 1.
    private(set) var lineNumber = 0
    private let fd: Int32
    private let maxLine: Int
    private var buffer = [UInt8](repeating: 0, count: 1 << 16)
    private var start = 0, end = 0, atEnd = false

    /// Opens `path` (`-`: standard input); a line longer than `maxLine` bytes is an error.
    init(path: String, maxLine: Int) throws(FaceEmbedError) {
        self.maxLine = maxLine
        if path == "-" {
            name = "standard input"
            fd = 0
            return
        }
        name = path
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw .io(file: path, reason: "is a folder, not a list file")
        }
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(file: path, reason: "cannot open: \(String(cString: strerror(errno)))") }
    }

    deinit { if fd > 0 { close(fd) } }

    /// The next line without its newline (a trailing carriage return is dropped too), or nil at the end.
    func next() throws(FaceEmbedError) -> [UInt8]? {
        var line: [UInt8] = []
        while true {
            if start == end {
                if atEnd { break }
                try refill()
                continue
            }
            let newline = buffer[start..<end].firstIndex(of: 0x0A)
            line += buffer[start..<(newline ?? end)]
            start = newline.map { $0 + 1 } ?? end
            guard line.count <= maxLine else {
                throw .io(file: name, reason: "line \(lineNumber + 1) is longer than \(maxLine) bytes")
            }
            if newline != nil { return finished(line) }
        }
        return line.isEmpty ? nil : finished(line)
    }

    private func finished(_ line: [UInt8]) -> [UInt8] {
        lineNumber += 1
        return line.last == 0x0D ? Array(line.dropLast()) : line
    }

    private func refill() throws(FaceEmbedError) {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n >= 0 else {
            if errno == EINTR { return }
            throw .io(file: name, reason: "read failed: \(String(cString: strerror(errno)))")
        }
        start = 0
        end = n
        atEnd = n == 0
    }
}

/// The paths of a list file, one a line; blank lines are skipped.
final class PathList: PathSource {
    private let reader: LineReader

    /// Reads the list at `path` (`-`: standard input).
    init(path: String) throws(FaceEmbedError) { reader = try LineReader(path: path, maxLine: 1 << 16) }

    func next() throws(FaceEmbedError) -> String? {
        while let line = try reader.next() {
            let path = String(decoding: line, as: UTF8.self)
            if !path.allSatisfy(\.isWhitespace) { return path }
        }
        return nil
    }
}

/// Paths given on the command line.
final class ArrayPaths: PathSource {
    private var rest: ArraySlice<String>

    init(_ paths: [String]) { rest = paths[...] }

    func next() throws(FaceEmbedError) -> String? { rest.popFirst() }
}

/// The image files (.jpg, .jpeg, .png, .ppm, any case) under a folder, depth first in sorted order, hidden files and
/// folders skipped; only one folder's listing per level is held at a time.
final class FolderWalk: PathSource {
    static let extensions: Set<String> = ["jpg", "jpeg", "png", "ppm"]
    static let maxDepth = 64
    /// The folder walked; paths are yielded as `root/relative`.
    let root: String
    private var stack: [(folder: String, entries: ArraySlice<String>)] = []

    init(root: String) throws(FaceEmbedError) {
        self.root = root
        stack = [(root, try FolderWalk.list(root)[...])]
    }

    /// `path` relative to the root.
    func relative(_ path: String) -> String {
        path.hasPrefix(root + "/") ? String(path.dropFirst(root.count + 1)) : path
    }

    func next() throws(FaceEmbedError) -> String? {
        while let top = stack.last {
            guard let name = stack[stack.count - 1].entries.popFirst() else {
                stack.removeLast()
                continue
            }
            let path = top.folder + "/" + name
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            if isDirectory.boolValue {
                guard stack.count < FolderWalk.maxDepth else {
                    throw .io(file: path, reason: "folders nested deeper than \(FolderWalk.maxDepth)")
                }
                stack.append((path, try FolderWalk.list(path)[...]))
            } else if FolderWalk.extensions.contains((name as NSString).pathExtension.lowercased()) {
                return path
            }
        }
        return nil
    }

    private static func list(_ folder: String) throws(FaceEmbedError) -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: folder).filter { !$0.hasPrefix(".") }.sorted()
        } catch {
            throw .io(file: folder, reason: "cannot list the folder")
        }
    }
}
