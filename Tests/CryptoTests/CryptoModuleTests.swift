import Testing
@testable import Crypto

@Test func moduleLinks() {
    #expect(CryptoModule.self == CryptoModule.self)
}
