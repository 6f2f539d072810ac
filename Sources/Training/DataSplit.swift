/// A deterministic train/validation split of row indices from a seed.
public struct DataSplit: Sendable, Equatable {
    public let trainRows: [Int]
    public let validationRows: [Int]

    /// Shuffles `0..<rowCount` with the seed and puts `round(fraction × rowCount)` rows in
    /// validation; both lists are returned in ascending row order.
    public init(rowCount: Int, validationFraction: Double, seed: UInt64) throws {
        guard validationFraction >= 0, validationFraction < 1 else {
            throw TrainingError(.invalidParameter, "validation fraction must be in [0, 1)")
        }
        var order = Array(0..<rowCount)
        var random = SeededRandom(seed: seed, stream: 0x5EED)
        if rowCount > 1 {
            for i in stride(from: rowCount - 1, to: 0, by: -1) {
                let j = Int(random.next() % UInt64(i + 1))
                order.swapAt(i, j)
            }
        }
        let validationCount = Int((validationFraction * Double(rowCount)).rounded())
        var isValidation = [Bool](repeating: false, count: rowCount)
        for row in order.prefix(validationCount) { isValidation[row] = true }
        var train: [Int] = [], validation: [Int] = []
        train.reserveCapacity(rowCount - validationCount)
        validation.reserveCapacity(validationCount)
        for row in 0..<rowCount {
            if isValidation[row] { validation.append(row) } else { train.append(row) }
        }
        trainRows = train
        validationRows = validation
    }
}
