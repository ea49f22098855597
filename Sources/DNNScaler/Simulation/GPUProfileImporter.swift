import Foundation

/// Why the GPU profile files could not be imported.
public enum GPUProfileImportError: Error, Equatable, CustomStringConvertible {
    /// A file could not be read.
    case unreadable(file: String)
    /// A file lacks a required column.
    case missingColumn(file: String, column: String)
    /// A row has the wrong number of fields, or a value that does not parse.
    case badRow(file: String, line: Int, reason: String)
    /// Two rows give the same point (model, dataset, instances, batch size).
    case duplicatePoint(file: String, line: Int, key: String)

    /// A one-line message.
    public var description: String {
        switch self {
        case .unreadable(let file): "cannot read \(file)"
        case .missingColumn(let file, let column): "\(file): missing column '\(column)'"
        case .badRow(let file, let line, let reason): "\(file) line \(line): \(reason)"
        case .duplicatePoint(let file, let line, let key): "\(file) line \(line): a second row for \(key)"
        }
    }
}

/// Builds ``Profile``s from the GPU latency tables recovered from the DNNScaler and BatchDVFS
/// artifacts (`batch_latency.csv`, `mt_latency.csv`, `slo.csv`; see the data's README and
/// profiles/gpu/README.md). One profile per (model, dataset) that has any latency data:
///
/// - batching points (1 instance, batch b) from `batch_latency.csv` rows with
///   `clock_control = default_governor` (the GPU's own clocks); rows at a set application clock
///   come from other controllers (BatchDVFS, DVFS-256) at batch sizes mostly beyond 127 and are
///   left out;
/// - multi-tenancy points (k instances, batch 1) from `mt_latency.csv`;
/// - where both tables have 1 instance x batch 1 (two pairs), the multi-tenancy table's value is
///   kept: it is the faster of the authors' two software paths, the one a server serving batch 1
///   would use; the batching table's value is recorded in the profile's notes;
/// - nothing is invented: a pair with only batching data gets 1 instance only (the simulator then
///   never goes beyond measured instance counts), one with only multi-tenancy data gets batch 1
///   only, and the simulator interpolates (or extrapolates) what lies between measured points;
/// - the mean per-batch (batching) or per-request (multi-tenancy) latency is the point's mean and
///   the latency the simulator replays; the batching table's median is p50 and its p90, the
///   highest percentile published, stands in for p95/p99 (a lower bound); the multi-tenancy table
///   publishes only a mean, which stands in for every statistic;
/// - the jobs of `slo.csv` (SLO, assigned mode) are attached to their profile's source, and the
///   decision is computed for the job's SLO (the smallest, if the source has two).
public struct GPUProfileImporter: Sendable {
    /// The file names the importer reads from a directory.
    public static let batchFile = "batch_latency.csv"
    /// Multi-tenancy latencies.
    public static let multiTenancyFile = "mt_latency.csv"
    /// Jobs: SLO and assigned mode.
    public static let sloFile = "slo.csv"
    /// The source repositories, as the data README cites them.
    public static let repositories = [
        "nabavinejad/DNNScaler@8c3d979243c109a8d2c6a43c10f9e4e47f2fdadb (data added in acb8370c59aa4a32c50b1cf65e3abe83091bc428)",
        "nabavinejad/BatchDVFS@f05286df4b228ac18d5e83c0e3d8a153d5a5c5fc (results added in fc3affd and cc772da)",
    ]
    /// The citation fragment that marks a point from the multi-tenancy table (the authors'
    /// multi-tenancy software path); every other imported point is from the batching path.
    public static let multiTenancySourceMarker = "DNNs_Latency_Instance.xlsx"

    private let batchText: String
    private let multiTenancyText: String
    private let sloText: String
    private let sourceLabel: String

    /// Imports from the CSV texts; `sourceLabel` names the folder they were read from (recorded in
    /// each profile's source files).
    public init(batchLatencyCSV: String, multiTenancyCSV: String, sloCSV: String, sourceLabel: String = "") {
        batchText = batchLatencyCSV
        multiTenancyText = multiTenancyCSV
        sloText = sloCSV
        self.sourceLabel = sourceLabel
    }

