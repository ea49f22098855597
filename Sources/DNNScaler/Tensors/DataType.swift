/// A tensor element type, named as KServe v2 / Triton name it on the wire.
public enum DataType: String, Sendable, CaseIterable, Codable, CustomStringConvertible {
    case bool = "BOOL"
    case uint8 = "UINT8"
    case uint16 = "UINT16"
    case uint32 = "UINT32"
    case uint64 = "UINT64"
    case int8 = "INT8"
    case int16 = "INT16"
    case int32 = "INT32"
    case int64 = "INT64"
    case fp16 = "FP16"
    case bf16 = "BF16"
    case fp32 = "FP32"
    case fp64 = "FP64"
    /// Byte strings of any length (ONNX `STRING`). A tensor of them is laid out as KServe's binary
    /// form: per element, in row-major order, a 4-byte little-endian length and then its bytes.
    case bytes = "BYTES"

    /// Bytes per element in the contiguous little-endian layout (BOOL is one byte); 0 for
    /// ``bytes``, whose elements have no fixed size (see ``isVariableLength``).
    public var byteSize: Int {
        switch self {
        case .bool, .uint8, .int8: 1
        case .uint16, .int16, .fp16, .bf16: 2
        case .uint32, .int32, .fp32: 4
        case .uint64, .int64, .fp64: 8
        case .bytes: 0
        }
    }

    /// Whether elements have no fixed size (``bytes``): byte counts then come from the data, not
    /// from the shape.
    public var isVariableLength: Bool { self == .bytes }

    /// The KServe v2 name, e.g. `FP32`.
    public var description: String { rawValue }

    /// Parses a KServe v2 datatype name (`"FP32"`); `nil` for names DNNScaler does not serve.
    public init?(kserveName: String) {
        self.init(rawValue: kserveName)
    }

    /// The ONNX `TensorProto.DataType` number of this type.
    public var onnxElementType: Int32 {
        switch self {
        case .fp32: 1
        case .uint8: 2
        case .int8: 3
        case .uint16: 4
        case .int16: 5
        case .int32: 6
        case .int64: 7
        case .bool: 9
        case .fp16: 10
        case .fp64: 11
        case .uint32: 12
        case .uint64: 13
        case .bf16: 16
        case .bytes: 8
        }
    }

    /// The type for an ONNX `TensorProto.DataType` number; `nil` for types DNNScaler does not serve
    /// (strings, complex numbers, 8-bit and 4-bit floats).
    public init?(onnxElementType: Int32) {
        guard let match = DataType.allCases.first(where: { $0.onnxElementType == onnxElementType }) else {
            return nil
        }
        self = match
    }
}

/// A Swift type that can be the element of a tensor: its in-memory layout is the tensor's byte layout.
public protocol TensorElement: Sendable, Equatable {
    /// The wire data type for this Swift type.
    static var dataType: DataType { get }
}

extension Bool: TensorElement {
    /// `BOOL`, one byte per element.
    public static var dataType: DataType { .bool }
}
extension UInt8: TensorElement {
    /// `UINT8`.
    public static var dataType: DataType { .uint8 }
}
extension UInt16: TensorElement {
    /// `UINT16`.
    public static var dataType: DataType { .uint16 }
}
extension UInt32: TensorElement {
    /// `UINT32`.
    public static var dataType: DataType { .uint32 }
}
extension UInt64: TensorElement {
    /// `UINT64`.
    public static var dataType: DataType { .uint64 }
}
extension Int8: TensorElement {
    /// `INT8`.
    public static var dataType: DataType { .int8 }
}
extension Int16: TensorElement {
    /// `INT16`.
    public static var dataType: DataType { .int16 }
}
extension Int32: TensorElement {
    /// `INT32`.
    public static var dataType: DataType { .int32 }
}
extension Int64: TensorElement {
    /// `INT64`.
    public static var dataType: DataType { .int64 }
}
extension Float16: TensorElement {
    /// `FP16`.
    public static var dataType: DataType { .fp16 }
}
extension Float: TensorElement {
    /// `FP32`.
    public static var dataType: DataType { .fp32 }
}
extension Double: TensorElement {
    /// `FP64`.
    public static var dataType: DataType { .fp64 }
}
