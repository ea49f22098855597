extension Tensor {
    /// Joins tensors along the first (batch) dimension. All must share the data type and the
    /// dimensions after the first. A single tensor is returned as it is, without a copy.
    public static func concatenatingBatches(_ parts: [Tensor]) throws(TensorError) -> Tensor {
        guard let first = parts.first else {
            throw .incompatibleForConcatenation("no tensors given")
        }
        if parts.count == 1 { return first }
        guard !first.shape.isEmpty else { throw .noBatchDimension }
        let innerShape = first.shape.dropFirst()
        var batch = 0
        for part in parts {
            guard part.dataType == first.dataType else {
                throw .incompatibleForConcatenation("data types \(first.dataType) and \(part.dataType) differ")
            }
            guard part.shape.count == first.shape.count, part.shape.dropFirst() == innerShape else {
                throw .incompatibleForConcatenation("shapes \(first.shape) and \(part.shape) differ after the batch")
            }
            let (sum, overflow) = batch.addingReportingOverflow(part.shape[0])
            guard !overflow else { throw .shapeOverflow(shape: part.shape) }
            batch = sum
        }
        let shape = [batch] + innerShape
        let total: Int
        if first.dataType.isVariableLength {
            // Elements are laid out one after another: the parts' data, in order, is the batch's.
            var sum = 0
            for part in parts {
                let (next, overflow) = sum.addingReportingOverflow(part.byteCount)
                guard !overflow else { throw .shapeOverflow(shape: shape) }
                sum = next
            }
            total = sum
        } else {
            total = try Shape.byteCount(shape, dataType: first.dataType)
        }
        let buffer = TensorBuffer(count: total) { destination in
            var offset = 0
            for part in parts {
                part.withUnsafeBytes { source in
                    UnsafeMutableRawBufferPointer(rebasing: destination[offset..<(offset + source.count)])
                        .copyMemory(from: source)
                    offset += source.count
                }
            }
        }
        return Tensor(dataType: first.dataType, shape: shape, buffer: buffer, byteOffset: 0, byteCount: total)
    }

    /// Splits along the first (batch) dimension into parts of the given batch sizes. The parts
    /// are views into this tensor's bytes: nothing is copied.
    public func splittingBatches(_ batchSizes: [Int]) throws(TensorError) -> [Tensor] {
        guard let batch = shape.first else { throw .noBatchDimension }
        guard batchSizes.allSatisfy({ $0 >= 0 }), batchSizes.reduce(0, +) == batch else {
            throw .splitMismatch(batchSizes: batchSizes, batchDimension: batch)
        }
        if batchSizes.count == 1 { return [self] }
        let rowBytes = batch == 0 ? 0 : byteCount / batch
        // BYTES rows differ in size: where each element starts (and the end), from the data.
        let elementOffsets: [Int]? =
            dataType.isVariableLength
            ? try withUnsafeBytes { (raw) throws(TensorError) in
                try BytesElements.offsets(in: raw, count: Shape.elementCount(shape))
            } : nil
        let rowElements = batch == 0 ? 0 : elementCount / batch
        var offset = byteOffset
        var row = 0
        var parts: [Tensor] = []
        parts.reserveCapacity(batchSizes.count)
        for size in batchSizes {
            var partShape = shape
            partShape[0] = size
            let partBytes =
                elementOffsets.map { $0[(row + size) * rowElements] - $0[row * rowElements] } ?? size * rowBytes
            row += size
            parts.append(
                Tensor(dataType: dataType, shape: partShape, buffer: buffer, byteOffset: offset, byteCount: partBytes))
            offset += partBytes
        }
        return parts
    }
}
