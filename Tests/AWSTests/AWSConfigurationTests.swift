import Foundation
import Testing
import TestSupport

@testable import AWS

/// Credentials and endpoints resolved the way AWS's SDKs do, and IMDSv2 against a real
/// loopback HTTP server (a small Python metadata service that insists on the token flow).
struct AWSConfigurationTests {
    static func write(_ text: String, _ dir: URL, _ name: String) throws -> String {
        let url = dir.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    @Test func sharedFilesProfilesAndEndpointOverridesResolveLikeTheSDKs() async throws {
        let dir = try TestEnvironment.temporaryDirectory("awscfg")
        defer { try? FileManager.default.removeItem(at: dir) }
        let creds = try Self.write(
            """
            [default]
            aws_access_key_id = AKIDDEFAULT
            aws_secret_access_key = default-secret
            # comment
            [team]
            aws_access_key_id=AKIDTEAM
            aws_secret_access_key=team-secret
            aws_session_token=team-token
            """, dir, "credentials")
        let config = try Self.write(
            """
            [default]
            region = eu-west-1
            [profile team]
            region = eu-central-1
            endpoint_url = http://127.0.0.1:9000
            s3 =
              endpoint_url = http://127.0.0.1:9001
            [services other]
            kms =
              endpoint_url = http://ignored
            """, dir, "config")
        let base = ["AWS_SHARED_CREDENTIALS_FILE": creds, "AWS_CONFIG_FILE": config, "AWS_EC2_METADATA_DISABLED": "true", "HOME": dir.path]

        let d = AWSConfiguration.resolve(environment: base)
        #expect(d.region == "eu-west-1")
        #expect(try await d.credentials.credentials() == AWSCredentials(accessKeyId: "AKIDDEFAULT", secretAccessKey: "default-secret"))
        #expect(d.endpoint(for: "kms") == "https://kms.eu-west-1.amazonaws.com")

        var env = base
        env["AWS_PROFILE"] = "team"
        let t = AWSConfiguration.resolve(environment: env)
        #expect(t.region == "eu-central-1")
        #expect(try await t.credentials.credentials().sessionToken == "team-token")
        #expect(t.endpoint(for: "s3") == "http://127.0.0.1:9001")
        #expect(t.endpoint(for: "kms") == "http://127.0.0.1:9000")

        env["AWS_ENDPOINT_URL_KMS"] = "http://127.0.0.1:8080"
        env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:7000"
        env["AWS_REGION"] = "ap-south-1"
        env["AWS_ACCESS_KEY_ID"] = "AKIDENV"
        env["AWS_SECRET_ACCESS_KEY"] = "env-secret"
        let e = AWSConfiguration.resolve(environment: env)
        #expect(e.region == "ap-south-1")
        #expect(e.endpoint(for: "kms") == "http://127.0.0.1:8080")
        #expect(e.endpoint(for: "s3") == "http://127.0.0.1:7000")
        #expect(try await e.credentials.credentials().accessKeyId == "AKIDENV")

        let none = AWSConfiguration.resolve(environment: ["AWS_EC2_METADATA_DISABLED": "true", "HOME": dir.path + "/nowhere"])
        await #expect(throws: AWSConfigurationError.self) { _ = try await none.credentials.credentials() }
    }

    @Test func credentialsNeverAppearInDescriptions() {
        let c = AWSCredentials(accessKeyId: "AKID", secretAccessKey: "very-secret", sessionToken: "tok")
        #expect(!c.description.contains("very-secret"))
        #expect(!c.description.contains("tok,"))
    }

    /// A metadata service: PUT /latest/api/token issues a token; GETs without it get 401.
    static let imdsScript = """
        import http.server, json, sys, datetime, threading
        count = {"creds": 0}
        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a): pass
            def send(self, code, body):
                b = body.encode(); self.send_response(code); self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
            def do_PUT(self):
                if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    self.send(200, "TOKEN123")
                else:
                    self.send(400, "")
            def do_GET(self):
                if self.headers.get("X-aws-ec2-metadata-token") != "TOKEN123":
                    return self.send(401, "")
                if self.path == "/latest/meta-data/iam/security-credentials/":
                    return self.send(200, "cleanroom-role")
                if self.path == "/latest/meta-data/iam/security-credentials/cleanroom-role":
                    count["creds"] += 1
                    exp = (datetime.datetime.utcnow() + datetime.timedelta(seconds=int(sys.argv[2]))).strftime("%Y-%m-%dT%H:%M:%SZ")
                    return self.send(200, json.dumps({"Code": "Success", "AccessKeyId": "ASIA%d" % count["creds"],
                        "SecretAccessKey": "s", "Token": "t%d" % count["creds"], "Expiration": exp}))
                self.send(404, "")
        s = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
        s.serve_forever()
        """

    @Test func imdsV2CredentialsAreFetchedWithATokenCachedAndRefreshedBeforeExpiry() async throws {
        let port = try TestEnvironment.freePort()
        let dir = try TestEnvironment.temporaryDirectory("imds")
        defer { try? FileManager.default.removeItem(at: dir) }
        // Credentials that expire in 10 minutes: with a 5-minute refresh margin they are cached;
        // with a 15-minute margin every call refreshes.
        let server = try ChildProcess.start(
            try TestEnvironment.python(), ["-c", Self.imdsScript, String(port), "600"],
            stdout: dir.appendingPathComponent("out").path, stderr: dir.appendingPathComponent("err").path)
        defer {
            server.kill()
            server.wait()
        }
        try MotoServer.waitForPort(port)
        let endpoint = "http://127.0.0.1:\(port)"
        let cached = InstanceMetadataCredentialsProvider(endpoint: endpoint, refreshBefore: 300)
        let first = try await cached.credentials()
        #expect(first.accessKeyId == "ASIA1")
        #expect(first.sessionToken == "t1")
        #expect(first.expiration != nil)
        #expect(try await cached.credentials().accessKeyId == "ASIA1")
        let eager = InstanceMetadataCredentialsProvider(endpoint: endpoint, refreshBefore: 900)
        let a = try await eager.credentials(), b = try await eager.credentials()
        #expect(a.accessKeyId != b.accessKeyId)
        // The chain falls through to IMDS when nothing else is configured.
        let chain = AWSConfiguration.resolve(environment: [
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": endpoint, "HOME": dir.path, "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        ])
        #expect(try await chain.credentials.credentials().accessKeyId.hasPrefix("ASIA"))
    }
}
