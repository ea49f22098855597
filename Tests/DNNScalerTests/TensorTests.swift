import Testing

@testable import DNNScaler

@Suite struct TensorTests {
    @Test func buildsFromValuesAndReadsThemBack() throws {
        let tensor = try Tensor(shape: [2, 3], values: [Float](arrayLiteral: 1, 2, 3, 4, 5, 6))
        #expect(tensor.dataType == .fp32)
        #expect(tensor.byteCount == 24)
        #expect(tensor.elementCount == 6)
        #expect(try tensor.values(as: Float.self) == [1, 2, 3, 4, 5, 6])
    }

    @Test func rejectsWrongByteAndElementCounts() {
        #expect(throws: TensorError.byteCountMismatch(expected: 8, actual: 7, dataType: .int32, shape: [2])) {
            try Tensor(dataType: .int32, shape: [2], bytes: [UInt8](repeating: 0, count: 7))
        }
        #expect(throws: TensorError.elementCountMismatch(expected: 4, actual: 3, shape: [2, 2])) {
            try Tensor(shape: [2, 2], values: [Int64](arrayLiteral: 1, 2, 3))
        }
    }

    @Test func rejectsNegativeAndOverflowingShapes() {
        #expect(throws: TensorError.negativeDimension(shape: [2, -1])) {
            try Tensor.zeros(dataType: .fp32, shape: [2, -1])
        }
        #expect(throws: TensorError.shapeOverflow(shape: [Int.max, 2])) {
            try Tensor.zeros(dataType: .uint8, shape: [Int.max, 2])
        }
        // The element count fits, the byte count does not.
        #expect(throws: TensorError.shapeOverflow(shape: [Int.max / 2])) {
            try Shape.byteCount([Int.max / 2], dataType: .fp64)
        }
    }

    @Test func readingAsTheWrongTypeFails() throws {
        let tensor = try Tensor(shape: [1], values: [Int32(7)])
        #expect(throws: TensorError.dataTypeMismatch(expected: .fp32, actual: .int32)) {
            try tensor.values(as: Float.self)
        }
    }

    @Test func boolReadsAnyNonZeroByteAsTrue() throws {
        let tensor = try Tensor(dataType: .bool, shape: [4], bytes: [0, 1, 2, 255])
        #expect(try tensor.values(as: Bool.self) == [false, true, true, true])
    }

    @Test(arguments: DataType.allCases)
    func everyDataTypeRoundTripsThroughBytes(dataType: DataType) throws {
        let bytes =
            dataType == .bytes
            ? try BytesElements.serialize([[1, 2], [], [3]])
            : (0..<(3 * dataType.byteSize)).map { UInt8(truncatingIfNeeded: $0 * 37 + 1) }
        let tensor = try Tensor(dataType: dataType, shape: [3], bytes: bytes)
        #expect(tensor.bytes == bytes)
        #expect(tensor.dataType == dataType)
        #expect(DataType(kserveName: dataType.rawValue) == dataType)
        #expect(DataType(onnxElementType: dataType.onnxElementType) == dataType)
    }

    @Test func typedValuesRoundTripForEveryElementType() throws {
        func roundTrip<Element: TensorElement>(_ values: [Element]) throws {
            let tensor = try Tensor(shape: [values.count], values: values)
            #expect(tensor.dataType == Element.dataType)
            #expect(try tensor.values(as: Element.self) == values)
        }
        try roundTrip([true, false, true])
        try roundTrip([UInt8.min, 7, UInt8.max])
        try roundTrip([UInt16.min, 300, UInt16.max])
        try roundTrip([UInt32.min, 70_000, UInt32.max])
        try roundTrip([UInt64.min, 1 << 40, UInt64.max])
        try roundTrip([Int8.min, -1, Int8.max])
        try roundTrip([Int16.min, -300, Int16.max])
        try roundTrip([Int32.min, -70_000, Int32.max])
        try roundTrip([Int64.min, -(1 << 40), Int64.max])
        try roundTrip([Float16(0.5), Float16(-2), Float16.greatestFiniteMagnitude])
        try roundTrip([Float(0.1), -Float.infinity, Float.leastNonzeroMagnitude])
        try roundTrip([Double.pi, -0.0, Double.greatestFiniteMagnitude])
    }

    @Test func concatenatesAndSplitsBatches() throws {
        let first = try Tensor(shape: [1, 2], values: [Int32(1), 2])
        let second = try Tensor(shape: [2, 2], values: [Int32(3), 4, 5, 6])
        let joined = try Tensor.concatenatingBatches([first, second])
        #expect(joined.shape == [3, 2])
        #expect(try joined.values(as: Int32.self) == [1, 2, 3, 4, 5, 6])
        let parts = try joined.splittingBatches([1, 2])
        #expect(parts == [first, second])
    }

    @Test func splittingSharesBytesInsteadOfCopying() throws {
        let tensor = try Tensor(shape: [4, 2], values: [Float](repeating: 1, count: 8))
        let parts = try tensor.splittingBatches([1, 1, 2])
        #expect(parts.allSatisfy { $0.buffer === tensor.buffer })
        #expect(parts.map(\.byteOffset) == [0, 8, 16])
        // A single tensor passes through concatenation without a copy too.
        #expect(try Tensor.concatenatingBatches([tensor]).buffer === tensor.buffer)
    }

    @Test func concatenationRejectsMismatchedTensors() throws {
        let floats = try Tensor(shape: [1, 2], values: [Float(1), 2])
        let ints = try Tensor(shape: [1, 2], values: [Int32(1), 2])
        let wider = try Tensor(shape: [1, 3], values: [Float(1), 2, 3])
        #expect(throws: TensorError.self) { try Tensor.concatenatingBatches([floats, ints]) }
        #expect(throws: TensorError.self) { try Tensor.concatenatingBatches([floats, wider]) }
        #expect(throws: TensorError.incompatibleForConcatenation("no tensors given")) {
            try Tensor.concatenatingBatches([])
        }
    }

    @Test func splitRejectsSizesThatDoNotAddUp() throws {
        let tensor = try Tensor(shape: [3, 1], values: [Float(1), 2, 3])
        #expect(throws: TensorError.splitMismatch(batchSizes: [1, 1], batchDimension: 3)) {
            try tensor.splittingBatches([1, 1])
        }
    }
}

