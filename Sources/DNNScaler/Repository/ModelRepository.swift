import Foundation

/// A Triton-style model repository on disk: `<root>/<model>/<version>/model.onnx`.
public struct ModelRepository: Sendable {
    /// Why a model could not be found.
    public enum LookupError: Error, Equatable, CustomStringConvertible {
        /// No such model folder (and not a file path either).
        case unknownModel(name: String, root: String, available: [String])
        /// The model folder has no numeric version folder with a model.onnx.
        case noVersion(name: String, root: String)
        /// The requested version does not exist.
        case unknownVersion(name: String, version: Int, available: [Int])
        /// The name is not one folder of the repository (``ModelName/validate(_:)``).
        case invalidName(message: String)
        /// The model folder or a file of it resolves (through a symlink) outside the repository,
        /// or its external data lies outside its own folder.
        case outsideRepository(name: String, message: String)

        /// A one-line message that says what exists.
        public var description: String {
            switch self {
            case .unknownModel(let name, let root, let available):
                "no model '\(name)': not a file, and \(root)/\(name)/ does not exist"
                    + (available.isEmpty
                        ? " (the repository is empty or missing; run scripts/setup)"
                        : " (models: \(available.joined(separator: ", ")))")
            case .noVersion(let name, let root):
                "model '\(name)' in \(root) has no version folder with a model.onnx (expected \(root)/\(name)/1/model.onnx)"
            case .unknownVersion(let name, let version, let available):
                "model '\(name)' has no version \(version) (versions: \(available.map(String.init).joined(separator: ", ")))"
            case .invalidName(let message):
                message
            case .outsideRepository(let name, let message):
                "model '\(name)' refused: \(message)"
            }
        }
    }

    /// The repository folder.
    public let root: String

    /// Creates a view of the repository at `root` (nothing is read yet).
    public init(root: String) {
        self.root = root
    }

    /// Names of the model folders, sorted.
    public func modelNames() -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return entries.filter { !$0.hasPrefix(".") && isDirectory("\(root)/\($0)") }.sorted()
    }

    /// Versions of a model that have a `model.onnx`, ascending.
    public func versions(of name: String) -> [Int] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "\(root)/\(name)")) ?? []
        return entries.compactMap { entry in
            guard let version = Int(entry), version >= 0,
                FileManager.default.fileExists(atPath: "\(root)/\(name)/\(entry)/model.onnx")
            else { return nil }
            return version
        }.sorted()
    }

    /// The model file for `name` at `version` (default: the highest). The name must be one
    /// folder of the repository (``ModelName/validate(_:)``), the file must resolve inside the
    /// repository once symlinks are followed, and its external data inside its own folder.
    public func modelFile(name: String, version: Int? = nil) throws(LookupError) -> String {
        do {
            try ModelName.validate(name)
        } catch {
            throw .invalidName(message: error.message)
        }
        guard isDirectory("\(root)/\(name)") else {
            throw .unknownModel(name: name, root: root, available: modelNames())
        }
        let available = versions(of: name)
        guard let newest = available.last else { throw .noVersion(name: name, root: root) }
        let chosen = version ?? newest
        guard available.contains(chosen) else {
            throw .unknownVersion(name: name, version: chosen, available: available)
        }
        let path = "\(root)/\(name)/\(chosen)/model.onnx"
        guard ContainedPath.isInside(path, folder: root) else {
            throw .outsideRepository(name: name, message: "its model file resolves outside the repository \(root)")
        }
        do {
            try OnnxExternalData.checkContained(modelPath: path)
        } catch {
            throw .outsideRepository(name: name, message: error.message)
        }
        return path
    }

    /// The model's `config.json`, if it has one inside the repository; a config file that
    /// resolves outside the repository (a symlink) is an error, not skipped.
    public func configFile(name: String) throws(LookupError) -> String? {
        do {
            try ModelName.validate(name)
        } catch {
            throw .invalidName(message: error.message)
        }
        let path = "\(root)/\(name)/config.json"
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard ContainedPath.isInside(path, folder: root) else {
            throw .outsideRepository(name: name, message: "its config.json resolves outside the repository \(root)")
        }
        return path
    }

    /// Resolves what an operator typed: an existing `.onnx` file path (any path: the operator
    /// owns the disk), or a model name in this repository.
    public func resolve(_ modelOrPath: String) throws(LookupError) -> (name: String, path: String) {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: modelOrPath, isDirectory: &isFolder), !isFolder.boolValue {
            return (OnnxRuntimeModel.defaultName(for: modelOrPath), modelOrPath)
        }
        return (modelOrPath, try modelFile(name: modelOrPath))
    }

    private func isDirectory(_ path: String) -> Bool {
        var isFolder: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) && isFolder.boolValue
    }
}
