import DNNScaler
import DNNScalerServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A POSIX shared-memory object the test creates, as a Triton client would, and unlinks at the end.
// Unchecked: each test uses its objects from one task at a time.
final class ClientSharedMemory: @unchecked Sendable {
    let key: String
    let size: Int
    private let pointer: UnsafeMutableRawPointer
    private let descriptor: Int32

    init(suffix: String, size: Int) throws {
        key = "/dnnscaler-test-\(getpid())-\(suffix)"
        self.size = size
        shm_unlink(key)
        descriptor = shm_open(key, O_CREAT | O_RDWR, 0o600)
        guard descriptor >= 0, ftruncate(descriptor, off_t(size)) == 0,
            let mapping = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, descriptor, 0), mapping != MAP_FAILED
        else { throw POSIXError(.EIO) }
        pointer = mapping
    }

    func write(_ values: [Int32], at offset: Int) {
        values.withUnsafeBytes { bytes in
            if let start = bytes.baseAddress { (pointer + offset).copyMemory(from: start, byteCount: bytes.count) }
        }
    }

    func write(bytes: [UInt8], at offset: Int) {
        bytes.withUnsafeBytes { raw in
            if let start = raw.baseAddress { (pointer + offset).copyMemory(from: start, byteCount: raw.count) }
        }
    }

    func readBytes(count: Int, at offset: Int) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: pointer + offset, count: count))
    }

    func read(count: Int, at offset: Int) -> [Int32] {
        Array(UnsafeBufferPointer(start: (pointer + offset).assumingMemoryBound(to: Int32.self), count: count))
    }

    /// Shrinks the object, as a client that resized it while it is registered would.
    func truncate(to size: Int) { _ = ftruncate(descriptor, off_t(size)) }

    deinit {
        munmap(pointer, size)
        close(descriptor)
        shm_unlink(key)
    }
}

/// Triton's system shared-memory extension over a real socket: inputs read from and outputs
/// written to memory the client maps, with the errors a client can cause.
@Suite(.serialized) struct SharedMemoryTests {
    static func post(_ client: any TestClientProtocol, _ uri: String, _ object: Any? = nil) async throws -> TestResponse
    {
        let body = try object.map { try ServerTestSupport.body($0) } ?? ByteBuffer()
        return try await client.execute(uri: uri, method: .post, body: body) { $0 }
    }

    static func error(_ response: TestResponse) -> String {
        ((try? ServerTestSupport.json(response)) as? [String: Any])?["error"] as? String ?? ""
    }

    static func inferRequest(inputRegion: String, outputRegion: String, outputBytes: Int = 128) -> [String: Any] {
        [
            "inputs": [
                [
                    "name": "INPUT0", "datatype": "INT32", "shape": [2, 16],
                    "parameters": ["shared_memory_region": inputRegion, "shared_memory_byte_size": 128],
                ],
                [
                    "name": "INPUT1", "datatype": "INT32", "shape": [2, 16],
                    "parameters": [
                        "shared_memory_region": inputRegion, "shared_memory_byte_size": 128,
                        "shared_memory_offset": 128,
                    ],
                ],
            ],
            "outputs": [
                [
                    "name": "OUTPUT0",
                    "parameters": [
                        "shared_memory_region": outputRegion, "shared_memory_byte_size": outputBytes,
                        "shared_memory_offset": 64,
                    ],
                ],
                ["name": "OUTPUT1"],
            ],
        ]
    }

    @Test func refusedUnlessEnabled() async throws {
        let server = try await ServerTestSupport.server(models: ["simple"])
        try await ServerTestSupport.withLiveServer(server) { client in
            try await client.execute(uri: "/v2", method: .get) { response in
                let object = try #require(try ServerTestSupport.json(response) as? [String: Any])
                #expect((object["extensions"] as? [String])?.contains("system_shared_memory") == false)
            }
            let response = try await Self.post(
                client, "/v2/systemsharedmemory/region/in/register", ["key": "/anything", "byte_size": 64])
            #expect(response.status == .badRequest)
            #expect(Self.error(response).contains("--allow-client-shm"))
        }
    }

