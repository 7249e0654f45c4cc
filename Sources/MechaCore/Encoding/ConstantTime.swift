/// Comparisons of secrets (API tokens) whose time does not depend on where they differ.
public enum ConstantTime {
    /// True when `a` and `b` hold the same bytes. Runs over every byte of the longer one.
    public static func equals(_ a: some StringProtocol, _ b: some StringProtocol) -> Bool {
        var left = a.utf8.makeIterator()
        var right = b.utf8.makeIterator()
        var difference: UInt8 = a.utf8.count == b.utf8.count ? 0 : 1
        while true {
            let x = left.next()
            let y = right.next()
            if x == nil && y == nil { break }
            difference |= (x ?? 0) ^ (y ?? 0)
        }
        return difference == 0
    }
}
