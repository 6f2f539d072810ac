import Foundation

@testable import Training

/// Small datasets built in code for unit tests.
enum TrainingFixtures {
    /// A one-feature table from values (`nil` is missing) and labels.
    static func table(_ x: [Float?], _ y: [Double]) throws -> Table {
        try Table(columns: [
            .float("x", x.map { $0 ?? .nan }),
            .float("y", y.map { Float($0) }),
        ])
    }

    /// A seeded synthetic binary classification table with some missing values.
    static func synthetic(rows: Int, features: Int = 6, seed: UInt64 = 42) throws -> Table {
        var random = SeededRandom(seed: seed)
        func normal() -> Double {
            let u = max(random.nextUnit(), 1e-12), v = random.nextUnit()
            return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
        }
        var columns = [[Float]](repeating: [], count: features)
        var labels: [Float] = []
        for _ in 0..<rows {
            let x = (0..<max(features, 5)).map { _ in normal() }  // the label uses the first five
            let logit = 1.2 * x[0] - 0.8 * x[1] + 0.9 * x[2] * x[3] + sin(2 * x[4])
            labels.append(random.nextUnit() < 1 / (1 + exp(-logit)) ? 1 : 0)
            for f in 0..<features {
                columns[f].append(random.nextUnit() < 0.03 ? .nan : Float(x[f]))
            }
        }
        return try Table(columns: columns.enumerated().map { .float("f\($0.offset)", $0.element) } + [.float("label", labels)])
    }
}
