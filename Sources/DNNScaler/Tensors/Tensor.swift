/// A dense tensor: data type, shape and contiguous little-endian row-major bytes.
///
/// Tensors are values: copying one shares its bytes (they are immutable). Splitting a batch
/// yields views into the same bytes, so outputs go back to requests without copies; only
/// concatenation of several requests into one batch copies, once.
public struct Tensor: Sendable {
    /// The element type.
    public let dataType: DataType
    /// The dimensions, batch dimension first for batched tensors.
    public let shape: [Int]
    /// The number of bytes: element count x element size.
    public let byteCount: Int

    let buffer: TensorBuffer
    let byteOffset: Int

    init(dataType: DataType, shape: [Int], buffer: TensorBuffer, byteOffset: Int, byteCount: Int) {
        self.dataType = dataType
        self.shape = shape
        self.buffer = buffer
        self.byteOffset = byteOffset
        self.byteCount = byteCount
    }

    /// Builds a tensor by copying `bytes`; throws unless their count matches the shape and data type.
    public init(dataType: DataType, shape: [Int], copying bytes: UnsafeRawBufferPointer) throws(TensorError) {
        let expected = try Self.checkedByteCount(bytes, dataType: dataType, shape: shape)
        let buffer = TensorBuffer(count: expected) { destination in
            destination.copyMemory(from: bytes)
        }
        self.init(dataType: dataType, shape: shape, buffer: buffer, byteOffset: 0, byteCount: expected)
    }

    /// A tensor over memory that `owner` keeps valid (memory a decoder filled): no copy. The
    /// tensor holds `owner` until its last view is gone. The owner's memory should not change while
    /// the tensor is in use; if its writer changes it anyway, only the results computed from it suffer.
    public init(
        dataType: DataType, shape: [Int], viewing bytes: UnsafeRawBufferPointer, owner: some AnyObject & Sendable
    ) throws(TensorError) {
        let expected = try Self.checkedByteCount(bytes, dataType: dataType, shape: shape)
        let buffer = TensorBuffer(external: bytes) { _ in withExtendedLifetime(owner) {} }
        self.init(dataType: dataType, shape: shape, buffer: buffer, byteOffset: 0, byteCount: expected)
    }

    /// Builds a tensor from raw bytes; throws unless their count matches the shape and data type.
    public init(dataType: DataType, shape: [Int], bytes: [UInt8]) throws(TensorError) {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(TensorError) in try Tensor(dataType: dataType, shape: shape, copying: raw) }
        }
        self = try result.get()
    }

    /// Builds a tensor from typed values in row-major order.
    public init<Element: TensorElement>(shape: [Int], values: [Element]) throws(TensorError) {
        let count = try Shape.elementCount(shape)
        guard values.count == count else {
            throw .elementCountMismatch(expected: count, actual: values.count, shape: shape)
        }
        let result = values.withUnsafeBytes { raw in
            Result { () throws(TensorError) in
                try Tensor(dataType: Element.dataType, shape: shape, copying: raw)
            }
        }
        self = try result.get()
    }

    /// `bytes.count` when it is what `shape` of `dataType` needs: the shape's byte count, or for
    /// ``DataType/bytes`` well-formed elements, as many as the shape holds.
    static func checkedByteCount(
        _ bytes: UnsafeRawBufferPointer, dataType: DataType, shape: [Int]
    ) throws(TensorError) -> Int {
        if dataType.isVariableLength {
            _ = try BytesElements.offsets(in: bytes, count: Shape.elementCount(shape))
            return bytes.count
        }
        let expected = try Shape.byteCount(shape, dataType: dataType)
        guard bytes.count == expected else {
            throw .byteCountMismatch(expected: expected, actual: bytes.count, dataType: dataType, shape: shape)
        }
        return expected
    }

    /// A ``DataType/bytes`` tensor of `shape` holding `elements` (row-major).
    public init(shape: [Int], byteStrings elements: [[UInt8]]) throws(TensorError) {
        let count = try Shape.elementCount(shape)
        guard elements.count == count else {
            throw .elementCountMismatch(expected: count, actual: elements.count, shape: shape)
        }
        self = try Tensor(dataType: .bytes, shape: shape, bytes: BytesElements.serialize(elements))
    }

    /// The elements of a ``DataType/bytes`` tensor, row-major.
    public func byteStrings() throws(TensorError) -> [[UInt8]] {
        guard dataType == .bytes else { throw .dataTypeMismatch(expected: .bytes, actual: dataType) }
        let count = try Shape.elementCount(shape)
        return try withUnsafeBytes { (raw) throws(TensorError) in try BytesElements.elements(in: raw, count: count) }
    }

    /// A tensor of `shape` whose bytes are all zero (empty strings for ``DataType/bytes``).
    public static func zeros(dataType: DataType, shape: [Int]) throws(TensorError) -> Tensor {
        var count: Int
        if dataType.isVariableLength {
            let overflow: Bool
            (count, overflow) = try Shape.elementCount(shape).multipliedReportingOverflow(by: 4)
            guard !overflow else { throw .shapeOverflow(shape: shape) }
        } else {
            count = try Shape.byteCount(shape, dataType: dataType)
        }
        let buffer = TensorBuffer(count: count) { $0.initializeMemory(as: UInt8.self, repeating: 0) }
        return Tensor(dataType: dataType, shape: shape, buffer: buffer, byteOffset: 0, byteCount: count)
    }

    /// The number of elements.
    public var elementCount: Int {
        dataType.isVariableLength ? (try? Shape.elementCount(shape)) ?? 0 : byteCount / dataType.byteSize
    }

    /// The first dimension, or `nil` for a scalar.
    public var batchSize: Int? { shape.first }

    /// Calls `body` with the tensor's bytes; the pointer is valid only inside `body`.
    public func withUnsafeBytes<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        let view = UnsafeRawBufferPointer(rebasing: buffer.bytes[byteOffset..<(byteOffset + byteCount)])
        return try withExtendedLifetime(buffer) { () throws(Failure) -> Result in try body(view) }
    }

    /// The bytes, copied into an array.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// The elements as `Element` values, in row-major order. For `BOOL`, any non-zero byte is `true`.
    public func values<Element: TensorElement>(as type: Element.Type) throws(TensorError) -> [Element] {
        guard Element.dataType == dataType else {
            throw .dataTypeMismatch(expected: Element.dataType, actual: dataType)
        }
        if Element.self == Bool.self {
            let flags = withUnsafeBytes { raw in raw.map { $0 != 0 } }
            return flags as? [Element] ?? []
        }
        return withUnsafeBytes { raw in
            [Element](unsafeUninitializedCapacity: elementCount) { destination, initialized in
                UnsafeMutableRawBufferPointer(destination).copyMemory(from: raw)
                initialized = elementCount
            }
        }
    }
}

extension Tensor: Equatable {
    /// Tensors are equal when data type, shape and bytes are equal.
    public static func == (lhs: Tensor, rhs: Tensor) -> Bool {
        guard lhs.dataType == rhs.dataType, lhs.shape == rhs.shape else { return false }
        return lhs.withUnsafeBytes { left in rhs.withUnsafeBytes { right in left.elementsEqual(right) } }
    }
}

extension Tensor: CustomStringConvertible {
    /// `FP32[4, 3, 224, 224]`.
    public var description: String { "\(dataType)\(shape)" }
}
