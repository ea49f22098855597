/// Why a tensor could not be built, combined or split. Each case carries what a client needs to fix it.
public enum TensorError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A dimension is negative.
    case negativeDimension(shape: [Int])
    /// The element count or byte count of a shape does not fit in memory sizes.
    case shapeOverflow(shape: [Int])
    /// The byte count does not match the shape and data type.
    case byteCountMismatch(expected: Int, actual: Int, dataType: DataType, shape: [Int])
    /// The element count does not match the shape.
    case elementCountMismatch(expected: Int, actual: Int, shape: [Int])
    /// The Swift element type does not match the tensor's data type.
    case dataTypeMismatch(expected: DataType, actual: DataType)
    /// Tensors to concatenate disagree on data type or on the dimensions after the first.
    case incompatibleForConcatenation(String)
    /// A batch operation on a tensor that has no batch dimension.
    case noBatchDimension
    /// The batch sizes to split by do not add up to the tensor's batch dimension.
    case splitMismatch(batchSizes: [Int], batchDimension: Int)
    /// BYTES data is not a sequence of (4-byte little-endian length, bytes) elements matching the shape.
    case malformedBytes(String)
    /// An operation that needs fixed-size elements got a BYTES tensor.
    case variableLength(DataType)

    /// A one-line message for logs and clients.
    public var description: String {
        switch self {
        case .negativeDimension(let shape):
            "shape \(shape) has a negative dimension"
        case .shapeOverflow(let shape):
            "shape \(shape) is too large: its size overflows"
        case .byteCountMismatch(let expected, let actual, let dataType, let shape):
            "a \(dataType) tensor of shape \(shape) needs \(expected) bytes, got \(actual)"
        case .elementCountMismatch(let expected, let actual, let shape):
            "shape \(shape) needs \(expected) elements, got \(actual)"
        case .dataTypeMismatch(let expected, let actual):
            "tensor holds \(actual), read as \(expected)"
        case .incompatibleForConcatenation(let reason):
            "cannot batch tensors together: \(reason)"
        case .noBatchDimension:
            "tensor has no batch dimension (rank 0)"
        case .splitMismatch(let batchSizes, let batchDimension):
            "batch sizes \(batchSizes) do not add up to the batch dimension \(batchDimension)"
        case .malformedBytes(let reason):
            "BYTES data is malformed: \(reason)"
        case .variableLength(let dataType):
            "\(dataType) elements have no fixed size"
        }
    }
}

/// Shape arithmetic with overflow and sign checks, done before any memory is allocated.
public enum Shape {
    /// The number of elements of `shape`; throws on a negative dimension or overflow.
    public static func elementCount(_ shape: [Int]) throws(TensorError) -> Int {
        var count = 1
        for dimension in shape {
            guard dimension >= 0 else { throw .negativeDimension(shape: shape) }
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw .shapeOverflow(shape: shape) }
            count = product
        }
        return count
    }

    /// The number of bytes of a `dataType` tensor of `shape`; throws on a negative dimension or
    /// overflow, and for ``DataType/bytes`` (whose size comes from its data, see
    /// ``BytesElements``).
    public static func byteCount(_ shape: [Int], dataType: DataType) throws(TensorError) -> Int {
        guard !dataType.isVariableLength else { throw .variableLength(dataType) }
        let (bytes, overflow) = try elementCount(shape).multipliedReportingOverflow(by: dataType.byteSize)
        guard !overflow else { throw .shapeOverflow(shape: shape) }
        return bytes
    }
}
