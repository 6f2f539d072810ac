import Testing
@testable import Envelope

@Test func moduleLinks() {
    #expect(EnvelopeModule.self == EnvelopeModule.self)
}
