public import MechaCore

/// Why an invocation's method was refused (daprd's `NormalizeMethod` error text).
public struct InvalidInvocationMethod: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// The method path of a service invocation, normalized once for every surface: the HTTP API's
/// `/v1.0/invoke/<id>/method/<method>` and `dapr-app-id` forms and gRPC `InvokeService` alike,
/// so `../` can never climb out of the app's routes whichever way the call came in.
public enum InvocationMethod {

    /// daprd's `NormalizeMethod` on the decoded URL path (as Go's `r.URL.Path`): `#`, `?`, NUL and
    /// control bytes are refused, then `path.Clean`. The result is escaped again for the app's URL,
    /// so `%2F` reaches the app as `/`.
    public static func normalize(_ raw: String) -> Result<String, InvalidInvocationMethod> {
        if Self.isClean(raw) { return .success(raw) }
        let decoded = PercentDecoding.pathUnescape(raw) ?? raw
        let bytes = Array(decoded.utf8)
        func fail(_ reason: String) -> Result<String, InvalidInvocationMethod> {
            .failure(InvalidInvocationMethod(description: "rpc error: code = InvalidArgument desc = invalid method: \(reason)"))
        }
        if bytes.contains(where: { $0 == UInt8(ascii: "#") || $0 == UInt8(ascii: "?") || $0 == 0 }) {
            return fail("method contains forbidden character: \(GoQuote.strconv(decoded))")
        }
        if let index = bytes.firstIndex(where: { $0 < 0x20 || $0 == 0x7F }) {
            return fail("method contains control character at position \(index): \(GoQuote.strconv(decoded))")
        }
        return .success(Self.escapePath(Self.clean(decoded)))
    }

    /// True when decoding, `path.Clean` and escaping would all leave `method` unchanged: only
    /// characters `escapePath` keeps (no `%`), no empty, `.` or `..` segments, no slash at either end.
    public static func isClean(_ method: String) -> Bool {
        var segmentLength = 0
        var dots = 0
        for byte in method.utf8 {
            switch byte {
            case UInt8(ascii: "/"):
                if segmentLength == 0 || (segmentLength == dots && dots <= 2) { return false }
                segmentLength = 0
                dots = 0
                continue
            case UInt8(ascii: "."):
                dots += 1
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"),
                UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: ","), UInt8(ascii: ";"),
                UInt8(ascii: "="), UInt8(ascii: ":"), UInt8(ascii: "@"):
                break
            default:
                // `%` (decoding), `+` (kept by escaping but decoded as itself: safe, yet rare), and
                // everything escaping would change take the full path.
                return false
            }
            segmentLength += 1
        }
        return segmentLength > 0 && !(segmentLength == dots && dots <= 2)
    }

    /// Escapes a path as Go's `url.URL.EscapedPath` leaves a parsed one: unreserved characters and
    /// the sub-delimiters `!$&'()*+,;=:@/` stay, everything else is percent-encoded.
    public static func escapePath(_ path: String) -> String {
        let kept = Set("!$&'()*+,/:;=@-_.~".utf8)
        var output: [UInt8] = []
        let hex = Array("0123456789ABCDEF".utf8)
        for byte in path.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                output.append(byte)
            case _ where kept.contains(byte):
                output.append(byte)
            default:
                output += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// `path.Clean` on the method: dot segments resolved, no leading `../`, no leading slash.
    public static func clean(_ method: String) -> String {
        var output: [Substring] = []
        for segment in method.split(separator: "/", omittingEmptySubsequences: true) {
            if segment == "." { continue }
            if segment == ".." {
                if !output.isEmpty { output.removeLast() }
                continue
            }
            output.append(segment)
        }
        return output.joined(separator: "/")
    }

}
