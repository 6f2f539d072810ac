import Testing
@testable import CleanRoom

@Test func moduleLinks() {
    #expect(CleanRoomModule.self == CleanRoomModule.self)
}
