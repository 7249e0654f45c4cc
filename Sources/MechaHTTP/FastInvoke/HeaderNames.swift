/// Header-name checks for the fast path without lowercasing (no allocation, no hashing): names are
/// compared byte by byte, ASCII case-insensitively, against lowercase constants.
enum HeaderNames {
    /// True when `name` equals `lowercase` ignoring ASCII case (`lowercase` must be lowercase).
    @inline(__always)
    static func equals(_ name: String, _ lowercase: StaticString) -> Bool {
        let length = lowercase.utf8CodeUnitCount
        guard name.utf8.count == length else { return false }
        return self.matches(name, lowercase, length: length)
    }

    /// True when `name` starts with `lowercase` ignoring ASCII case.
    @inline(__always)
    static func hasPrefix(_ name: String, _ lowercase: StaticString) -> Bool {
        let length = lowercase.utf8CodeUnitCount
        guard name.utf8.count >= length else { return false }
        return self.matches(name, lowercase, length: length)
    }

    private static func matches(_ name: String, _ lowercase: StaticString, length: Int) -> Bool {
        let expected = lowercase.utf8Start
        var index = 0
        for byte in name.utf8 {
            if index == length { return true }
            let folded = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
            if folded != expected[index] { return false }
            index += 1
        }
        return index == length
    }

    /// Hop-by-hop headers (`HopByHop.names`), never forwarded.
    static func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: self.equals(name, "te")
        case 7: self.equals(name, "upgrade") || self.equals(name, "trailer")
        case 10: self.equals(name, "connection") || self.equals(name, "keep-alive")
        case 14: self.equals(name, "http2-settings")
        case 16: self.equals(name, "proxy-connection")
        case 17: self.equals(name, "transfer-encoding")
        case 18: self.equals(name, "proxy-authenticate")
        case 19: self.equals(name, "proxy-authorization")
        default: false
        }
    }

    /// Caller identity headers (`InvokeAPI.identityHeaders`), always set by the sidecar.
    static func isIdentity(_ name: String) -> Bool {
        switch name.utf8.count {
        case 18: self.equals(name, "dapr-caller-app-id") || self.equals(name, "dapr-callee-app-id")
        case 21: self.equals(name, "dapr-caller-namespace")
        default: false
        }
    }

    static func isInternal(_ name: String) -> Bool {
        self.hasPrefix(name, "x-mecha-")
    }
}
