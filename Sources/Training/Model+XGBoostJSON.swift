import Foundation

/// XGBoost's JSON model format (`Booster.save_model("m.json")`, schema `doc/model.schema`):
/// `gbtree` for tree ensembles, `gblinear` for linear models. Floats are written as the
/// shortest text that reads back as the same 32-bit float, so thresholds survive exactly.
extension Model {
    /// The XGBoost version written into the document.
    static let xgboostVersion = [3, 2, 0]

    /// The model as an XGBoost JSON document, loadable with `xgboost.Booster(model_file=…)`.
    public func xgboostJSON() -> Data {
        var out = "{\"learner\":{\"attributes\":{},"
        out += "\"feature_names\":[" + featureNames.map(Self.jsonString).joined(separator: ",") + "],"
        out += "\"feature_types\":[" + featureNames.map { _ in "\"float\"" }.joined(separator: ",") + "],"
        out += "\"gradient_booster\":"
        let baseScore: Float
        switch self {
        case .trees(let model):
            baseScore = model.baseScore
            out += "{\"model\":{\"cats\":{\"enc\":[],\"feature_segments\":[],\"sorted_idx\":[]},"
            out += "\"gbtree_model_param\":{\"num_parallel_tree\":\"1\",\"num_trees\":\"\(model.trees.count)\"},"
            out += "\"iteration_indptr\":[" + (0...model.trees.count).map(String.init).joined(separator: ",") + "],"
            out += "\"tree_info\":[" + model.trees.map { _ in "0" }.joined(separator: ",") + "],\"trees\":["
            for (index, tree) in model.trees.enumerated() {
                if index > 0 { out += "," }
                out += Self.treeJSON(tree, id: index, featureCount: model.featureNames.count)
            }
            out += "]},\"name\":\"gbtree\"},"
        case .linear(let model):
            baseScore = model.baseScore
            let weights = (model.weights + [model.bias]).map(Self.number).joined(separator: ",")
            out += "{\"model\":{\"boosted_rounds\":1,\"weights\":[\(weights)]},\"name\":\"gblinear\"},"
        }
        out += "\"learner_model_param\":{\"base_score\":\"[\(Self.number(baseScore))]\",\"boost_from_average\":\"1\","
        out += "\"num_class\":\"0\",\"num_feature\":\"\(featureNames.count)\",\"num_target\":\"1\"},"
        out += "\"objective\":{\"name\":\"\(objective.rawValue)\",\"reg_loss_param\":{\"scale_pos_weight\":\"1\"}}},"
        out += "\"version\":[" + Self.xgboostVersion.map(String.init).joined(separator: ",") + "]}"
        return Data(out.utf8)
    }

    private static func treeJSON(_ tree: RegressionTree, id: Int, featureCount: Int) -> String {
        func ints(_ values: [Int32]) -> String { "[" + values.map { String($0) }.joined(separator: ",") + "]" }
        func floats(_ values: [Float]) -> String { "[" + values.map(number).joined(separator: ",") + "]" }
        let n = tree.nodeCount
        var out = "{\"base_weights\":\(floats(tree.baseWeights)),"
        out += "\"categories\":[],\"categories_nodes\":[],\"categories_segments\":[],\"categories_sizes\":[],"
        out += "\"default_left\":[" + tree.defaultLeft.map { $0 ? "1" : "0" }.joined(separator: ",") + "],"
        out += "\"id\":\(id),\"left_children\":\(ints(tree.leftChildren)),"
        out += "\"loss_changes\":\(floats(tree.lossChanges)),\"parents\":\(ints(tree.parents)),"
        out += "\"right_children\":\(ints(tree.rightChildren)),\"split_conditions\":\(floats(tree.splitConditions)),"
        out += "\"split_indices\":\(ints(tree.splitIndices)),"
        out += "\"split_type\":[" + [String](repeating: "0", count: n).joined(separator: ",") + "],"
        out += "\"sum_hessian\":\(floats(tree.sumHessian)),"
        out += "\"tree_param\":{\"num_deleted\":\"0\",\"num_feature\":\"\(featureCount)\",\"num_nodes\":\"\(n)\","
        out += "\"size_leaf_vector\":\"1\"}}"
        return out
    }

    /// The shortest decimal that reads back as `value`, always with a decimal point (XGBoost's
    /// reader takes numbers without one as integers). JSON has no NaN or infinity: those become 0.
    static func number(_ value: Float) -> String {
        guard value.isFinite else { return "0.0" }
        let text = "\(value)"
        if text.contains(".") { return text }
        if let e = text.firstIndex(of: "e") { return text[..<e] + ".0" + text[e...] }
        return text + ".0"
    }

    static func jsonString(_ text: String) -> String {
        let data = try? JSONSerialization.data(withJSONObject: [text], options: [.fragmentsAllowed])
        let array = data.map { String(decoding: $0, as: UTF8.self) } ?? "[\"\"]"
        return String(array.dropFirst().dropLast())
    }

