#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Read-only access to a whole file: mapped where the platform allows (the weights are then shared with the page
// cache and read once), otherwise read into memory. The size is taken from `fstat` before mapping, and callers
// check every header against it, so nothing reads past the end (a mapped read past EOF is SIGBUS).
// The in-memory form copies a caller's bytes into an owned, cache-line aligned buffer, so that a model loaded from
// memory sees the same aligned weights as one mapped from a file.

/// The bytes of a file, mapped read-only or loaded, or a copy of bytes already in memory.
package final class MappedFile: @unchecked Sendable {
    /// The file's bytes. Valid for the object's lifetime; never written.
    package let bytes: UnsafeRawBufferPointer
    /// The path it was opened from, or `MappedFile.memory` for the in-memory form.
    package let path: String
    private let mapped: Bool

    /// Opens `path`; a directory, a missing or unreadable file is an `.io` error naming it, and so is anything
    /// that is not a regular file (a FIFO or a device such as /dev/zero), refused without blocking or reading it.
    package init(path: String) throws(FaceEmbedError) {
        self.path = path
        // O_NONBLOCK: opening a FIFO with no writer would otherwise block forever (no effect on regular files).
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw .io(file: path, reason: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw .io(file: path, reason: "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw .io(file: path, reason: "not a regular file") }
        let size = Int(st.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            mapped = false
            return
        }
        if let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED {
            bytes = UnsafeRawBufferPointer(start: p, count: size)
            mapped = true
            return
        }
        // No mapping: read the whole file.
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        var done = 0
        while done < size {
            let n = read(fd, buffer + done, size - done)
            if n <= 0 {
                buffer.deallocate()
                throw .io(file: path, reason: "read failed after \(done) of \(size) bytes")
            }
            done += n
        }
        bytes = UnsafeRawBufferPointer(start: buffer, count: size)
        mapped = false
    }

    /// What `path` says for bytes that came from memory rather than a file.
    package static let memory = "<memory>"

    /// An owned copy of `source`.
    package init(copying source: some Collection<UInt8>) {
        path = MappedFile.memory
        mapped = false
        let count = source.count
        guard count > 0 else { bytes = UnsafeRawBufferPointer(start: nil, count: 0); return }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 64)
        buffer.copyBytes(from: source)
        bytes = UnsafeRawBufferPointer(buffer)
    }

    deinit {
        guard let base = bytes.baseAddress else { return }
        if mapped { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) } else { base.deallocate() }
    }

    /// The file's bytes as an array (for small files such as images and symbol JSON).
    package var array: [UInt8] { [UInt8](bytes) }
}

/// Reads a whole file into an array, refusing one over `limit` bytes before anything is copied; errors name the file.
package func readFile(_ path: String, limit: Int = .max) throws(FaceEmbedError) -> [UInt8] {
    let file = try MappedFile(path: path)
    guard file.bytes.count <= limit else {
        throw .io(file: path, reason: "the file is \(file.bytes.count) bytes, more than the \(limit)-byte limit")
    }
    return file.array
}

/// True when something exists at `path` (following links).
package func fileExists(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0
}

/// True when `path` names a directory (following links); false when it is anything else or does not exist.
package func isDirectory(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
}
