import Foundation

/// A learning objective, named as XGBoost names it.
public enum Objective: String, Sendable, Codable, CaseIterable {
    /// Log-loss on 0/1 labels; predictions are probabilities.
    case binaryLogistic = "binary:logistic"
    /// Squared error; predictions are values.
    case squaredError = "reg:squarederror"

    /// The margin of a base score (logit for probabilities), in 32-bit arithmetic as XGBoost does.
    func baseMargin(_ baseScore: Float) -> Float {
        switch self {
        case .binaryLogistic: return -Foundation.log(1 / baseScore - 1)
        case .squaredError: return baseScore
        }
    }

    /// The prediction from a margin, in 32-bit arithmetic as XGBoost does.
    func transform(_ margin: Float) -> Float {
        switch self {
        case .binaryLogistic: return 1 / (1 + Foundation.exp(-margin))
        case .squaredError: return margin
        }
    }
}
