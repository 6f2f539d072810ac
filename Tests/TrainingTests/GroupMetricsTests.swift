import Foundation
import Testing

@testable import Training

@Suite struct GroupMetricsTests {
    /// Two tables stacked by a union, trained once; each group's figures are its own held-out rows.
    func unionResult(objective: String = "binary:logistic") throws -> TrainingResult {
        let first = try TrainingFixtures.synthetic(rows: 600, features: 5, seed: 1)
        let second = try TrainingFixtures.synthetic(rows: 300, features: 5, seed: 2)
        var parameters = ["num_round": "5"]
        if objective != "binary:logistic" { parameters["objective"] = objective }
        let spec = TrainingSpec(label: "label", algorithm: .gbdt, parameters: parameters, join: .union,
                                validationFraction: 0.3, seed: 11)
        return try TrainingJob(spec: spec).run(tables: [first, second])
    }

    @Test func eachGroupIsEvaluatedOnItsOwnHeldOutRowsOnly() throws {
        let result = try unionResult()
        let groups = GroupMetrics.validation(
            of: result, groups: [("alpha", [0..<600]), ("beta", [600..<900])], minimumRows: 20)
        #expect(groups.map(\.group) == ["alpha", "beta"])
        #expect(groups.map(\.rows) == [600, 300])
        for (group, range) in zip(groups, [0..<600, 600..<900]) {
            let held = range.filter { result.isValidation[$0] }
            #expect(group.validationRows == held.count)
            let labels = held.map { result.labels[$0] }, scores = held.map { result.scores[$0] }
            let metrics = try #require(group.validation)
            #expect(metrics.rows == held.count)
            #expect(metrics.auc == Metrics.auc(labels: labels, scores: scores))
            #expect(metrics.logLoss == Metrics.logLoss(labels: labels, probabilities: scores))
            #expect(metrics.accuracy == Metrics.accuracy(labels: labels, probabilities: scores))
            #expect(metrics.rmse == nil)
        }
        // The groups' held-out rows together are the overall held-out rows.
        #expect(groups.map(\.validationRows).reduce(0, +) == result.metrics.validation?.rows)
        #expect(groups[0].validation != groups[1].validation)
    }

    @Test func regressionGroupsReportRMSE() throws {
        let result = try unionResult(objective: "reg:squarederror")
        let groups = GroupMetrics.validation(of: result, groups: [("a", [0..<600]), ("b", [600..<900])], minimumRows: 1)
        let held = (600..<900).filter { result.isValidation[$0] }
        let rmse = Metrics.rmse(labels: held.map { result.labels[$0] }, predictions: held.map { result.scores[$0] })
        #expect(groups[1].validation?.rmse == rmse)
        #expect(groups[1].validation?.auc == nil)
    }

    @Test func aGroupBelowTheMinimumSuppressesEveryGroupsFigures() throws {
        let result = try unionResult()
        let betaHeld = (600..<900).filter { result.isValidation[$0] }.count
        let groups = GroupMetrics.validation(
            of: result, groups: [("alpha", [0..<600]), ("beta", [600..<900])], minimumRows: betaHeld + 1)
        #expect(groups.allSatisfy { $0.validation == nil })
        #expect(groups[1].suppressed?.contains("\(betaHeld) held-out rows") == true)
        // alpha's figures plus the overall ones would give beta's back: alpha's are withheld too.
        #expect(groups[0].suppressed?.contains("another group") == true)
        #expect(groups[0].validationRows > betaHeld + 1)

        let exact = GroupMetrics.validation(
            of: result, groups: [("alpha", [0..<600]), ("beta", [600..<900])], minimumRows: betaHeld)
        #expect(exact.allSatisfy { $0.validation != nil }, "a group of exactly the minimum is reported")
    }

    @Test func aGroupOfSeveralRangesCountsThemAll() throws {
        let result = try unionResult()
        let split = GroupMetrics.validation(of: result, groups: [("x", [0..<100, 600..<900])], minimumRows: 1)
        let held = (Array(0..<100) + Array(600..<900)).filter { result.isValidation[$0] }
        #expect(split[0].rows == 400)
        #expect(split[0].validationRows == held.count)
        #expect(split[0].validation?.auc == Metrics.auc(labels: held.map { result.labels[$0] }, scores: held.map { result.scores[$0] }))
    }
}
