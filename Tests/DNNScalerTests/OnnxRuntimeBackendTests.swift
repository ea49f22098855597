import Foundation
import Synchronization
import Testing

@testable import DNNScaler

@Suite struct OnnxRuntimeBackendTests {
    @Test func readsModelMetadata() throws {
        let model = try TestSupport.model("linear_hand")
        #expect(model.metadata.name == "linear_hand")
        #expect(model.metadata.platform == "onnxruntime_onnx")
        #expect(model.metadata.inputs == [TensorSpec(name: "x", dataType: .fp32, shape: [-1, 3])])
        #expect(model.metadata.outputs == [TensorSpec(name: "y", dataType: .fp32, shape: [-1, 2])])
        #expect(model.metadata.supportsBatching)
    }

    /// y = x W + b with W = [[1, -1], [2, 0.5], [-3, 4]], b = [0.5, -2], worked out by hand.
    @Test func linearModelMatchesHandComputedValues() throws {
        let instance = try TestSupport.model("linear_hand").makeInstance(threads: 1)
        let x = try Tensor(shape: [3, 3], values: [Float(1), 2, 3, 0, 0, 0, -1, 0.5, 2])
        let outputs = try instance.run(["x": x], outputNames: nil)
        let y = try #require(outputs["y"])
        #expect(y.shape == [3, 2])
        #expect(try y.values(as: Float.self) == [-3.5, 10, 0.5, -2, -5.5, 7.25])
    }

    @Test func int32AddSubModelIsExact() throws {
        let instance = try TestSupport.model("simple").makeInstance(threads: 1)
        let a = (0..<32).map { Int32($0 * 1000 - 7) }
        let b = (0..<32).map { Int32(Int32.max / 64 - Int32($0)) }
        let outputs = try instance.run(
            ["INPUT0": try Tensor(shape: [2, 16], values: a), "INPUT1": try Tensor(shape: [2, 16], values: b)],
            outputNames: ["OUTPUT1"])
        #expect(Set(outputs.keys) == ["OUTPUT1"])
        #expect(try outputs["OUTPUT1"]?.values(as: Int32.self) == zip(a, b).map { $0 - $1 })
    }

