import Foundation

/// One line of a ``LineChart`` panel: (x, y) points in x order.
public struct PlotSeries: Sendable, Equatable {
    /// The legend label.
    public var name: String
    /// The points.
    public var points: [PlotPoint]
    /// Drawn dashed (for references such as an SLO) rather than solid.
    public var dashed: Bool

    /// Creates a series.
    public init(name: String, points: [PlotPoint], dashed: Bool = false) {
        self.name = name
        self.points = points
        self.dashed = dashed
    }
}

/// A point of a plot, in data units.
public struct PlotPoint: Sendable, Equatable {
    /// Horizontal coordinate.
    public var x: Double
    /// Vertical coordinate.
    public var y: Double

    /// Creates a point.
    public init(x: Double, y: Double) {
        self.x = x
        self.y = y
    }
}

/// One panel of a ``LineChart``: its own y axis, lines and legend; panels share the x axis.
public struct PlotPanel: Sendable, Equatable {
    /// The y axis label, with its unit, e.g. "p99 latency (ms)".
    public var yLabel: String
    /// The lines.
    public var series: [PlotSeries]
    /// Whether the y axis starts at zero (else it fits the data).
    public var fromZero: Bool
    /// Whether the values are counts: ticks are then whole numbers.
    public var integerValues: Bool

    /// Creates a panel.
    public init(yLabel: String, series: [PlotSeries], fromZero: Bool = true, integerValues: Bool = false) {
        self.yLabel = yLabel
        self.series = series
        self.fromZero = fromZero
        self.integerValues = integerValues
    }
}

/// Line charts as stacked panels over one x axis, rendered as a standalone SVG document.
public struct LineChart: Sendable {
    /// The title at the top.
    public var title: String
    /// A smaller line under the title (e.g. how the data were made).
    public var subtitle: String
    /// The x axis label, with its unit.
    public var xLabel: String
    /// The panels, top to bottom.
    public var panels: [PlotPanel]
    /// Width in pixels.
    public var width: Double
    /// Height of each panel's plotting area in pixels.
    public var panelHeight: Double

    /// Creates a chart.
    public init(
        title: String, subtitle: String = "", xLabel: String, panels: [PlotPanel], width: Double = 900,
        panelHeight: Double = 160
    ) {
        self.title = title
        self.subtitle = subtitle
        self.xLabel = xLabel
        self.panels = panels
        self.width = width
        self.panelHeight = panelHeight
    }

    /// The SVG document.
    public func svg() -> String {
        let left = 80.0
        let right = 200.0
        let top = subtitle.isEmpty ? 50.0 : 68.0
        let gap = 40.0
        let plotWidth = width - left - right
        let height = top + Double(panels.count) * (panelHeight + gap) + 40
        var out = SVGWriter(width: width, height: height)
        out.header(title: title, subtitle: subtitle)
        let allX = panels.flatMap { $0.series.flatMap { $0.points.map(\.x) } }
        let xAxis = Axis(low: allX.min() ?? 0, high: allX.max() ?? 1, fromZero: false, tight: true)
        for (number, panel) in panels.enumerated() {
            let panelTop = top + Double(number) * (panelHeight + gap)
            let ys = panel.series.flatMap { $0.points.map(\.y) }.filter(\.isFinite)
            let yAxis = Axis(
                low: ys.min() ?? 0, high: ys.max() ?? 1, fromZero: panel.fromZero, integer: panel.integerValues)
            let frame = Frame(left: left, top: panelTop, width: plotWidth, height: panelHeight)
            out.axes(
                frame: frame, xAxis: xAxis, yAxis: yAxis, yLabel: panel.yLabel,
                xLabel: number == panels.count - 1 ? xLabel : nil)
            for (index, series) in panel.series.enumerated() {
                let color = SVGWriter.palette[index % SVGWriter.palette.count]
                let path = series.points.filter { $0.y.isFinite }.map {
                    "\(SVGWriter.number(frame.x($0.x, xAxis))),\(SVGWriter.number(frame.y($0.y, yAxis)))"
                }
                if !path.isEmpty {
                    out.line(
                        "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.8\"\(series.dashed ? " stroke-dasharray=\"6 4\"" : "") points=\"\(path.joined(separator: " "))\"><title>\(SVGWriter.escape(series.name))</title></polyline>"
                    )
                }
                out.legendEntry(
                    x: left + plotWidth + 16, y: panelTop + 14 + Double(index) * 20, color: color, label: series.name,
                    dashed: series.dashed)
            }
        }
        return out.finish()
    }
}

/// A grouped bar chart: one group per category, one bar per series, rendered as SVG.
public struct BarChart: Sendable {
    /// The title at the top.
    public var title: String
    /// A smaller line under the title.
    public var subtitle: String
    /// The y axis label, with its unit.
    public var yLabel: String
    /// The group labels along the x axis.
    public var categories: [String]
    /// Per series: its legend label and one value per category (`nil`: no bar).
    public var series: [(name: String, values: [Double?])]
    /// Width in pixels.
    public var width: Double
    /// Height of the plotting area in pixels.
    public var plotHeight: Double

