import Testing
import Training
@testable import Enclave

/// Dataset errors keep their kind: too few rows is `enclave.too_few_rows`, whatever a column is called.
@Suite struct SchemaErrorTests {
    let schema = TableSchema(
        columns: [.init(name: "id", type: .id, allowsMissing: false), .init(name: "num_rows", type: .float)], minimumRows: 3)

    func error(_ csv: String) -> EnclaveError? {
        do {
            _ = try CSVTableReader.read(Array(csv.utf8), schema: schema)
            return nil
        } catch {
            return TrainingWorkload.schemaError(error, dataset: "ds-1")
        }
    }

    @Test func tooFewRowsIsItsOwnKind() {
        let refused = error("id,num_rows\na,1\nb,2\n")
        #expect(refused?.code == .tooFewRows)
        #expect(refused?.message.hasPrefix("dataset ds-1: ") == true)
    }

    @Test func aColumnNamedLikeRowsFailingItsTypeIsASchemaViolation() {
        let refused = error("id,num_rows\na,1\nb,many\nc,3\n")
        #expect(refused?.code == .schemaViolation)
        #expect(refused?.message == "dataset ds-1: column 'num_rows' row 2 fails rule 'type float'")
    }
}
