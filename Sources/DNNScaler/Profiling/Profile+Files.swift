import Foundation

/// Why a profile file could not be read.
public enum ProfileFileError: Error, Equatable, CustomStringConvertible {
    /// The file's format version is not one this build reads.
    case unsupportedFormatVersion(Int)
    /// A CSV file lacks a column, or a value does not parse.
    case malformedCSV(String)

    /// A one-line message.
    public var description: String {
        switch self {
        case .unsupportedFormatVersion(let version):
            "profile format version \(version) is not supported (this build reads \(Profile.currentFormatVersion))"
        case .malformedCSV(let reason):
            "malformed profile CSV: \(reason)"
        }
    }
}

extension Profile {
    /// The JSON form: pretty-printed, keys sorted, so files diff well; slashes unescaped.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// Reads the JSON form.
    public init(jsonData: Data) throws {
        let decoded = try JSONDecoder().decode(Profile.self, from: jsonData)
        guard decoded.formatVersion == Self.currentFormatVersion else {
            throw ProfileFileError.unsupportedFormatVersion(decoded.formatVersion)
        }
        self = decoded
    }

    /// The CSV columns, in order.
    public static let csvColumns = [
        "model", "instances", "threads_per_instance", "batch_size", "throughput_per_s", "latency_mean_ms",
        "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_at_percentile_ms", "percentile", "batches",
        "resident_memory_bytes",
    ]

    /// The CSV form: one row per point, header first. It carries the grid, not the decision,
    /// which a reader recomputes.
    public func csvText() -> String {
        var lines = [Self.csvColumns.joined(separator: ",")]
        for point in points {
            let fields: [String] = [
                Self.csvField(model), String(point.instances), String(point.threadsPerInstance),
                String(point.batchSize), Self.number(point.throughput), Self.number(point.latencyMs.mean),
                Self.number(point.latencyMs.p50), Self.number(point.latencyMs.p95), Self.number(point.latencyMs.p99),
                Self.number(point.latencyMs.atPercentile), Self.number(percentile), String(point.batches),
                String(point.residentMemoryBytes),
            ]
            lines.append(fields.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Reads the CSV form. Columns are found by header name; the decision is recomputed for `sloMs`.
    public init(csvText: String, backend: String = "csv", device: String = "unknown", sloMs: Double? = nil) throws {
        let rows = csvText.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.isEmpty }
        guard let header = rows.first else { throw ProfileFileError.malformedCSV("empty file") }
        let columns = header.split(separator: ",").map(String.init)
        var index: [String: Int] = [:]
        for (position, name) in columns.enumerated() { index[name] = position }
        for required in Self.csvColumns where index[required] == nil {
            throw ProfileFileError.malformedCSV("missing column '\(required)'")
        }
        var model = ""
        var percentile = 99.0
        var points: [ProfilePoint] = []
        for (line, row) in rows.dropFirst().enumerated() {
            let fields = row.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == columns.count else {
                throw ProfileFileError.malformedCSV(
                    "row \(line + 2) has \(fields.count) fields, expected \(columns.count)")
            }
            func value(_ name: String) -> String { fields[index[name] ?? 0] }
            func double(_ name: String) throws -> Double {
                guard let parsed = Double(value(name)) else {
                    throw ProfileFileError.malformedCSV("row \(line + 2): '\(value(name))' in \(name) is not a number")
                }
                return parsed
            }
            func int(_ name: String) throws -> Int {
                guard let parsed = Int(value(name)) else {
                    throw ProfileFileError.malformedCSV(
                        "row \(line + 2): '\(value(name))' in \(name) is not an integer")
                }
                return parsed
            }
            model = value("model")
            percentile = try double("percentile")
            let latency = LatencySummary(
                mean: try double("latency_mean_ms"), p50: try double("latency_p50_ms"),
                p95: try double("latency_p95_ms"), p99: try double("latency_p99_ms"),
                atPercentile: try double("latency_at_percentile_ms"))
            points.append(
                ProfilePoint(
                    instances: try int("instances"), threadsPerInstance: try int("threads_per_instance"),
                    batchSize: try int("batch_size"), throughput: try double("throughput_per_s"), latencyMs: latency,
                    batches: try int("batches"), residentMemoryBytes: try int("resident_memory_bytes")))
        }
        self.init(
            model: model, backend: backend, device: device, createdAt: "", percentile: percentile, durationSeconds: 0,
            points: points, sloMs: sloMs)
    }

    /// A number with enough digits to round-trip, without exponent noise for ordinary values.
    private static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }

    private static func csvField(_ text: String) -> String {
        text.replacingOccurrences(of: ",", with: "_").replacingOccurrences(of: "\n", with: " ")
    }
}
