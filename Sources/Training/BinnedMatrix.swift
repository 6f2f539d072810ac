/// Quantile cut points of every feature: a value `v` of feature `f` falls in bin
/// `cuts[f].count(where: { $0 <= v })`, so a split after bin `b` is the XGBoost condition
/// `v < cuts[f][b]` on 32-bit floats. Missing values get their own bin after the value bins.
public struct BinCuts: Sendable, Equatable {
    /// Ascending cut points per feature; a feature has `cuts[f].count + 1` value bins.
    public let cuts: [[Float]]

    /// Value bins of feature `f` (the missing bin is the next index).
    func valueBins(_ f: Int) -> Int { cuts[f].count + 1 }

    /// Builds cuts with at most `maxBins` value bins per feature (at most 255, so that the
    /// missing bin still fits in one byte), from at most `sampleRows` rows taken evenly.
    public init(dataset: Dataset, rows: [Int], maxBins: Int, sampleRows: Int = 200_000) {
        let maxBins = max(2, min(maxBins, 255))
        let sample: [Int]
        if rows.count > sampleRows {
            sample = (0..<sampleRows).map { rows[Int(Int64($0) * Int64(rows.count) / Int64(sampleRows))] }
        } else {
            sample = rows
        }
        var all = [[Float]](repeating: [], count: dataset.featureCount)
        all.withUnsafeMutableBufferPointer { out in
            let out = UncheckedBox(out)
            Parallel.run(dataset.featureCount) { f in
                let column = dataset.columns[f]
                var values: [Float] = []
                values.reserveCapacity(sample.count)
                for row in sample where !column[row].isNaN { values.append(column[row]) }
                BinCuts.radixSort(&values)
                out.value[f] = BinCuts.cuts(sortedValues: values, maxBins: maxBins)
            }
        }
        cuts = all
    }

    public init(cuts: [[Float]]) { self.cuts = cuts }

    /// Sorts values that are not NaN ascending (-0 and +0 as equals, both +0), in three passes of
    /// 11 bits over keys that order like the floats: a few nanoseconds a value, where a comparison
    /// sort of a 200,000-row sample took most of the binning.
    static func radixSort(_ values: inout [Float]) {
        let n = values.count
        guard n > 1 else {
            if n == 1, values[0] == 0 { values[0] = 0 }  // -0 becomes 0, as in longer inputs
            return
        }
        // Flip the sign bit of positives and every bit of negatives: unsigned order = float order.
        var keys = values.map { value -> UInt32 in
            let bits = (value == 0 ? 0 : value).bitPattern
            return bits & 0x8000_0000 == 0 ? bits | 0x8000_0000 : ~bits
        }
        var scratch = [UInt32](repeating: 0, count: n)
        var counts = [Int](repeating: 0, count: 2048)
        for shift in stride(from: 0, to: 33, by: 11) {
            for i in counts.indices { counts[i] = 0 }
            for key in keys { counts[Int((key >> UInt32(shift)) & 0x7ff)] += 1 }
            var total = 0
            for i in counts.indices {
                let c = counts[i]
                counts[i] = total
                total += c
            }
            for key in keys {
                let digit = Int((key >> UInt32(shift)) & 0x7ff)
                scratch[counts[digit]] = key
                counts[digit] += 1
            }
            swap(&keys, &scratch)
        }
        for i in 0..<n {
            let key = keys[i]
            values[i] = Float(bitPattern: key & 0x8000_0000 != 0 ? key & 0x7fff_ffff : ~key)
        }
    }

    /// Cuts that split sorted values into at most `maxBins` groups of nearly equal count.
    static func cuts(sortedValues values: [Float], maxBins: Int) -> [Float] {
        guard let first = values.first else { return [] }
        // Distinct values with their cumulative counts.
        var distinct: [Float] = [first]
        var upTo: [Int] = []
        for (i, v) in values.enumerated().dropFirst() where v != distinct[distinct.count - 1] {
            upTo.append(i)
            distinct.append(v)
        }
        upTo.append(values.count)
        if distinct.count <= maxBins { return Array(distinct.dropFirst()) }
        // Place a cut at the first distinct value whose rank reaches each quantile.
        var cuts: [Float] = []
        let n = Double(values.count)
        var next = 1
        for k in 1..<distinct.count {
            let before = Double(upTo[k - 1])  // rows with a value below distinct[k]
            if before >= n * Double(next) / Double(maxBins) {
                cuts.append(distinct[k])
                while next < maxBins, before >= n * Double(next) / Double(maxBins) { next += 1 }
                if next >= maxBins || cuts.count >= maxBins - 1 { break }
            }
        }
        return cuts
    }

    /// The bin of a value (missing: `valueBins(f)`).
    @inline(__always)
    func bin(_ value: Float, feature f: Int) -> UInt8 {
        if value.isNaN { return UInt8(cuts[f].count + 1) }
        return cuts[f].withUnsafeBufferPointer { c in
            var lo = 0, hi = c.count
            while lo < hi {
                let mid = (lo + hi) >> 1
                if c[mid] <= value { lo = mid + 1 } else { hi = mid }
            }
            return UInt8(lo)
        }
    }
}

/// The binned feature matrix at one byte per cell: row-major (`bins[row * featureCount + f]`) for
/// histograms, and a column-major copy for partitioning rows at a split.
final class BinnedMatrix: @unchecked Sendable {
    let rowCount: Int
    let featureCount: Int
    let bins: UnsafeMutablePointer<UInt8>
    /// The same bins column-major (`columnBins[f * rowCount + row]`), for partitioning rows.
    let columnBins: UnsafeMutablePointer<UInt8>
    /// The missing bin of each feature.
    let missingBin: [UInt8]

    init(dataset: Dataset, rows: [Int], cuts: BinCuts) {
        let f = dataset.featureCount
        rowCount = rows.count
        featureCount = f
        missingBin = (0..<f).map { UInt8(cuts.valueBins($0)) }
        bins = .allocate(capacity: max(1, rows.count * f))
        columnBins = .allocate(capacity: max(1, rows.count * f))
        let ranges = Parallel.ranges(rows.count)
        let out = bins, columnOut = columnBins, n = rows.count
        let missing = missingBin
        // Cuts padded to 255 entries with +infinity, for a branch-free eight-step search.
        let padded: [[Float]] = cuts.cuts.map { $0 + [Float](repeating: .infinity, count: 255 - $0.count) }
        Parallel.run(ranges.count) { part in
            // Blocks of rows, feature by feature inside a block: reads stream through each
            // column and the block of output stays in cache.
            let block = 4096
            var start = ranges[part].lowerBound
            while start < ranges[part].upperBound {
                let end = min(start + block, ranges[part].upperBound)
                for feature in 0..<f {
                    dataset.columns[feature].withUnsafeBufferPointer { column in
                        padded[feature].withUnsafeBufferPointer { c in
                            let missingBin = missing[feature]
                            let columnStart = columnOut + feature &* n
                            for i in start..<end {
                                let value = column[rows[i]]
                                var position = 0
                                var step = 128
                                while step > 0 {
                                    // Branch-free: mispredicted branches would dominate this loop.
                                    let below = unsafeBitCast(c[position &+ step &- 1] <= value, to: UInt8.self)
                                    position &+= step & (0 &- Int(below))
                                    step >>= 1
                                }
                                let bin = value.isNaN ? missingBin : UInt8(truncatingIfNeeded: position)
                                out[i &* f &+ feature] = bin
                                columnStart[i] = bin
                            }
                        }
                    }
                }
                start = end
            }
        }
    }

    deinit {
        bins.deallocate()
        columnBins.deallocate()
    }
}
