import Foundation
import Testing

@testable import Training

@Suite struct XGBoostJSONTests {
    @Test func treeModelRoundTripsThroughJSON() throws {
        let table = try TrainingFixtures.synthetic(rows: 800)
        let result = try TrainingJob(
            spec: TrainingSpec(label: "label", algorithm: .gbdt, parameters: ["num_round": "5", "max_depth": "3"])
        ).run(tables: [table])
        let read = try Model(xgboostJSON: result.modelJSON)
        #expect(read == result.model)
        let dataset = try Dataset(table: table, label: "label")
        #expect(read.predict(dataset) == result.scores)
        let object = try #require(try JSONSerialization.jsonObject(with: result.modelJSON) as? [String: Any])
        let learner = try #require(object["learner"] as? [String: Any])
        let param = try #require(learner["learner_model_param"] as? [String: String])
        #expect(param["num_feature"] == "6")
        #expect(param["base_score"]?.hasPrefix("[") == true)
    }

    @Test func linearModelRoundTripsThroughJSON() throws {
        let model = Model.linear(
            LinearModel(objective: .binaryLogistic, baseScore: 0.5, featureNames: ["a", "b"], weights: [0.25, -1e-7], bias: 3))
        let json = String(decoding: model.xgboostJSON(), as: UTF8.self)
        #expect(json.contains("\"weights\":[0.25,-1.0e-07,3.0]"))
        #expect(try Model(xgboostJSON: model.xgboostJSON()) == model)
        // Missing values contribute nothing, as in XGBoost.
        let p = model.predict(columns: [[Float.nan], [1]])[0]
        #expect(abs(p - 1 / (1 + exp(-(3 - 1e-7)))) < 1e-7)
    }

    @Test func numbersAlwaysCarryADecimalPointAndReadBackExactly() {
        for value: Float in [0, 1, -2.5, 1e-7, 3.4028235e38, 0.1, -0.1543516, 123456.79] {
            let text = Model.number(value)
            #expect(text.contains("."), "\(text)")
            #expect(Float(Double(text)!) == value)
        }
    }

    @Test func malformedModelsAreRejected() {
        let documents = [
            "{}", "[]", "{\"learner\":{}}",
            #"{"learner":{"gradient_booster":{"name":"gbtree","model":{"trees":[{"left_children":[1],"right_children":[2],"parents":[0],"split_indices":[0],"split_conditions":[0.5],"default_left":[0]}]}},"objective":{"name":"binary:logistic"},"learner_model_param":{"base_score":"5E-1","num_feature":"1"}}}"#,
            #"{"learner":{"gradient_booster":{"name":"gblinear","model":{"weights":[1.0]}},"objective":{"name":"reg:squarederror"},"learner_model_param":{"base_score":"5E-1","num_feature":"1"}}}"#,
            #"{"learner":{"gradient_booster":{"name":"gblinear","model":{"weights":[1.0,2.0]}},"objective":{"name":"multi:softmax"},"learner_model_param":{"base_score":"5E-1","num_feature":"1"}}}"#,
        ]
        for document in documents {
            #expect {
                try Model(xgboostJSON: Data(document.utf8))
            } throws: { ($0 as? TrainingError)?.code == .invalidModel }
        }
    }
}
