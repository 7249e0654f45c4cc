import Crypto

/// What Go wrote for each of dapr/kit's `schemes/enc/v1` test messages (pass-through key wrap, so
/// the manifest carries the file key): the manifest and MAC lines of the header and the SHA-256 of
/// the whole message. The tests rebuild each message from its manifest and plaintext and check the
/// digest, so byte compatibility with the Go implementation is proven without keeping its files.
enum GoVectors {
    struct Vector {
        var manifest: String
        var mac: String
        var sha256: String
        var length: Int
    }

    static let all: [String: Vector] = [
        "empty-message": Vector(
            manifest: #"{"k":"mykey","kw":1,"wfk":"rvjwqyMa8txW979ZL9wglb7f+UG1kW+/hDqvP3/ib+Q=","cph":1,"np":"gZ/UVI2JlQ=="}"#,
            mac: "zB+rESjb3gR5guGfmxukQ//ApfW6a55WOxo6k0x89kE=", sha256: "34e784b37739dd611fa8634a5a894c9884b0e25d9f2feb42e49df1bef73fe757", length: 162),
        "large-file": Vector(
            manifest: #"{"k":"mykey","kw":1,"wfk":"kiarWGOB1LQ2Y1pTbV+KAirjzp9ojgJFdvF+JiPOHic=","cph":1,"np":"Jn5+xdeuJA=="}"#,
            mac: "Qw0TAu6nB5GlMsjb9efewhzPoZpJrQn9WzmdOcxOKZk=", sha256: "f1d858a43d11e73cb2edb3569bb5d4d0095f3818dcc783a20a3a0c79d1787e74", length: 307442),
        "multi-segment": Vector(
            manifest: #"{"k":"mykey","kw":1,"wfk":"nljk827OctNGr+WM5nd8jkiJ/2/QSWVJsPIUvydTxos=","cph":1,"np":"/eVzhPS1Jw=="}"#,
            mac: "E6if7cKslNJ/t4y1i1ATN0EuacPfySy4do3Cwjh2asc=", sha256: "377b848a68018f44231496075f35324b9919027bc034cbdcf25e4523721e3fb8", length: 123074),
        "one-full-segment": Vector(
            manifest: #"{"k":"mykey","kw":1,"wfk":"SAojgOFggSv6pZpDejs9WirkUf+VOS7fmN1Izxo2/p0=","cph":1,"np":"6mMQsr43ug=="}"#,
            mac: "kv23+TJFF3wHGu3EwhTapr3MH1QfrnVhB2uK7W75hqI=", sha256: "dd8cdf1a5c3e728847dc87c38bc303967b5cd42d77e1930336f49340288b69b8", length: 65714),
        "single-segment-no-key-name": Vector(
            manifest: #"{"kw":1,"wfk":"1t1mDc87I8JUdPD2Kl6AKLpBV+HJy0av3yYR2/Q7Fx4=","cph":1,"np":"PYoop7beBg=="}"#,
            mac: "4m5F2XCJ/V/OkTbzDsUyx+9WM+IqMF800WNHhuVJc0Y=", sha256: "621d2a03e151eec4ce3e0302ad61fc8fffbadaf0bcf6053aa021af572965b0ed", length: 177),
        "single-segment": Vector(
            manifest: #"{"k":"mykey","kw":1,"wfk":"QOei+iFHWhaO6f9iETClF46OP2xi7Hsi3lJM/j+twtU=","cph":1,"np":"lPBnJHkXPA=="}"#,
            mac: "FUxdF/MUKkEdzzytE5fUf8k7gEm5nZiiN8H4ACE3NEg=", sha256: "074b87f8a32b98e0f2920d86c2e4032196b239d4b97d3d93b1d80d5d2e589aea", length: 189),
        "two-full-segments": Vector(
            manifest: #"{"k":"mykey","kw":1,"wfk":"uaoIlkS1Iq/zfKI6FFm5hb4+VIvEcKQ7FWpTgdg/xzk=","cph":1,"np":"2dxRJ7WuUg=="}"#,
            mac: "afP0bLJfRhMWgBf/nlhlvA96JaADkEUGNEJGTdP3FWw=", sha256: "f25bd9f6b49025be1052e92ffeac416801ca31cc01cd536981b3a3dc6575e152", length: 131266),
    ]

    static func hex(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }
}
