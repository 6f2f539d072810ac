import Testing
@testable import LocalServices

@Test func moduleLinks() {
    #expect(LocalServicesModule.self == LocalServicesModule.self)
}
