import AWS
import Foundation
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A real `moto_server` (PyPI `moto[server]`) on a free loopback port, started for one test.
///
/// It starts with `INITIAL_NO_AUTH_ACTION_COUNT=3`: the harness spends exactly those three
/// unauthenticated actions creating an IAM user, its allow-all policy and an access key, so
/// every later request — ours included — must carry a valid SigV4 header signature.
final class MotoServer: @unchecked Sendable {
    let port: Int
    let process: ChildProcess
    let credentials: AWSCredentials
    let logURL: URL

    var endpoint: String { "http://127.0.0.1:\(port)" }

    static func waitForPort(_ port: Int, timeout: Double = 30) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = UInt16(port).bigEndian
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            close(fd)
            if rc == 0 { return }
            usleep(100_000)
        }
        throw TestEnvironmentError("nothing listens on 127.0.0.1:\(port) after \(timeout)s")
    }

    static func binary(_ name: String) throws -> String {
        let dir = (try TestEnvironment.python() as NSString).deletingLastPathComponent
        let path = "\(dir)/\(name)"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestEnvironmentError("\(path) is missing: run `make python-deps` (requirements-test.txt lists moto[server])")
        }
        return path
    }

    init() throws {
        port = try TestEnvironment.freePort()
        logURL = try TestEnvironment.temporaryDirectory("moto").appendingPathComponent("moto.log")
        var env: [String: String] = [:]
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
        process = try ChildProcess.start(
            try Self.binary("moto_server"), ["-H", "127.0.0.1", "-p", String(port)], environment: env,
            stdout: logURL.path, stderr: logURL.path + ".err")
        do {
            try Self.waitForPort(port)
            let setup = try ChildProcess.python(
                """
                import boto3, json, sys
                iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
                iam.create_user(UserName="cleanroom-test")
                iam.put_user_policy(UserName="cleanroom-test", PolicyName="all", PolicyDocument=json.dumps(
                    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
                k = iam.create_access_key(UserName="cleanroom-test")["AccessKey"]
                print(k["AccessKeyId"]); print(k["SecretAccessKey"])
                """, ["http://127.0.0.1:\(port)"])
            let lines = setup.stdout.split(separator: "\n").map(String.init)
            guard setup.status == 0, lines.count == 2 else {
                throw TestEnvironmentError("moto IAM setup failed: \(setup.stderr)")
            }
            credentials = AWSCredentials(accessKeyId: lines[0], secretAccessKey: lines[1])
        } catch {
            process.kill()
            process.wait()
            throw error
        }
    }

    /// boto3, signed with the test user's key (so it also passes moto's signature check).
    @discardableResult
    func boto(_ script: String, _ args: [String] = []) throws -> (status: Int32, stdout: String, stderr: String) {
        let prelude = """
            import boto3, sys, json
            def client(name):
                return boto3.client(name, endpoint_url="\(endpoint)", region_name="us-east-1",
                    aws_access_key_id="\(credentials.accessKeyId)", aws_secret_access_key="\(credentials.secretAccessKey)")

            """
        let r = try ChildProcess.python(prelude + script, args)
        guard r.status == 0 else { throw TestEnvironmentError("boto3 script failed: \(r.stderr)") }
        return r
    }

    func configuration() -> AWSConfiguration {
        AWSConfiguration(
            region: "us-east-1", credentials: StaticCredentialsProvider(credentials), endpointOverrides: ["": endpoint])
    }

    func stop() {
        process.kill()
        process.wait()
        try? FileManager.default.removeItem(at: logURL.deletingLastPathComponent())
    }

    deinit { stop() }
}
