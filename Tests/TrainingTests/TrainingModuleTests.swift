import Testing
@testable import Training

@Test func moduleLinks() {
    #expect(TrainingModule.self == TrainingModule.self)
}
