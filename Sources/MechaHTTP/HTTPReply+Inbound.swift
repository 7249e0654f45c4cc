import HTTPTypes
import MechaAPI
import NIOCore

extension HTTPReply {
    /// The HTTP answer to a refusal of the inbound chain.
    init(_ rejection: InboundRejection) {
        switch rejection {
        case .text(let status, let body, let headers):
            var fields = HTTPFields()
            for header in headers { fields.add(header.name, header.value) }
            self.init(status: status, headers: fields, body: ByteBuffer(string: body))
        case .error(let error):
            self = .error(error)
        case .status(let status, let detail):
            self = .text(detail + "\n", status: status)
        case .unrouted:
            // Surfaces route these as unknown paths; a stage that refuses outright answers as Go's mux.
            self = .text("404 page not found\n", status: 404)
        }
    }
}
