import Dispatch

/// Runs `body(i)` for `i` in `0..<count` on up to `threads` threads (the calling thread included).
///
/// Small counts or one thread run inline: a Dispatch worker costs tens of microseconds to join, more than many
/// MobileFaceNet layers take in all.
@inline(__always)
func parallelFor(_ count: Int, threads: Int, _ body: (Int) -> Void) {
    if threads <= 1 || count <= 1 {
        for i in 0..<count { body(i) }
        return
    }
    withoutActuallyEscaping(body) { body in
        // The kernels hand each index a disjoint part of the output: sharing the closure is safe.
        nonisolated(unsafe) let shared = body
        DispatchQueue.concurrentPerform(iterations: count) { shared($0) }
    }
}

/// Splits `0..<count` into `parts` contiguous ranges of nearly equal size and returns range `index`.
@inline(__always)
func chunk(_ count: Int, parts: Int, index: Int) -> Range<Int> {
    let lo = count * index / parts, hi = count * (index + 1) / parts
    return lo..<hi
}
