import AWS
import Logging

/// A failed object-store call as the server reports it: the operator's log metadata (the store's
/// own error, which names its files, and the errno) and whether the store is full. What reaches a
/// party is each caller's own message, which names no file.
struct StoreFailure {
    let isFull: Bool
    let metadata: Logger.Metadata

    /// `context`: what was being stored (job, dataset, object key).
    init(_ error: (any Error)?, _ context: Logger.Metadata) {
        var metadata = context
        if let error { metadata["error"] = "\(error)" }
        let storeError = error as? ObjectStoreError
        if let errno = storeError?.errno { metadata["errno"] = "\(errno)" }
        self.metadata = metadata
        isFull = storeError?.code == .insufficientStorage
    }
}
