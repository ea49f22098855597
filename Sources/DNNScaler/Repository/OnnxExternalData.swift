import Foundation

/// Finds the external-data files an ONNX model names (`TensorProto.external_data` entries with
/// the key `location`), by walking the protobuf wire format of the model file without decoding
/// the weights, so that a model whose tensors point outside its own folder is refused before ONNX
/// Runtime opens anything.
///
/// Walked: the main graph, every node attribute's tensors and subgraphs (`If`, `Loop`, `Scan`),
/// sparse initializers and the model's local functions. Field numbers are those of onnx.proto.
public enum OnnxExternalData {
    /// Why a model's external data was refused.
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        /// What is wrong.
        public var message: String
        /// The message.
        public var description: String { message }
    }

    /// How deeply graphs may nest (a hostile file could nest without end).
    static let maximumDepth = 64

    /// Checks that every external-data location of the model at `modelPath` is a relative path
    /// that stays inside the model's folder once symlinks are resolved. A file that is not valid
    /// protobuf is left for ONNX Runtime to refuse with its own message.
    public static func checkContained(modelPath: String) throws(Refusal) {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: modelPath), options: .alwaysMapped) else { return }
        let folder = (modelPath as NSString).deletingLastPathComponent
        let locations: [String]
        do {
            locations = try Self.locations(in: data)
        } catch {
            return
        }
        for location in locations {
            try checkLocation(location, folder: folder)
        }
    }

    /// The external-data locations named anywhere in the model bytes.
    static func locations(in data: Data) throws(WireError) -> [String] {
        let outcome = data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) -> Result<[String], WireError> in
            var found: [String] = []
            var reader = WireReader(bytes: bytes)
            do throws(WireError) {
                try walk(&reader, as: .model, depth: 0, into: &found)
            } catch {
                return .failure(error)
            }
            return .success(found)
        }
        return try outcome.get()
    }

    static func checkLocation(_ location: String, folder: String) throws(Refusal) {
        let components = location.split(separator: "/", omittingEmptySubsequences: false)
        guard !location.isEmpty, !location.hasPrefix("/"), !location.contains("\0"),
            !components.contains(where: { $0 == ".." })
        else {
            throw Refusal(
                message:
                    "the model's external data location '\(ModelName.displayed(location))' leaves the model's folder (only relative paths inside it are allowed)"
            )
        }
        let path = "\(folder)/\(location)"
        if FileManager.default.fileExists(atPath: path), !ContainedPath.isInside(path, folder: folder) {
            throw Refusal(
                message:
                    "the model's external data file '\(ModelName.displayed(location))' resolves outside the model's folder (a symlink)"
            )
        }
    }

    /// The messages that can hold tensors, directly or nested.
    enum Message {
        case model, graph, node, attribute, tensor, sparseTensor, function, entry
    }

    /// The nested message a field of `message` holds, if it can lead to a tensor.
    static func child(of message: Message, field: UInt64) -> Message? {
        switch (message, field) {
        case (.model, 7): .graph  // ModelProto.graph
        case (.model, 25): .function  // ModelProto.functions
        case (.graph, 1): .node  // GraphProto.node
        case (.graph, 5): .tensor  // GraphProto.initializer
        case (.graph, 15): .sparseTensor  // GraphProto.sparse_initializer
        case (.function, 7): .node  // FunctionProto.node
        case (.node, 5): .attribute  // NodeProto.attribute
        case (.attribute, 5), (.attribute, 10): .tensor  // AttributeProto.t, .tensors
        case (.attribute, 6), (.attribute, 11): .graph  // AttributeProto.g, .graphs
        case (.attribute, 22), (.attribute, 23): .sparseTensor  // AttributeProto.sparse_tensor(s)
        case (.sparseTensor, 1), (.sparseTensor, 2): .tensor  // SparseTensorProto.values, .indices
        case (.tensor, 13): .entry  // TensorProto.external_data
        default: nil
        }
    }

    private static func walk(
        _ reader: inout WireReader, as message: Message, depth: Int, into found: inout [String]
    ) throws(WireError) {
        guard depth <= maximumDepth else { throw .tooDeep }
        var key: String?
        var value: String?
        while !reader.isAtEnd {
            let tag = try reader.varint()
            let field = tag >> 3
            switch tag & 7 {
            case 0: _ = try reader.varint()
            case 1: try reader.skip(8)
            case 5: try reader.skip(4)
            case 2:
                var nested = try reader.lengthDelimited()
                if message == .entry {
                    if field == 1 { key = nested.string() }
                    if field == 2 { value = nested.string() }
                } else if let child = child(of: message, field: field) {
                    try walk(&nested, as: child, depth: depth + 1, into: &found)
                }
            default: throw .malformed
            }
        }
        if message == .entry, key == "location", let value { found.append(value) }
    }

    /// Not protobuf, or nested deeper than allowed.
    enum WireError: Error {
        case malformed, tooDeep
    }

    /// Reads protobuf wire-format primitives from a byte range.
    struct WireReader {
        let bytes: UnsafeRawBufferPointer
        var offset = 0
        var end: Int

        init(bytes: UnsafeRawBufferPointer, offset: Int = 0, end: Int? = nil) {
            self.bytes = bytes
            self.offset = offset
            self.end = end ?? bytes.count
        }

        var isAtEnd: Bool { offset >= end }

        mutating func varint() throws(WireError) -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while offset < end, shift < 64 {
                let byte = bytes[offset]
                offset += 1
                result |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return result }
                shift += 7
            }
            throw .malformed
        }

        mutating func skip(_ count: Int) throws(WireError) {
            guard count >= 0, end - offset >= count else { throw .malformed }
            offset += count
        }

        mutating func lengthDelimited() throws(WireError) -> WireReader {
            let length = try varint()
            guard length <= UInt64(end - offset) else { throw .malformed }
            let nested = WireReader(bytes: bytes, offset: offset, end: offset + Int(length))
            offset += Int(length)
            return nested
        }

        func string() -> String {
            String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<end]), as: UTF8.self)
        }
    }
}
