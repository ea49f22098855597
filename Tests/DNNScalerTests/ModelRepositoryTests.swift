import Testing

@testable import DNNScaler

@Suite struct ModelRepositoryTests {
    @Test func listsAndResolvesModels() throws {
        let repository = TestSupport.repository
        #expect(repository.modelNames().contains("resnet50"))
        #expect(repository.versions(of: "resnet50") == [1])
        #expect(try repository.modelFile(name: "resnet50").hasSuffix("/resnet50/1/model.onnx"))
        let resolved = try repository.resolve("squeezenet")
        #expect(resolved.name == "squeezenet")
        let byPath = try repository.resolve(resolved.path)
        #expect(byPath.name == "squeezenet")
    }

    @Test func unknownModelAndVersionSayWhatExists() throws {
        let repository = TestSupport.repository
        do {
            _ = try repository.modelFile(name: "nope")
            Issue.record("an unknown model must fail")
        } catch {
            #expect(error.description.contains("no model 'nope'"))
            #expect(error.description.contains("resnet50"))
        }
        #expect(throws: ModelRepository.LookupError.unknownVersion(name: "resnet50", version: 7, available: [1])) {
            try repository.modelFile(name: "resnet50", version: 7)
        }
        #expect(ModelRepository(root: "/nonexistent").modelNames().isEmpty)
    }
}
