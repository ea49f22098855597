import DNNScaler

extension BenchResult {
    /// The run over time as stacked panels: throughput (and failures), the per-second p99 against the
    /// SLO, and, when the server reported them, its batch limit and instance count.
    public func timeSeriesChart(title: String, subtitle: String = "", sloMs: Double?) -> LineChart {
        func compact(_ value: Double) -> String {
            value == value.rounded() ? String(Int(value)) : String(value)
        }
        let span = [0, Double(series.count)]
        var latency = [
            PlotSeries(
                name: "p99 latency (per second)",
                points: series.compactMap { point in point.p99Ms.map { PlotPoint(x: point.time + 1, y: $0) } })
        ]
        if let sloMs {
            latency.append(
                PlotSeries(
                    name: "SLO \(compact(sloMs)) ms", points: span.map { PlotPoint(x: $0, y: sloMs) }, dashed: true))
        }
        var panels = [
            PlotPanel(
                yLabel: "requests/s",
                series: [
                    PlotSeries(
                        name: "throughput", points: series.map { PlotPoint(x: $0.time + 1, y: Double($0.succeeded)) }),
                    PlotSeries(name: "failed", points: series.map { PlotPoint(x: $0.time + 1, y: Double($0.failed)) }),
                ]),
            PlotPanel(yLabel: "latency (ms)", series: latency),
        ]
        let batches = series.compactMap { point in point.batchLimit.map { PlotPoint(x: point.time + 1, y: Double($0)) }
        }
        let instances = series.compactMap { point in
            point.instances.map { PlotPoint(x: point.time + 1, y: Double($0)) }
        }
        if !batches.isEmpty {
            panels.append(
                PlotPanel(
                    yLabel: "batch limit", series: [PlotSeries(name: "server batch limit", points: batches)],
                    integerValues: true))
            panels.append(
                PlotPanel(
                    yLabel: "instances", series: [PlotSeries(name: "server instances", points: instances)],
                    integerValues: true))
        }
        return LineChart(title: title, subtitle: subtitle, xLabel: "time (s)", panels: panels, panelHeight: 140)
    }
}
