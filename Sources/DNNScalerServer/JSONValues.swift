import Foundation

/// Reading JSONSerialization values safely: on Linux, `value is Bool` is true for the numbers 0
/// and 1 too, so booleans are told apart by their boxed type.
enum JSONValues {
    /// The dynamic types JSONSerialization gives `true` and `false` here, learnt once by parsing
    /// them (plus Swift's `Bool`, for values built in code); `nil` if they cannot be told from the
    /// types it gives numbers, and the type's name decides instead. Comparing identifiers costs a
    /// few nanoseconds; rendering the type's name cost microseconds a value, which JSON tensor data
    /// paid per element.
    private static let booleanTypes: Set<ObjectIdentifier>? = {
        let sample = (try? JSONSerialization.jsonObject(with: Data("[true, false, 1, 0, 2.5]".utf8))) as? [Any]
        guard let sample, sample.count == 5 else { return nil }
        let booleans = Set(sample.prefix(2).map { ObjectIdentifier(type(of: $0)) })
        let numbers = Set(sample.suffix(3).map { ObjectIdentifier(type(of: $0)) })
        guard booleans.isDisjoint(with: numbers), sample.prefix(2).allSatisfy(isBooleanByName) else { return nil }
        return booleans.union([ObjectIdentifier(Bool.self)])
    }()

    private static func isBooleanByName(_ value: Any) -> Bool {
        String(describing: type(of: value)).contains("Boolean") || type(of: value) == Bool.self
    }

    /// Whether a JSONSerialization value is a JSON `true`/`false`.
    static func isBoolean(_ value: Any) -> Bool {
        guard let booleanTypes else { return isBooleanByName(value) }
        return booleanTypes.contains(ObjectIdentifier(type(of: value)))
    }

    /// The value as a JSON boolean, or `nil` for anything else (numbers included).
    static func boolean(_ value: Any?) -> Bool? {
        guard let value, isBoolean(value) else { return nil }
        return (value as? NSNumber)?.boolValue ?? (value as? Bool)
    }

    /// The value as a JSON number, or `nil` for anything else (booleans included).
    static func number(_ value: Any?) -> NSNumber? {
        guard let value, !isBoolean(value) else { return nil }
        return value as? NSNumber
    }

    /// The value as a whole JSON number that fits an `Int`, or `nil` for anything else.
    static func integer(_ value: Any?) -> Int? {
        number(value).flatMap { Int(exactly: $0.doubleValue) }
    }
}
