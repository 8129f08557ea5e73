import FaceEmbed

// Reader for MXNet `model-symbol.json`:
//   {"nodes": [{"op", "name", "attrs" | "attr" | "param": {k: "string"}, "inputs": [[node, output, version]]}],
//    "arg_nodes": [...], "heads": [[node, output, version]], "attrs": {...}}
// Parameters are nodes with op "null". All attribute values are strings ("(3, 3)", "True", "2e-05").

/// One node of an MXNet symbol graph.
struct SymbolNode: Sendable {
    /// The operator (`Convolution`, `BatchNorm`, …; `null` for data and parameters).
    var op: String
    /// The node's unique name.
    var name: String
    /// Attributes, all strings as MXNet writes them.
    var attrs: [String: String]
    /// Input node indices (the output slot is always 0 in these graphs).
    var inputs: [Int]
}

/// A parsed MXNet symbol file.
struct MXNetSymbol: Sendable {
    /// Nodes in file order, which is a topological order.
    var nodes: [SymbolNode]
    /// The output node index.
    var head: Int

    /// Parses `model-symbol.json` text.
    init(json bytes: [UInt8], file: String?) throws(FaceEmbedError) {
        func fail(_ s: String) -> FaceEmbedError { .unsupportedModel(file: file, reason: "MXNet symbol: \(s)") }
        let root: JSONValue
        do { root = try JSONParser.parse(bytes) } catch { throw error.attributed(to: file ?? "") }
        guard let list = root["nodes"]?.array else { throw fail("no \"nodes\" list") }
        guard list.count <= 1_000_000 else { throw fail("\(list.count) nodes") }
        var nodes: [SymbolNode] = []
        for (i, n) in list.enumerated() {
            guard let op = n["op"]?.string, let name = n["name"]?.string else {
                throw fail("node \(i) has no op or name")
            }
            var attrs: [String: String] = [:]
            // Older files spell "attrs" as "attr" or "param".
            for key in ["param", "attr", "attrs"] {
                if case let .object(members)? = n[key] {
                    for (k, v) in members { if let s = v.string { attrs[k] = s } }
                }
            }
            var inputs: [Int] = []
            for (j, e) in (n["inputs"]?.array ?? []).enumerated() {
                guard let ref = e.array, let idx = ref.first?.int, idx >= 0, idx < i else {
                    throw fail("node \(i) (\(name)) input \(j) does not refer to an earlier node")
                }
                if ref.count > 1, let slot = ref[1].int, slot != 0 {
                    throw fail(
                        "node \(i) (\(name)) uses output \(slot) of node \(idx); only single-output operators are supported"
                    )
                }
                inputs.append(idx)
            }
            nodes.append(SymbolNode(op: op, name: name, attrs: attrs, inputs: inputs))
        }
        guard let heads = root["heads"]?.array, heads.count == 1, let head = heads[0].array?.first?.int,
            head >= 0, head < nodes.count
        else { throw fail("expected exactly one head (the embedding)") }
        self.nodes = nodes
        self.head = head
    }
}

/// Typed access to MXNet's string attributes with their defaults.
extension SymbolNode {
    /// The longest numeric attribute accepted (MXNet writes at most about 25 characters).
    static let maxNumberLength = 64

    /// An integer tuple attribute such as `"(3, 3)"`; `default` when absent.
    func tuple(_ key: String, default def: [Int]) throws(FaceEmbedError) -> [Int] {
        guard let s = attrs[key] else { return def }
        guard s.utf8.count <= 256 else { throw bad(key, String(s.prefix(32)) + "…") }
        let inner = s.filter { $0 != "(" && $0 != ")" && $0 != "[" && $0 != "]" && $0 != " " }
        var out: [Int] = []
        for part in inner.split(separator: ",") {
            guard let v = Int(part) else { throw bad(key, s) }
            out.append(v)
        }
        if out.count == 1 && def.count == 2 { out.append(out[0]) }
        guard out.count == def.count || def.isEmpty else { throw bad(key, s) }
        return out
    }

    /// An integer attribute; `default` when absent.
    func int(_ key: String, default def: Int) throws(FaceEmbedError) -> Int {
        guard let s = attrs[key] else { return def }
        guard s.utf8.count <= Self.maxNumberLength else { throw bad(key, String(s.prefix(32)) + "…") }
        guard let v = Int(s.trimmingCharacters(in: " ")) else { throw bad(key, s) }
        return v
    }

    /// A float attribute; `default` when absent.
    func float(_ key: String, default def: Float) throws(FaceEmbedError) -> Float {
        guard let s = attrs[key] else { return def }
        // Bounded first, so a hostile attribute cannot hand strtof an arbitrarily long run of digits.
        guard s.utf8.count <= Self.maxNumberLength else { throw bad(key, String(s.prefix(32)) + "…") }
        guard let v = Float(s.trimmingCharacters(in: " ")) else { throw bad(key, s) }
        return v
    }

    /// A boolean attribute (`True`/`False`/`1`/`0`); `default` when absent.
    func bool(_ key: String, default def: Bool) throws(FaceEmbedError) -> Bool {
        guard let s = attrs[key] else { return def }
        switch s.lowercased() {
        case "true", "1": return true
        case "false", "0": return false
        default: throw bad(key, s)
        }
    }

    private func bad(_ key: String, _ value: String) -> FaceEmbedError {
        .unsupportedModel(file: nil, reason: "node \(name): attribute \(key)=\(value) is not understood")
    }
}

extension String {
    /// The string without leading and trailing occurrences of `c`.
    func trimmingCharacters(in c: Character) -> String {
        var s = Substring(self)
        while s.first == c { s = s.dropFirst() }
        while s.last == c { s = s.dropLast() }
        return String(s)
    }
}
