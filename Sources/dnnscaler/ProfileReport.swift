import DNNScaler
import Foundation

/// The human-readable table and decision that `dnnscaler profile` prints.
struct ProfileReport {
    let profile: Profile

    var text: String {
        let percentileName = "p\(formatPercentile(profile.percentile))"
        var header = ["instances", "threads", "batch", "infer/s", "p50 ms", "p95 ms", "p99 ms"]
        if profile.percentile != 99 && profile.percentile != 95 && profile.percentile != 50 {
            header.append("\(percentileName) ms")
        }
        header += ["batches", "RSS MiB", "fits SLO"]
        var rows: [[String]] = []
        for point in profile.points {
            var row = [
                String(point.instances), String(point.threadsPerInstance), String(point.batchSize),
                String(format: "%.1f", point.throughput), String(format: "%.2f", point.latencyMs.p50),
                String(format: "%.2f", point.latencyMs.p95), String(format: "%.2f", point.latencyMs.p99),
            ]
            if header.count == 11 { row.append(String(format: "%.2f", point.latencyMs.atPercentile)) }
            let fits = profile.decision.sloMs.map { point.latencyMs.atPercentile <= $0 ? "yes" : "no" } ?? "-"
            row += [String(point.batches), String(format: "%.0f", Double(point.residentMemoryBytes) / 1_048_576), fits]
            rows.append(row)
        }
        var lines = [table(header: header, rows: rows), ""]
        let decision = profile.decision
        let singleInstance = profile.points.filter { $0.instances == 1 }.max { $0.throughput < $1.throughput }
        let batchOne = profile.points.filter { $0.batchSize == 1 }.max { $0.throughput < $1.throughput }
        lines.append(String(format: "Baseline (1 instance, batch 1): %.1f inferences/s", decision.baselineThroughput))
        if let singleInstance {
            lines.append(
                String(
                    format: "Batching gain:      %.2fx (best: batch %d, %.1f/s)", decision.batchingGain,
                    singleInstance.batchSize, singleInstance.throughput))
        }
        if let batchOne {
            lines.append(
                String(
                    format: "Multi-tenancy gain: %.2fx (best: %d instance(s), %.1f/s)", decision.multiTenancyGain,
                    batchOne.instances, batchOne.throughput))
        }
        lines.append("Mode: \(decision.mode.rawValue)")
        if let slo = decision.sloMs {
            let sloText = "SLO \(String(format: "%g", slo)) ms (\(percentileName) per-batch latency)"
            lines.append(describe("Best in mode under \(sloText)", decision.bestInMode))
            lines.append(describe("Best overall under \(sloText)", decision.bestOverall))
        } else {
            lines.append(describe("Best in mode", decision.bestInMode))
        }
        return lines.joined(separator: "\n")
    }

    private func describe(_ label: String, _ point: ProfilePoint?) -> String {
        guard let point else { return "\(label): none fits" }
        return String(
            format: "%@: %d instance(s) x %d thread(s), batch %d: %.1f/s, p%@ %.2f ms", label, point.instances,
            point.threadsPerInstance, point.batchSize, point.throughput, formatPercentile(profile.percentile),
            point.latencyMs.atPercentile)
    }

    private func table(header: [String], rows: [[String]]) -> String {
        let widths = header.indices.map { column in
            ([header[column]] + rows.map { $0[column] }).map(\.count).max() ?? 0
        }
        func line(_ cells: [String]) -> String {
            zip(cells, widths).map { cell, width in String(repeating: " ", count: width - cell.count) + cell }
                .joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}
