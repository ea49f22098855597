extension SimulationResult {
    /// The run over virtual time as four stacked panels: throughput and shed rate, the tail latency
    /// against the SLO, the batch limit, and the instance count.
    public func timeSeriesChart(title: String, subtitle: String = "", sloMs: Double, percentile: Double) -> LineChart {
        func points(_ value: (SimulationSeriesPoint) -> Double) -> [PlotPoint] {
            series.map { PlotPoint(x: $0.time, y: value($0)) }
        }
        func compact(_ value: Double) -> String {
            value == value.rounded() ? String(Int(value)) : String(value)
        }
        let interval = series.count > 1 ? series[1].time - series[0].time : 1
        let tailName = "p\(compact(percentile)) latency"
        let span = [series.first?.time ?? 0, series.last?.time ?? 1]
        return LineChart(
            title: title, subtitle: subtitle, xLabel: "virtual time (s)",
            panels: [
                PlotPanel(
                    yLabel: "requests/s",
                    series: [
                        PlotSeries(name: "throughput", points: points(\.throughput)),
                        PlotSeries(name: "shed", points: points { Double($0.shed) / max(1e-9, interval) }),
                    ]),
                PlotPanel(
                    yLabel: "latency (ms)",
                    series: [
                        PlotSeries(
                            name: tailName,
                            points: series.filter { $0.throughput > 0 }.map {
                                PlotPoint(x: $0.time, y: $0.tailLatencyMs)
                            }),
                        PlotSeries(
                            name: "SLO \(compact(sloMs)) ms", points: span.map { PlotPoint(x: $0, y: sloMs) },
                            dashed: true),
                    ]),
                PlotPanel(
                    yLabel: "batch limit",
                    series: [PlotSeries(name: "batch limit", points: points { Double($0.batchLimit) })],
                    integerValues: true),
                PlotPanel(
                    yLabel: "instances",
                    series: [PlotSeries(name: "instances", points: points { Double($0.instances) })],
                    integerValues: true),
            ], panelHeight: 140)
    }
}
