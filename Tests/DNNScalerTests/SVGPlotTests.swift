import Foundation
import Testing

@testable import DNNScaler

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// Collects element names and text while parsing, and whether the document parsed.
private final class SVGCollector: NSObject, XMLParserDelegate {
    var elements: [String] = []
    var texts: [String] = []
    private var current = ""

    func parser(
        _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName: String?,
        attributes: [String: String] = [:]
    ) {
        elements.append(elementName)
        current = ""
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { current += string }

    func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName: String?) {
        if elementName == "text" || elementName == "title" { texts.append(current) }
        current = ""
    }

    static func parse(_ svg: String) -> (ok: Bool, collector: SVGCollector) {
        let collector = SVGCollector()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = collector
        return (parser.parse(), collector)
    }
}

@Suite struct SVGPlotTests {
    @Test func lineChartIsWellFormedAndLabelled() {
        let chart = LineChart(
            title: "Latency <p99> & \"friends\"", subtitle: "simulated", xLabel: "virtual time (s)",
            panels: [
                PlotPanel(
                    yLabel: "latency (ms)",
                    series: [
                        PlotSeries(
                            name: "p99 <tail>", points: (0..<10).map { PlotPoint(x: Double($0), y: Double($0 * $0)) }),
                        PlotSeries(
                            name: "SLO", points: [PlotPoint(x: 0, y: 50), PlotPoint(x: 9, y: 50)], dashed: true),
                    ]),
                PlotPanel(
                    yLabel: "instances", series: [PlotSeries(name: "instances", points: [PlotPoint(x: 0, y: 1)])],
                    integerValues: true),
            ])
        let svg = chart.svg()
        let (ok, collector) = SVGCollector.parse(svg)
        #expect(ok)
        #expect(collector.elements.first == "svg")
        #expect(collector.elements.filter { $0 == "polyline" }.count == 3)
        #expect(collector.texts.contains("Latency <p99> & \"friends\""))
        #expect(collector.texts.contains("p99 <tail>"))
        #expect(collector.texts.contains("SLO"))
        #expect(collector.texts.contains("virtual time (s)"))
        #expect(collector.texts.contains("latency (ms)"))
        // Whole-number ticks on a count axis, and the y axis reaches the largest value (81).
        #expect(!collector.texts.contains("0.2"))
        #expect(collector.texts.contains("100"))
        #expect(svg.contains("&lt;p99&gt; &amp; &quot;friends&quot;"))
    }

    @Test func barChartIsWellFormedWithOneBarPerValue() {
        let chart = BarChart(
            title: "Throughput", yLabel: "requests/s", categories: ["A & B", "C"],
            series: [(name: "clipper-aimd", values: [10, 20]), (name: "dnnscaler", values: [30, nil])])
        let (ok, collector) = SVGCollector.parse(chart.svg())
        #expect(ok)
        // The background plus the frame, and three bars (a nil value draws none).
        #expect(collector.elements.filter { $0 == "rect" }.count == 2 + 3)
        #expect(collector.texts.contains("A & B"))
        #expect(collector.texts.contains("dnnscaler"))
        #expect(collector.texts.contains("A & B, dnnscaler: 30"))
    }

    @Test func ticksAreNiceNumbers() {
        #expect(Axis.niceStep(0.3) == 0.5)
        #expect(Axis.niceStep(7) == 10)
        #expect(Axis.niceStep(130) == 200)
        let axis = Axis(low: 0, high: 1_234, fromZero: true)
        #expect(axis.ticks == [0, 500, 1000, 1500])
        #expect(axis.label(1000) == "1,000")
        #expect(Axis(low: 0.5, high: 151, fromZero: false, tight: true).ticks == [50, 100, 150])
    }

    @Test func simulationChartHasTheFourPanels() {
        var simulator = Simulator(
            profile: SimulatorTests.profile(batchOneMs: 5, perSampleMs: 1),
            policy: ClipperAIMDPolicy(maxBatch: 16),
            settings: SimulationSettings(sloMs: 40, arrivals: .poisson(rate: 300), requests: 5_000, seed: 2))
        let result = simulator.run()
        let svg = result.timeSeriesChart(title: "t", sloMs: 40, percentile: 99).svg()
        let (ok, collector) = SVGCollector.parse(svg)
        #expect(ok)
        for label in ["throughput", "shed", "p99 latency", "SLO 40 ms", "batch limit", "instances"] {
            #expect(collector.texts.contains(label), "\(label)")
        }
    }
}
