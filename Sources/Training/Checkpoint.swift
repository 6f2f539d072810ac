/// Training state as bytes: the trees grown so far (GBDT) or the optimiser state (linear models),
/// tagged with a fingerprint of the job so that it cannot be resumed into a different one.
///
/// Layout (little-endian): `CRTC`, version 1, kind (1 trees, 2 linear), fingerprint (UInt64),
/// then the state. Doubles and floats are stored bit for bit, so a resumed run continues from
/// exactly the same numbers.
enum Checkpoint {
    static let magic: [UInt8] = Array("CRTC".utf8)
    static let version: UInt8 = 1

    enum State {
        case trees([RegressionTree])
        case linear(LBFGSState)
    }

    static func encode(_ state: State, fingerprint: UInt64) -> [UInt8] {
        var w = ByteWriter()
        w.bytes(magic)
        w.u8(version)
        switch state {
        case .trees(let trees):
            w.u8(1)
            w.u64(fingerprint)
            w.u32(UInt32(trees.count))
            for tree in trees {
                w.u32(UInt32(tree.nodeCount))
                for v in tree.leftChildren { w.u32(UInt32(bitPattern: v)) }
                for v in tree.rightChildren { w.u32(UInt32(bitPattern: v)) }
                for v in tree.parents { w.u32(UInt32(bitPattern: v)) }
                for v in tree.splitIndices { w.u32(UInt32(bitPattern: v)) }
                for v in tree.defaultLeft { w.u8(v ? 1 : 0) }
                for array in [tree.splitConditions, tree.baseWeights, tree.lossChanges, tree.sumHessian] {
                    for v in array { w.u32(v.bitPattern) }
                }
            }
        case .linear(let s):
            w.u8(2)
            w.u64(fingerprint)
            w.u32(UInt32(s.iteration))
            w.u8(s.converged ? 1 : 0)
            w.doubles(s.weights)
            w.u64(s.value.bitPattern)
            w.doubles(s.gradient)
            w.u32(UInt32(s.steps.count))
            for (step, change) in zip(s.steps, s.changes) {
                w.doubles(step)
                w.doubles(change)
            }
        }
        return w.buffer
    }

    static func decode(_ bytes: [UInt8], fingerprint: UInt64) throws -> State {
        var r = ByteReader(bytes)
        guard try r.bytes(4) == magic, try r.u8() == version else {
            throw TrainingError(.invalidCheckpoint, "not a training checkpoint of this version")
        }
        let kind = try r.u8()
        guard try r.u64() == fingerprint else {
            throw TrainingError(.invalidCheckpoint, "checkpoint belongs to a different job (data, features or parameters)")
        }
        switch kind {
        case 1:
            let count = Int(try r.u32())
            var trees: [RegressionTree] = []
            for _ in 0..<count {
                let n = Int(try r.u32())
                guard n > 0, n <= r.remaining else { throw TrainingError(.invalidCheckpoint, "bad tree size") }
                var tree = RegressionTree()
                tree.leftChildren = try (0..<n).map { _ in Int32(bitPattern: try r.u32()) }
                tree.rightChildren = try (0..<n).map { _ in Int32(bitPattern: try r.u32()) }
                tree.parents = try (0..<n).map { _ in Int32(bitPattern: try r.u32()) }
                tree.splitIndices = try (0..<n).map { _ in Int32(bitPattern: try r.u32()) }
                tree.defaultLeft = try (0..<n).map { _ in try r.u8() != 0 }
                tree.splitConditions = try (0..<n).map { _ in Float(bitPattern: try r.u32()) }
                tree.baseWeights = try (0..<n).map { _ in Float(bitPattern: try r.u32()) }
                tree.lossChanges = try (0..<n).map { _ in Float(bitPattern: try r.u32()) }
                tree.sumHessian = try (0..<n).map { _ in Float(bitPattern: try r.u32()) }
                for node in 0..<n where tree.leftChildren[node] >= 0 {
                    let left = Int(tree.leftChildren[node]), right = Int(tree.rightChildren[node])
                    guard left > node, left < n, right > node, right < n else {
                        throw TrainingError(.invalidCheckpoint, "bad tree structure")
                    }
                }
                trees.append(tree)
            }
            guard r.remaining == 0 else { throw TrainingError(.invalidCheckpoint, "trailing bytes") }
            return .trees(trees)
        case 2:
            var state = LBFGSState(weights: [])
            state.iteration = Int(try r.u32())
            state.converged = try r.u8() != 0
            state.weights = try r.doubles()
            state.value = Double(bitPattern: try r.u64())
            state.gradient = try r.doubles()
            let history = Int(try r.u32())
            guard history <= 64 else { throw TrainingError(.invalidCheckpoint, "bad history size") }
            for _ in 0..<history {
                state.steps.append(try r.doubles())
                state.changes.append(try r.doubles())
            }
            guard r.remaining == 0 else { throw TrainingError(.invalidCheckpoint, "trailing bytes") }
            return .linear(state)
        default:
            throw TrainingError(.invalidCheckpoint, "unknown checkpoint kind")
        }
    }

    /// FNV-1a over a canonical description of the job.
    static func fingerprint(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }
}

struct ByteWriter {
    var buffer: [UInt8] = []
    mutating func u8(_ v: UInt8) { buffer.append(v) }
    mutating func bytes(_ v: [UInt8]) { buffer += v }
    mutating func u32(_ v: UInt32) { for k in 0..<4 { buffer.append(UInt8(truncatingIfNeeded: v >> (8 * k))) } }
    mutating func u64(_ v: UInt64) { for k in 0..<8 { buffer.append(UInt8(truncatingIfNeeded: v >> (8 * k))) } }
    mutating func doubles(_ v: [Double]) {
        u32(UInt32(v.count))
        for x in v { u64(x.bitPattern) }
    }
}

struct ByteReader {
    private let data: [UInt8]
    private var offset = 0
    init(_ data: [UInt8]) { self.data = data }
    var remaining: Int { data.count - offset }

    mutating func bytes(_ n: Int) throws -> [UInt8] {
        guard n <= remaining else { throw TrainingError(.invalidCheckpoint, "checkpoint is truncated") }
        defer { offset += n }
        return Array(data[offset..<offset + n])
    }
    mutating func u8() throws -> UInt8 { try bytes(1)[0] }
    mutating func u32() throws -> UInt32 {
        try bytes(4).enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * $1.offset) }
    }
    mutating func u64() throws -> UInt64 {
        try bytes(8).enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * $1.offset) }
    }
    mutating func doubles() throws -> [Double] {
        let n = Int(try u32())
        guard n * 8 <= remaining else { throw TrainingError(.invalidCheckpoint, "checkpoint is truncated") }
        return try (0..<n).map { _ in Double(bitPattern: try u64()) }
    }
}
