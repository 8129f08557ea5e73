// Bounded selection for top-k search: a binary heap of k entries whose root is the worst kept, so a new entry costs
// one comparison against the root unless it belongs in the top k (then O(log k)).

/// The k best (similarity, index) pairs offered: higher similarity first, then the lower index.
struct TopK {
    private(set) var heap: [(score: Float, index: Int)] = []
    let k: Int

    init(k: Int) {
        self.k = k
        heap.reserveCapacity(k)
    }

    /// True when `a` ranks below `b`.
    @inline(__always)
    static func worse(_ a: (score: Float, index: Int), _ b: (score: Float, index: Int)) -> Bool {
        a.score < b.score || (a.score == b.score && a.index > b.index)
    }

    /// Offers a row.
    @inline(__always)
    mutating func insert(_ score: Float, _ index: Int) {
        if heap.count < k {
            heap.append((score, index))
            siftUp(heap.count - 1)
        } else if k > 0, TopK.worse(heap[0], (score, index)) {
            heap[0] = (score, index)
            siftDown(0)
        }
    }

    /// The kept pairs, best first.
    func sorted() -> [(score: Float, index: Int)] { heap.sorted { TopK.worse($1, $0) } }

    private mutating func siftUp(_ start: Int) {
        var i = start
        while i > 0 {
            let parent = (i - 1) / 2
            guard TopK.worse(heap[i], heap[parent]) else { return }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count, TopK.worse(heap[l], heap[m]) { m = l }
            if r < heap.count, TopK.worse(heap[r], heap[m]) { m = r }
            if m == i { return }
            heap.swapAt(i, m)
            i = m
        }
    }
}

/// The k largest floats offered (a min-heap); `threshold` is the k-th largest, or -infinity while fewer than k.
struct LowerBounds {
    private var heap: [Float] = []
    let k: Int
    private(set) var threshold = -Float.infinity

    init(k: Int) {
        self.k = k
        heap.reserveCapacity(k)
    }

    var values: [Float] { heap }

    @inline(__always)
    mutating func insert(_ x: Float) {
        if heap.count < k {
            heap.append(x)
            var i = heap.count - 1
            while i > 0, heap[i] < heap[(i - 1) / 2] {
                heap.swapAt(i, (i - 1) / 2)
                i = (i - 1) / 2
            }
        } else if x > heap[0] {
            heap[0] = x
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < k, heap[l] < heap[m] { m = l }
                if r < k, heap[r] < heap[m] { m = r }
                if m == i { break }
                heap.swapAt(i, m)
                i = m
            }
        }
        if heap.count == k { threshold = heap[0] }
    }
}
