import Testing
@testable import Enclave

@Test func moduleLinks() {
    #expect(EnclaveModule.self == EnclaveModule.self)
}