    /// Creates a chart.
    public init(
        title: String, subtitle: String = "", yLabel: String, categories: [String],
        series: [(name: String, values: [Double?])], width: Double = 1000, plotHeight: Double = 320
    ) {
        self.title = title
        self.subtitle = subtitle
        self.yLabel = yLabel
        self.categories = categories
        self.series = series
        self.width = width
        self.plotHeight = plotHeight
    }

    /// The SVG document.
    public func svg() -> String {
        let labelRoom = 7.0 * Double(categories.map(\.count).max() ?? 0) * 0.72 + 20
        // Rotated labels reach left of their group by about their own length: leave room for the first.
        let left = max(80.0, labelRoom * 0.8 - width / Double(max(1, categories.count)) / 2)
        let right = 7.0 * Double(series.map(\.name.count).max() ?? 0) + 60
        let top = subtitle.isEmpty ? 50.0 : 68.0
        let plotWidth = width - left - right
        let height = top + plotHeight + labelRoom + 20
        var out = SVGWriter(width: width, height: height)
        out.header(title: title, subtitle: subtitle)
        let values = series.flatMap { $0.values.compactMap { $0 } }.filter(\.isFinite)
        let yAxis = Axis(low: 0, high: values.max() ?? 1, fromZero: true)
        let frame = Frame(left: left, top: top, width: plotWidth, height: plotHeight)
        out.axes(frame: frame, xAxis: nil, yAxis: yAxis, yLabel: yLabel, xLabel: nil)
        let groupWidth = plotWidth / Double(max(1, categories.count))
        let barWidth = groupWidth * 0.8 / Double(max(1, series.count))
        for (group, category) in categories.enumerated() {
            let groupLeft = left + Double(group) * groupWidth + groupWidth * 0.1
            for (index, entry) in series.enumerated() {
                guard group < entry.values.count, let value = entry.values[group], value.isFinite else { continue }
                let x = groupLeft + Double(index) * barWidth
                let y = frame.y(value, yAxis)
                out.line(
                    "<rect x=\"\(SVGWriter.number(x))\" y=\"\(SVGWriter.number(y))\" width=\"\(SVGWriter.number(barWidth * 0.92))\" height=\"\(SVGWriter.number(frame.top + frame.height - y))\" fill=\"\(SVGWriter.palette[index % SVGWriter.palette.count])\"><title>\(SVGWriter.escape("\(category), \(entry.name): \(SVGWriter.number(value))"))</title></rect>"
                )
            }
            let labelX = left + (Double(group) + 0.5) * groupWidth
            let labelY = top + plotHeight + 12
            out.line(
                "<text x=\"\(SVGWriter.number(labelX))\" y=\"\(SVGWriter.number(labelY))\" font-size=\"11\" text-anchor=\"end\" transform=\"rotate(-40 \(SVGWriter.number(labelX)) \(SVGWriter.number(labelY)))\">\(SVGWriter.escape(category))</text>"
            )
        }
        for (index, entry) in series.enumerated() {
            out.legendEntry(
                x: left + plotWidth + 16, y: top + 14 + Double(index) * 20,
                color: SVGWriter.palette[index % SVGWriter.palette.count], label: entry.name, dashed: false)
        }
        return out.finish()
    }
}

/// A linear axis with "nice" ticks (1, 2 or 5 x a power of ten) covering [low, high].
struct Axis {
    let low: Double
    let high: Double
    let ticks: [Double]
    let step: Double

    /// An axis over [low, high]: widened to whole steps unless `tight`; steps of at least 1 when
    /// `integer`.
    init(low: Double, high: Double, fromZero: Bool, tight: Bool = false, integer: Bool = false) {
        let low = fromZero ? min(0, low) : low
        var high = high
        if !(high > low) { high = low + (integer || low == 0 ? 1 : abs(low) * 0.1) }
        var step = Self.niceStep((high - low) / 5)
        if integer { step = max(1, step) }
        let first = tight ? (low / step).rounded(.up) * step : (low / step).rounded(.down) * step
        let last = tight ? (high / step).rounded(.down) * step : (high / step).rounded(.up) * step
        var ticks: [Double] = []
        var tick = first
        while tick <= last + step * 1e-9 {
            ticks.append(abs(tick) < step * 1e-9 ? 0 : tick)
            tick += step
        }
        self.low = tight ? low : first
        self.high = tight ? high : last
        self.ticks = ticks
        self.step = step
    }

    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let fraction = raw / magnitude
        let nice: Double = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10
        return nice * magnitude
    }

    func label(_ value: Double) -> String {
        if step >= 1 || value == value.rounded() && abs(value) >= 1 { return SVGWriter.grouped(value) }
        let decimals = max(0, Int((-log10(step)).rounded(.up)))
        return String(format: "%.\(decimals)f", value)
    }
}

/// A plotting area in pixels.
struct Frame {
    let left: Double
    let top: Double
    let width: Double
    let height: Double

    func x(_ value: Double, _ axis: Axis) -> Double {
        left + (value - axis.low) / max(1e-12, axis.high - axis.low) * width
    }

