import Foundation
import Testing
import TestSupport

/// TLS on `cleanroomd serve`, checked with real clients: curl and openssl s_client.
@Suite(.serialized) struct CleanroomdTLSTests {
    /// A test PKI made with the openssl CLI: a CA, a server certificate for 127.0.0.1/localhost,
    /// and a client certificate, all signed by the CA.
    struct PKI {
        let dir: URL
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

        init() throws {
            dir = try TestEnvironment.temporaryDirectory("pki")
            func openssl(_ args: [String]) throws {
                let r = try ProcessRunner.run("/usr/bin/openssl", args, currentDirectory: dir)  // PKI() runs off the pool
                guard r.status == 0 else { throw TestEnvironmentError("openssl \(args.joined(separator: " ")): \(r.stderrText)") }
            }
            try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=cleanroom test CA"])
            for (name, cn, ext) in [("server", "localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
                ("client", "party-a", "extendedKeyUsage=clientAuth")]
            {
                try openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "\(name).key",
                    "-out", "\(name).csr", "-subj", "/CN=\(cn)"])
                try Data(ext.utf8).write(to: dir.appendingPathComponent("\(name).ext"))
                try openssl(["x509", "-req", "-in", "\(name).csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                    "-days", "2", "-out", "\(name).pem", "-extfile", "\(name).ext"])
            }
        }
    }

    @Test func curlAndOpenSSLReachHealthzOverTLS12And13() async throws {
        let pki = try await offPool { try PKI() }
        let server = try await CleanroomdProcess.start(arguments: ["--tls-cert", pki.path("server.pem"), "--tls-key", pki.path("server.key"),
            "--access-log", "off"])
        defer { server.stopInBackground() }
        #expect(server.scheme == "https")
        let url = "https://127.0.0.1:\(server.port)/healthz"
        let curl = try await runProcess("/usr/bin/curl", ["-sS", "--cacert", pki.path("ca.pem"), url])
        #expect(curl.status == 0, "\(curl.stderrText)")
        #expect(curl.stdoutText == #"{"status":"ok"}"#)
        // Without the CA, curl must refuse the certificate.
        let untrusted = try await runProcess("/usr/bin/curl", ["-sS", url])
        #expect(untrusted.status != 0)
        // A plain-HTTP request to the TLS port gets no HTTP answer.
        let plain = try await runProcess("/usr/bin/curl", ["-sS", "--max-time", "5", "http://127.0.0.1:\(server.port)/healthz"])
        #expect(plain.status != 0)

        for version in ["-tls1_2", "-tls1_3"] {
            let request = Data("GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8)
            let s = try await runProcess(
                "/usr/bin/openssl",
                ["s_client", "-connect", "127.0.0.1:\(server.port)", "-CAfile", pki.path("ca.pem"), "-verify_return_error",
                    "-servername", "localhost", "-ign_eof", version],
                stdin: request)
            #expect(s.stdoutText.contains("Verify return code: 0 (ok)"), "\(version): \(s.stdoutText) \(s.stderrText)")
            #expect(s.stdoutText.contains(version == "-tls1_3" ? "TLSv1.3" : "TLSv1.2"))
            #expect(s.stdoutText.contains("HTTP/1.1 200 OK") && s.stdoutText.contains(#"{"status":"ok"}"#), "\(version)")
        }
        // TLS 1.1 and older are refused.
        let old = try await runProcess(
            "/usr/bin/openssl", ["s_client", "-connect", "127.0.0.1:\(server.port)", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
            stdin: Data())
        #expect(!old.stdoutText.contains("Verify return code: 0 (ok)") || old.status != 0)
        #expect(!old.stdoutText.contains("TLSv1.1, Cipher is") || old.stdoutText.contains("Cipher is (NONE)"))
    }

    @Test func clientCertificatesAreRequiredWhenAClientCAIsGiven() async throws {
        let pki = try await offPool { try PKI() }
        let server = try await CleanroomdProcess.start(arguments: ["--tls-cert", pki.path("server.pem"), "--tls-key", pki.path("server.key"),
            "--tls-client-ca", pki.path("ca.pem"), "--access-log", "off"])
        defer { server.stopInBackground() }
        let url = "https://127.0.0.1:\(server.port)/healthz"
        let without = try await runProcess("/usr/bin/curl", ["-sS", "--cacert", pki.path("ca.pem"), url])
        #expect(without.status != 0)
        let with = try await runProcess(
            "/usr/bin/curl", ["-sS", "--cacert", pki.path("ca.pem"), "--cert", pki.path("client.pem"), "--key", pki.path("client.key"), url])
        #expect(with.status == 0, "\(with.stderrText)")
        #expect(with.stdoutText == #"{"status":"ok"}"#)
    }

    @Test func tlsEchoStreamsAMegabyteBothWays() async throws {
        let pki = try await offPool { try PKI() }
        let server = try await CleanroomdProcess.start(arguments: ["--tls-cert", pki.path("server.pem"), "--tls-key", pki.path("server.key"),
            "--access-log", "off"])
        defer { server.stopInBackground() }
        let payload = pki.dir.appendingPathComponent("payload")
        let bytes = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try Data(bytes).write(to: payload)
        let out = pki.dir.appendingPathComponent("echoed")
        let r = try await runProcess("/usr/bin/curl", ["-sS", "--cacert", pki.path("ca.pem"), "--data-binary", "@" + payload.path,
            "-o", out.path, "https://127.0.0.1:\(server.port)/v1/echo"])
        #expect(r.status == 0, "\(r.stderrText)")
        #expect(try Data(contentsOf: out) == Data(bytes))
    }

    @Test func missingOrMismatchedTLSFilesFailAtStartWithAClearMessage() async throws {
        let pki = try await offPool { try PKI() }
        let dir = try TestEnvironment.temporaryDirectory("badtls")
        let r = try await runProcess(try TestEnvironment.executable("cleanroomd"),
            ["serve", "--listen", "127.0.0.1:0", "--data-dir", dir.path, "--tls-cert", pki.path("server.pem"),
                "--tls-key", pki.path("client.key")])
        #expect(r.status != 0)
        #expect(r.stderrText.contains("private key"), "\(r.stderrText)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/operator-credentials.json"))
    }
}