    /// Reads the three files from `directory`.
    public init(directory: String) throws {
        func read(_ name: String) throws -> String {
            let path = (directory as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: path) else {
                throw GPUProfileImportError.unreadable(file: path)
            }
            return String(decoding: data, as: UTF8.self)
        }
        self.init(
            batchLatencyCSV: try read(Self.batchFile), multiTenancyCSV: try read(Self.multiTenancyFile),
            sloCSV: try read(Self.sloFile),
            sourceLabel: URL(fileURLWithPath: directory).standardizedFileURL.lastPathComponent)
    }

    /// Whether `point` comes from the authors' multi-tenancy path (else from the batching path).
    public static func isMultiTenancyPathPoint(_ point: ProfilePoint) -> Bool {
        point.source?.contains(multiTenancySourceMarker) ?? false
    }

    /// The profile restricted to the authors' batching software path (1 instance), as the paper's
    /// Clipper baseline ran: `nil` when that path has no point.
    public static func batchingPathOnly(_ profile: Profile) -> Profile? {
        let points = profile.points.filter { $0.instances == 1 && !isMultiTenancyPathPoint($0) }
        guard !points.isEmpty else { return nil }
        var restricted = Profile(
            model: profile.model, backend: profile.backend, device: profile.device, createdAt: profile.createdAt,
            percentile: profile.percentile, durationSeconds: profile.durationSeconds, points: points,
            sloMs: profile.decision.sloMs, source: profile.source)
        restricted.source?.notes.append("Restricted to the batching software path (multi-tenancy rows removed).")
        return restricted
    }

    /// A file-system-safe name for a profile: `Model_Dataset`.
    public static func fileStem(model: String, dataset: String) -> String {
        "\(model)_\(dataset)".map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." ? $0 : "_" }
            .reduce(into: "") { $0.append($1) }
    }

    /// One imported profile and the pair it describes.
    public struct Imported: Sendable {
        /// The model, as the source names it.
        public var model: String
        /// The data set.
        public var dataset: String
        /// The profile.
        public var profile: Profile
        /// `Model_Dataset`, for file names.
        public var fileStem: String { GPUProfileImporter.fileStem(model: model, dataset: dataset) }
    }

    private struct Key: Hashable, Comparable {
        var model: String
        var dataset: String
        static func < (lhs: Key, rhs: Key) -> Bool { (lhs.model, lhs.dataset) < (rhs.model, rhs.dataset) }
    }

