import Foundation
import Testing

@testable import DNNScalerServer

/// Booleans and numbers from JSONSerialization told apart (on Linux `0 is Bool` is true).
@Suite struct JSONValuesTests {
    @Test func booleansAndNumbersAreToldApart() throws {
        let parsed = try #require(
            try JSONSerialization.jsonObject(with: Data(#"[true, false, 1, 0, -3, 2.5, "true", null]"#.utf8)) as? [Any])
        #expect(parsed.map(JSONValues.isBoolean) == [true, true, false, false, false, false, false, false])
        #expect(parsed.map(JSONValues.boolean) == [true, false, nil, nil, nil, nil, nil, nil])
        #expect(parsed.map { JSONValues.number($0)?.doubleValue } == [nil, nil, 1, 0, -3, 2.5, nil, nil])
        #expect(parsed.map(JSONValues.integer) == [nil, nil, 1, 0, -3, nil, nil, nil])
    }

    @Test func swiftValuesBuiltInCodeToo() {
        #expect(JSONValues.boolean(true) == true)
        #expect(JSONValues.number(false) == nil)
        #expect(JSONValues.boolean(nil) == nil)
    }
}
