import FaceEmbed

// A small JSON reader for MXNet `model-symbol.json`: objects, arrays, strings, numbers, true/false/null.
// Bounded: nesting depth and string lengths are limited, and every byte access is checked, so a hostile file
// ends in an error, never a trap or a runaway allocation.

/// A parsed JSON value.
enum JSONValue: Equatable, Sendable {
    case object([(String, JSONValue)])
    case array([JSONValue])
    case string(String)
    case number(Double)
    case bool(Bool)
    case null

    static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case let (.array(x), .array(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.bool(x), .bool(y)): return x == y
        case (.null, .null): return true
        default: return false
        }
    }

    /// The member `key` of an object, or nil.
    subscript(key: String) -> JSONValue? {
        if case let .object(members) = self { return members.first { $0.0 == key }?.1 }
        return nil
    }

    /// The elements of an array, or nil.
    var array: [JSONValue]? { if case let .array(a) = self { return a }; return nil }
    /// The string, or nil.
    var string: String? { if case let .string(s) = self { return s }; return nil }
    /// The number as an exact integer, or nil.
    var int: Int? {
        if case let .number(d) = self, d.rounded() == d, abs(d) < 9e15 { return Int(d) }
        return nil
    }
}

/// Parses JSON text; errors say at which byte offset the text went wrong.
struct JSONParser {
    private let bytes: [UInt8]
    private var i = 0
    private let maxDepth = 64

    /// Parses `bytes` as one JSON document.
    static func parse(_ bytes: [UInt8]) throws(FaceEmbedError) -> JSONValue {
        var p = JSONParser(bytes: bytes)
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == bytes.count else { throw p.fail("trailing characters") }
        return v
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private func fail(_ what: String) -> FaceEmbedError {
        .unsupportedModel(file: nil, reason: "malformed JSON at byte \(i): \(what)")
    }

    private mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    private mutating func expect(_ literal: String) throws(FaceEmbedError) {
        for b in literal.utf8 {
            guard i < bytes.count, bytes[i] == b else { throw fail("expected \(literal)") }
            i += 1
        }
    }

    private mutating func value(depth: Int) throws(FaceEmbedError) -> JSONValue {
        guard depth < maxDepth else { throw fail("nesting deeper than \(maxDepth)") }
        skipSpace()
        guard i < bytes.count else { throw fail("unexpected end") }
        switch bytes[i] {
        case UInt8(ascii: "{"):
            var members: [(String, JSONValue)] = []
            try elements(until: "}", "object") { (p: inout JSONParser) throws(FaceEmbedError) in
                p.skipSpace()
                guard p.i < p.bytes.count, p.bytes[p.i] == UInt8(ascii: "\"") else { throw p.fail("expected a key") }
                let key = try p.string()
                p.skipSpace()
                try p.expect(":")
                members.append((key, try p.value(depth: depth + 1)))
            }
            return .object(members)
        case UInt8(ascii: "["):
            var items: [JSONValue] = []
            try elements(until: "]", "array") { (p: inout JSONParser) throws(FaceEmbedError) in
                items.append(try p.value(depth: depth + 1))
            }
            return .array(items)
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        default:
            return .number(try number())
        }
    }

    /// Reads the comma-separated elements of an object or array, each with `element`, from just after its opening
    /// bracket to just after the `close` one.
    private mutating func elements(
        until close: Unicode.Scalar, _ what: String,
        _ element: (inout JSONParser) throws(FaceEmbedError) -> Void
    ) throws(FaceEmbedError) {
        i += 1  // the opening bracket
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: close) { i += 1; return }
        while true {
            try element(&self)
            skipSpace()
            guard i < bytes.count else { throw fail("unterminated \(what)") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: close) { i += 1; return }
            throw fail("expected , or \(close)")
        }
    }

    private mutating func number() throws(FaceEmbedError) -> Double {
        let start = i
        while i < bytes.count, i - start < 64,
            (bytes[i] >= UInt8(ascii: "0") && bytes[i] <= UInt8(ascii: "9")) || bytes[i] == UInt8(ascii: "-")
                || bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: ".") || bytes[i] == UInt8(ascii: "e")
                || bytes[i] == UInt8(ascii: "E")
        { i += 1 }
        guard i > start, let d = Double(String(decoding: bytes[start..<i], as: UTF8.self)) else {
            throw fail("expected a value")
        }
        return d
    }

    private mutating func string() throws(FaceEmbedError) -> String {
        i += 1  // opening quote
        var out: [UInt8] = []
        while true {
            guard i < bytes.count else { throw fail("unterminated string") }
            let b = bytes[i]
            i += 1
            if b == UInt8(ascii: "\"") { break }
            if b != UInt8(ascii: "\\") { out.append(b); continue }
            guard i < bytes.count else { throw fail("unterminated escape") }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "u"):
                guard i + 4 <= bytes.count,
                    let code = UInt32(String(decoding: bytes[i..<i + 4], as: UTF8.self), radix: 16)
                else { throw fail("bad \\u escape") }
                i += 4
                out.append(contentsOf: Array(String(Unicode.Scalar(code).map { Character($0) } ?? "\u{FFFD}").utf8))
            default: out.append(e)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
