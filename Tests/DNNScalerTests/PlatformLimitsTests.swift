import Foundation
import Testing

@testable import DNNScaler

/// Cores from the platform: affinity mask and cgroup CPU quota (v2 and v1, in cgroup folders
/// the test writes), `--cores`, and the I/O split counted against the budget.
@Suite struct PlatformLimitsTests {
    /// A fake cgroup mount and /proc/self/cgroup in a temporary folder.
    struct FakeCgroup {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("cgroup-\(UUID())").path
        var root: String { "\(base)/sys/fs/cgroup" }
        var membership: String { "\(base)/self-cgroup" }

        func write(_ path: String, _ text: String) throws {
            let full = "\(root)/\(path)"
            try FileManager.default.createDirectory(
                atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(text.utf8).write(to: URL(fileURLWithPath: full))
        }

        func member(_ text: String) throws {
            try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
            try Data(text.utf8).write(to: URL(fileURLWithPath: membership))
        }

        func detect(allowed: [Int], override: Int? = nil) -> CPUBudget {
            CPUBudget.detect(allowedCPUs: allowed, cgroupRoot: root, selfCgroupFile: membership, override: override)
        }

        func remove() { try? FileManager.default.removeItem(atPath: base) }
    }

    @Test func cgroupV2QuotaRoundsDownAndTheStrictestAncestorWins() throws {
        let cgroup = FakeCgroup()
        defer { cgroup.remove() }
        try cgroup.member("0::/kubepods/pod1/container\n")
        try cgroup.write("cgroup.controllers", "cpu memory\n")
        try cgroup.write("cpu.max", "max 100000\n")
        try cgroup.write("kubepods/pod1/cpu.max", "250000 100000\n")
        try cgroup.write("kubepods/pod1/container/cpu.max", "max 100000\n")
        try cgroup.write("kubepods/pod1/container/memory.max", "2147483648\n")
        let budget = cgroup.detect(allowed: Array(0..<8))
        #expect(budget.cores == 2)
        #expect(budget.source == .cgroupV2)
        #expect(budget.quotaCores == 2.5)
        #expect(budget.memoryLimitBytes == 2_147_483_648)
        #expect(budget.allowedCPUs == Array(0..<8))
        // The mask wins when it is smaller; --cores wins over both.
        #expect(cgroup.detect(allowed: [3]).cores == 1)
        #expect(cgroup.detect(allowed: [3]).source == .affinity)
        #expect(cgroup.detect(allowed: Array(0..<8), override: 6).cores == 6)
        #expect(cgroup.detect(allowed: Array(0..<8), override: 6).source == .option)
    }

    @Test func aQuotaUnderOneCoreStillGivesOne() throws {
        let cgroup = FakeCgroup()
        defer { cgroup.remove() }
        try cgroup.member("0::/\n")
        try cgroup.write("cgroup.controllers", "cpu\n")
        try cgroup.write("cpu.max", "50000 100000\n")
        try cgroup.write("memory.max", "max\n")
        let budget = cgroup.detect(allowed: [0, 1, 2, 3])
        #expect(budget.cores == 1)
        #expect(budget.quotaCores == 0.5)
        #expect(budget.memoryLimitBytes == nil)
    }

    @Test func noQuotaLeavesTheMask() throws {
        let cgroup = FakeCgroup()
        defer { cgroup.remove() }
        try cgroup.member("0::/user.slice\n")
        try cgroup.write("cgroup.controllers", "cpu\n")
        try cgroup.write("user.slice/cpu.max", "max 100000\n")
        let budget = cgroup.detect(allowed: [0, 1])
        #expect(budget == CPUBudget(cores: 2, source: .affinity, allowedCPUs: [0, 1]))
        // No cgroup file system at all.
        #expect(
            CPUBudget.detect(allowedCPUs: [0, 1, 2], cgroupRoot: "/nonexistent", selfCgroupFile: "/nonexistent").cores
                == 3)
    }

