/// The type of a table column.
public enum ColumnType: String, Sendable, Codable, CaseIterable {
    /// A 32-bit float (the precision XGBoost trains at); missing values are NaN.
    case float
    /// A 64-bit integer; missing values are `Column.missingInteger`.
    case integer
    /// A declared boolean (`true`/`false` in any case, or `1`/`0`), stored as an integer column of 1 and 0.
    case boolean
    /// A string with few distinct values, stored as codes into a level list; missing is -1.
    case categorical
    /// A row identifier (join keys), stored as a `KeyColumn`; never a feature.
    case id
}

/// One typed column of a `Table`, stored compactly (4 or 8 bytes per cell, strings deduplicated).
public struct Column: Sendable {
    /// The value stored for a missing integer cell.
    public static let missingInteger = Int64.min

    /// The cells of a column.
    public enum Storage: Sendable {
        case float([Float])
        case integer([Int64])
        /// Codes into `levels` (-1 is missing); `.categorical` columns.
        case strings(codes: [Int32], levels: [String])
        /// `.id` columns: each row's key bytes.
        case keys(KeyColumn)
    }

    public let name: String
    public let type: ColumnType
    public let storage: Storage

    public init(name: String, type: ColumnType, storage: Storage) {
        self.name = name
        self.type = type
        self.storage = storage
    }

    /// A float column.
    public static func float(_ name: String, _ values: [Float]) -> Column {
        Column(name: name, type: .float, storage: .float(values))
    }

    /// An integer column.
    public static func integer(_ name: String, _ values: [Int64]) -> Column {
        Column(name: name, type: .integer, storage: .integer(values))
    }

    /// A string column (`.categorical` or `.id`) from values; `nil` is missing.
    public static func strings(_ name: String, _ values: [String?], type: ColumnType = .categorical) -> Column {
        if type == .id { return Column(name: name, type: .id, storage: .keys(KeyColumn(values))) }
        var index: [String: Int32] = [:]
        var levels: [String] = []
        var codes: [Int32] = []
        codes.reserveCapacity(values.count)
        for value in values {
            guard let value else {
                codes.append(-1)
                continue
            }
            if let code = index[value] {
                codes.append(code)
            } else {
                let code = Int32(levels.count)
                index[value] = code
                levels.append(value)
                codes.append(code)
            }
        }
        return Column(name: name, type: type, storage: .strings(codes: codes, levels: levels))
    }

    public var count: Int {
        switch storage {
        case .float(let v): return v.count
        case .integer(let v): return v.count
        case .strings(let codes, _): return codes.count
        case .keys(let keys): return keys.count
        }
    }

    /// The number of missing cells.
    public var missingCount: Int {
        switch storage {
        case .float(let v): return v.reduce(0) { $0 + ($1.isNaN ? 1 : 0) }
        case .integer(let v): return v.reduce(0) { $0 + ($1 == Column.missingInteger ? 1 : 0) }
        case .strings(let codes, _): return codes.reduce(0) { $0 + ($1 < 0 ? 1 : 0) }
        case .keys(let keys): return keys.missingCount
        }
    }

    /// Whether any cell is missing: one branch-free pass that the compiler vectorizes, stopping
    /// at the first block with a missing cell (the check a declared schema makes of every column).
    public var hasMissing: Bool {
        switch storage {
        case .float(let v): return Self.any(v) { $0.isNaN }
        case .integer(let v): return Self.any(v) { $0 == Column.missingInteger }
        case .strings(let codes, _): return Self.any(codes) { $0 < 0 }
        case .keys(let keys): return keys.missingCount > 0
        }
    }

    @inline(__always) private static func any<T>(_ values: [T], _ test: (T) -> Bool) -> Bool {
        values.withUnsafeBufferPointer { cells in
            var start = 0
            while start < cells.count {
                let end = min(start + 4096, cells.count)
                var found: UInt8 = 0
                for i in start..<end { found |= test(cells[i]) ? 1 : 0 }
                if found != 0 { return true }
                start = end
            }
            return false
        }
    }

    /// Whether cell `row` is missing.
    public func isMissing(_ row: Int) -> Bool {
        switch storage {
        case .float(let v): return v[row].isNaN
        case .integer(let v): return v[row] == Column.missingInteger
        case .strings(let codes, _): return codes[row] < 0
        case .keys(let keys): return keys.isMissing(row)
        }
    }

    /// The cells as doubles (NaN for missing); categorical cells give their code, ids their row.
    public func doubleValues() -> [Double] {
        switch storage {
        case .keys(let keys): return (0..<keys.count).map { keys.isMissing($0) ? .nan : Double($0) }
        case .float(let v): return v.map { Double($0) }
        case .integer(let v): return v.map { $0 == Column.missingInteger ? .nan : Double($0) }
        case .strings(let codes, _): return codes.map { $0 < 0 ? .nan : Double($0) }
        }
    }

    /// The cells as 32-bit floats (NaN for missing); categorical cells give their code, ids their
    /// row. A float column is returned without copying.
    public func floatValues() -> [Float] {
        switch storage {
        case .keys(let keys): return (0..<keys.count).map { keys.isMissing($0) ? .nan : Float($0) }
        case .float(let v): return v
        case .integer(let v): return v.map { $0 == Column.missingInteger ? .nan : Float(Double($0)) }
        case .strings(let codes, _): return codes.map { $0 < 0 ? .nan : Float($0) }
        }
    }

    /// The cell as a join key string (`nil` when missing); floats are not keys.
    public func keyString(_ row: Int) -> String? {
        switch storage {
        case .float: return nil
        case .integer(let v): return v[row] == Column.missingInteger ? nil : String(v[row])
        case .strings(let codes, let levels): return codes[row] < 0 ? nil : levels[Int(codes[row])]
        case .keys(let keys): return keys.string(row)
        }
    }

    /// A new column with the cells at `rows`, in that order.
    public func gather(_ rows: [Int]) -> Column {
        switch storage {
        case .float(let v): return Column(name: name, type: type, storage: .float(rows.map { v[$0] }))
        case .integer(let v): return Column(name: name, type: type, storage: .integer(rows.map { v[$0] }))
        case .strings(let codes, let levels):
            return Column(name: name, type: type, storage: .strings(codes: rows.map { codes[$0] }, levels: levels))
        case .keys(let keys): return Column(name: name, type: type, storage: .keys(keys.gather(rows)))
        }
    }

    /// A copy with a different name.
    func renamed(_ newName: String) -> Column { Column(name: newName, type: type, storage: storage) }
}
