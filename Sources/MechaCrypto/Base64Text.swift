import Foundation

/// Base64 in the spellings keys arrive in: standard or URL-safe alphabet, padded or not
/// (JWK members are unpadded base64url; key files are often padded standard base64).
public enum Base64Text {
    static let standard = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    static let url = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    enum Alphabet { case standard, url }

    /// Decodes `text` in one alphabet. Trailing `=` are optional; CR and LF are skipped, as Go's
    /// decoders do. `nil` on any other byte or an impossible length.
    static func decode(_ text: some Collection<UInt8>, alphabet: Alphabet) -> [UInt8]? {
        let table = alphabet == .standard ? self.standard : self.url
        var values: [UInt8] = []
        values.reserveCapacity(text.count)
        var padding = 0
        for byte in text {
            if byte == 0x0A || byte == 0x0D { continue }
            if byte == UInt8(ascii: "=") {
                padding += 1
                continue
            }
            guard padding == 0, let index = table.firstIndex(of: byte) else { return nil }
            values.append(UInt8(index))
        }
        if padding > 0, (values.count + padding) % 4 != 0 { return nil }
        guard values.count % 4 != 1 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(values.count * 3 / 4)
        var index = 0
        while index < values.count {
            let count = min(4, values.count - index)
            var accumulator: UInt32 = 0
            for offset in 0..<4 {
                accumulator = accumulator << 6 | UInt32(offset < count ? values[index + offset] : 0)
            }
            output.append(UInt8(truncatingIfNeeded: accumulator >> 16))
            if count > 2 { output.append(UInt8(truncatingIfNeeded: accumulator >> 8)) }
            if count > 3 { output.append(UInt8(truncatingIfNeeded: accumulator)) }
            index += 4
        }
        return output
    }

    /// Unpadded standard base64 (Go's `RawStdEncoding`); `nil` when `text` is not that.
    public static func decodeStandardRaw(_ text: some Collection<UInt8>) -> [UInt8]? {
        guard !text.contains(UInt8(ascii: "=")) else { return nil }
        return self.decode(text, alphabet: .standard)
    }

    /// Standard or URL alphabet, whichever decodes.
    public static func decodeAny(_ text: some Collection<UInt8>) -> [UInt8]? {
        self.decode(text, alphabet: .standard) ?? self.decode(text, alphabet: .url)
    }

    /// Unpadded base64url, as JWK members are written.
    static func encodeURL(_ bytes: some Collection<UInt8>) -> String {
        let bytes = Array(bytes)
        var output: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let count = min(3, bytes.count - index)
            var accumulator: UInt32 = 0
            for offset in 0..<3 {
                accumulator = accumulator << 8 | UInt32(offset < count ? bytes[index + offset] : 0)
            }
            for offset in 0...count {
                output.append(self.url[Int((accumulator >> UInt32(18 - 6 * offset)) & 0x3F)])
            }
            index += 3
        }
        return String(decoding: output, as: UTF8.self)
    }
}

/// One PEM block: its label and DER bytes.
struct PEMBlock {
    var label: String
    var der: [UInt8]

    /// The first block in `text`, as Go's `pem.Decode` finds it (headers are skipped).
    init?(parsing text: some Collection<UInt8>) {
        let string = String(decoding: text, as: UTF8.self)
        guard let begin = string.range(of: "-----BEGIN ") else { return nil }
        guard let labelEnd = string.range(of: "-----", range: begin.upperBound..<string.endIndex) else { return nil }
        let label = String(string[begin.upperBound..<labelEnd.lowerBound])
        guard let end = string.range(of: "-----END \(label)-----", range: labelEnd.upperBound..<string.endIndex) else { return nil }
        var body = Substring(string[labelEnd.upperBound..<end.lowerBound])
        // RFC 1421 headers ("Proc-Type: …") end with a blank line.
        if body.contains(":"), let blank = body.range(of: "\n\n") { body = body[blank.upperBound...] }
        let compact = body.utf8.filter { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }
        guard let der = Base64Text.decode(compact, alphabet: .standard), !der.isEmpty else { return nil }
        self.label = label
        self.der = der
    }

    /// `-----BEGIN label-----`, base64 in 64-character lines, `-----END label-----`, newline.
    static func encode(label: String, der: [UInt8]) -> String {
        let encoded = Array(Base64Text.encodeStandard(der).utf8)
        var text = "-----BEGIN \(label)-----\n"
        var index = 0
        while index < encoded.count {
            let end = min(index + 64, encoded.count)
            text += String(decoding: encoded[index..<end], as: UTF8.self) + "\n"
            index = end
        }
        return text + "-----END \(label)-----\n"
    }
}

extension Base64Text {
    static func encodeStandard(_ bytes: some Collection<UInt8>) -> String {
        var text = self.encodeURL(bytes).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while text.utf8.count % 4 != 0 { text += "=" }
        return text
    }
}
