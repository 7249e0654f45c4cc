// The cryptography API's errors (daprd's `pkg/messages`: ErrCryptoProvidersNotConfigured,
// ErrCryptoProviderNotFound, ErrCryptoGetKey, ErrCryptoOperation). Codes, statuses and texts
// are part of the compatibility contract.

extension APIError {
    public static let cryptoProvidersNotConfigured = APIError(
        errorCode: "ERR_CRYPTO_PROVIDERS_NOT_CONFIGURED", message: "crypto providers not configured", httpStatus: 500, grpcStatus: .internalError
    )

    public static func cryptoProviderNotFound(_ name: String) -> APIError {
        .init(errorCode: "ERR_CRYPTO_PROVIDER_NOT_FOUND", message: "crypto provider \(name) not found", httpStatus: 400, grpcStatus: .invalidArgument)
    }

    /// `failed to retrieve key <name>: <detail>`.
    public static func cryptoGetKey(_ name: String, _ detail: String) -> APIError {
        .init(errorCode: "ERR_CRYPTO_KEY", message: "failed to retrieve key \(name): \(detail)", httpStatus: 500, grpcStatus: .internalError)
    }

    /// `failed to perform operation: <detail>`.
    public static func cryptoOperation(_ detail: String) -> APIError {
        .init(errorCode: "ERR_CRYPTO", message: "failed to perform operation: \(detail)", httpStatus: 500, grpcStatus: .internalError)
    }
}
