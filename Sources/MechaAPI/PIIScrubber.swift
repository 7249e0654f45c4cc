/// The conversation API's `scrubPII`: replaces personal data in a text with placeholders such as
/// `<EMAIL_ADDRESS>`, `<PHONE_NUMBER>` or `<IP>`, the way daprd's default scrubber does.
///
/// daprd scrubs with fixed regular expressions (street addresses, credit cards, phone numbers,
/// e-mail addresses, IPv4/IPv6 addresses, ZIP codes, PO boxes, US SSNs, ISBNs, MAC addresses and
/// IBANs), keeps overlapping detections apart by their start, and leaves anything inside a link or
/// git URL alone. The expressions here are the same, run with Go's ASCII meaning of `\d`, `\s`,
/// `\w` and `\b`, over byte offsets, so the same text scrubs to the same result.
struct PIIScrubber: Sendable {
    /// A kind of personal data: its placeholder and the expressions that find it.
    struct Detector: Sendable {
        var placeholder: String
        nonisolated(unsafe) var expressions: [Regex<AnyRegexOutput>]
    }

    /// The scrubber daprd uses (one instance; its expressions compile once).
    static let standard = PIIScrubber()

    private let detectors: [Detector]
    private let exempt: [Detector]

    private init() {
        func detector(_ placeholder: String, _ patterns: String...) -> Detector {
            Detector(placeholder: placeholder, expressions: patterns.map(Self.compile))
        }
        let ipv4 = #"(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)"#
        let octet = #"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"#
        let dotted = "\(octet)(?:\\.\(octet)){3}"
        let h = "[0-9A-Fa-f]{1,4}"
        let ipv6 = [
            "(?:(?:\(h):){7}(?:\(h)|:))",
            "(?:(?:\(h):){6}(?::\(h)|(?:\(dotted))|:))",
            "(?:(?:\(h):){5}(?:(?:(?::\(h)){1,2})|:(?:\(dotted))|:))",
            "(?:(?:\(h):){4}(?:(?:(?::\(h)){1,3})|(?:(?::\(h))?:(?:\(dotted)))|:))",
            "(?:(?:\(h):){3}(?:(?:(?::\(h)){1,4})|(?:(?::\(h)){0,2}:(?:\(dotted)))|:))",
            "(?:(?:\(h):){2}(?:(?:(?::\(h)){1,5})|(?:(?::\(h)){0,3}:(?:\(dotted)))|:))",
            "(?:(?:\(h):){1}(?:(?:(?::\(h)){1,6})|(?:(?::\(h)){0,4}:(?:\(dotted)))|:))",
            "(?::(?:(?:(?::\(h)){1,7})|(?:(?::\(h)){0,5}:(?:\(dotted)))|:))",
        ].joined(separator: "|")
        let ip = "\(ipv4)|(?:\(ipv6))(?:%.+)?\\s*"
        // A parenthesised run inside a URL, one level of nesting deep. daprd's expression repeats
        // runs (`(?:[^\s()<>]+|…)+`); repeating single characters matches the same text (the
        // alternatives start with different characters) without exponential backtracking.
        let paren = #"\((?:[^\s()<>]|(?:\([^\s()<>]+\)))*\)"#
        let urlTail = "[.](?:[^\\s()<>]|\(paren))+(?:\(paren)|[^\\s!()\\[\\]{};:'\".,<>?])"
        self.detectors = [
            detector(
                "<STREET_ADDRESS>",
                #"(?i)\d{1,4} [\w\s]{1,20}(?:street|st|avenue|ave|road|rd|highway|hwy|square|sq|trail|trl|drive|dr|court|ct|park|parkway|pkwy|circle|cir|boulevard|blvd)\W?"#
            ),
            detector("<CREDIT_CARD>", #"(?:(?:(?:\d{4}[- ]?){3}\d{4}|\d{15,16}))"#),
            detector(
                "<PHONE_NUMBER>",
                #"(?i)(?:(?:\+?1\s*(?:[.-]\s*)?)?(?:\(\s*(?:[2-9]1[02-9]|[2-9][02-8]1|[2-9][02-8][02-9])\s*\)|(?:[2-9]1[02-9]|[2-9][02-8]1|[2-9][02-8][02-9]))\s*(?:[.-]\s*)?)?(?:[2-9]1[02-9]|[2-9][02-9]1|[2-9][02-9]{2})\s*(?:[.-]\s*)?(?:[0-9]{4})(?:\s*(?:#|x\.?|ext\.?|extension)\s*(?:\d+)?)"#,
                // The first and last alternatives keep the stray `/` and `/gm` of the original
                // JavaScript-style literal: they are part of what daprd matches.
                #"/(?:(?:\+?\d{1,3}[-.\s*]?)?(?:\d\s?){8,11})|(?:(?:\+?\d{1,3}[-.\s*]?)?(?:\(?\d{2,3}\)?[-.\s*]?)?\d{2,3}[-.\s*]?\d{2,6})|(?:(?:(?:\(\+?\d{1,2}\))|(?:\+?\d{1,2}))\s*\d{2}\s*\d{3}\s*\d{4})/gm"#
            ),
            detector(
                "<EMAIL_ADDRESS>",
                #"(?i)([A-Za-z0-9!#$%&'*+/=?^_{|.}~-]+@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)"#
            ),
            detector("<IP>", ip),
            detector("<ZIP_CODE>", #"\b\d{5}(?:[-\s]\d{4})?\b"#),
            detector("<PO_BOX>", #"(?i)P\.? ?O\.? Box \d+"#),
            detector("<US_SSN>", #"(?:\d{3}-\d{2}-\d{4})"#),
            detector("<ISBN>", #"(?:[\d]-?){9}[\dxX]"#, #"(?:[\d]-?){12}[\dxX]"#),
            detector("<MAC_ADDRESS>", #"(([a-fA-F0-9]{2}[:-]){5}([a-fA-F0-9]{2}))"#),
            detector("<IBAN>", #"[A-Z]{2}\d{2}[A-Z0-9]{4}\d{7}([A-Z\d]?){0,16}"#),
        ]
        self.exempt = [
            detector("<STRICT_LINK>", "(?:(?:https?://)(?:[a-z0-9.\\-]+|www|[a-z0-9.\\-])\(urlTail))"),
            detector("<GIT_REPO>", #"((git|ssh|http(s)?)|(git@[\w\.]+))(:(//)?)([\w\.@\:/\-~]+)(\.git)(/)?"#),
        ]
    }

    private static func compile(_ pattern: String) -> Regex<AnyRegexOutput> {
        // The patterns are constants: failing to compile one is a programming error.
        let regex = try! Regex(pattern)
        return regex.matchingSemantics(.unicodeScalar).asciiOnlyCharacterClasses().wordBoundaryKind(.simple)
    }

    /// A detection: byte offsets into the text and what replaces it.
    private struct Span {
        var start: Int
        var end: Int
        var placeholder: String
    }

    /// `text` with every detection replaced by its placeholder.
    func scrub(_ text: String) -> String {
        guard !text.isEmpty else { return text }
        var found = Self.spans(of: self.detectors, in: text)
        Self.order(&found)

        // Overlaps: a detection inside the previous one goes; one running past it starts one byte
        // after the previous one ends (so the byte between them is kept).
        var kept: [Span] = []
        for (index, span) in found.enumerated() {
            guard index > 0 else {
                kept.append(span)
                continue
            }
            var span = span
            let previous = found[index - 1]
            if span.start <= previous.end {
                if previous.end >= span.end { continue }
                span.start = previous.end + 1
                found[index] = span
            }
            kept.append(span)
        }

        // Detections touching a link or git URL are left alone.
        var exempt = Self.spans(of: self.exempt, in: text)
        Self.order(&exempt)
        var scrubbable: [Span] = []
        var cursor = 0
        for link in exempt {
            guard cursor < kept.count else { break }
            while cursor < kept.count, kept[cursor].end < link.start {
                scrubbable.append(kept[cursor])
                cursor += 1
            }
            while cursor < kept.count, kept[cursor].start <= link.end { cursor += 1 }
        }
        scrubbable += kept[cursor...]
        guard !scrubbable.isEmpty else { return text }

        let bytes = Array(text.utf8)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var position = 0
        var next = 0
        while position < bytes.count {
            if next < scrubbable.count, position == scrubbable[next].start {
                output += scrubbable[next].placeholder.utf8
                position = scrubbable[next].end
                next += 1
                continue
            }
            output.append(bytes[position])
            position += 1
        }
        return String(decoding: output, as: UTF8.self)
    }

    private static func spans(of detectors: [Detector], in text: String) -> [Span] {
        var spans: [Span] = []
        for detector in detectors {
            for expression in detector.expressions {
                for match in text.matches(of: expression) where !match.range.isEmpty {
                    let start = text.utf8.distance(from: text.startIndex, to: match.range.lowerBound)
                    let end = start + text.utf8.distance(from: match.range.lowerBound, to: match.range.upperBound)
                    spans.append(Span(start: start, end: end, placeholder: detector.placeholder))
                }
            }
        }
        return spans
    }

    /// By start, the longer first; an insertion sort so that equal detections end up in the order
    /// daprd's sort leaves them (the later detector first).
    private static func order(_ spans: inout [Span]) {
        func less(_ a: Span, _ b: Span) -> Bool {
            a.start != b.start ? a.start < b.start : a.end >= b.end
        }
        guard spans.count > 1 else { return }
        for i in 1..<spans.count {
            var j = i
            while j > 0, less(spans[j], spans[j - 1]) {
                spans.swapAt(j, j - 1)
                j -= 1
            }
        }
    }
}