    @Test func inputsAndOutputsThroughSharedMemory() async throws {
        let input = try ClientSharedMemory(suffix: "in", size: 4096)
        let output = try ClientSharedMemory(suffix: "out", size: 4096)
        let a = (0..<32).map { Int32($0 * 13 - 200) }
        let b = (0..<32).map { Int32(5 - 3 * $0) }
        // The region starts 4 bytes into the object: offsets are relative to the region.
        input.write(a, at: 4)
        input.write(b, at: 4 + 128)
        let server = try await ServerTestSupport.server(models: ["simple"], allowClientSharedMemory: true)
        try await ServerTestSupport.withLiveServer(server) { client in
            try await client.execute(uri: "/v2", method: .get) { response in
                let object = try #require(try ServerTestSupport.json(response) as? [String: Any])
                #expect((object["extensions"] as? [String])?.contains("system_shared_memory") == true)
            }
            var response = try await Self.post(
                client, "/v2/systemsharedmemory/region/in/register", ["key": input.key, "offset": 4, "byte_size": 256])
            #expect(response.status == .ok)
            response = try await Self.post(
                client, "/v2/systemsharedmemory/region/out/register", ["key": output.key, "byte_size": 1024])
            #expect(response.status == .ok)
            try await client.execute(uri: "/v2/systemsharedmemory/status", method: .get) { response in
                let regions = try #require(try ServerTestSupport.json(response) as? [[String: Any]])
                #expect(regions.map { $0["name"] as? String } == ["in", "out"])
                #expect(regions.first?["key"] as? String == input.key)
                #expect(regions.first?["offset"] as? Int == 4)
                #expect(regions.first?["byte_size"] as? Int == 256)
            }

            response = try await Self.post(
                client, "/v2/models/simple/infer", Self.inferRequest(inputRegion: "in", outputRegion: "out"))
            #expect(response.status == .ok)
            let object = try #require(try ServerTestSupport.json(response) as? [String: Any])
            let outputs = try #require(object["outputs"] as? [[String: Any]])
            #expect(outputs.map { $0["name"] as? String } == ["OUTPUT0", "OUTPUT1"])
            #expect(outputs[0]["data"] == nil)
            #expect(outputs[0]["shape"] as? [Int] == [2, 16])
            #expect(output.read(count: 32, at: 64) == zip(a, b).map { $0 + $1 })
            #expect(outputs[1]["data"] as? [Int] == zip(a, b).map { Int($0 - $1) })

            // A second region over another part of the output object; the answer is the same.
            output.write(a, at: 2048)
            output.write(b, at: 2048 + 128)
            response = try await Self.post(
                client, "/v2/systemsharedmemory/region/aligned/register",
                ["key": output.key, "offset": 2048, "byte_size": 256])
            #expect(response.status == .ok)
            response = try await Self.post(
                client, "/v2/models/simple/infer", Self.inferRequest(inputRegion: "aligned", outputRegion: "out"))
            #expect(response.status == .ok)
            #expect(output.read(count: 32, at: 64) == zip(a, b).map { $0 + $1 })
        }
    }

    @Test func bytesTensorsThroughSharedMemory() async throws {
        let memory = try ClientSharedMemory(suffix: "bytes", size: 4096)
        let text = try BytesElements.serialize(["shared", "", "mémoire", "7"].map { Array($0.utf8) })
        memory.write(bytes: text, at: 0)
        let server = try await ServerTestSupport.server(models: ["string_echo"], allowClientSharedMemory: true)
        try await ServerTestSupport.withLiveServer(server) { client in
            var response = try await Self.post(
                client, "/v2/systemsharedmemory/region/strings/register", ["key": memory.key, "byte_size": 4096])
            #expect(response.status == .ok)
            let request: [String: Any] = [
                "inputs": [
                    [
                        "name": "text", "datatype": "BYTES", "shape": [2, 2],
                        "parameters": ["shared_memory_region": "strings", "shared_memory_byte_size": text.count],
                    ],
                    ["name": "digits", "datatype": "BYTES", "shape": [2, 2], "data": ["1", "2", "3", "4"]],
                ],
                "outputs": [
                    [
                        "name": "echo",
                        "parameters": [
                            "shared_memory_region": "strings", "shared_memory_byte_size": 256,
                            "shared_memory_offset": 1024,
                        ],
                    ]
                ],
            ]
            response = try await Self.post(client, "/v2/models/string_echo/infer", request)
            #expect(response.status == .ok)
            #expect(memory.readBytes(count: text.count, at: 1024) == text)
            // A byte size that cuts the last element short is malformed data, a 400.
            var short = request
            var inputs = try #require(short["inputs"] as? [[String: Any]])
            inputs[0]["parameters"] = ["shared_memory_region": "strings", "shared_memory_byte_size": text.count - 1]
            short["inputs"] = inputs
            response = try await Self.post(client, "/v2/models/string_echo/infer", short)
            #expect(response.status == .badRequest)
            #expect(Self.error(response).contains("BYTES data is malformed"))
        }
    }

