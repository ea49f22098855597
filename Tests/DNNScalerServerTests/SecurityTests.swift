import DNNScaler
import DNNScalerServer
import Foundation
import GRPCCore
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import InferenceProtocol
import Testing

/// Model control, restricted APIs, and names that cannot leave the repository, over HTTP and gRPC.
@Suite(.serialized) struct SecurityTests {
    /// A repository in a temporary folder with `simple`, and beside it (outside the repository) a
    /// canary model, a config and a weights file that hostile names and links point at.
    struct HostileRepository {
        let root: String
        let outside: String
        var repository: ModelRepository { ModelRepository(root: root) }

        init() throws {
            let base = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-\(UUID())").path
            root = "\(base)/repo"
            outside = "\(base)/outside"
            let files = FileManager.default
            let simple = try ServerTestSupport.repository.modelFile(name: "simple")
            for folder in [
                "\(root)/simple/1", "\(outside)/canary/1", "\(root)/escape_version", "\(root)/escape_config/1",
            ] {
                try files.createDirectory(atPath: folder, withIntermediateDirectories: true)
            }
            try files.copyItem(atPath: simple, toPath: "\(root)/simple/1/model.onnx")
            try files.copyItem(atPath: simple, toPath: "\(outside)/canary/1/model.onnx")
            try files.copyItem(atPath: simple, toPath: "\(root)/escape_config/1/model.onnx")
            try Data(#"{"dnnscaler": {"slo_ms": 1}}"#.utf8).write(to: URL(fileURLWithPath: "\(outside)/config.json"))
            try Data(repeating: 0, count: 4).write(to: URL(fileURLWithPath: "\(outside)/weights.bin"))
            // A model folder, a version folder and a config file that are links leaving the repository.
            try files.createSymbolicLink(atPath: "\(root)/escape", withDestinationPath: "\(outside)/canary")
            try files.createSymbolicLink(
                atPath: "\(root)/escape_version/1", withDestinationPath: "\(outside)/canary/1")
            try files.createSymbolicLink(
                atPath: "\(root)/escape_config/config.json", withDestinationPath: "\(outside)/config.json")
            // Models whose weights are external data outside their folder: by a relative path, an
            // absolute one, and a link inside the folder.
            for (name, location) in [
                ("external_relative", "../../../outside/weights.bin"), ("external_absolute", "\(outside)/weights.bin"),
                ("external_link", "weights.bin"),
            ] {
                try files.createDirectory(atPath: "\(root)/\(name)/1", withIntermediateDirectories: true)
                try OnnxBytes.modelWithExternalInitializer(location: location)
                    .write(to: URL(fileURLWithPath: "\(root)/\(name)/1/model.onnx"))
            }
            try files.createSymbolicLink(
                atPath: "\(root)/external_link/1/weights.bin", withDestinationPath: "\(outside)/weights.bin")
        }

        func remove() {
            try? FileManager.default.removeItem(atPath: (root as NSString).deletingLastPathComponent)
        }
    }

    /// Names and paths a hostile client may send as a model name; none may load anything.
    static let hostileNames: [String] = [
        "..", ".", "../simple", "../../outside/canary", "../outside/canary", "/etc/passwd", "/tmp",
        "simple/../simple", "simple/1", "simple/1/model.onnx", "./simple", "simple/", "//simple", "simple/.",
        "..\\outside\\canary", "simple\\..", "\\etc\\passwd", "sim\0ple", "\0", "simple\0/../../etc",
        ".hidden", ".git", "..%2f..%2foutside%2fcanary", "%2e%2e", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "simple%00",
        "%5c..%5coutside", "..%252f..%252f", String(repeating: "a", count: ModelName.maximumLength + 1),
        String(repeating: "../", count: 200) + "etc/passwd", "~", "~root", "$HOME", "simple;true", "simple\n",
        " simple", "sim ple", "m\u{F3}del", "simple\u{202E}", "escape", "escape_version", "escape_config",
        "external_relative", "external_absolute", "external_link",
    ]