    func y(_ value: Double, _ axis: Axis) -> Double {
        top + height - (value - axis.low) / max(1e-12, axis.high - axis.low) * height
    }
}

/// Builds the SVG text.
struct SVGWriter {
    /// Colour-blind-safe colours (Okabe-Ito).
    static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

    private var lines: [String] = []
    let width: Double
    let height: Double

    init(width: Double, height: Double) {
        self.width = width
        self.height = height
        lines.append(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Self.number(width))\" height=\"\(Self.number(height))\" viewBox=\"0 0 \(Self.number(width)) \(Self.number(height))\" font-family=\"Helvetica, Arial, sans-serif\">"
        )
        lines.append("<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"white\"/>")
    }

    mutating func line(_ text: String) { lines.append(text) }

    mutating func header(title: String, subtitle: String) {
        lines.append(
            "<text x=\"\(Self.number(width / 2))\" y=\"26\" font-size=\"17\" font-weight=\"bold\" text-anchor=\"middle\">\(Self.escape(title))</text>"
        )
        if !subtitle.isEmpty {
            lines.append(
                "<text x=\"\(Self.number(width / 2))\" y=\"46\" font-size=\"12\" fill=\"#444\" text-anchor=\"middle\">\(Self.escape(subtitle))</text>"
            )
        }
    }

    mutating func axes(frame: Frame, xAxis: Axis?, yAxis: Axis, yLabel: String, xLabel: String?) {
        let bottom = frame.top + frame.height
        for tick in yAxis.ticks {
            let y = Self.number(frame.y(tick, yAxis))
            lines.append(
                "<line x1=\"\(Self.number(frame.left))\" y1=\"\(y)\" x2=\"\(Self.number(frame.left + frame.width))\" y2=\"\(y)\" stroke=\"#e4e4e4\"/>"
            )
            lines.append(
                "<text x=\"\(Self.number(frame.left - 6))\" y=\"\(y)\" font-size=\"11\" text-anchor=\"end\" dominant-baseline=\"middle\">\(Self.escape(yAxis.label(tick)))</text>"
            )
        }
        if let xAxis {
            for tick in xAxis.ticks {
                let x = Self.number(frame.x(tick, xAxis))
                lines.append(
                    "<line x1=\"\(x)\" y1=\"\(Self.number(frame.top))\" x2=\"\(x)\" y2=\"\(Self.number(bottom))\" stroke=\"#f0f0f0\"/>"
                )
                lines.append(
                    "<text x=\"\(x)\" y=\"\(Self.number(bottom + 15))\" font-size=\"11\" text-anchor=\"middle\">\(Self.escape(xAxis.label(tick)))</text>"
                )
            }
        }
        lines.append(
            "<rect x=\"\(Self.number(frame.left))\" y=\"\(Self.number(frame.top))\" width=\"\(Self.number(frame.width))\" height=\"\(Self.number(frame.height))\" fill=\"none\" stroke=\"#333\"/>"
        )
        let middle = frame.top + frame.height / 2
        lines.append(
            "<text x=\"\(Self.number(frame.left - 56))\" y=\"\(Self.number(middle))\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 \(Self.number(frame.left - 56)) \(Self.number(middle)))\">\(Self.escape(yLabel))</text>"
        )
        if let xLabel {
            lines.append(
                "<text x=\"\(Self.number(frame.left + frame.width / 2))\" y=\"\(Self.number(bottom + 34))\" font-size=\"12\" text-anchor=\"middle\">\(Self.escape(xLabel))</text>"
            )
        }
    }

    mutating func legendEntry(x: Double, y: Double, color: String, label: String, dashed: Bool) {
        lines.append(
            "<line x1=\"\(Self.number(x))\" y1=\"\(Self.number(y))\" x2=\"\(Self.number(x + 22))\" y2=\"\(Self.number(y))\" stroke=\"\(color)\" stroke-width=\"\(dashed ? 2 : 6)\"\(dashed ? " stroke-dasharray=\"6 4\"" : "")/>"
        )
        lines.append(
            "<text x=\"\(Self.number(x + 28))\" y=\"\(Self.number(y))\" font-size=\"12\" dominant-baseline=\"middle\">\(Self.escape(label))</text>"
        )
    }

    func finish() -> String { (lines + ["</svg>"]).joined(separator: "\n") + "\n" }

    /// Text safe inside XML content and attribute values.
    static func escape(_ text: String) -> String {
        var escaped = ""
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&apos;"
            default: escaped.append(character)
            }
        }
        return escaped
    }

    /// A coordinate with at most two decimals.
    static func number(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        let rounded = (value * 100).rounded() / 100
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }

    /// An integer-valued tick label with thousands separators (1,000).
    static func grouped(_ value: Double) -> String {
        guard value.isFinite, abs(value) < 1e15 else { return String(value) }
        if value != value.rounded() { return String(format: "%g", value) }
        let digits = String(Int(abs(value)))
        var out = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(digit)
        }
        return (value < 0 ? "-" : "") + out
    }
}