    @Test func mistakesGetClearErrorsAndTheServerKeepsServing() async throws {
        let input = try ClientSharedMemory(suffix: "bad-in", size: 4096)
        let server = try await ServerTestSupport.server(models: ["simple"], allowClientSharedMemory: true)
        try await ServerTestSupport.withLiveServer(server) { client in
            func expectRefusal(_ uri: String, _ object: Any?, mentioning text: String) async throws {
                let response = try await Self.post(client, uri, object)
                #expect(response.status == .badRequest, "\(uri): \(response.status)")
                #expect(Self.error(response).contains(text), "\(Self.error(response)) lacks '\(text)'")
            }
            let register = "/v2/systemsharedmemory/region/in/register"
            try await expectRefusal(register, ["key": input.key, "byte_size": 8192], mentioning: "exceeds")
            try await expectRefusal(
                register, ["key": "/no-such-dnnscaler-object", "byte_size": 64], mentioning: "cannot open")
            try await expectRefusal(register, ["key": input.key, "byte_size": -1], mentioning: "byte_size")
            try await expectRefusal(register, ["byte_size": 64], mentioning: "key")
            try await expectRefusal(register, nil, mentioning: "JSON object")
            #expect(try await Self.post(client, register, ["key": input.key, "byte_size": 512]).status == .ok)
            try await expectRefusal(register, ["key": input.key, "byte_size": 512], mentioning: "already registered")

            let infer = "/v2/models/simple/infer"
            try await expectRefusal(
                infer, Self.inferRequest(inputRegion: "nope", outputRegion: "in"), mentioning: "not registered")
            try await expectRefusal(
                infer, Self.inferRequest(inputRegion: "in", outputRegion: "in", outputBytes: 100),
                mentioning: "too small")
            var request = Self.inferRequest(inputRegion: "in", outputRegion: "in")
            var inputs = try #require(request["inputs"] as? [[String: Any]])
            inputs[1]["parameters"] = [
                "shared_memory_region": "in", "shared_memory_byte_size": 128, "shared_memory_offset": 448,
            ]
            request["inputs"] = inputs
            try await expectRefusal(infer, request, mentioning: "exceeds")
            inputs[1]["parameters"] = ["shared_memory_region": "in"]
            request["inputs"] = inputs
            try await expectRefusal(infer, request, mentioning: "both required")
            inputs[1]["parameters"] = ["shared_memory_region": "in", "shared_memory_byte_size": 64]
            request["inputs"] = inputs
            try await expectRefusal(infer, request, mentioning: "does not match")
            inputs[1]["parameters"] = ["shared_memory_region": "in", "shared_memory_byte_size": 128]
            inputs[1]["data"] = Array(repeating: 1, count: 32)
            request["inputs"] = inputs
            try await expectRefusal(infer, request, mentioning: "not both")

            // A client that shrinks its object after registering gets an error, not a crashed server.
            input.truncate(to: 64)
            try await expectRefusal(
                infer, Self.inferRequest(inputRegion: "in", outputRegion: "in"), mentioning: "shrunk")

            #expect(try await Self.post(client, "/v2/systemsharedmemory/region/in/unregister").status == .ok)
            try await expectRefusal(
                infer, Self.inferRequest(inputRegion: "in", outputRegion: "in"), mentioning: "not registered")
            try await client.execute(uri: "/v2/systemsharedmemory/region/in/status", method: .get) {
                #expect($0.status == .badRequest)
            }
            #expect(try await Self.post(client, "/v2/systemsharedmemory/unregister").status == .ok)
            #expect(try await Self.post(client, "/v2/cudasharedmemory/unregister").status == .ok)
            try await expectRefusal(
                "/v2/cudasharedmemory/region/gpu/register",
                ["raw_handle": ["b64": ""], "device_id": 0, "byte_size": 8],
                mentioning: "CUDA")

            // Still serving.
            let ok: [String: Any] = [
                "inputs": [
                    ["name": "INPUT0", "datatype": "INT32", "shape": [1, 16], "data": Array(repeating: 2, count: 16)],
                    ["name": "INPUT1", "datatype": "INT32", "shape": [1, 16], "data": Array(repeating: 1, count: 16)],
                ]
            ]
            let response = try await Self.post(client, infer, ok)
            #expect(response.status == .ok)
        }
    }
}
