/// The layout of ``DataType/bytes`` tensor data: per element a 4-byte little-endian length, then
/// that many bytes, elements in row-major order (KServe v2's binary form of BYTES).
public enum BytesElements {
    /// The byte offset where each element's length prefix starts, plus the end offset; throws
    /// unless `data` holds exactly `count` well-formed elements.
    public static func offsets(in data: UnsafeRawBufferPointer, count: Int) throws(TensorError) -> [Int] {
        try walk(data, count: count)
    }

    /// The prefix offsets and the end, as ``offsets(in:count:)``; with `count` nil, of however many
    /// elements the data holds.
    private static func walk(_ data: UnsafeRawBufferPointer, count: Int?) throws(TensorError) -> [Int] {
        var offsets: [Int] = []
        offsets.reserveCapacity((count ?? 0) + 1)
        var position = 0
        var index = 0
        let of = count.map { " of \($0)" } ?? ""
        while count.map({ index < $0 }) ?? (position < data.count) {
            guard data.count - position >= 4 else {
                throw .malformedBytes(
                    "element \(index)\(of): \(data.count - position) bytes left, a length prefix needs 4")
            }
            offsets.append(position)
            let length = Int(UInt32(littleEndian: data.loadUnaligned(fromByteOffset: position, as: UInt32.self)))
            position += 4
            guard data.count - position >= length else {
                throw .malformedBytes(
                    "element \(index)\(of) declares \(length) bytes, \(data.count - position) are left")
            }
            position += length
            index += 1
        }
        if let count, position != data.count {
            throw .malformedBytes("\(data.count - position) bytes follow the \(count) elements the shape holds")
        }
        offsets.append(position)
        return offsets
    }

    /// The byte range of each element's content (without its length prefix), in order; throws
    /// as ``offsets(in:count:)`` does.
    public static func ranges(in data: UnsafeRawBufferPointer, count: Int) throws(TensorError) -> [Range<Int>] {
        let offsets = try offsets(in: data, count: count)
        return (0..<count).map { (offsets[$0] + 4)..<offsets[$0 + 1] }
    }

    /// The elements of well-formed data (as checked by ``offsets(in:count:)``).
    public static func elements(in data: UnsafeRawBufferPointer, count: Int) throws(TensorError) -> [[UInt8]] {
        try ranges(in: data, count: count).map { Array(data[$0]) }
    }

    /// Every element of well-formed data, however many it holds.
    public static func elements(in data: UnsafeRawBufferPointer) throws(TensorError) -> [[UInt8]] {
        let offsets = try walk(data, count: nil)
        return offsets.indices.dropLast().map { Array(data[(offsets[$0] + 4)..<offsets[$0 + 1]]) }
    }

    /// Lays `elements` out with their length prefixes; throws if one is longer than 2^32 - 1 bytes.
    public static func serialize(_ elements: some Collection<some Collection<UInt8>>) throws(TensorError) -> [UInt8] {
        var data: [UInt8] = []
        data.reserveCapacity(elements.reduce(0) { $0 + 4 + $1.count })
        for element in elements {
            guard element.count <= Int(UInt32.max) else {
                throw .malformedBytes("an element of \(element.count) bytes is longer than 2^32 - 1")
            }
            withUnsafeBytes(of: UInt32(element.count).littleEndian) { data.append(contentsOf: $0) }
            data.append(contentsOf: element)
        }
        return data
    }
}
