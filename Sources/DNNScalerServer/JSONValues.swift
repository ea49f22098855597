import Foundation

/// Reading JSONSerialization values safely: on Linux, `value is Bool` is true for the numbers 0
/// and 1 too, so booleans are told apart by their boxed type.
enum JSONValues {
    /// Whether a JSONSerialization value is a JSON `true`/`false`.
    static func isBoolean(_ value: Any) -> Bool {
        String(describing: type(of: value)).contains("Boolean") || type(of: value) == Bool.self
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