    /// Reads an XGBoost JSON model (`gbtree` without categorical splits, or `gblinear`) with one
    /// output, objective `binary:logistic` or `reg:squarederror`.
    public init(xgboostJSON data: Data) throws {
        func fail(_ what: String) -> TrainingError { TrainingError(.invalidModel, "XGBoost model: \(what)") }
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let learner = root["learner"] as? [String: Any],
            let booster = learner["gradient_booster"] as? [String: Any],
            let boosterName = booster["name"] as? String,
            let objectiveObject = learner["objective"] as? [String: Any],
            let objectiveName = objectiveObject["name"] as? String,
            let param = learner["learner_model_param"] as? [String: Any]
        else { throw fail("not an XGBoost JSON model") }
        guard let objective = Objective(rawValue: objectiveName) else { throw fail("unsupported objective") }
        guard let baseText = param["base_score"] as? String,
            let baseScore = Float(baseText.trimmingCharacters(in: CharacterSet(charactersIn: "[] ")))
        else { throw fail("bad base_score") }
        if let numClass = param["num_class"] as? String, numClass != "0", numClass != "1" {
            throw fail("multi-class models are not supported")
        }
        guard let featureCount = (param["num_feature"] as? String).flatMap({ Int($0) }), featureCount >= 0 else {
            throw fail("bad num_feature")
        }
        var names = (learner["feature_names"] as? [String]) ?? []
        if names.isEmpty { names = (0..<featureCount).map { "f\($0)" } }
        guard names.count == featureCount else { throw fail("feature_names and num_feature differ") }
        guard let model = booster["model"] as? [String: Any] else { throw fail("no model") }
        switch boosterName {
        case "gblinear":
            guard let weights = (model["weights"] as? [NSNumber])?.map({ $0.floatValue }),
                weights.count == featureCount + 1
            else { throw fail("gblinear weights must be num_feature + 1 numbers") }
            self = .linear(
                LinearModel(
                    objective: objective, baseScore: baseScore, featureNames: names,
                    weights: Array(weights.dropLast()), bias: weights[featureCount]))
        case "gbtree":
            guard let treeObjects = model["trees"] as? [[String: Any]] else { throw fail("no trees") }
            var trees: [RegressionTree] = []
            for object in treeObjects {
                trees.append(try Self.readTree(object, featureCount: featureCount, fail: fail))
            }
            self = .trees(TreeEnsemble(objective: objective, baseScore: baseScore, featureNames: names, trees: trees))
        default:
            throw fail("unsupported booster")
        }
    }

    private static func readTree(
        _ object: [String: Any], featureCount: Int, fail: (String) -> TrainingError
    ) throws -> RegressionTree {
        func ints(_ key: String) throws -> [Int32] {
            guard let values = object[key] as? [NSNumber] else { throw fail("tree field \(key) missing") }
            return values.map { Int32(truncatingIfNeeded: $0.int64Value) }
        }
        func floats(_ key: String) throws -> [Float] {
            guard let values = object[key] as? [NSNumber] else { throw fail("tree field \(key) missing") }
            return values.map { $0.floatValue }
        }
        var tree = RegressionTree()
        tree.leftChildren = try ints("left_children")
        tree.rightChildren = try ints("right_children")
        tree.parents = try ints("parents")
        tree.splitIndices = try ints("split_indices")
        tree.splitConditions = try floats("split_conditions")
        tree.defaultLeft = try ints("default_left").map { $0 != 0 }
        tree.baseWeights = (try? floats("base_weights")) ?? []
        tree.lossChanges = (try? floats("loss_changes")) ?? []
        tree.sumHessian = (try? floats("sum_hessian")) ?? []
        let n = tree.leftChildren.count
        guard n > 0, [tree.rightChildren.count, tree.parents.count, tree.splitIndices.count,
            tree.splitConditions.count, tree.defaultLeft.count].allSatisfy({ $0 == n })
        else { throw fail("tree arrays differ in length") }
        if let types = object["split_type"] as? [NSNumber], types.contains(where: { $0.intValue != 0 }) {
            throw fail("categorical splits are not supported")
        }
        for node in 0..<n {
            let left = Int(tree.leftChildren[node]), right = Int(tree.rightChildren[node])
            if left == -1 && right == -1 { continue }
            // Children come after their parent, so traversal always ends.
            guard left > node, left < n, right > node, right < n,
                tree.splitIndices[node] >= 0, Int(tree.splitIndices[node]) < featureCount
            else { throw fail("tree \(object["id"] ?? "?") has a bad node \(node)") }
        }
        if tree.baseWeights.count != n { tree.baseWeights = [Float](repeating: 0, count: n) }
        if tree.lossChanges.count != n { tree.lossChanges = [Float](repeating: 0, count: n) }
        if tree.sumHessian.count != n { tree.sumHessian = [Float](repeating: 0, count: n) }
        return tree
    }
}
