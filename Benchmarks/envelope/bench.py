#!/usr/bin/env python3
"""Envelope throughput benchmark (issue #3): the streaming API and the CLI against
`openssl speed -evp aes-256-gcm` at 16 KiB blocks, measured in the same run.

usage: Benchmarks/envelope/bench.py [--gib 1] [--dir /tmp] [--skip-build]

Builds `envelope-benchmark` and `cleanroom` in release mode, then:
  1. openssl speed -evp aes-256-gcm -bytes 16384 (OpenSSL divides by CPU time);
  2. envelope-benchmark: 1 GiB through MessageEncryptor -> MessageDecryptor in memory,
     suites 0x0478 and 0x0578, 64 KiB frames, MB per CPU second, peak RSS;
  3. cleanroom encrypt / decrypt of a 1 GiB file on disk (raw AES keyring), MB per CPU
     second of the child (user + sys, from wait4) and its peak RSS;
  4. openssl speed again, so drift on the shared machine shows.
Prints a Markdown table for docs/performance.md. MB = 10^6 bytes.
"""
import argparse, json, os, re, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_measured(argv, **kwargs):
    """Runs argv; returns (stdout, user+sys CPU seconds, wall seconds, peak RSS MiB)."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, **kwargs)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{argv[0]} failed with status {status}")
    return out, usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss / 1024


def openssl_speed():
    out = subprocess.run(["openssl", "speed", "-evp", "aes-256-gcm", "-bytes", "16384", "-seconds", "3"],
                         capture_output=True, text=True, check=True).stdout
    match = re.search(r"AES-256-GCM\s+([\d.]+)k", out, re.IGNORECASE)
    return float(match.group(1)) * 1000 / 1e6  # MB/s


def openssl_sha384():
    out = subprocess.run(["openssl", "speed", "-evp", "sha384", "-bytes", "16384", "-seconds", "3"],
                         capture_output=True, text=True, check=True).stdout
    match = re.search(r"sha384\s+([\d.]+)k", out, re.IGNORECASE)
    return float(match.group(1)) * 1000 / 1e6  # MB/s


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--skip-build", action="store_true")
    args = parser.parse_args()
    os.chdir(ROOT)
    if not args.skip_build:
        subprocess.run(["swift", "build", "-c", "release", "--product", "envelope-benchmark"], check=True)
        subprocess.run(["swift", "build", "-c", "release", "--product", "cleanroom"], check=True)
    bench = os.path.join(ROOT, ".build/release/envelope-benchmark")
    cli = os.path.join(ROOT, ".build/release/cleanroom")
    size = int(args.gib * (1 << 30))
    rows = []

    ssl_before = openssl_speed()
    print(f"openssl speed -evp aes-256-gcm -bytes 16384: {ssl_before:.0f} MB/s", file=sys.stderr)

    for suite in ("0x0478", "0x0578"):
        out, _, wall, rss = run_measured([bench, str(args.gib), suite, "65536", "1048576"])
        report = json.loads(out)
        print(json.dumps(report), file=sys.stderr)
        for direction in ("encrypt", "decrypt"):
            rows.append((f"streaming API {direction}, {suite}, 64 KiB frames", report[f"{direction}_MBps"],
                         report["peak_rss_MiB"], report[f"{direction}_seconds"]))

    work = tempfile.mkdtemp(prefix="envelope-bench-", dir=args.dir)
    try:
        plain, cipher, back, key = (os.path.join(work, n) for n in ("plain", "cipher", "back", "aes.key"))
        with open(key, "wb") as f:
            f.write(os.urandom(32))
        with open(plain, "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(size >> 20):
                f.write(block)
        for suite in ("0x0478", "0x0578"):
            _, cpu, wall, rss = run_measured([cli, "encrypt", "--in", plain, "--out", cipher, "--aes-key", key,
                                              "--suite", suite, "--context", "cleanroom:dataset=bench"])
            rows.append((f"cleanroom encrypt (file to file), {suite}", size / cpu / 1e6, rss, cpu))
            _, cpu, wall, rss = run_measured([cli, "decrypt", "--in", cipher, "--out", back, "--aes-key", key,
                                              "--expect-context", "cleanroom:dataset=bench"])
            rows.append((f"cleanroom decrypt (file to file), {suite}", size / cpu / 1e6, rss, cpu))
            if subprocess.run(["cmp", "-s", plain, back]).returncode != 0:
                sys.exit("decrypted file differs")
    finally:
        for name in os.listdir(work):
            os.remove(os.path.join(work, name))
        os.rmdir(work)

    ssl_after = openssl_speed()
    print(f"openssl speed again: {ssl_after:.0f} MB/s", file=sys.stderr)
    sha384 = openssl_sha384()
    reference = (ssl_before + ssl_after) / 2
    print(f"| what ({args.gib:g} GiB) | MB per CPU s | vs openssl ({reference:.0f} MB/s) | peak RSS | CPU s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| openssl speed -evp aes-256-gcm, 16 KiB blocks (before / after) | {ssl_before:.0f} / {ssl_after:.0f} | 100% | | |")
    print(f"| openssl speed -evp sha384, 16 KiB blocks (bounds 0x0578: every byte is hashed) | {sha384:.0f} | | | |")
    for name, mbps, rss, cpu in rows:
        print(f"| {name} | {mbps:.0f} | {100 * mbps / reference:.0f}% | {rss:.1f} MiB | {cpu:.2f} |")


if __name__ == "__main__":
    main()