    /// The profiles, sorted by model then data set.
    public func profiles() throws -> [Imported] {
        var batching: [Key: [Int: ProfilePoint]] = [:]
        var multiTenancy: [Key: [Int: ProfilePoint]] = [:]
        var jobs: [Key: [SourceJob]] = [:]

        let batchTable = try CSVTable(text: batchText, file: Self.batchFile)
        let batchColumns = [
            "model", "dataset", "batch_size", "latency_ms", "source_file", "clock_control", "n_batches",
            "latency_ms_median", "latency_ms_p90",
        ]
        try batchTable.require(batchColumns)
        for row in batchTable.rows {
            guard try row.string("clock_control") == "default_governor" else { continue }
            let key = Key(model: try row.string("model"), dataset: try row.string("dataset"))
            let batch = try row.int("batch_size", atLeast: 1)
            let mean = try row.double("latency_ms", positive: true)
            let median = try row.double("latency_ms_median", positive: true)
            let p90 = try row.double("latency_ms_p90", positive: true)
            guard batching[key]?[batch] == nil else {
                throw GPUProfileImportError.duplicatePoint(
                    file: Self.batchFile, line: row.line, key: "\(key.model) \(key.dataset) batch \(batch)")
            }
            batching[key, default: [:]][batch] = ProfilePoint(
                instances: 1, threadsPerInstance: 1, batchSize: batch, throughput: Double(batch) * 1000 / mean,
                latencyMs: LatencySummary(mean: mean, p50: median, p95: p90, p99: p90, atPercentile: p90),
                batches: try row.int("n_batches", atLeast: 0), residentMemoryBytes: 0,
                source: try row.string("source_file"))
        }

        let mtTable = try CSVTable(text: multiTenancyText, file: Self.multiTenancyFile)
        try mtTable.require(["model", "dataset", "instances", "latency_ms", "source_file"])
        for row in mtTable.rows {
            let key = Key(model: try row.string("model"), dataset: try row.string("dataset"))
            let instances = try row.int("instances", atLeast: 1)
            let mean = try row.double("latency_ms", positive: true)
            guard multiTenancy[key]?[instances] == nil else {
                throw GPUProfileImportError.duplicatePoint(
                    file: Self.multiTenancyFile, line: row.line,
                    key: "\(key.model) \(key.dataset) \(instances) instances")
            }
            multiTenancy[key, default: [:]][instances] = ProfilePoint(
                instances: instances, threadsPerInstance: 1, batchSize: 1,
                throughput: Double(instances) * 1000 / mean,
                latencyMs: LatencySummary(mean: mean, p50: mean, p95: mean, p99: mean, atPercentile: mean),
                batches: 0, residentMemoryBytes: 0, source: try row.string("source_file"))
        }

        let sloTable = try CSVTable(text: sloText, file: Self.sloFile)
        try sloTable.require(["model", "dataset", "mode_assigned", "slo_ms", "source_file", "job_label"])
        for row in sloTable.rows {
            let key = Key(model: try row.string("model"), dataset: try row.string("dataset"))
            let modeText = try row.string("mode_assigned")
            let mode: ScalingMode? =
                switch modeText {
                case "batching": .batching
                case "multitenancy", "multi-tenancy": .multiTenancy
                case "": nil
                default:
                    throw GPUProfileImportError.badRow(
                        file: Self.sloFile, line: row.line, reason: "unknown mode_assigned '\(modeText)'")
                }
            jobs[key, default: []].append(
                SourceJob(
                    label: try row.string("job_label"), sloMs: try row.double("slo_ms", positive: true),
                    sloStatistic: (try? row.string("slo_statistic")) ?? "", modeAssigned: mode,
                    citation: try row.string("source_file")))
        }

        let keys = Set(batching.keys).union(multiTenancy.keys).sorted()
        return keys.map { key in
            makeProfile(
                key: key, batching: batching[key] ?? [:], multiTenancy: multiTenancy[key] ?? [:],
                jobs: jobs[key] ?? [])
        }
    }

    private func makeProfile(
        key: Key, batching: [Int: ProfilePoint], multiTenancy: [Int: ProfilePoint], jobs: [SourceJob]
    ) -> Imported {
        var notes: [String] = []
        var points: [ProfilePoint] = []
        for (batch, point) in batching.sorted(by: { $0.key < $1.key }) {
            if batch == 1, let shadow = multiTenancy[1] {
                notes.append(
                    "Both tables measure 1 instance x batch 1: batching path \(Self.ms(point.latencyMs.mean)) ms, "
                        + "multi-tenancy path \(Self.ms(shadow.latencyMs.mean)) ms. The multi-tenancy value is kept "
                        + "(the faster software path); the two tables are different software paths.")
                continue
            }
            points.append(point)
        }
        points += multiTenancy.sorted(by: { $0.key < $1.key }).map(\.value)
        points.sort { ($0.instances, $0.batchSize) < ($1.instances, $1.batchSize) }

        let batchSizes = batching.keys.sorted()
        if let first = batchSizes.first, let last = batchSizes.last {
            notes.append(
                "Batching (1 instance): \(batchSizes.count) batch sizes \(first)-\(last) from \(Self.batchFile), "
                    + "default-governor rows only; mean per-batch service time (file read, CPU decode and inference, "
                    + "no queueing); p50 = the rows' median, p95 = p99 = their p90 (the highest published percentile).")
        } else {
            notes.append("No batching data: batch 1 only (the simulator scales batch b as b x batch 1).")
        }
        let counts = multiTenancy.keys.sorted()
        if let first = counts.first, let last = counts.last {
            notes.append(
                "Multi-tenancy (batch 1): \(counts.count) instance counts \(first)-\(last) from "
                    + "\(Self.multiTenancyFile), mean per-request latency with k co-located instances (only a mean is "
                    + "published: it stands in for every statistic).")
        } else {
            notes.append(
                "No multi-tenancy data: 1 instance only (policies are not allowed more instances than measured).")
        }
        notes.append(
            "Batching and multi-tenancy rows come from different software paths of the authors' code; the GPU is "
                + "inferred (very likely a Tesla P40), not stated by the source.")
        let model = "\(key.model) (\(key.dataset))"
        let files = [Self.batchFile, Self.multiTenancyFile, Self.sloFile].map {
            sourceLabel.isEmpty ? $0 : (sourceLabel as NSString).appendingPathComponent($0)
        }
        let source = ProfileSource(
            description:
                "GPU latencies recovered from the DNNScaler and BatchDVFS artifacts: "
                + Self.repositories.joined(separator: "; "),
            files: files, notes: notes, jobs: jobs)
        let profile = Profile(
            model: model, backend: "TensorFlow 1.x FP32 (authors' scripts), imported",
            device: "gpu: NVIDIA Tesla P40 (inferred)", createdAt: "", percentile: 99, durationSeconds: 0,
            points: points, sloMs: jobs.map(\.sloMs).min(), source: source)
        return Imported(model: key.model, dataset: key.dataset, profile: profile)
    }

