import DNNScaler
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A client's POSIX shared-memory object, or the part of it from `offset` for `byteSize` bytes
/// (Triton's system shared-memory extension). Inputs are read from it and outputs written to it
/// instead of travelling in the request and response bodies.
///
/// The object is read and written through its file descriptor (`pread`, `pwrite`), not mapped: a
/// client that shrinks its object then makes a read come up short, which is a 400, where a mapping
/// would fault the whole server (SIGBUS). The descriptor lives as long as the region object.
public final class SystemSharedMemoryRegion: Sendable {
    /// The name the client registered it under.
    public let name: String
    /// The key of the shared-memory object (`shm_open` name).
    public let key: String
    /// Where the region starts in the object, in bytes.
    public let offset: Int
    /// The region's size in bytes.
    public let byteSize: Int
    private let descriptor: Int32

    fileprivate init(name: String, key: String, offset: Int, byteSize: Int) throws(ServerError) {
        guard !key.isEmpty else { throw .badRequest("shared memory region '\(name)': 'key' must not be empty") }
        guard offset >= 0, byteSize > 0, offset <= Int.max - byteSize else {
            throw .badRequest(
                "shared memory region '\(name)': offset \(offset) and byte_size \(byteSize) must be >= 0 and > 0")
        }
        let descriptor = shm_open(key, O_RDWR, 0)
        guard descriptor >= 0 else {
            throw .badRequest(
                "shared memory region '\(name)': cannot open shared memory object '\(key)': \(String(cString: strerror(errno)))"
            )
        }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            close(descriptor)
            throw .badRequest("shared memory region '\(name)': cannot stat '\(key)'")
        }
        guard Int(status.st_size) >= offset + byteSize else {
            close(descriptor)
            throw .badRequest(
                "shared memory region '\(name)': offset \(offset) + byte_size \(byteSize) exceeds the \(status.st_size) bytes of '\(key)'"
            )
        }
        self.name = name
        self.key = key
        self.offset = offset
        self.byteSize = byteSize
        self.descriptor = descriptor
    }

    deinit {
        close(descriptor)
    }

    /// Checks that `byteCount` bytes from `offset` lie inside the region, and that the object still
    /// holds them.
    private func checkRange(offset: Int, byteCount: Int, what: String) throws(ServerError) {
        guard offset >= 0, byteCount >= 0, offset <= byteSize, byteCount <= byteSize - offset else {
            throw .badRequest(
                "\(what): shared_memory_offset \(offset) + \(byteCount) bytes exceeds the \(byteSize)-byte region '\(name)'"
            )
        }
        var status = stat()
        guard fstat(descriptor, &status) == 0, Int(status.st_size) >= self.offset + offset + byteCount else {
            throw shrunk(what)
        }
    }

    private func shrunk(_ what: String) -> ServerError {
        .badRequest("\(what): the shared memory object '\(key)' of region '\(name)' has shrunk")
    }

    /// A tensor of the `byteCount` region bytes from `offset`, read into aligned memory of its own.
    func tensor(
        dataType: DataType, shape: [Int], offset: Int, byteCount: Int, what: String
    ) throws(ServerError) -> Tensor {
        try checkRange(offset: offset, byteCount: byteCount, what: what)
        let memory = BinaryInputMemory(count: byteCount)
        var done = 0
        while done < byteCount {
            let count = pread(
                descriptor, memory.pointer + done, byteCount - done, off_t(self.offset + offset + done))
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { throw shrunk(what) }
            done += count
        }
        do {
            return try Tensor(
                dataType: dataType, shape: shape,
                viewing: UnsafeRawBufferPointer(start: memory.pointer, count: byteCount),
                owner: memory)
        } catch {
            throw .badRequest("\(what): \(error)")
        }
    }

    /// Writes `tensor`'s bytes into the region at `offset`.
    func write(_ tensor: Tensor, offset: Int, what: String) throws(ServerError) {
        try checkRange(offset: offset, byteCount: tensor.byteCount, what: what)
        let failure: ServerError? = tensor.withUnsafeBytes { source in
            var done = 0
            while done < source.count, let start = source.baseAddress {
                let count = pwrite(descriptor, start + done, source.count - done, off_t(self.offset + offset + done))
                if count < 0, errno == EINTR { continue }
                guard count > 0 else {
                    return ServerError.badRequest(
                        "\(what): writing to shared memory region '\(name)' failed: \(String(cString: strerror(errno)))"
                    )
                }
                done += count
            }
            return nil
        }
        if let failure { throw failure }
    }

    /// The region as Triton's status response shows it.
    var document: SharedMemoryRegionDocument {
        SharedMemoryRegionDocument(name: name, key: key, offset: offset, byteSize: byteSize)
    }
}

/// The system shared-memory regions clients registered, by name.
///
/// Off unless the server is started with `--allow-client-shm`: a registered key lets a client
/// make the server read and write any shared-memory object its user can open.
public final class SharedMemoryRegistry: Sendable {
    /// Whether clients may register regions.
    public let enabled: Bool
    /// The most regions registered at once.
    public let maxRegions: Int
    private let regions = Mutex<[String: SystemSharedMemoryRegion]>([:])

    /// Creates an empty registry.
    public init(enabled: Bool, maxRegions: Int = 1024) {
        self.enabled = enabled
        self.maxRegions = maxRegions
    }

    /// Throws the "disabled" error unless clients may use shared memory.
    func requireEnabled() throws(ServerError) {
        guard enabled else {
            throw .badRequest("client shared memory is disabled: start the server with --allow-client-shm")
        }
    }