/// BYTES tensors: KServe's layout (4-byte little-endian length, then the bytes, per element).
@Suite struct BytesTensorLayoutTests {
    @Test func elementsRoundTripAndMalformedDataIsNamed() throws {
        let elements: [[UInt8]] = [Array("a".utf8), [], Array("ünï".utf8), [0, 0xFF]]
        let data = try BytesElements.serialize(elements)
        #expect(data.count == 4 * 4 + 1 + 0 + 5 + 2)
        #expect(Array(data.prefix(5)) == [1, 0, 0, 0, 0x61])
        let tensor = try Tensor(dataType: .bytes, shape: [2, 2], bytes: data)
        #expect(tensor.elementCount == 4)
        #expect(try tensor.byteStrings() == elements)
        #expect(try Tensor(shape: [2, 2], byteStrings: elements) == tensor)
        #expect(throws: TensorError.self) { try Tensor(dataType: .bytes, shape: [2, 3], bytes: data) }
        #expect(throws: TensorError.self) { try Tensor(dataType: .bytes, shape: [1, 1], bytes: [4, 0, 0, 0, 1]) }
        #expect(throws: TensorError.self) { try Tensor(dataType: .bytes, shape: [1], bytes: [1, 0, 0]) }
        #expect(throws: TensorError.variableLength(.bytes)) { try Shape.byteCount([2], dataType: .bytes) }
        let empty = try Tensor.zeros(dataType: .bytes, shape: [3])
        #expect(try empty.byteStrings() == [[], [], []])
    }

    @Test func batchesOfStringsOfDifferentLengthsConcatenateAndSplitBack() throws {
        let first = try Tensor(shape: [1, 2], byteStrings: [Array("1".utf8), Array("22".utf8)])
        let second = try Tensor(
            shape: [2, 2], byteStrings: [[], Array("4444".utf8), Array("5".utf8), Array("666666".utf8)])
        let third = try Tensor(shape: [1, 2], byteStrings: [Array("7".utf8), []])
        let batch = try Tensor.concatenatingBatches([first, second, third])
        #expect(batch.shape == [4, 2])
        #expect(try batch.byteStrings().count == 8)
        let parts = try batch.splittingBatches([1, 2, 1])
        #expect(parts == [first, second, third])
    }

    @Test func onnxRuntimeEchoesAndParsesStrings() throws {
        let instance = try TestSupport.model("string_echo").makeInstance(threads: 1)
        let text = try Tensor(shape: [2, 2], byteStrings: ["a", "", "ünï", "x y"].map { Array($0.utf8) })
        let digits = try Tensor(shape: [2, 2], byteStrings: ["3.5", "-1", "1e2", "0"].map { Array($0.utf8) })
        let outputs = try instance.run(["text": text, "digits": digits], outputNames: nil)
        #expect(try outputs["echo"]?.byteStrings() == ["a", "", "ünï", "x y"].map { Array($0.utf8) })
        #expect(try outputs["number"]?.values(as: Float.self) == [3.5, -1, 100, 0])
        #expect(outputs["echo"]?.shape == [2, 2])
        // ONNX Runtime strings end at a NUL: validation refuses such an element before any batch.
        let nul = try Tensor(shape: [1, 2], byteStrings: [[0x31, 0, 0x32], Array("3".utf8)])
        #expect(throws: BackendError.self) {
            try TestSupport.model("string_echo").metadata.validate(
                inputs: ["text": nul, "digits": digits], outputNames: nil)
        }
    }
}
