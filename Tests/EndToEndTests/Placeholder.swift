import Testing

// End-to-end tests run the built executables as real processes; they arrive with the features.
@Test func endToEndTargetBuilds() {}
