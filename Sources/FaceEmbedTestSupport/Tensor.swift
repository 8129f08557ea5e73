/// A dense float32 tensor in NCHW order (batch, channels, height, width), row-major.
///
/// This is the public currency of the kernels' reference implementations and of batch input. The network itself
/// runs on preplanned buffers and never allocates a `Tensor` per layer.
public struct Tensor: Sendable, Equatable {
    /// Batch size (N ≥ 1).
    public let n: Int
    /// Channels.
    public let c: Int
    /// Height.
    public let h: Int
    /// Width.
    public let w: Int
    /// `n * c * h * w` values; index `((n * C + c) * H + h) * W + w`.
    public var data: [Float]

    /// A tensor of zeros.
    public init(n: Int, c: Int, h: Int, w: Int) {
        precondition(n >= 0 && c >= 0 && h >= 0 && w >= 0, "negative tensor dimension")
        self.n = n; self.c = c; self.h = h; self.w = w
        data = [Float](repeating: 0, count: n * c * h * w)
    }

    /// A tensor wrapping `data`, whose count must be `n * c * h * w`.
    public init(n: Int, c: Int, h: Int, w: Int, data: [Float]) {
        precondition(data.count == n * c * h * w, "tensor data count \(data.count) != \(n)x\(c)x\(h)x\(w)")
        self.n = n; self.c = c; self.h = h; self.w = w
        self.data = data
    }

    /// Values per image (`c * h * w`).
    public var imageSize: Int { c * h * w }

    /// The value at (n, c, h, w).
    public subscript(n: Int, c: Int, h: Int, w: Int) -> Float {
        get { data[((n * self.c + c) * self.h + h) * self.w + w] }
        set { data[((n * self.c + c) * self.h + h) * self.w + w] = newValue }
    }
}