    private static func ms(_ value: Double) -> String { String(format: "%.1f", value) }
}

/// A small CSV reader: a header row, then rows; fields may be double-quoted (`""` inside quotes
/// is a quote). Columns are found by header name.
struct CSVTable {
    struct Row {
        let file: String
        let line: Int
        let fields: [String]
        let index: [String: Int]

        func string(_ column: String) throws -> String {
            guard let position = index[column] else {
                throw GPUProfileImportError.missingColumn(file: file, column: column)
            }
            return fields[position]
        }

        func double(_ column: String, positive: Bool = false) throws -> Double {
            let text = try string(column)
            guard let value = Double(text), value.isFinite, !positive || value > 0 else {
                throw GPUProfileImportError.badRow(
                    file: file, line: line,
                    reason: "'\(text)' in \(column) is not a \(positive ? "positive " : "")number")
            }
            return value
        }

        func int(_ column: String, atLeast minimum: Int) throws -> Int {
            let text = try string(column)
            guard let value = Int(text), value >= minimum else {
                throw GPUProfileImportError.badRow(
                    file: file, line: line, reason: "'\(text)' in \(column) is not an integer >= \(minimum)")
            }
            return value
        }
    }

    let file: String
    let columns: [String]
    let rows: [Row]

    init(text: String, file: String) throws {
        self.file = file
        var lines: [(Int, [String])] = []
        for (number, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated()
        where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            lines.append((number + 1, try Self.fields(of: line, file: file, line: number + 1)))
        }
        guard let header = lines.first else {
            throw GPUProfileImportError.badRow(file: file, line: 1, reason: "empty file")
        }
        columns = header.1
        var index: [String: Int] = [:]
        for (position, name) in header.1.enumerated() { index[name] = position }
        var rows: [Row] = []
        for (number, fields) in lines.dropFirst() {
            guard fields.count == header.1.count else {
                throw GPUProfileImportError.badRow(
                    file: file, line: number, reason: "\(fields.count) fields, expected \(header.1.count)")
            }
            rows.append(Row(file: file, line: number, fields: fields, index: index))
        }
        self.rows = rows
    }

    func require(_ names: [String]) throws {
        for name in names where !columns.contains(name) {
            throw GPUProfileImportError.missingColumn(file: file, column: name)
        }
    }

    static func fields(of line: Substring, file: String, line number: Int) throws -> [String] {
        var fields: [String] = []
        var field = ""
        var quoted = false
        var characters = line.makeIterator()
        var pending: Character? = characters.next()
        while let character = pending {
            pending = characters.next()
            if quoted {
                if character == "\"" {
                    if pending == "\"" {
                        field.append("\"")
                        pending = characters.next()
                    } else {
                        quoted = false
                    }
                } else {
                    field.append(character)
                }
            } else if character == "\"" && field.isEmpty {
                quoted = true
            } else if character == "," {
                fields.append(field)
                field = ""
            } else {
                field.append(character)
            }
        }
        guard !quoted else { throw GPUProfileImportError.badRow(file: file, line: number, reason: "unclosed quote") }
        fields.append(field)
        return fields.map { $0.trimmingCharacters(in: .whitespaces) }
    }
}
