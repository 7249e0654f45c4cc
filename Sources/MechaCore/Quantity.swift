/// Kubernetes-style byte quantities, as Dapr's size flags take them (`4Mi`, `512Ki`, `1G`,
/// `4194304`).
public enum Quantity {
    /// The number of bytes, or nil for bad syntax, a negative number or a value beyond `Int`.
    public static func bytes(_ text: String) -> Int? {
        let trimmed = text.trimmingSpaces()
        let units: [(String, Int)] = [("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("k", 1000), ("K", 1000), ("M", 1_000_000), ("G", 1_000_000_000)]
        for (suffix, scale) in units where trimmed.hasSuffix(suffix) {
            guard let number = Int(trimmed.dropLast(suffix.count)), number >= 0 else { return nil }
            let (bytes, overflow) = number.multipliedReportingOverflow(by: scale)
            return overflow ? nil : bytes
        }
        guard let number = Int(trimmed), number >= 0 else { return nil }
        return number
    }
}
