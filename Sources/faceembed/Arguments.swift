/// A minimal command-line parser: flags (`--json`), options with a value (`--model PATH` or `--model=PATH`) and
/// positional arguments. Unknown options are errors.
struct Arguments {
    private(set) var flags: Set<String> = []
    private(set) var options: [String: String] = [:]
    /// Every value of each valued option, in order (for options that may repeat, such as --landmarks).
    private(set) var repeated: [String: [String]] = [:]
    private(set) var positional: [String] = []

    /// Parses `args` given the option names that take a value and those that do not.
    init(_ args: [String], valued: Set<String>, flags known: Set<String>) throws(UsageError) {
        var i = 0
        while i < args.count {
            let a = args[i]
            i += 1
            if a == "--" { positional += args[i...]; break }
            guard a.hasPrefix("-"), a.count > 1, Double(a) == nil else { positional.append(a); continue }
            var name = a, value: String?
            if let eq = a.firstIndex(of: "=") { name = String(a[..<eq]); value = String(a[a.index(after: eq)...]) }
            if name == "-h" { name = "--help" }
            if name == "-o" { name = "--output" }
            if valued.contains(name) {
                if value == nil {
                    guard i < args.count else { throw UsageError("\(name) needs a value") }
                    value = args[i]; i += 1
                }
                options[name] = value
                repeated[name, default: []].append(value!)
            } else if known.contains(name) || name == "--help" {
                guard value == nil else { throw UsageError("\(name) takes no value") }
                flags.insert(name)
            } else {
                throw UsageError("unknown option \(a)")
            }
        }
    }

    /// An integer option within `range`, or `def` when absent.
    func int(_ name: String, default def: Int, in range: ClosedRange<Int>) throws(UsageError) -> Int {
        guard let s = options[name] else { return def }
        guard let v = Int(s), range.contains(v) else {
            throw UsageError("\(name) must be a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }

    /// A float option, or `def` when absent.
    func float(_ name: String, default def: Float) throws(UsageError) -> Float {
        guard let s = options[name] else { return def }
        guard let v = Float(s), v.isFinite else { throw UsageError("\(name) must be a number") }
        return v
    }
}

/// A mistake in how the command was called; printed with the command's usage.
struct UsageError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