    /// The name as one HTTP path segment: `/` and characters a URL cannot carry are
    /// percent-encoded (the server then sees the encoding, which it refuses too). A raw `/` would
    /// only make a path no route matches.
    static func pathSegment(_ name: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/?#;")
        return name.addingPercentEncoding(withAllowedCharacters: allowed) ?? "invalid"
    }

    static func index(_ client: some TestClientProtocol) async throws -> [[String: String]] {
        try await client.execute(
            uri: "/v2/repository/index", method: .post, body: try ServerTestSupport.body([String: Any]())
        ) { response in
            let rows = try #require(try ServerTestSupport.json(response) as? [[String: Any]])
            return rows.map { row in row.compactMapValues { $0 as? String } }
        }
    }

    @Test(arguments: [false, true])
    func hostileNamesAreRefusedOverHTTPWithTheIndexUnchanged(override: Bool) async throws {
        let hostile = try HostileRepository()
        defer { hostile.remove() }
        let server = try await ServerTestSupport.server(
            models: ["simple"], repository: hostile.repository, modelControlMode: .explicit)
        try await ServerTestSupport.withLiveServer(server) { client in
            let before = try await Self.index(client)
            // Explicit mode serves a valid load, so the refusals below come from the names.
            try await client.execute(uri: "/v2/repository/models/simple/load", method: .post) {
                #expect($0.status == .ok)
            }
            let body: ByteBuffer =
                override
                ? try ServerTestSupport.body(["parameters": ["config": #"{"dnnscaler": {"slo_ms": 50}}"#]])
                : ByteBuffer()
            var refused = 0
            for name in Self.hostileNames {
                let segment = Self.pathSegment(name)
                for (uri, method) in [
                    ("/v2/repository/models/\(segment)/load", HTTPRequest.Method.post),
                    ("/v2/repository/models/\(segment)/unload", .post), ("/v2/models/\(segment)", .get),
                    ("/v2/models/\(segment)/ready", .get), ("/v2/models/simple/versions/\(segment)", .get),
                ] {
                    try await client.execute(uri: uri, method: method, body: body) { response in
                        #expect(
                            response.status == .badRequest || response.status == .notFound,
                            "\(method) \(uri): \(response.status)")
                        if response.status == .badRequest || response.status == .notFound { refused += 1 }
                    }
                }
            }
            #expect(refused == Self.hostileNames.count * 5)
            #expect(try await Self.index(client) == before)
            try await client.execute(uri: "/v2/models/canary", method: .get) { #expect($0.status == .notFound) }
            // The server still serves.
            try await client.execute(uri: "/v2/models/simple/ready", method: .get) { #expect($0.status == .ok) }
        }
    }

    @Test func hostileNamesAreRefusedOverGRPCWithTheIndexUnchanged() async throws {
        let hostile = try HostileRepository()
        defer { hostile.remove() }
        try await GRPCFrontEndTests.withGRPCServer(
            models: ["simple"], repository: hostile.repository, modelControlMode: .explicit
        ) { client in
            let before = try await client.repositoryIndex(.with { _ in }).models.map {
                "\($0.name) \($0.state) \($0.reason)"
            }
            _ = try await client.repositoryModelLoad(.with { $0.modelName = "simple" })
            for name in Self.hostileNames {
                let calls: [(String, @Sendable () async throws -> Void)] = [
                    ("load", { _ = try await client.repositoryModelLoad(.with { $0.modelName = name }) }),
                    (
                        "load with config",
                        {
                            _ = try await client.repositoryModelLoad(
                                .with {
                                    $0.modelName = name
                                    $0.parameters["config"] = .with { $0.stringParam = #"{"dnnscaler": {}}"# }
                                })
                        }
                    ),
                    ("unload", { _ = try await client.repositoryModelUnload(.with { $0.modelName = name }) }),
                    ("metadata", { _ = try await client.modelMetadata(.with { $0.name = name }) }),
                    ("ready", { _ = try await client.modelReady(.with { $0.name = name }) }),
                    (
                        "version",
                        {
                            _ = try await client.modelMetadata(
                                .with {
                                    $0.name = "simple"
                                    $0.version = name
                                })
                        }
                    ),
                    (
                        "infer",
                        {
                            var request = GRPCFrontEndTests.simpleRequest(
                                [Int32](repeating: 1, count: 16), [Int32](repeating: 2, count: 16))
                            request.modelName = name
                            _ = try await client.modelInfer(request)
                        }
                    ),
                ]
                for (label, call) in calls {
                    let code = await GRPCFrontEndTests.status(call)
                    #expect(
                        code == .invalidArgument || code == .notFound, "\(label) '\(name)': \(String(describing: code))"
                    )
                }
            }
            let after = try await client.repositoryIndex(.with { _ in }).models.map {
                "\($0.name) \($0.state) \($0.reason)"
            }
            #expect(after == before)
            let ready = try await client.modelReady(.with { $0.name = "simple" })
            #expect(ready.ready)
        }
    }

    @Test func modelControlNoneRefusesLoadAndUnloadButServes() async throws {
        let server = try await ServerTestSupport.server(models: ["simple"])
        try await ServerTestSupport.withLiveServer(server) { client in
            for action in ["load", "unload"] {
                try await client.execute(uri: "/v2/repository/models/simple/\(action)", method: .post) { response in
                    #expect(response.status == .forbidden)
                    #expect(String(buffer: response.body).contains("--model-control-mode explicit"))
                }
            }
            // A hostile name is refused for the name first (400), not for the mode.
            try await client.execute(uri: "/v2/repository/models/..%2Fetc/load", method: .post) {
                #expect($0.status == .badRequest)
            }
            try await client.execute(uri: "/v2/models/simple/ready", method: .get) { #expect($0.status == .ok) }
        }
        try await GRPCFrontEndTests.withGRPCServer(models: ["simple"]) { client in
            let load = await GRPCFrontEndTests.status {
                _ = try await client.repositoryModelLoad(.with { $0.modelName = "simple" })
            }
            #expect(load == .permissionDenied)
            let unload = await GRPCFrontEndTests.status {
                _ = try await client.repositoryModelUnload(.with { $0.modelName = "simple" })
            }
            #expect(unload == .permissionDenied)
            let ready = try await client.modelReady(.with { $0.name = "simple" })
            #expect(ready.ready)
        }
    }

    @Test func restrictedAPIsNeedTheirHeader() async throws {
        let restrictions = try APIRestrictions(
            parsing: ["model-repository,statistics:admin-key=s3cret", "model-config:config-key=c"], option: "test")
        let server = try await ServerTestSupport.server(
            models: ["simple"], modelControlMode: .explicit, httpRestrictions: restrictions)
        try await ServerTestSupport.withLiveServer(server) { client in
            for (uri, method) in [
                ("/v2/repository/index", HTTPRequest.Method.post), ("/v2/repository/models/simple/unload", .post),
                ("/v2/models/stats", .get), ("/v2/models/simple/stats", .get), ("/dnnscaler/status", .get),
                ("/v2/models/simple/config", .get), ("/v2/models/simple/versions/1/config", .get),
            ] {
                try await client.execute(uri: uri, method: method) { response in
                    #expect(response.status == .forbidden, "\(uri)")
                }
                try await client.execute(uri: uri, method: method, headers: [HTTPField.Name("admin-key")!: "wrong"]) {
                    #expect($0.status == .forbidden, "\(uri)")
                }
            }
            // Nothing was done: simple is still loaded.
            try await client.execute(uri: "/v2/models/simple/ready", method: .get) { #expect($0.status == .ok) }
            try await client.execute(
                uri: "/dnnscaler/status", method: .get, headers: [HTTPField.Name("Admin-Key")!: "s3cret"]
            ) { #expect($0.status == .ok) }
            try await client.execute(
                uri: "/v2/models/simple/config", method: .get, headers: [HTTPField.Name("config-key")!: "c"]
            ) { #expect($0.status == .ok) }
            // Health, metadata and inference stay open.
            try await client.execute(uri: "/v2/models/simple", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v2/health/ready", method: .get) { #expect($0.status == .ok) }
        }
        try await GRPCFrontEndTests.withGRPCServer(models: ["simple"], restrictions: restrictions) { client in
            let denied = await GRPCFrontEndTests.status {
                _ = try await client.modelStatistics(.with { $0.name = "simple" })
            }
            #expect(denied == .permissionDenied)
            let index = await GRPCFrontEndTests.status { _ = try await client.repositoryIndex(.with { _ in }) }
            #expect(index == .permissionDenied)
            let allowed = try await client.modelStatistics(
                .with { $0.name = "simple" }, metadata: ["admin-key": "s3cret"])
            #expect(allowed.modelStats.count == 1)
            let metadata = try await client.modelMetadata(.with { $0.name = "simple" })
            #expect(metadata.name == "simple")
        }
    }

    @Test func restrictionSpecificationsAreCheckedWithClearErrors() {
        let bad = [
            "statistics", "statistics:key", ":key=value", "statistics:=value", "statistics:key=", "nosuch:key=value",
            "statistics:bad header=value",
        ]
        for specification in bad {
            #expect(throws: ServerError.self, "\(specification)") {
                _ = try APIRestrictions(parsing: [specification], option: "--x")
            }
        }
        #expect(throws: ServerError.self) {
            _ = try APIRestrictions(parsing: ["statistics:a=1", "statistics:b=2"], option: "--x")
        }
        let parsed = try? APIRestrictions(parsing: ["shared-memory,model-config:X-Key=a:b=c"], option: "--x")
        #expect(parsed?.requirements[.sharedMemory] == .init(header: "x-key", value: "a:b=c"))
        #expect(RestrictedAPI.group(httpPath: "/v2/models/stats") == .statistics)
        #expect(RestrictedAPI.group(httpPath: "/v2/models/m/versions/2/stats") == .statistics)
        #expect(RestrictedAPI.group(httpPath: "/v2/models/m/infer") == nil)
        #expect(RestrictedAPI.group(httpPath: "/v2/cudasharedmemory/status") == .sharedMemory)
        #expect(RestrictedAPI.group(grpcMethod: "RepositoryModelLoad") == .modelRepository)
        #expect(RestrictedAPI.group(grpcMethod: "ModelInfer") == nil)
    }
}

/// Hand-written ONNX protobuf bytes for models the setup script does not make.
enum OnnxBytes {
    static func varint(_ value: Int) -> [UInt8] {
        var value = UInt64(value)
        var bytes: [UInt8] = []
        repeat {
            var byte = UInt8(value & 0x7F)
            value >>= 7
            if value != 0 { byte |= 0x80 }
            bytes.append(byte)
        } while value != 0
        return bytes
    }

    static func field(_ number: Int, _ payload: [UInt8]) -> [UInt8] {
        varint(number << 3 | 2) + varint(payload.count) + payload
    }

    static func field(_ number: Int, _ text: String) -> [UInt8] { field(number, Array(text.utf8)) }

    static func field(_ number: Int, integer: Int) -> [UInt8] { varint(number << 3) + varint(integer) }

    /// A model (Identity of one float initializer) whose initializer's data is external, at `location`.
    static func modelWithExternalInitializer(location: String) -> Data {
        let entry = field(1, "location") + field(2, location)
        let tensor =
            field(1, integer: 1) + field(2, integer: 1) + field(8, "w") + field(13, entry) + field(14, integer: 1)
        let node = field(1, "w") + field(2, "y") + field(4, "Identity")
        let graph = field(1, node) + field(2, "g") + field(5, tensor) + field(12, field(1, "y"))
        let opset = field(1, "") + field(2, integer: 13)
        return Data(field(1, integer: 8) + field(8, opset) + field(7, graph))
    }
}
