import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes

/// Hummingbird's HTTP/1.1 child channel, with socket reads of up to ``maximumReadBytes`` instead of
/// NIO's default 64 KiB. An image request is 0.6-2.4 MB of binary tensor data; in 64 KiB reads each
/// one costs ten or more reads, each a trip through the HTTP parser and a wake-up of the handler
/// task that collects the body. Reads still start small (NIO's adaptive allocator grows and shrinks
/// the buffer with what each read returned), so idle keep-alive connections hold little memory.
struct LargeReadHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    /// The largest buffer one socket read fills.
    static let maximumReadBytes = 1 << 20

    let base: HTTP1Channel

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let allocator = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: Self.maximumReadBytes)
        return channel.setOption(ChannelOptions.recvAllocator, value: allocator).flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with large socket reads (``LargeReadHTTP1Channel``), answering `Expect:
    /// 100-continue` (``ExpectContinueHandler``, one per connection). Takes no configuration: one
    /// passed in would have to repeat the handler, and forgetting it brings back curl's 1 s wait.
    static func http1LargeReads() -> HTTPServerBuilder {
        .init { responder in
            LargeReadHTTP1Channel(
                base: HTTP1Channel(
                    responder: responder,
                    configuration: .init(additionalChannelHandlers: [ExpectContinueHandler()])))
        }
    }
}

/// Answers `Expect: 100-continue` with `100 Continue` at once, so a client that waits for it before
/// sending its body does not wait out its own timeout: curl waits 1 s for any body over 1 KiB
/// (every image model's request), which a server that never answers adds to each request.
final class ExpectContinueHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var request) = unwrapInboundIn(data),
            let expectation = request.headerFields[.expect],
            expectation.lowercased() == "100-continue"
        else {
            context.fireChannelRead(data)
            return
        }
        request.headerFields[.expect] = nil
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponse(status: .continue))), promise: nil)
        context.fireChannelRead(wrapInboundOut(.head(request)))
    }
}
