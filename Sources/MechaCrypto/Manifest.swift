import MechaCore

/// The second header line: which key and algorithms protect the message.
///
/// Encoded exactly as Go's `encoding/json` encodes daprd's struct (field order `k`, `kw`, `wfk`,
/// `cph`, `np`; `k` omitted when empty; byte slices as padded base64; `<`, `>`, `&`, U+2028 and
/// U+2029 escaped), so headers we write are the bytes daprd would write for the same values.
public struct Manifest: Sendable, Hashable {
    /// The key to decrypt with (`key` or `key/version`); empty when omitted.
    public var keyName: String
    public var keyWrapAlgorithm: KeyWrapAlgorithm
    /// The wrapped file key.
    public var wrappedFileKey: [UInt8]
    public var cipher: DataCipher
    public var noncePrefix: [UInt8]

    public init(keyName: String, keyWrapAlgorithm: KeyWrapAlgorithm, wrappedFileKey: [UInt8], cipher: DataCipher, noncePrefix: [UInt8]) {
        self.keyName = keyName
        self.keyWrapAlgorithm = keyWrapAlgorithm
        self.wrappedFileKey = wrappedFileKey
        self.cipher = cipher
        self.noncePrefix = noncePrefix
    }

    /// The compact JSON line (without the newline).
    public var encoded: [UInt8] {
        var out: [UInt8] = []
        out.append(UInt8(ascii: "{"))
        if !self.keyName.isEmpty {
            out.append(contentsOf: Array(#""k":"#.utf8))
            Self.appendGoString(self.keyName, to: &out)
            out.append(UInt8(ascii: ","))
        }
        out.append(contentsOf: Array(#""kw":\#(self.keyWrapAlgorithm.rawValue),"wfk":"#.utf8))
        Self.appendGoString(Base64.encode(self.wrappedFileKey), to: &out)
        out.append(contentsOf: Array(#","cph":\#(self.cipher.rawValue),"np":"#.utf8))
        Self.appendGoString(Base64.encode(self.noncePrefix), to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// Reads and validates a manifest line. Any problem is the one error daprd reports (it does
    /// not say more, to disclose nothing about the document).
    public init(decoding line: some Collection<UInt8>) throws(EncryptionSchemeError) {
        guard let json = try? JSONValue(parsing: line), case .object(let members) = json else { throw .invalidManifest }
        // Go matches field names case-insensitively; the last occurrence wins.
        func member(_ name: String) -> JSONValue? {
            members.last(where: { $0.0.lowercased() == name })?.1
        }
        var keyName = ""
        if let value = member("k") {
            switch value {
            case .null: break
            case .string(let text): keyName = text
            default: throw .invalidManifest
            }
        }
        guard case .number(let kwText)? = member("kw"), let kw = Int(kwText), let algorithm = KeyWrapAlgorithm(rawValue: kw) else {
            throw .invalidManifest
        }
        guard case .number(let cphText)? = member("cph"), let cph = Int(cphText), let cipher = DataCipher(rawValue: cph) else {
            throw .invalidManifest
        }
        guard case .string(let wfkText)? = member("wfk"), let wfk = Base64.decode(wfkText), !wfk.isEmpty else {
            throw .invalidManifest
        }
        guard case .string(let npText)? = member("np"), let np = Base64.decode(npText), np.count == EncryptionScheme.noncePrefixLength else {
            throw .invalidManifest
        }
        self.init(keyName: keyName, keyWrapAlgorithm: algorithm, wrappedFileKey: wfk, cipher: cipher, noncePrefix: np)
    }

    /// A JSON string the way Go's encoder writes it (HTML-safe escaping).
    static func appendGoString(_ text: String, to out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x22: out.append(contentsOf: [0x5C, 0x22])
            case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x00..<0x20, 0x3C, 0x3E, 0x26:
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                out.append(hex[Int(scalar.value >> 4)])
                out.append(hex[Int(scalar.value & 0x0F)])
            case 0x2028, 0x2029:
                out.append(contentsOf: Array("\\u202\(scalar.value == 0x2028 ? "8" : "9")".utf8))
            default:
                out.append(contentsOf: Array(String(scalar).utf8))
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
