import Testing
@testable import HTTPServer

@Test func moduleLinks() {
    #expect(HTTPServerModule.self == HTTPServerModule.self)
}
