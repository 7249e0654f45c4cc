import MechaCore
@testable import MechaEmbedded
import Testing

/// The DNS message codec mDNS uses, byte by byte, and the directory that turns DNS-SD records
/// into instances.
struct DNSMessageTests {
    @Test("a query encodes as RFC 1035 says")
    func queryBytes() {
        let bytes = DNSMessage(questions: [.init(name: "orders.local.", type: DNSMessage.RecordType.ptr)]).encoded()
        #expect(bytes == [
            0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,  // id, flags, 1 question
            6, 0x6f, 0x72, 0x64, 0x65, 0x72, 0x73, 5, 0x6c, 0x6f, 0x63, 0x61, 0x6c, 0,  // orders.local.
            0, 12, 0, 1,  // PTR, IN
        ])
    }

    @Test("every record type round-trips")
    func roundTrip() throws {
        let message = DNSMessage(
            id: 7, isResponse: true, authoritative: true,
            questions: [.init(name: "a.local.", type: DNSMessage.RecordType.any, unicastResponse: true)],
            answers: [.init(name: "orders.local.", ttl: 10, data: .ptr("i1.orders.local."))],
            additionals: [
                .init(name: "i1.orders.local.", ttl: 10, cacheFlush: true, data: .srv(priority: 1, weight: 2, port: 50002, target: "h.local.")),
                .init(name: "i1.orders.local.", ttl: 10, cacheFlush: true, data: .txt(["mecha=1", "ns=default", ""])),
                .init(name: "h.local.", ttl: 0, data: .a([10, 0, 0, 2])),
                .init(name: "h.local.", ttl: 5, data: .other(type: 28, bytes: Array(repeating: 0, count: 16))),
            ])
        var expected = message
        // Empty TXT strings are not kept (an empty TXT record is one empty string on the wire).
        expected.additionals[1].data = .txt(["mecha=1", "ns=default"])
        #expect(try DNSMessage(decoding: message.encoded()) == expected)
    }

    @Test("compressed names are followed; pointers that loop or point forward are refused")
    func compression() throws {
        // Answer name is a pointer to the question's name at offset 12.
        var bytes: [UInt8] = [0, 0, 0x84, 0, 0, 1, 0, 1, 0, 0, 0, 0]
        bytes += [6] + Array("orders".utf8) + [5] + Array("local".utf8) + [0, 0, 12, 0, 1]
        bytes += [0xC0, 12, 0, 12, 0, 1, 0, 0, 0, 10, 0, 5, 2, 0x69, 0x31, 0xC0, 12]
        let message = try DNSMessage(decoding: bytes)
        #expect(message.answers == [.init(name: "orders.local.", ttl: 10, data: .ptr("i1.orders.local."))])

        let looping: [UInt8] = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1]
        #expect(throws: DNSMessage.DecodingError.self) { try DNSMessage(decoding: looping) }
        let forward: [UInt8] = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 16, 0, 1, 0, 1, 0]
        #expect(throws: DNSMessage.DecodingError.self) { try DNSMessage(decoding: forward) }
    }

    @Test("truncated and inconsistent messages are refused, never trapped on")
    func malformed() {
        let good = DNSMessage(isResponse: true, answers: [.init(name: "x.local.", ttl: 1, data: .srv(priority: 0, weight: 0, port: 1, target: "h.local."))]).encoded()
        for cut in 0..<good.count {
            #expect(throws: DNSMessage.DecodingError.self) { try DNSMessage(decoding: Array(good.prefix(cut))) }
        }
        // 65535 answers claimed in a 12-byte message.
        #expect(throws: DNSMessage.DecodingError.self) { try DNSMessage(decoding: [0, 0, 0x84, 0, 0, 0, 0xFF, 0xFF, 0, 0, 0, 0]) }
        // An A record of 3 bytes.
        var shortA = DNSMessage(isResponse: true, answers: [.init(name: "h.", ttl: 1, data: .a([1, 2, 3, 4]))]).encoded()
        shortA[shortA.count - 6] = 3
        #expect(throws: DNSMessage.DecodingError.self) { try DNSMessage(decoding: Array(shortA.dropLast())) }
        // Random bytes: any outcome but a crash.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            var bytes = good
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            }
            _ = try? DNSMessage(decoding: bytes)
        }
    }
}

struct MDNSDirectoryTests {
    static func instance(_ id: String, app: String = "shipping", host: String = "10.0.0.2", namespace: String = "default") -> AppInstance {
        AppInstance(
            appID: app, namespace: namespace, host: host, internalPort: 50002, httpPort: 3500, grpcInternalPort: 50003, instanceID: id,
            processID: 42, hostname: "b", metricsPort: 9090, mtls: true)
    }

    @Test("an announcement heard by another directory gives back the instance, until it expires")
    func announceAndLearn() throws {
        var speaker = MDNSDirectory(ttl: 10)
        speaker.add(Self.instance("i1"))
        speaker.add(Self.instance("i2", host: "10.0.0.3"))
        let wire = try #require(speaker.announcement()).encoded()
        var listener = MDNSDirectory(ttl: 10)
        let now = ContinuousClock.now
        listener.learn(try DNSMessage(decoding: wire), now: now)
        #expect(listener.instances(appID: "shipping", namespace: "default", now: now) == [Self.instance("i1"), Self.instance("i2", host: "10.0.0.3")])
        #expect(listener.instances(appID: "shipping", namespace: "prod", now: now).isEmpty)
        #expect(listener.instances(appID: "shipping", namespace: "default", now: now + .seconds(11)).isEmpty)
        // A goodbye forgets at once.
        let goodbye = try #require(speaker.announcement(goodbye: true, only: [Self.instance("i1")]))
        listener.learn(try DNSMessage(decoding: goodbye.encoded()), now: now)
        #expect(listener.instances(appID: "shipping", namespace: "default", now: now).map(\.instanceID) == ["i2"])
    }

    @Test("queries for an own app id or instance are answered; others and responses are not")
    func answering() throws {
        var directory = MDNSDirectory(ttl: 10)
        directory.add(Self.instance("i1"))
        let answer = try #require(directory.answer(MDNSDirectory.query(appID: "shipping")))
        #expect(answer.isResponse && answer.answers.count == 1 && answer.additionals.count == 3)
        #expect(directory.answer(DNSMessage(questions: [.init(name: "i1.SHIPPING.local.", type: DNSMessage.RecordType.srv)])) != nil)
        #expect(directory.answer(MDNSDirectory.query(appID: "orders")) == nil)
        #expect(directory.answer(DNSMessage(isResponse: true, questions: MDNSDirectory.query(appID: "shipping").questions)) == nil)
    }

    @Test("records of other DNS-SD services, or without an address, are not instances")
    func foreign() {
        var directory = MDNSDirectory(ttl: 10)
        let printer = DNSMessage(isResponse: true, answers: [
            .init(name: "p._ipp._tcp.local.", ttl: 120, data: .srv(priority: 0, weight: 0, port: 631, target: "printer.local.")),
            .init(name: "p._ipp._tcp.local.", ttl: 120, data: .txt(["rp=ipp"])),
            .init(name: "printer.local.", ttl: 120, data: .a([10, 0, 0, 9])),
            .init(name: "x.shipping.local.", ttl: 120, data: .srv(priority: 0, weight: 0, port: 1, target: "nowhere.local.")),
            .init(name: "x.shipping.local.", ttl: 120, data: .txt(["mecha=1", "app=shipping", "id=x"])),
        ])
        directory.learn(printer, now: .now)
        #expect(directory.all(now: .now).isEmpty)
    }
}
