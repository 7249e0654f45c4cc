/// Why a CEL expression could not be parsed or evaluated.
///
/// `position` is the 0-based offset, in Unicode scalars, into the expression source of the token
/// where the problem was found (`nil` when the problem is not tied to one place, such as a
/// non-boolean result).
public struct CELError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public var position: Int?

    public init(_ message: String, position: Int? = nil) {
        self.message = message
        self.position = position
    }

    public init(message: String, position: Int? = nil) {
        self.init(message, position: position)
    }

    public var description: String {
        guard let position = self.position else { return self.message }
        return "\(self.message) (at position \(position))"
    }
}
