// ingest-bench: the enclave's data path without the channel or the cryptography — CSV parsing
// against declared schemas and the n-way inner join — on the job benchmark's data
// (Benchmarks/jobs/generate_data.py), so its two largest non-training phases can be timed apart.
//
//   swift build -c release --product ingest-bench
//   .build/release/ingest-bench DATA_DIR [--runs 5] [--chunk 1048576]
//
// DATA_DIR holds columns.json and one CSV per party. Each run reads every file in chunks (as the
// enclave receives its plaintext), then joins on the first column; wall and process CPU seconds
// (all threads) are printed per step, then the medians.
import Foundation
import Training

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("ingest-bench: \(message)\n".utf8))
    exit(2)
}

var arguments = Array(CommandLine.arguments.dropFirst())
guard let directory = arguments.first, !directory.hasPrefix("-") else {
    fail("usage: ingest-bench DATA_DIR [--runs N] [--chunk BYTES]")
}
var runs = 5
var chunk = 1 << 20
var index = 1
while index < arguments.count {
    switch arguments[index] {
    case "--runs": runs = Int(arguments[index + 1]) ?? runs
    case "--chunk": chunk = Int(arguments[index + 1]) ?? chunk
    default: fail("unknown argument \(arguments[index])")
    }
    index += 2
}

struct Spec: Decodable { let columns: [String: String] }
guard let specData = FileManager.default.contents(atPath: directory + "/columns.json"),
    let spec = try? JSONDecoder().decode(Spec.self, from: specData)
else { fail("no readable columns.json in \(directory)") }
let parties = spec.columns.keys.sorted { $0 == "first-bank" ? true : ($1 == "first-bank" ? false : $0 < $1) }
var key = ""
let schemas: [TableSchema] = parties.map { party in
    let columns = spec.columns[party]!.split(separator: ",").enumerated().map { (position, text) in
        let parts = text.split(separator: ":")
        let name = String(parts[0])
        var type = String(parts[1])
        let nullable = type.hasSuffix("?")
        if nullable { type.removeLast() }
        if position == 0 { key = name }
        let columnType: ColumnType =
            switch type {
            case "float": .float
            case "integer": .integer
            case "boolean": .boolean
            default: position == 0 ? .id : .categorical
            }
        return TableSchema.ColumnRule(name: name, type: columnType, allowsMissing: nullable)
    }
    return TableSchema(columns: columns)
}
let files = parties.map { party -> [UInt8] in
    guard let data = FileManager.default.contents(atPath: "\(directory)/\(party).csv") else { fail("no \(party).csv") }
    return [UInt8](data)
}
let megabytes = Double(files.reduce(0) { $0 + $1.count }) / 1_048_576

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

func measure<T>(_ body: () throws -> T) rethrows -> (T, wall: Double, cpu: Double) {
    let clock = ContinuousClock.now, cpu = cpuSeconds()
    let value = try body()
    let elapsed = ContinuousClock.now - clock
    return (value, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18, cpuSeconds() - cpu)
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

var parseWall: [Double] = [], parseCPU: [Double] = [], joinWall: [Double] = [], joinCPU: [Double] = []
print(String(format: "%d files, %.1f MiB of CSV, %d-byte chunks, %d threads", files.count, megabytes, chunk, Parallel.threads))
for run in 1...runs {
    let (tables, pw, pc) = try measure {
        try zip(files, schemas).map { (bytes, schema) -> Table in
            var reader = CSVTableReader(schema: schema)
            reader.sizeHint = bytes.count
            var offset = 0
            while offset < bytes.count {
                let end = min(bytes.count, offset + chunk)
                try reader.append(bytes[offset..<end])
                offset = end
            }
            return try reader.finish()
        }
    }
    let (joined, jw, jc) = try measure { try Table.innerJoin(tables, on: key) }
    print(String(format: "run %d: parse %.3f s wall (%.3f CPU s, %.0f MiB/s), join %.3f s wall (%.3f CPU s), %d joined rows",
                 run, pw, pc, megabytes / pw, jw, jc, joined.rowCount))
    parseWall.append(pw); parseCPU.append(pc); joinWall.append(jw); joinCPU.append(jc)
}
print(String(format: "median: parse %.3f s wall (%.3f CPU s, %.0f MiB/s), join %.3f s wall (%.3f CPU s)",
             median(parseWall), median(parseCPU), megabytes / median(parseWall), median(joinWall), median(joinCPU)))
