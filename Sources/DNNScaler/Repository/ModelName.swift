import Foundation

/// The rules a model name or version from a client (or `--models`) must follow before it is
/// used to look anything up: a name is exactly one folder of the repository, so it can never
/// point elsewhere on the disk, however it is spelled.
public enum ModelName {
    /// The longest name accepted, in bytes.
    public static let maximumLength = 128
    /// The longest version accepted, in digits.
    public static let maximumVersionDigits = 18

    /// Why a name or version was refused; the description names the rule.
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        /// What is wrong, for the client.
        public var message: String
        /// The message.
        public var description: String { message }
    }

    /// Checks a model name: 1 to ``maximumLength`` ASCII letters, digits, `_`, `-` and `.`, not
    /// starting with a dot. This refuses `..`, `/`, `\`, NUL, percent-encoded separators (`%`),
    /// hidden folders and any other spelling that could name a path.
    public static func validate(_ name: String) throws(Refusal) {
        let shown = displayed(name)
        guard !name.isEmpty else { throw Refusal(message: "the model name is empty") }
        guard name.utf8.count <= maximumLength else {
            throw Refusal(message: "model name is \(name.utf8.count) bytes long, over the \(maximumLength)-byte limit")
        }
        guard name.utf8.allSatisfy(isAllowed) else {
            throw Refusal(
                message:
                    "model name '\(shown)' may only hold ASCII letters, digits, '_', '-' and '.' (it names one folder of the repository)"
            )
        }
        guard name.utf8.first != UInt8(ascii: ".") else {
            throw Refusal(message: "model name '\(shown)' must not start with '.'")
        }
    }

    /// Checks a version: digits only (Triton's numeric version folders).
    public static func validate(version: String) throws(Refusal) {
        guard !version.isEmpty, version.utf8.count <= maximumVersionDigits,
            version.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else {
            throw Refusal(
                message:
                    "model version '\(displayed(version))' must be a number of up to \(maximumVersionDigits) digits")
        }
    }

    private static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "."):
            true
        default: false
        }
    }

    /// The name as an error message may quote it: control characters escaped, at most 80 characters.
    static func displayed(_ text: String) -> String {
        let escaped = text.unicodeScalars.prefix(80).map { scalar -> String in
            scalar.value < 0x20 || scalar.value == 0x7F ? String(format: "\\x%02x", scalar.value) : String(scalar)
        }.joined()
        return text.unicodeScalars.count > 80 ? escaped + "..." : escaped
    }
}

/// Canonical paths: whether a file, once every symlink is resolved, lies inside a folder.
public enum ContainedPath {
    /// The path with every symlink resolved, or `nil` when it does not exist.
    public static func resolved(_ path: String) -> String? {
        guard let pointer = realpath(path, nil) else { return nil }
        defer { free(pointer) }
        return String(cString: pointer)
    }

    /// Whether `path` resolves to `folder` itself or to something inside it (both resolved).
    public static func isInside(_ path: String, folder: String) -> Bool {
        guard let file = resolved(path), let root = resolved(folder) else { return false }
        return file == root || file.hasPrefix(root.hasSuffix("/") ? root : root + "/")
    }
}
