import Testing
@testable import Attestation

@Test func moduleLinks() {
    #expect(AttestationModule.self == AttestationModule.self)
}
