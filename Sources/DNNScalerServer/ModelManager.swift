import DNNScaler
import Foundation
import Logging
import Synchronization

/// The state of a model in the repository, as the repository index shows it.
public enum ModelState: String, Sendable {
    /// Loading (profiling, warming up).
    case loading = "LOADING"
    /// Serving.
    case ready = "READY"
    /// Not serving: unloaded, or failed to load (see the reason).
    case unavailable = "UNAVAILABLE"
}

/// One row of the repository index.
public struct RepositoryIndexEntry: Sendable, Equatable {
    /// The model's name (its folder).
    public var name: String
    /// The loaded version, or the newest on disk; `nil` if the folder has no version.
    public var version: String?
    /// Loading, ready or unavailable.
    public var state: ModelState
    /// Why it is unavailable (empty when ready).
    public var reason: String
}

/// Loads, serves and unloads the models of a repository.
public final class ModelManager: Sendable {
    /// The repository.
    public let repository: ModelRepository
    /// Options every model starts from, before its config file.
    public let defaults: ModelServingOptions
    /// Whether clients may load and unload models.
    public let controlMode: ModelControlMode
    private let runtime: OnnxRuntime
    private let placement: CPUPlacement
    private let spinning: Bool
    private let logger: Logger
    private let entries = Mutex<[String: Entry]>([:])
    private let draining = Atomic<Bool>(false)

    private struct Entry {
        var state: ModelState
        var reason: String
        var model: ServedModel?
        var version: Int?
    }

    /// Creates a manager; nothing is loaded yet.
    /// `placement`: the CPUs the models' instances share (pinned there when it is split);
    /// `spinning`: whether idle intra-op threads of an instance with several spin-wait for work.
    public init(
        repository: ModelRepository, defaults: ModelServingOptions, runtime: OnnxRuntime,
        placement: CPUPlacement = .unsplit(SystemInfo.allowedCPUs), spinning: Bool = false,
        controlMode: ModelControlMode = .none, logger: Logger
    ) {
        self.repository = repository
        self.defaults = defaults
        self.controlMode = controlMode
        self.runtime = runtime
        self.placement = placement
        self.spinning = spinning
        self.logger = logger
    }

    /// A ready model by name (and version, if given). A name or version that could not name a
    /// model folder is a 400 (``ModelName``).
    public func model(named name: String, version: String? = nil) throws(ServerError) -> ServedModel {
        try Self.validate(name: name, version: version)
        let entry = entries.withLock { $0[name] }
        guard let entry else {
            throw .notFound("unknown model '\(name)'")
        }
        guard let model = entry.model, entry.state == .ready else {
            throw .unavailable(
                "model '\(name)' is not ready (\(entry.state.rawValue)\(entry.reason.isEmpty ? "" : ": \(entry.reason)"))"
            )
        }
        if let version, version != String(model.version) {
            throw .notFound("model '\(name)' has no version '\(version)' (served: \(model.version))")
        }
        return model
    }

    /// Ready models.
    public var readyModels: [ServedModel] {
        entries.withLock { $0.values.compactMap { $0.state == .ready ? $0.model : nil } }.sorted { $0.name < $1.name }
    }

    /// Whether the model exists in the map at all (any state).
    public func isKnown(_ name: String) -> Bool {
        entries.withLock { $0[name] != nil }
    }

    /// Whether every model that should serve does: no model is loading.
    public var allReady: Bool {
        entries.withLock { entries in !entries.isEmpty && entries.values.allSatisfy { $0.state != .loading } }
    }

    /// Whether the server should get new traffic: every model loaded and not draining. What
    /// HTTP `/v2/health/ready` and gRPC `ServerReady` answer.
    public var isServerReady: Bool { !isDraining && allReady }

    /// Whether a drain has begun (``beginDrain()``): the server still serves, but reports not ready.
    public var isDraining: Bool { draining.load(ordering: .acquiring) }

    /// Reports not ready from now on, so that load balancers stop sending new requests; serving
    /// goes on until the front ends stop.
    public func beginDrain() {
        draining.store(true, ordering: .releasing)
    }

    /// Refuses a model name or version that could not name one folder of the repository (400).
    static func validate(name: String, version: String? = nil) throws(ServerError) {
        do {
            try ModelName.validate(name)
            if let version { try ModelName.validate(version: version) }
        } catch {
            throw .badRequest(error.message)
        }
    }

    /// Refuses repository control unless the server runs with `--model-control-mode explicit`.
    private func requireExplicitControl(_ action: String) throws(ServerError) {
        guard controlMode == .explicit else {
            throw .forbidden(
                "\(action) is disabled: the server runs with --model-control-mode none (start it with --model-control-mode explicit to let clients load and unload models)"
            )
        }
    }

    /// The repository index: every model folder and every model known, with its state.
    public func index(readyOnly: Bool) -> [RepositoryIndexEntry] {
        let known = entries.withLock { $0 }
        let names = Set(repository.modelNames()).union(known.keys).sorted()
        return names.compactMap { name in
            let entry = known[name]
            let state = entry?.state ?? .unavailable
            if readyOnly && state != .ready { return nil }
            return RepositoryIndexEntry(
                name: name, version: (entry?.version ?? repository.versions(of: name).last).map(String.init),
                state: state, reason: entry?.reason ?? (entry == nil ? "not loaded" : ""))
        }
    }

