import Foundation

/// What moved between two evaluation reports: the simulated capacities per SLO statistic, job and
/// policy, read back from the tables ``EvaluateCommand`` writes, so that a rerun says which figures
/// a change to the simulator or the policies moved.
struct ReportComparison {
    /// The columns compared (policies and the batching-path baseline), as the tables name them.
    static let columns = ["clipper-aimd", "clipper (batching path)", "dnnscaler", "joint"]
    /// A change smaller than this (relative) is noise of the search, not a move.
    static let threshold = 0.05

    /// Capacities by "statistic, job, SLO" and column, from a report's simulated tables.
    static func capacities(inReport text: String) -> [String: [String: Double]] {
        var statistic: String?
        var header: [String] = []
        var rows: [String: [String: Double]] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("#") {
                statistic = ["p99", "mean"].first { line.hasPrefix("### Throughput sustained within the SLO (\($0))") }
                header = []
                continue
            }
            guard let statistic, line.hasPrefix("| ") else { continue }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast().map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            if header.isEmpty {
                header = cells
                continue
            }
            guard cells.count == header.count, cells.count > 2, !cells[0].hasPrefix("---") else { continue }
            var values: [String: Double] = [:]
            for column in columns {
                if let index = header.firstIndex(of: column), let value = Double(cells[index]) {
                    values[column] = value
                }
            }
            rows["\(statistic), \(cells[0]), SLO \(cells[1]) ms"] = values
        }
        return rows
    }

    /// A Markdown section listing the capacities that moved by more than ``threshold`` from
    /// `previous` to `current` (both report texts); `previous` nil: says there was none.
    static func section(previous: String?, current: String) -> String {
        var lines = ["### What moved since the previous report", ""]
        guard let previous else {
            lines.append("No previous report to compare with.")
            return lines.joined(separator: "\n") + "\n"
        }
        let before = capacities(inReport: previous)
        let after = capacities(inReport: current)
        var compared = 0
        var moved: [String] = []
        var movedCount = 0
        var up = 0
        for key in after.keys.sorted() {
            guard let old = before[key], let new = after[key] else { continue }
            var changes: [String] = []
            for column in columns {
                guard let from = old[column], let to = new[column] else { continue }
                compared += 1
                let base = max(abs(from), 1e-9)
                guard abs(to - from) / base > threshold else { continue }
                movedCount += 1
                if to > from { up += 1 }
                let percent = from > 0 ? String(format: " (%+.0f%%)", 100 * (to - from) / from) : ""
                changes.append("\(column) \(EvaluateCommand.number(from)) -> \(EvaluateCommand.number(to))/s\(percent)")
            }
            if !changes.isEmpty { moved.append("- \(key): " + changes.joined(separator: ", ")) }
        }
        lines.append(
            "Against the previous report: \(movedCount) of \(compared) simulated capacities moved by more than "
                + "\(Int(threshold * 100))% (\(up) up, \(movedCount - up) down)"
                + (moved.isEmpty ? "." : ":"))
        if !moved.isEmpty { lines += [""] + moved }
        return lines.joined(separator: "\n") + "\n"
    }
}
