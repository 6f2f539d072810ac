import Attestation

/// Local mode's attestor inside the enclave program: asks the launcher's development attestor
/// over the channel (`attestationRequest` → `attestationDocument`), because the launcher — like
/// the Nitro hypervisor — measures the binary it started and the enclave must not pick its own PCR0.
public struct ChannelAttestor: Attestor, @unchecked Sendable {
    let connection: ChannelConnection
    let timeout: Duration

    public init(connection: ChannelConnection, timeout: Duration = .seconds(60)) {
        self.connection = connection
        self.timeout = timeout
    }

    public func attestationDocument(publicKey: [UInt8]?, userData: [UInt8]?, nonce: [UInt8]?) throws(AttestationError)
        -> [UInt8]
    {
        do {
            try connection.send(
                .attestationRequest(
                    AttestationRequest(publicKey: publicKey ?? [], userData: userData ?? [], nonce: nonce ?? [])),
                timeout: timeout)
            let answer = try connection.receive(timeout: timeout)
            guard case .attestationDocument(let document) = answer else {
                throw AttestationError(.nsmError, "the launcher answered the attestation request with \(answer.type)")
            }
            return document
        } catch let error as ChannelError {
            throw AttestationError(.nsmUnavailable, "the launcher's attestor is unreachable: \(error.message)")
        } catch let error as AttestationError {
            throw error
        } catch {
            throw AttestationError(.nsmUnavailable, "the launcher's attestor is unreachable")
        }
    }
}
