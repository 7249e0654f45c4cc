/// Building and opening whole messages from the incremental pieces (`HeaderReader`,
/// `Manifest`, `FileKey`, `SegmentStream`). Streams use the pieces; these helpers serve whole
/// buffers and tests.
extension EncryptionScheme {
    /// The header for a new message, and the stream that seals its payload.
    public static func start(fileKey: FileKey, manifest: Manifest) -> (header: [UInt8], payload: SegmentStream) {
        (fileKey.header(manifest: manifest.encoded), SegmentStream(sealing: fileKey))
    }

    /// Authenticates a header with the unwrapped file key and answers the stream that opens the
    /// payload. A wrong or missing key (`nil`, or not 32 bytes) fails as a bad signature, as in
    /// daprd, so a caller learns nothing about which keys exist.
    public static func open(header: HeaderReader.Header, manifest: Manifest, fileKey keyBytes: [UInt8]?) throws(EncryptionSchemeError) -> SegmentStream {
        let bytes = keyBytes.flatMap { $0.count == fileKeyLength ? $0 : nil } ?? [UInt8](repeating: 0, count: fileKeyLength)
        let fileKey = FileKey(keyBytes: bytes, noncePrefix: manifest.noncePrefix, cipher: manifest.cipher)
        try fileKey.verifyHeader(manifest: header.manifestLine, macBase64: header.macLine)
        return SegmentStream(opening: fileKey)
    }

    /// Encrypts a whole buffer. `wrap` receives the file key and answers the wrapped key.
    public static func encrypt(
        _ plaintext: [UInt8],
        keyName: String,
        algorithm: KeyWrapAlgorithm,
        cipher: DataCipher = .aesGCM,
        wrap: ([UInt8]) throws -> [UInt8]
    ) throws -> [UInt8] {
        let fileKey = FileKey.random(cipher: cipher)
        let manifest = Manifest(
            keyName: keyName,
            keyWrapAlgorithm: algorithm,
            wrappedFileKey: try wrap(fileKey.keyBytes),
            cipher: cipher,
            noncePrefix: fileKey.noncePrefix
        )
        var (output, payload) = self.start(fileKey: fileKey, manifest: manifest)
        output += try payload.feed(plaintext)
        output += try payload.finish()
        return output
    }

    /// Decrypts a whole buffer. `unwrap` receives the manifest and answers the file key (or
    /// `nil` when it cannot).
    public static func decrypt(_ message: [UInt8], unwrap: (Manifest) throws -> [UInt8]?) throws -> [UInt8] {
        var reader = HeaderReader()
        guard case .complete(let header) = try reader.feed(message) else { try reader.finish() }
        let manifest = try Manifest(decoding: header.manifestLine)
        var payload = try self.open(header: header, manifest: manifest, fileKey: try unwrap(manifest))
        var output = try payload.feed(header.remainder)
        output += try payload.finish()
        return output
    }
}
