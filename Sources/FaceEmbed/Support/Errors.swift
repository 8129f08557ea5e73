/// Every failure FaceEmbed reports. Each case names the file (or `nil` for in-memory data) and what is wrong.
///
/// The library never traps on data that came from a file: malformed images, weight files and graphs all end here.
public enum FaceEmbedError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A file could not be opened, read, mapped or written.
    case io(file: String?, reason: String)
    /// An image file or pixel buffer is malformed, truncated, or of an unsupported kind or size.
    case invalidImage(file: String?, reason: String)
    /// A weight file (MXNet `.params`, FaceEmbed flat file, ONNX) is malformed, truncated or inconsistent.
    case invalidWeights(file: String?, reason: String)
    /// A graph (MXNet symbol, ONNX graph) is malformed or not a model FaceEmbed knows.
    case unsupportedModel(file: String?, reason: String)
    /// An argument given by the caller is out of range or inconsistent (wrong embedding size, bad landmarks, …).
    case invalidArgument(String)

    /// One line: the file, then what is wrong.
    public var description: String {
        func at(_ file: String?) -> String { file.map { "\($0): " } ?? "" }
        switch self {
        case let .io(file, reason): return "\(at(file))\(reason)"
        case let .invalidImage(file, reason): return "\(at(file))invalid image: \(reason)"
        case let .invalidWeights(file, reason): return "\(at(file))invalid weights: \(reason)"
        case let .unsupportedModel(file, reason): return "\(at(file))unsupported model: \(reason)"
        case let .invalidArgument(reason): return reason
        }
    }

    /// The same error attributed to `file`, for parsers that work on bytes and do not know where they came from.
    public func attributed(to file: String) -> FaceEmbedError {
        switch self {
        case let .io(nil, r): return .io(file: file, reason: r)
        case let .invalidImage(nil, r): return .invalidImage(file: file, reason: r)
        case let .invalidWeights(nil, r): return .invalidWeights(file: file, reason: r)
        case let .unsupportedModel(nil, r): return .unsupportedModel(file: file, reason: r)
        default: return self
        }
    }
}
