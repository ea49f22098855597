import DNNScaler

/// An input as a request declares it (name, datatype, shape), checked one way for HTTP and gRPC:
/// the same bad declaration gets the same ``ErrorKind`` and message from either front end.
struct DeclaredInput {
    /// The input's name.
    let name: String
    /// Its element type.
    let dataType: DataType
    /// Its shape.
    let shape: [Int]
    /// Its element count.
    let elementCount: Int
    /// The bytes its data must hold; `nil` for BYTES, whose size comes with its data.
    let byteCount: Int?

    /// The largest dimension a shape may declare: 2^53, below which every integer is exact in the
    /// doubles JSON numbers are read as.
    static let largestDimension = 9_007_199_254_740_992.0

    /// Checks the declaration of the input at `index`; `seen` collects names, to refuse one given
    /// twice. `dimensions` are the shape as the wire gives it.
    init(
        name: String, index: Int, datatype: String?, dimensions: [Double]?, seen: inout Set<String>
    ) throws(ServerError) {
        guard !name.isEmpty else { throw .badRequest("input \(index) has no name") }
        guard seen.insert(name).inserted else { throw .badRequest("input '\(name)' appears twice") }
        guard let datatype, !datatype.isEmpty else { throw .badRequest("input '\(name)' has no 'datatype'") }
        guard let dataType = DataType(kserveName: datatype) else {
            throw .badRequest("input '\(name)' has unsupported datatype '\(datatype)'")
        }
        guard let dimensions else { throw .badRequest("input '\(name)' has no 'shape'") }
        var shape: [Int] = []
        for value in dimensions {
            guard value >= 0, value == value.rounded() else {
                throw .badRequest("input '\(name)' shape must hold non-negative integers, got \(Self.text(dimensions))")
            }
            guard value < Self.largestDimension else {
                throw .badRequest("input '\(name)' shape \(Self.text(dimensions)) is too large")
            }
            shape.append(Int(value))
        }
        do {
            elementCount = try Shape.elementCount(shape)
            byteCount = dataType.isVariableLength ? nil : try Shape.byteCount(shape, dataType: dataType)
        } catch {
            throw .badRequest("input '\(name)': \(error)")
        }
        self.name = name
        self.dataType = dataType
        self.shape = shape
    }

    /// Refuses `actual` bytes of data from `source` (`raw_input_contents`, `binary_data_size`)
    /// unless they are what the declaration needs (BYTES: any size).
    func checkByteCount(_ actual: Int, from source: String) throws(ServerError) {
        if let byteCount, actual != byteCount {
            throw .badRequest(
                "input '\(name)': \(source) has \(actual) bytes but shape \(shape) of \(dataType) needs \(byteCount)")
        }
    }

    /// Refuses an input that names a shared-memory region and carries data (`source`) as well.
    func refuseDataBesideSharedMemory(_ source: String) throws(ServerError) {
        throw .badRequest("input '\(name)': give shared_memory_region or \(source), not both")
    }

    /// The input read from the shared-memory region `reference` names.
    func tensor(in reference: SharedMemoryReference) throws(ServerError) -> Tensor {
        try reference.inputTensor(
            dataType: dataType, shape: shape, byteCount: byteCount ?? reference.byteSize, what: "input '\(name)'")
    }

    /// The input copied from `bytes` (binary data of the request), which must hold its size.
    func tensor(copying bytes: UnsafeRawBufferPointer, from source: String) throws(ServerError) -> Tensor {
        try checkByteCount(bytes.count, from: source)
        do {
            return try Tensor(dataType: dataType, shape: shape, copying: bytes)
        } catch {
            throw .badRequest("input '\(name)': \(error)")
        }
    }

    /// A request's `timeout` parameter (microseconds) in milliseconds; refuses anything but a
    /// positive finite number, as both front ends read it.
    static func timeoutMs(microseconds: Double?) throws(ServerError) -> Double {
        guard let microseconds, microseconds > 0, microseconds.isFinite else {
            throw .badRequest("parameter 'timeout' must be a positive number of microseconds")
        }
        return microseconds / 1000
    }

    /// A shape as a client wrote it: integers without a fraction.
    private static func text(_ dimensions: [Double]) -> String {
        "["
            + dimensions.map { $0 == $0.rounded() && abs($0) < 1e18 ? String(Int64($0)) : String($0) }.joined(
                separator: ", ") + "]"
    }
}