    @Test func cgroupV1QuotaAndMemory() throws {
        let cgroup = FakeCgroup()
        defer { cgroup.remove() }
        try cgroup.member("12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n")
        try cgroup.write("cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
        try cgroup.write("cpu,cpuacct/cpu.cfs_period_us", "100000\n")
        try cgroup.write("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "300000\n")
        try cgroup.write("cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n")
        try cgroup.write("memory/memory.limit_in_bytes", "9223372036854771712\n")
        try cgroup.write("memory/docker/abc/memory.limit_in_bytes", "536870912\n")
        let budget = cgroup.detect(allowed: Array(0..<16))
        #expect(budget.cores == 3)
        #expect(budget.source == .cgroupV1)
        #expect(budget.memoryLimitBytes == 536_870_912)
    }

    @Test func cgroupV1InAContainerReadsTheMountRoot() throws {
        // Inside a container the printed path is the host's; the mount shows the container's own.
        let cgroup = FakeCgroup()
        defer { cgroup.remove() }
        try cgroup.member("4:cpu,cpuacct:/kubepods/burstable/pod9/abc\n")
        try cgroup.write("cpu,cpuacct/cpu.cfs_quota_us", "150000\n")
        try cgroup.write("cpu,cpuacct/cpu.cfs_period_us", "100000\n")
        #expect(cgroup.detect(allowed: Array(0..<4)).cores == 1)
    }

    @Test func ioCoresAreCountedAgainstTheBudget() throws {
        // 8 CPUs allowed, a quota of 3: one for I/O leaves 2 compute cores, pinned within the mask.
        let placement = try CPUPlacement.split(allowed: Array(0..<8), ioCores: 1, cores: 3)
        #expect(placement.computeCores == 2)
        #expect(placement.io == [7])
        #expect(placement.compute == Array(0..<7))
        #expect(throws: CPUPlacementError.self) { try CPUPlacement.split(allowed: Array(0..<8), ioCores: 2, cores: 2) }
        #expect(try CPUPlacement.split(allowed: Array(0..<8), ioCores: 0, cores: 3).computeCores == 3)
    }
}

/// External data of ONNX models: found wherever the wire format nests it, refused outside the folder.
@Suite struct OnnxExternalDataTests {
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

    static func externalTensor(_ location: String) -> [UInt8] {
        field(13, field(1, Array("location".utf8)) + field(2, Array(location.utf8))) + varint(14 << 3) + [1]
    }

    @Test func findsLocationsInInitializersAttributesAndSubgraphs() throws {
        // graph.initializer; graph.node.attribute.t; graph.node.attribute.g.initializer; a sparse initializer's values.
        let subgraph = Self.field(5, Self.externalTensor("c.bin"))
        let node = Self.field(5, Self.field(5, Self.externalTensor("b.bin")) + Self.field(6, subgraph))
        let sparse = Self.field(15, Self.field(1, Self.externalTensor("d.bin")))
        let graph = Self.field(5, Self.externalTensor("a.bin")) + Self.field(1, node) + sparse
        let model = Self.varint(1 << 3) + [8] + Self.field(7, graph)
        let locations = try OnnxExternalData.locations(in: Data(model))
        #expect(Set(locations) == ["a.bin", "b.bin", "c.bin", "d.bin"])
    }

    @Test func relativeLocationsInsideTheFolderPassOthersAreRefused() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ext-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: "\(folder)/sub", withIntermediateDirectories: true)
        try OnnxExternalData.checkLocation("weights.bin", folder: folder)
        try OnnxExternalData.checkLocation("sub/weights.bin", folder: folder)
        for location in ["../weights.bin", "sub/../../x", "/etc/passwd", "", "a\0b"] {
            #expect(throws: OnnxExternalData.Refusal.self, "\(location)") {
                try OnnxExternalData.checkLocation(location, folder: folder)
            }
        }
        try FileManager.default.createSymbolicLink(atPath: "\(folder)/link.bin", withDestinationPath: "/etc/hostname")
        #expect(throws: OnnxExternalData.Refusal.self) {
            try OnnxExternalData.checkLocation("link.bin", folder: folder)
        }
        // The repository's own models have no external data and pass.
        try OnnxExternalData.checkContained(modelPath: try TestSupport.repository.modelFile(name: "squeezenet"))
    }

    @Test func namesThatCouldLeaveTheRepositoryAreRefused() {
        for name in ["..", ".", "a/b", "a\\b", "a\0", ".git", "%2e%2e", "a b", String(repeating: "x", count: 129), ""] {
            #expect(throws: ModelName.Refusal.self, "\(name)") { try ModelName.validate(name) }
        }
        for name in ["resnet50", "my-model_v2.1", "A", String(repeating: "x", count: 128)] {
            #expect(throws: Never.self) { try ModelName.validate(name) }
        }
        #expect(throws: ModelName.Refusal.self) { try ModelName.validate(version: "1a") }
        #expect(throws: ModelName.Refusal.self) { try ModelName.validate(version: "../1") }
        #expect(throws: Never.self) { try ModelName.validate(version: "12") }
        #expect(throws: ModelRepository.LookupError.self) {
            try TestSupport.repository.modelFile(name: "../model_repository/simple")
        }
    }
}
