import Testing
@testable import AWS

@Test func moduleLinks() {
    #expect(AWSModule.self == AWSModule.self)
}