    @Test(arguments: ["tiny_cnn", "squeezenet_random"])
    func batchOfNEqualsNSingleRuns(modelName: String) throws {
        let model = try TestSupport.model(modelName)
        let instance = try model.makeInstance(threads: 2)
        let spec = model.metadata.inputs[0]
        let sampleShape = Array(spec.shape.dropFirst())
        let sampleCount = sampleShape.reduce(1, *)
        let batch = 4
        let samples = try (0..<batch).map { index in
            try Tensor(
                shape: [1] + sampleShape,
                values: TestSupport.randomFloats(count: sampleCount, seed: UInt64(index + 1)))
        }
        let outputName = model.metadata.outputs[0].name
        let batched = try #require(
            try instance.run([spec.name: try Tensor.concatenatingBatches(samples)], outputNames: nil)[outputName])
        let perRequest = try batched.splittingBatches([Int](repeating: 1, count: batch))
        var singles: [[Float]] = []
        for (index, sample) in samples.enumerated() {
            let single = try #require(try instance.run([spec.name: sample], outputNames: nil)[outputName])
            let values = try single.values(as: Float.self)
            let fromBatch = try perRequest[index].values(as: Float.self)
            let largestDifference = zip(values, fromBatch).map { abs($0 - $1) }.max() ?? 0
            #expect(largestDifference <= 1e-5, "sample \(index): batch and single runs differ by \(largestDifference)")
            singles.append(values)
        }
        // Distinct inputs must give distinct outputs, or the comparison above proves nothing.
        #expect(singles[0] != singles[1])
    }

    @Test func everyNumericDataTypeRoundTripsThroughTheRuntime() throws {
        let model = try TestSupport.model("identity_all_dtypes")
        let instance = try model.makeInstance(threads: 1)
        var inputs: [String: Tensor] = [:]
        for spec in model.metadata.inputs {
            let count = 2 * 3 * spec.dataType.byteSize
            var bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 29 &+ 3) }
            if spec.dataType == .bool { bytes = (0..<count).map { UInt8($0 % 2) } }
            inputs[spec.name] = try Tensor(dataType: spec.dataType, shape: [2, 3], bytes: bytes)
        }
        #expect(model.metadata.inputs.count == 12)
        let outputs = try instance.run(inputs, outputNames: nil)
        for spec in model.metadata.inputs {
            let outputName = spec.name.replacingOccurrences(of: "input_", with: "output_")
            let output = try #require(outputs[outputName])
            #expect(output == inputs[spec.name], "\(spec.dataType) did not round-trip")
        }
    }

    @Test func concurrentRunsReturnEachCallersOwnOutputs() throws {
        let model = try TestSupport.model("tiny_cnn")
        let instances = try (0..<2).map { _ in try model.makeInstance(threads: 1) }
        let callers = 8
        let runsPerCaller = 20
        let inputs = try (0..<callers).map { caller in
            try Tensor(shape: [1, 3, 16, 16], values: TestSupport.randomFloats(count: 768, seed: UInt64(100 + caller)))
        }
        let expected = try inputs.map { input in
            try #require(try instances[0].run(["image": input], outputNames: nil)["probabilities"])
        }
        let mismatches = Mutex(0)
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: callers) { caller in
            for run in 0..<runsPerCaller {
                do {
                    let output = try instances[(caller + run) % 2].run(["image": inputs[caller]], outputNames: nil)
                    if output["probabilities"] != expected[caller] { mismatches.withLock { $0 += 1 } }
                } catch {
                    failures.withLock { $0.append(String(describing: error)) }
                }
            }
        }
        #expect(failures.withLock { $0 } == [])
        #expect(mismatches.withLock { $0 } == 0)
        #expect(expected[0] != expected[1])
    }

    @Test func missingModelFileIsAClearError() throws {
        #expect(throws: BackendError.modelNotFound(path: "/nonexistent/model.onnx")) {
            try OnnxRuntimeModel(path: "/nonexistent/model.onnx", runtime: try TestSupport.runtime())
        }
    }

    @Test func nonOnnxFileCarriesTheRuntimesMessage() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("not-a-model-\(UUID()).onnx").path
        try Data("this is not a protobuf".utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try OnnxRuntimeModel(path: path, runtime: try TestSupport.runtime())
            Issue.record("loading a text file as a model should fail")
        } catch let error as BackendError {
            guard case .modelLoadFailed(let failedPath, let reason) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(failedPath == path)
            #expect(reason.contains("Protobuf parsing failed"))
            #expect(error.description.hasPrefix("cannot load model \(path)"))
        }
    }

    @Test func wrongInputNameShapeAndTypeAreRejectedBeforeTheRuntime() throws {
        let instance = try TestSupport.model("linear_hand").makeInstance(threads: 1)
        let good = try Tensor(shape: [1, 3], values: [Float(1), 2, 3])
        #expect(throws: BackendError.unknownInput(name: "X", model: "linear_hand", expected: ["x"])) {
            try instance.run(["X": good], outputNames: nil)
        }
        #expect(throws: BackendError.missingInput(name: "x", model: "linear_hand")) {
            try instance.run([:], outputNames: nil)
        }
        #expect(throws: BackendError.shapeMismatch(input: "x", expected: [-1, 3], actual: [1, 4])) {
            try instance.run(
                ["x": try Tensor(shape: [1, 4], values: [Float](repeating: 0, count: 4))], outputNames: nil)
        }
        #expect(throws: BackendError.shapeMismatch(input: "x", expected: [-1, 3], actual: [3])) {
            try instance.run(["x": try Tensor(shape: [3], values: [Float](repeating: 0, count: 3))], outputNames: nil)
        }
        #expect(throws: BackendError.dataTypeMismatch(input: "x", expected: .fp32, actual: .fp64)) {
            try instance.run(
                ["x": try Tensor(shape: [1, 3], values: [Double](repeating: 0, count: 3))], outputNames: nil)
        }
        #expect(throws: BackendError.unknownOutput(name: "z", model: "linear_hand", expected: ["y"])) {
            try instance.run(["x": good], outputNames: ["z"])
        }
        let message = BackendError.shapeMismatch(input: "x", expected: [-1, 3], actual: [1, 4]).description
        #expect(message == "input 'x' has shape [1, 4], the model expects [-1, 3] (-1: any size)")
        // The instance still serves after the rejections.
        #expect(try instance.run(["x": good], outputNames: nil)["y"]?.shape == [1, 2])
    }

    @Test func runtimeFailureCarriesTheRuntimesMessageAndTheInstanceKeepsWorking() throws {
        let instance = try TestSupport.model("reshape_rows_of_three").makeInstance(threads: 1)
        do {
            _ = try instance.run(
                ["x": try Tensor(shape: [1, 4], values: [Float](repeating: 1, count: 4))], outputNames: nil)
            Issue.record("reshaping 4 elements into rows of 3 should fail")
        } catch let error as BackendError {
            guard case .runtimeFailed(let message) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(message.contains("Reshape") || message.contains("reshape"), "ORT's message: \(message)")
        }
        let rows = try instance.run(
            ["x": try Tensor(shape: [2, 3], values: [Float](repeating: 1, count: 6))], outputNames: nil)
        #expect(rows["rows"]?.shape == [2, 3])
    }

    @Test func zeroThreadsIsRejected() throws {
        #expect(throws: BackendError.invalidArgument("an instance needs at least 1 thread, got 0")) {
            try TestSupport.model("linear_hand").makeInstance(threads: 0)
        }
    }

    @Test func missingLibraryTellsHowToFixIt() throws {
        do {
            _ = try OnnxRuntimeLibraryLocator.locate(explicitPath: "/nonexistent/libonnxruntime.so")
            Issue.record("a missing explicit library must fail")
        } catch {
            #expect(error == .libraryNotFound(searched: ["/nonexistent/libonnxruntime.so (given explicitly)"]))
            #expect(error.description.contains("run scripts/setup"))
            #expect(error.description.contains("DNNSCALER_ORT_LIBRARY"))
        }
        do {
            _ = try OnnxRuntimeLibraryLocator.locate(
                explicitPath: nil, environment: [:], workingDirectory: "/", executablePath: nil)
            Issue.record("no library under / should be found")
        } catch {
            guard case .libraryNotFound = error else {
                Issue.record("unexpected error \(error)")
                return
            }
        }
        #expect(
            try OnnxRuntimeLibraryLocator.locate(
                explicitPath: nil, environment: [:], workingDirectory: TestSupport.packageRoot + "/Sources",
                executablePath: nil
            ).contains("/.venv/lib/"))
    }
}
