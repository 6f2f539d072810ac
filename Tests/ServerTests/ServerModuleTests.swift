import Testing
@testable import Server

@Test func moduleLinks() {
    #expect(ServerModule.self == ServerModule.self)
}
