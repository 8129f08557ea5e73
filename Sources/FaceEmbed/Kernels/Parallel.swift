import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs `body(i)` for `i` in `0..<count` on up to `threads` threads (the calling thread included).
///
/// Uses `WorkerPool.shared`, whose workers spin for a short while after each job before they park, so a fork-join
/// costs well under a microsecond while a network runs (MobileFaceNet's layers take tens of microseconds; a
/// Dispatch worker costs 20–40 µs to join). If the pool is busy with another caller's job, runs through Dispatch.
@inline(__always)
func parallelFor(_ count: Int, threads: Int, _ body: (Int) -> Void) {
    if threads <= 1 || count <= 1 {
        for i in 0..<count { body(i) }
        return
    }
    withoutActuallyEscaping(body) { body in
        // The kernels hand each index a disjoint part of the output: sharing the closure is safe.
        nonisolated(unsafe) let shared = body
        if !WorkerPool.shared.run(count, shared) {
            DispatchQueue.concurrentPerform(iterations: count) { shared($0) }
        }
    }
}

/// Splits `0..<count` into `parts` contiguous ranges of nearly equal size and returns range `index`.
@inline(__always)
func chunk(_ count: Int, parts: Int, index: Int) -> Range<Int> {
    let lo = count * index / parts, hi = count * (index + 1) / parts
    return lo..<hi
}

/// A fork-join pool of `processors - 1` threads that keep warm between jobs.
///
/// One job at a time. A job is published in `ticket`, a 64-bit word holding a generation (24 bits), the item
/// count (20 bits) and the next unclaimed item (20 bits); threads claim items with compare-exchange, so a thread
/// that still holds an old ticket can never claim an item of a newer job. `job` is read only by a thread that has
/// just claimed an item, while the submitter is still waiting for that item to complete, so it is stable then.
/// Idle workers spin on `ticket` for about 100 µs, then park on their semaphore.
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool(workers: ProcessInfoLite.activeProcessorCount - 1)

    private let ticket = Atomic<Int>(0)
    private let completed = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    /// Per worker: its parking flag (1 while parked or about to park) and semaphore.
    private let slots: [WorkerSlot]
    private nonisolated(unsafe) var job: ((Int) -> Void)?
    private var generation = 0
    let workers: Int

    private static let indexBits = 20, countBits = 20
    private static let indexMask = (1 << indexBits) - 1
    private static let spinLimit = 40_000

    private init(workers: Int) {
        self.workers = max(0, workers)
        slots = (0..<self.workers).map { _ in WorkerSlot() }
        for w in 0..<self.workers { startThread(w) }
    }

    private func startThread(_ w: Int) {
        let box = Unmanaged.passRetained(WorkerStart(pool: self, index: w)).toOpaque()
        #if canImport(Darwin)
        var thread: pthread_t?
        #else
        var thread = pthread_t()
        #endif
        let rc = pthread_create(
            &thread, nil,
            { arg in
                let start = Unmanaged<WorkerStart>.fromOpaque(arg!).takeRetainedValue()
                start.pool.workerLoop(start.index)
                return nil
            }, box)
        if rc == 0 {
            #if canImport(Darwin)
            pthread_detach(thread!)
            #else
            pthread_detach(thread)
            #endif
        } else {
            Unmanaged<WorkerStart>.fromOpaque(box).release()
        }
    }

    /// Runs `body` over `0..<count` with the pool's workers and the caller; false if the pool is busy or too small.
    func run(_ count: Int, _ body: @escaping (Int) -> Void) -> Bool {
        guard workers > 0, count < 1 << WorkerPool.indexBits,
            busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
        else { return false }
        job = body
        completed.store(0, ordering: .relaxed)
        generation = (generation + 1) & ((1 << 24) - 1)
        let t = generation << (WorkerPool.indexBits + WorkerPool.countBits) | count << WorkerPool.indexBits
        ticket.store(t, ordering: .releasing)
        for s in slots where s.parked.exchange(0, ordering: .sequentiallyConsistent) == 1 { s.wake.signal() }
        claim()
        var spins = 0
        while completed.load(ordering: .acquiring) < count {
            // On an oversubscribed machine the worker holding the last item may be descheduled: let it run.
            spins += 1
            if spins & 1023 == 0 { sched_yield() }
        }
        job = nil
        busy.store(false, ordering: .releasing)
        return true
    }

    /// Claims and runs items of the current job until none is left.
    @inline(__always)
    private func claim() {
        var t = ticket.load(ordering: .acquiring)
        while true {
            let index = t & WorkerPool.indexMask
            let count = (t >> WorkerPool.indexBits) & ((1 << WorkerPool.countBits) - 1)
            if index >= count { return }
            let (done, now) = ticket.compareExchange(expected: t, desired: t + 1, ordering: .acquiringAndReleasing)
            if done {
                job!(index)
                completed.add(1, ordering: .releasing)
                t = ticket.load(ordering: .acquiring)
            } else {
                t = now
            }
        }
    }

    private func workerLoop(_ w: Int) {
        Denormals.flushOnThisThread()
        let slot = slots[w]
        var seen = ticket.load(ordering: .acquiring)
        while true {
            var spins = 0
            while ticket.load(ordering: .relaxed) == seen {
                spins += 1
                if spins & 1023 == 0 { sched_yield() }
                if spins >= WorkerPool.spinLimit {
                    slot.parked.store(1, ordering: .sequentiallyConsistent)
                    if ticket.load(ordering: .sequentiallyConsistent) == seen {
                        slot.wake.wait()
                    } else if slot.parked.exchange(0, ordering: .sequentiallyConsistent) == 0 {
                        slot.wake.wait()  // the submitter saw us parked and signalled: take that signal
                    }
                    spins = 0
                }
            }
            claim()
            seen = ticket.load(ordering: .acquiring)
        }
    }
}

private final class WorkerSlot: Sendable {
    let parked = Atomic<Int>(0)
    let wake = DispatchSemaphore(value: 0)
}

private final class WorkerStart {
    let pool: WorkerPool
    let index: Int
    init(pool: WorkerPool, index: Int) { self.pool = pool; self.index = index }
}
