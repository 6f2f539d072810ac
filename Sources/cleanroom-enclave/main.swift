// cleanroom-enclave: the program that runs inside the Nitro Enclave (or as a local child
// process in local mode). Thin wiring over the Enclave module.
import Enclave
import Foundation

FileHandle.standardError.write(Data("cleanroom-enclave: the enclave program is not built yet (issue #8)\n".utf8))
exit(2)
