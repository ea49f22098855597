/// Immutable bytes that one or more ``Tensor`` values view. The memory is either allocated here
/// or owned by someone else (an ONNX Runtime output value) and handed back through `release`.
///
/// Sendable because the bytes are never written after initialization.
final class TensorBuffer: @unchecked Sendable {
    /// Alignment of buffers allocated here: wide enough for any SIMD load a backend may do.
    static let alignment = 64

    let bytes: UnsafeRawBufferPointer
    private let release: (UnsafeRawBufferPointer) -> Void

    /// Allocates `count` bytes and lets `initialize` fill them, once, before anyone can read them.
    init(count: Int, initialize: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: Self.alignment)
        do {
            try initialize(memory)
        } catch {
            memory.deallocate()
            throw error
        }
        bytes = UnsafeRawBufferPointer(memory)
        release = { $0.deallocate() }
    }

    /// Wraps memory owned elsewhere; `release` runs once, when the last tensor viewing it is gone.
    init(external bytes: UnsafeRawBufferPointer, release: @escaping (UnsafeRawBufferPointer) -> Void) {
        self.bytes = bytes
        self.release = release
    }

    deinit {
        release(bytes)
    }
}