    /// Loads every model in the repository (or only `names`), one after another: the start set,
    /// which the control mode does not restrict. Failures are recorded (the index shows them
    /// UNAVAILABLE with the reason) and do not stop the others.
    public func loadAll(names: [String]? = nil) async {
        for name in names ?? repository.modelNames() {
            do {
                try await loadModel(name: name, override: nil)
            } catch {
                logger.error("model not loaded", metadata: ["model": "\(name)", "error": "\(error.message)"])
            }
        }
    }

    /// A client's load: loads a model, or, if it is loaded, applies `override` (a model config
    /// JSON) to it without a restart. Returns when the model is ready. The name is validated
    /// first (400), then the control mode (403 unless explicit).
    public func load(name: String, override: Data?) async throws(ServerError) {
        try Self.validate(name: name)
        try requireExplicitControl("loading models")
        try await loadModel(name: name, override: override)
    }

    /// Loads or reconfigures a model; the name is checked by ``ModelRepository/modelFile(name:version:)``
    /// before anything is read (a model already loaded was checked when it loaded).
    private func loadModel(name: String, override: Data?) async throws(ServerError) {
        if let existing = entries.withLock({ $0[name]?.state == .ready ? $0[name]?.model : nil }) {
            var updated = existing.options
            if let override { updated = try updated.applying(configJSON: override) }
            let options = updated
            do {
                try await runBlocking { () throws(BackendError) in try existing.update(options: options) }
            } catch {
                throw ServerError(error)
            }
            logger.info(
                "reconfigured model",
                metadata: ["model": "\(name)", "slo_ms": "\(options.sloMs)", "policy": "\(options.policy.rawValue)"])
            return
        }
        let path: String
        let version: Int
        let configPath: String?
        do {
            path = try repository.modelFile(name: name)
            version = repository.versions(of: name).last ?? 1
            configPath = try repository.configFile(name: name)
        } catch {
            switch error {
            case .invalidName, .outsideRepository: throw .badRequest(error.description)
            default: throw .notFound(error.description)
            }
        }
        var options = defaults
        do {
            if let configPath, let data = FileManager.default.contents(atPath: configPath) {
                options = try options.applying(configJSON: data)
            }
            if let override { options = try options.applying(configJSON: override) }
        } catch {
            setEntry(
                name, Entry(state: .unavailable, reason: "bad config: \(error.message)", model: nil, version: version))
            throw error
        }
        setEntry(name, Entry(state: .loading, reason: "profiling and warming up", model: nil, version: version))
        logger.info("loading model", metadata: ["model": "\(name)", "path": "\(path)"])
        let placement = self.placement
        let spinning = self.spinning
        let runtime = self.runtime
        let loadOptions = options
        do {
            let model = try await runBlocking { () throws(BackendError) -> ServedModel in
                try ServedModel.load(
                    name: name, version: version, path: path, options: loadOptions, runtime: runtime,
                    placement: placement, spinning: spinning)
            }
            let logger = self.logger
            model.controller.startLoop { record in
                logger.info(
                    "controller decision",
                    metadata: [
                        "model": "\(name)", "configuration": "\(record.configuration)", "reason": "\(record.reason)",
                    ])
            }
            setEntry(name, Entry(state: .ready, reason: "", model: model, version: version))
            let profileMode = model.profile?.decision.mode.rawValue ?? "no profile"
            logger.info(
                "model ready",
                metadata: [
                    "model": "\(name)", "policy": "\(options.policy.rawValue)", "slo_ms": "\(options.sloMs)",
                    "profile_mode": "\(profileMode)",
                    "configuration": "\(model.runtime.currentConfiguration)",
                ])
        } catch {
            setEntry(name, Entry(state: .unavailable, reason: error.description, model: nil, version: version))
            logger.error("model failed to load", metadata: ["model": "\(name)", "error": "\(error)"])
            throw ServerError.badRequest("failed to load '\(name)': \(error)")
        }
    }

    /// Unloads a model: stops accepting its requests, serves what is queued, frees its instances.
    /// Validated like ``load(name:override:)``.
    public func unload(name: String) async throws(ServerError) {
        try Self.validate(name: name)
        try requireExplicitControl("unloading models")
        // One look under the lock: whether the model is known, and its runtime if it is loaded.
        guard let entry = entries.withLock({ $0[name] }) else { throw .notFound("unknown model '\(name)'") }
        let model = entry.model
        setEntry(name, Entry(state: .unavailable, reason: "unloaded", model: nil, version: model?.version))
        if let model {
            await runBlocking { model.stop() }
        }
        logger.info("unloaded model", metadata: ["model": "\(name)"])
    }

    /// Drains and stops every model (graceful shutdown).
    public func stopAll() async {
        let models = entries.withLock { entries in entries.values.compactMap(\.model) }
        for model in models {
            await runBlocking { model.stop() }
        }
    }

    private func setEntry(_ name: String, _ entry: Entry) {
        entries.withLock { $0[name] = entry }
    }
}

/// Runs blocking work (model loading, draining) on its own thread, off the cooperative pool.
func runBlocking<Result: Sendable, Failure: Error>(
    _ work: @escaping @Sendable () throws(Failure) -> Result
) async throws(Failure) -> Result {
    let outcome = await withCheckedContinuation {
        (continuation: CheckedContinuation<Swift.Result<Result, Failure>, Never>) in
        let thread = Thread {
            continuation.resume(returning: Swift.Result { () throws(Failure) -> Result in try work() })
        }
        thread.stackSize = 8 << 20
        thread.start()
    }
    return try outcome.get()
}