    /// Maps `key` from `offset` for `byteSize` bytes under `name`; a name in use is an error.
    public func register(name: String, key: String, offset: Int, byteSize: Int) throws(ServerError) {
        try requireEnabled()
        guard !name.isEmpty else { throw .badRequest("a shared memory region needs a name") }
        guard region(named: name) == nil else {
            throw .badRequest("shared memory region '\(name)' is already registered")
        }
        let region = try SystemSharedMemoryRegion(name: name, key: key, offset: offset, byteSize: byteSize)
        let refusal: ServerError? = regions.withLock { regions in
            if regions[name] != nil { return .badRequest("shared memory region '\(name)' is already registered") }
            if regions.count >= maxRegions {
                return .badRequest("too many shared memory regions registered (at most \(maxRegions))")
            }
            regions[name] = region
            return nil
        }
        if let refusal { throw refusal }
    }

    /// Unregisters `name`, or every region when `name` is `nil`. An unknown name is not an error
    /// (Triton's behaviour). Requests in flight keep their mapping until they finish.
    public func unregister(name: String?) throws(ServerError) {
        try requireEnabled()
        regions.withLock { regions in
            if let name { regions[name] = nil } else { regions.removeAll() }
        }
    }

    /// The region registered as `name`, if any.
    public func region(named name: String) -> SystemSharedMemoryRegion? {
        regions.withLock { $0[name] }
    }

    /// Every region, or the one named (an unknown name is an error), sorted by name.
    public func status(name: String?) throws(ServerError) -> [SystemSharedMemoryRegion] {
        try requireEnabled()
        if let name {
            guard let region = region(named: name) else {
                throw .badRequest("no shared memory region named '\(name)' is registered")
            }
            return [region]
        }
        return regions.withLock { Array($0.values) }.sorted { $0.name < $1.name }
    }

    // MARK: CUDA shared memory: none can exist on this CPU server

    /// A CUDA status request: nothing is registered, so naming a region is an error.
    public func cudaStatus(name: String?) throws(ServerError) {
        try requireEnabled()
        if let name { throw .badRequest("no CUDA shared memory region named '\(name)' is registered") }
    }

    /// A CUDA register request: refused.
    public func cudaRegister() throws(ServerError) -> Never {
        try requireEnabled()
        throw .badRequest(
            "CUDA shared memory is not supported: this server runs its models on the CPU; use system shared memory")
    }

    /// A CUDA unregister request: nothing to do. It succeeds (when shared memory is enabled), as
    /// Triton's clients unregister both kinds when they finish.
    public func cudaUnregister() throws(ServerError) {
        try requireEnabled()
    }

    /// What an input or output names in its `shared_memory_*` parameters, checked against the
    /// registered regions.
    func reference(
        regionName: String, byteSize: Int, offset: Int, what: String
    ) throws(ServerError)
        -> SharedMemoryReference
    {
        try requireEnabled()
        guard let region = region(named: regionName) else {
            throw .badRequest("\(what): shared memory region '\(regionName)' is not registered")
        }
        return SharedMemoryReference(region: region, offset: offset, byteSize: byteSize)
    }
}

/// Where a tensor lies in a registered shared-memory region (Triton's `shared_memory_*` parameters).
struct SharedMemoryReference {
    var region: SystemSharedMemoryRegion
    var offset: Int
    var byteSize: Int

    /// Reads Triton's `shared_memory_region`, `shared_memory_byte_size` and optional
    /// `shared_memory_offset` from an input's or output's parameters, whatever the front end's
    /// parameter type (`string` and `integer` read one value); `nil` when none is given.
    static func parse<Parameter>(
        _ parameters: [String: Parameter], registry: SharedMemoryRegistry?, what: String,
        string: (Parameter) -> String?, integer: (Parameter) -> Int?
    ) throws(ServerError) -> SharedMemoryReference? {
        let region = parameters["shared_memory_region"]
        let size = parameters["shared_memory_byte_size"]
        let offset = parameters["shared_memory_offset"]
        guard region != nil || size != nil || offset != nil else { return nil }
        guard let regionName = region.flatMap(string), let size else {
            throw .badRequest(
                "\(what): shared_memory_region (a string) and shared_memory_byte_size are both required")
        }
        func count(_ parameter: Parameter, _ field: String) throws(ServerError) -> Int {
            guard let value = integer(parameter), value >= 0 else {
                throw .badRequest("\(what): \(field) must be a non-negative integer")
            }
            return value
        }
        let byteSize = try count(size, "shared_memory_byte_size")
        let start = try offset.map { (value) throws(ServerError) in try count(value, "shared_memory_offset") } ?? 0
        guard let registry else { throw .badRequest("\(what): shared memory is not supported on this endpoint") }
        return try registry.reference(regionName: regionName, byteSize: byteSize, offset: start, what: what)
    }

    /// The input tensor of `dataType` and `shape` these bytes hold; the size must match exactly.
    func inputTensor(dataType: DataType, shape: [Int], byteCount: Int, what: String) throws(ServerError) -> Tensor {
        guard byteSize == byteCount else {
            throw .badRequest(
                "\(what): shared_memory_byte_size \(byteSize) does not match shape \(shape) of \(dataType) (\(byteCount) bytes)"
            )
        }
        return try region.tensor(dataType: dataType, shape: shape, offset: offset, byteCount: byteCount, what: what)
    }

    /// Writes an output tensor here; it must fit.
    func write(output tensor: Tensor, what: String) throws(ServerError) {
        guard tensor.byteCount <= byteSize else {
            throw .badRequest(
                "\(what) has \(tensor.byteCount) bytes; shared_memory_byte_size \(byteSize) is too small")
        }
        try region.write(tensor, offset: offset, what: what)
    }
}
