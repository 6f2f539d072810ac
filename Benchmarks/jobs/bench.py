#!/usr/bin/env python3
"""Jobs benchmark (issue #8): make demo's three-party collaboration at 1M joined rows × 28 features.

Starts `cleanroomd serve` (release build, embedded defaults: SQLite, file object store, local KMS,
local enclave with development attestation) in a fresh folder, enrolls the three parties of
scripts/demo.sh, uploads their datasets (client-side encryption, timed), proposes and approves the
policy, then runs the job --runs times. For each job it

  * sends `POST /v1/collaborations/{id}/jobs` itself (t0 = just before the request is written),
  * reads `GET /v1/jobs/{id}/events` (Server-Sent Events) with First Bank's bearer token and
    timestamps every event as it arrives,
  * samples the `cleanroom-enclave` child of the server every --interval seconds:
    /proc/PID/status VmHWM and VmRSS, /proc/PID/stat utime+stime (and the server's CPU time),

and maps the events to the issue's phases:

  (a) attestation + key release  t0 → first `progress` with phase `decrypting`
  (b) decrypt + parse            first `decrypting` → `joining`
  (c) join                       `joining` → `binning`  (Table.combine, then the feature matrix
                                 (`validating`) and the train/validation split (`splitting`))
  (d) train                      `binning` → `encrypting`  (binning, the boosting rounds,
                                 `evaluating` (scores + metrics), `exporting` (model JSON))
  (e) encrypt + deliver          `encrypting` → state `succeeded`  (outputs built and encrypted in
                                 the enclave, sent over the channel, stored, receipt stored)

Finally First Bank downloads, decrypts and verifies its outputs (timed apart, not part of the job).

The server keeps an enclave on standby (its default), so a job's (a) starts with an enclave that is
already running and keyed; --no-standby measures the launch inside every job instead.

  bench.py --bin .build/release --data DIR [--runs 3] [--rounds 40] [--no-standby] [--out results.json]
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import generate_data  # noqa: E402  (column specs and the policy writer)

PARTIES = ["first-bank", "shopmart", "metro-telecom"]
NAMES = {"first-bank": "First Bank", "shopmart": "ShopMart", "metro-telecom": "Metro Telecom"}
TERMINAL = {"succeeded", "failed", "cancelled"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
PHASES = ["a_attest_key_release", "b_decrypt_parse", "c_join", "d_train", "e_encrypt_deliver"]
LABELS = {
    "a_attest_key_release": "(a) attestation + key release",
    "b_decrypt_parse": "(b) decrypt + parse",
    "c_join": "(c) join",
    "d_train": "(d) train",
    "e_encrypt_deliver": "(e) encrypt + deliver",
}


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Collaboration:
    """One cleanroomd and three parties, each with its own CLEANROOM_HOME."""

    def __init__(self, bin_dir, work, server_args=()):
        self.bin = bin_dir
        self.server_args = list(server_args)
        self.work = work
        self.data_dir = os.path.join(work, "server")
        self.server = None
        self.port = None

    def start_server(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server_log = open(os.path.join(self.work, "cleanroomd.log"), "wb")
        self.server = subprocess.Popen(
            [os.path.join(self.bin, "cleanroomd"), "serve", "--data-dir", self.data_dir, "--listen",
             f"127.0.0.1:{self.port}", "--access-log", "off"] + self.server_args,
            stdout=self.server_log, stderr=subprocess.STDOUT)
        for _ in range(600):
            if self.server.poll() is not None:
                raise SystemExit(f"cleanroomd exited; see {self.server_log.name}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit("cleanroomd did not become healthy")

    def stop_server(self):
        if self.server and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()

    def home(self, party):
        return os.path.join(self.work, "parties", party)

    def cli(self, party, *args):
        env = dict(os.environ, CLEANROOM_HOME=self.home(party), CLEANROOM_SERVER=self.url)
        done = subprocess.run([os.path.join(self.bin, "cleanroom"), *args], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{party}$ cleanroom {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
        return done.stdout

    def token(self, party):
        with open(os.path.join(self.home(party), "profiles", "default.json"), encoding="utf-8") as f:
            return json.load(f)["credential"]

    def setup(self, data, rounds, max_depth, max_bin):
        """Enrolls the parties, uploads the data (timed), proposes and approves the policy."""
        columns = json.load(open(os.path.join(data, "columns.json"), encoding="utf-8"))
        datasets, uploads = {}, {}
        for party in PARTIES:
            token = subprocess.run(
                [os.path.join(self.bin, "cleanroomd"), "admin", "enroll", "--data-dir", self.data_dir],
                capture_output=True, text=True, check=True).stdout.strip()
            self.cli(party, "keys", "init", "--result-key-bits", "3072")
            self.cli(party, "register", "--token", token, "--name", NAMES[party], "--party-id", party)
            created = json.loads(self.cli(party, "dataset", "create", "--name", f"{party}-customers",
                                          "--columns", columns["columns"][party], "--json"))
            datasets[party] = created["id"]
            path = os.path.join(data, f"{party}.csv")
            size = os.path.getsize(path)
            started = time.monotonic()
            self.cli(party, "dataset", "upload", created["id"], path)
            seconds = time.monotonic() - started
            uploads[party] = {"bytes": size, "seconds": seconds, "mib_per_s": size / 2**20 / seconds}
            log(f"{party}: uploaded {size / 2**20:.1f} MiB in {seconds:.2f} s ({size / 2**20 / seconds:.1f} MiB/s)")
        measured = json.loads(self.cli("first-bank", "enclave", "measure",
                                       os.path.join(self.bin, "cleanroom-enclave"), "--json"))
        policy_path = os.path.join(self.work, "policy.json")
        generate_data.write_policy(argparse.Namespace(
            out=policy_path, pcr0=measured["Measurements"]["PCR0"], bank=f"first-bank:{datasets['first-bank']}",
            retailer=f"shopmart:{datasets['shopmart']}", telco=f"metro-telecom:{datasets['metro-telecom']}",
            rounds=rounds, max_depth=max_depth, max_bin=max_bin, min_rows=max(500, columns["joined"] // 8),
            max_runs=20))
        proposed = json.loads(self.cli("first-bank", "policy", "propose", policy_path, "--json"))
        self.collaboration, digest = proposed["id"], proposed["digest"]
        for party in PARTIES:
            self.cli(party, "policy", "approve", self.collaboration, "--digest", digest, "--yes")
        log(f"collaboration {self.collaboration} approved by all three parties")
        return uploads

    def request(self, method, path, token, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        data = response.read()
        if response.status >= 300:
            raise SystemExit(f"{method} {path}: {response.status} {data[:500]!r}")
        return json.loads(data)


class EventReader(threading.Thread):
    """Reads a job's Server-Sent Events, timestamping each on arrival (time.monotonic)."""

    def __init__(self, port, job_id, token):
        super().__init__(daemon=True)
        self.port, self.job_id, self.token = port, job_id, token
        self.events = []
        self.connected = None
        self.error = None

    def run(self):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=3600)
            conn.request("GET", f"/v1/jobs/{self.job_id}/events",
                         headers={"Accept": "text/event-stream", "Authorization": f"Bearer {self.token}"})
            response = conn.getresponse()
            self.connected = time.monotonic()
            if response.status != 200:
                raise RuntimeError(f"events: HTTP {response.status}")
            name, data = None, None
            while True:
                line = response.readline()
                if not line:
                    return
                now = time.monotonic()
                line = line.decode("utf-8").rstrip("\r\n")
                if line == "":
                    if name and data is not None:
                        body = json.loads(data)
                        self.events.append((now, name, body))
                        if name == "state" and body.get("state") in TERMINAL:
                            return
                    name, data = None, None
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data = line[5:].strip()
        except Exception as error:  # reported by the caller
            self.error = error


def proc_children(pid):
    children = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return children


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    except (OSError, IndexError, ValueError):
        return None


def memory_kib(pid):
    values = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    values[line[:5]] = int(line.split()[1])
    except OSError:
        return None
    return values if len(values) == 2 else None


class EnclaveSampler(threading.Thread):
    """Samples the server's `cleanroom-enclave` child: VmHWM/VmRSS and CPU ticks, with the server's CPU."""

    def __init__(self, server_pid, interval, perf_data=None):
        super().__init__(daemon=True)
        self.server_pid, self.interval = server_pid, interval
        self.perf_data, self.perf = perf_data, None
        # (t, enclave pid, rss KiB, hwm KiB, enclave ticks, server ticks)
        self.samples = []
        self.stop = threading.Event()
        self.pids = set()

    def run(self):
        while not self.stop.is_set():
            now = time.monotonic()
            server = cpu_ticks(self.server_pid)
            for pid in proc_children(self.server_pid):
                try:
                    with open(f"/proc/{pid}/comm") as f:
                        if not f.read().startswith("cleanroom-encla"):
                            continue
                except OSError:
                    continue
                memory, ticks = memory_kib(pid), cpu_ticks(pid)
                if memory and ticks is not None:
                    if self.perf_data and self.perf is None:
                        # CPU profile of the whole enclave run, on the same clock as time.monotonic().
                        self.perf = subprocess.Popen(
                            ["perf", "record", "-q", "-k", "CLOCK_MONOTONIC", "-e", "cpu-clock", "-F", "250", "-g",
                             "-p", str(pid), "-o", self.perf_data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    self.pids.add(pid)
                    self.samples.append((now, pid, memory["VmRSS"], memory["VmHWM"], ticks, server))
            if not self.samples or self.samples[-1][0] != now:
                self.samples.append((now, None, None, None, None, server))
            self.stop.wait(self.interval)


def first(events, kind, key, value):
    for t, name, body in events:
        if name == kind and body.get(key) == value:
            return t
    return None


def run_job(collab, token, interval, perf_data=None):
    sampler = EnclaveSampler(collab.server.pid, interval, perf_data)
    sampler.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    job = collab.request("POST", f"/v1/collaborations/{collab.collaboration}/jobs", token, body={})
    t_answer = time.monotonic()
    reader = EventReader(collab.port, job["id"], token)
    reader.start()
    reader.join()
    t_end_stream = time.monotonic()
    # The job's enclave is the one that worked: with a standby, the server also has the one that
    # waited before the job (which is the job's) and the replacement it launches when the job ends.
    ticks = {}
    for s in list(sampler.samples):
        if s[1] is not None:
            ticks[s[1]] = max(ticks.get(s[1], 0), s[4])
    job_pid = max(ticks, key=ticks.get) if ticks else None
    # The runner terminates the enclave before it reports the terminal state; give the sampler a moment.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and job_pid and os.path.exists(f"/proc/{job_pid}/status") and memory_kib(job_pid):
        time.sleep(0.05)
    sampler.stop.set()
    sampler.join()
    sampler.samples = [s for s in sampler.samples if s[1] in (None, job_pid)]
    sampler.pids = {job_pid} if job_pid else set()
    if sampler.perf:
        sampler.perf.send_signal(signal.SIGINT)
        sampler.perf.wait(timeout=60)
    if reader.error:
        raise SystemExit(f"event stream failed: {reader.error}")
    events = reader.events
    final = [body for _, name, body in events if name == "state" and body.get("state") in TERMINAL]
    if not final or final[-1]["state"] != "succeeded":
        raise SystemExit(f"job {job['id']} did not succeed: {final[-1] if final else 'no terminal state'}")
    marks = {
        "t0": t0,
        "decrypting": first(events, "progress", "phase", "decrypting"),
        "joining": first(events, "progress", "phase", "joining"),
        "validating": first(events, "progress", "phase", "validating"),
        "splitting": first(events, "progress", "phase", "splitting"),
        "binning": first(events, "progress", "phase", "binning"),
        "training": first(events, "progress", "phase", "training"),
        "evaluating": first(events, "progress", "phase", "evaluating"),
        "exporting": first(events, "progress", "phase", "exporting"),
        "encrypting": first(events, "progress", "phase", "encrypting"),
        "delivering": first(events, "state", "state", "delivering"),
        "succeeded": first(events, "state", "state", "succeeded"),
    }
    missing = [k for k, v in marks.items() if v is None]
    if missing:
        raise SystemExit(f"job {job['id']}: no event for {missing}")
    replayed = marks["decrypting"] <= reader.connected + 0.005
    phases = {
        "a_attest_key_release": marks["decrypting"] - t0,
        "b_decrypt_parse": marks["joining"] - marks["decrypting"],
        "c_join": marks["binning"] - marks["joining"],
        "d_train": marks["encrypting"] - marks["binning"],
        "e_encrypt_deliver": marks["succeeded"] - marks["encrypting"],
    }
    order = ["t0", "decrypting", "joining", "validating", "splitting", "binning", "training", "evaluating",
             "exporting", "encrypting", "delivering", "succeeded"]
    detail = {f"{a}→{b}": marks[b] - marks[a] for a, b in zip(order, order[1:])}
    total = marks["succeeded"] - t0

    # Memory and CPU per phase from the samples.
    enclave = [s for s in sampler.samples if s[1] is not None]
    peak_hwm = max((s[3] for s in enclave), default=None)
    bounds = [("a_attest_key_release", t0, marks["decrypting"]), ("b_decrypt_parse", marks["decrypting"], marks["joining"]),
              ("c_join", marks["joining"], marks["binning"]), ("d_train", marks["binning"], marks["encrypting"]),
              ("e_encrypt_deliver", marks["encrypting"], marks["succeeded"])]

    def at(t, column):
        """The last sample value at or before t (CPU ticks are cumulative)."""
        value = None
        for s in sampler.samples:
            if s[0] > t:
                break
            if s[column] is not None:
                value = s[column]
        return value

    per_phase = {}
    for name, start, end in bounds:
        inside = [s for s in enclave if start <= s[0] <= end]
        e0, e1 = at(start, 4) or 0, at(end, 4)
        s0, s1 = at(start, 5), at(end, 5)
        per_phase[name] = {
            "max_rss_mib": max((s[2] for s in inside), default=0) / 1024,
            "enclave_cpu_s": ((e1 or 0) - e0) / CLK_TCK if e1 is not None else None,
            "server_cpu_s": (s1 - s0) / CLK_TCK if s0 is not None and s1 is not None else None,
        }
    detail_cpu = {}
    for a, b in zip(order, order[1:]):
        e0, e1 = at(marks[a], 4), at(marks[b], 4)
        detail_cpu[f"{a}→{b}"] = (e1 - (e0 or 0)) / CLK_TCK if e1 is not None else None
    rounds = [body for _, name, body in events if name == "progress" and body.get("phase") == "training"]
    return {
        "job": job["id"],
        "t0_monotonic": t0,
        "marks_s": {k: v - t0 for k, v in marks.items()},
        "total_s": total,
        "post_answer_s": t_answer - t0,
        "phases_s": phases,
        "detail_s": detail,
        "detail_enclave_cpu_s": detail_cpu,
        "decrypting_event_replayed": replayed,
        "enclave_peak_hwm_mib": peak_hwm / 1024 if peak_hwm else None,
        "enclave_pids": sorted(sampler.pids),
        "samples": len(enclave),
        "per_phase": per_phase,
        "boosting_rounds": max((r.get("iteration", 0) for r in rounds), default=0),
        "events": [(round(t - t0, 4), name, body) for t, name, body in events],
        "stream_closed_after_s": t_end_stream - t0,
    }


def verify_outputs(collab, job_id):
    out = os.path.join(collab.work, "results", job_id)
    started = time.monotonic()
    collab.cli("first-bank", "output", "download", job_id, "--out", out)
    downloaded = time.monotonic() - started
    collab.cli("first-bank", "verify", out, "--root", os.path.join(collab.data_dir, "development-ca", "root.pem"))
    verified = time.monotonic() - started - downloaded
    metrics = json.load(open(os.path.join(out, "metrics.json"), encoding="utf-8"))
    sizes = {name: os.path.getsize(os.path.join(out, name)) for name in sorted(os.listdir(out))}
    return {"download_decrypt_s": downloaded, "verify_s": verified, "joined_rows": metrics.get("joinedRows"),
            "validation": (metrics.get("metrics") or {}).get("validation"), "files": sizes}


def summarise(runs, uploads):
    lines = []
    totals = [r["total_s"] for r in runs]
    lines.append(f"runs: {len(runs)}; total wall s per run: " + ", ".join(f"{t:.2f}" for t in totals))
    lines.append(f"{'phase':34} {'median s':>9} {'share':>7}   per run (s)")
    median_total = statistics.median(totals)
    for phase in PHASES:
        values = [r["phases_s"][phase] for r in runs]
        shares = [r["phases_s"][phase] / r["total_s"] for r in runs]
        lines.append(f"{LABELS[phase]:34} {statistics.median(values):9.2f} {100 * statistics.median(shares):6.1f}%   "
                     + ", ".join(f"{v:.2f}" for v in values))
    lines.append(f"{'total':34} {median_total:9.2f}")
    non_training = [1 - r["phases_s"]["d_train"] / r["total_s"] for r in runs]
    lines.append(f"everything but training: median {100 * statistics.median(non_training):.1f}% of the total "
                 f"(per run: {', '.join(f'{100 * x:.1f}%' for x in non_training)}); target < 20%: "
                 f"{'met' if statistics.median(non_training) < 0.2 else 'NOT met'}")
    # The overhead in absolute terms too: a ratio to training time moves whenever training does.
    ciphertext_gib = sum(u["bytes"] for u in uploads.values()) / 2**30
    if ciphertext_gib > 0:
        overhead = [r["total_s"] - r["phases_s"]["d_train"] for r in runs]
        lines.append(f"everything but training: median {statistics.median(overhead):.2f} s, "
                     f"{statistics.median(overhead) / ciphertext_gib:.2f} s per GiB of ciphertext "
                     f"({ciphertext_gib:.3f} GiB in {len(uploads)} datasets)")
    hwm = [r["enclave_peak_hwm_mib"] for r in runs]
    lines.append("enclave peak RSS (VmHWM) MiB: median " f"{statistics.median(hwm):.0f} (per run: "
                 + ", ".join(f"{h:.0f}" for h in hwm) + ")")
    lines.append("sub-phases, median wall s (enclave CPU s): " + ", ".join(
        f"{k} {statistics.median(r['detail_s'][k] for r in runs):.2f} "
        f"({statistics.median(r['detail_enclave_cpu_s'][k] or 0 for r in runs):.2f})" for k in runs[0]["detail_s"]))
    for phase in PHASES:
        cpu = [r["per_phase"][phase]["enclave_cpu_s"] for r in runs]
        server = [r["per_phase"][phase]["server_cpu_s"] for r in runs]
        rss = [r["per_phase"][phase]["max_rss_mib"] for r in runs]
        share = [r["per_phase"][phase]["enclave_cpu_s"] / r["phases_s"][phase] for r in runs]
        lines.append(f"  {LABELS[phase]:32} enclave CPU {statistics.median(cpu):7.2f} s "
                     f"({100 * statistics.median(share):4.0f}% of the wall time), server CPU "
                     f"{statistics.median(server):6.2f} s, max RSS {statistics.median(rss):6.0f} MiB")
    cpu_total = [sum(r["per_phase"][p]["enclave_cpu_s"] or 0 for p in PHASES) for r in runs]
    cpu_non_training = [1 - (r["per_phase"]["d_train"]["enclave_cpu_s"] or 0) / t for r, t in zip(runs, cpu_total)]
    lines.append(f"enclave CPU: median {statistics.median(cpu_total):.2f} s per job, of which everything but training "
                 f"{100 * statistics.median(cpu_non_training):.1f}%")
    for party, u in uploads.items():
        lines.append(f"upload {party}: {u['bytes'] / 2**20:.1f} MiB in {u['seconds']:.2f} s = {u['mib_per_s']:.1f} MiB/s")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True, help="folder with release cleanroomd, cleanroom, cleanroom-enclave")
    parser.add_argument("--data", required=True, help="folder written by generate_data.py data")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=40, help="boosting rounds (make demo's: 40)")
    parser.add_argument("--max-depth", type=int, default=4)
    parser.add_argument("--max-bin", type=int, default=64)
    parser.add_argument("--interval", type=float, default=0.025, help="enclave sampling interval (s)")
    parser.add_argument("--out", help="results JSON")
    parser.add_argument("--perf", help="folder: record a CPU profile of each run's enclave (perf record -g; "
                        "split it by phase with profile_phases.py). Not for timed runs")
    parser.add_argument("--work", help="working folder (default: a temporary one, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    parser.add_argument("--no-standby", action="store_true",
                        help="run cleanroomd with --no-enclave-standby: every job launches its enclave")
    args = parser.parse_args()
    bin_dir = os.path.abspath(args.bin)
    for tool in ("cleanroomd", "cleanroom", "cleanroom-enclave"):
        if not os.access(os.path.join(bin_dir, tool), os.X_OK):
            raise SystemExit(f"{bin_dir}/{tool} is missing: swift build -c release --product {tool}")
    work = args.work or tempfile.mkdtemp(prefix="cleanroom-bench-jobs.")
    os.makedirs(work, exist_ok=True)
    collab = Collaboration(bin_dir, work, ["--no-enclave-standby"] if args.no_standby else [])
    runs = []
    try:
        collab.start_server()
        log(f"cleanroomd on {collab.url}, data in {collab.data_dir}")
        uploads = collab.setup(os.path.abspath(args.data), args.rounds, args.max_depth, args.max_bin)
        token = collab.token("first-bank")
        for index in range(args.runs):
            log(f"run {index + 1}/{args.runs}: starting the job (load average {os.getloadavg()[0]:.1f})")
            perf_data = None
            if args.perf:
                os.makedirs(args.perf, exist_ok=True)
                perf_data = os.path.join(os.path.abspath(args.perf), f"enclave-run{index + 1}.perf")
            result = run_job(collab, token, args.interval, perf_data)
            result["load_average_after"] = os.getloadavg()
            result["verify"] = verify_outputs(collab, result["job"])
            runs.append(result)
            log(f"run {index + 1}: job {result['job']} {result['total_s']:.2f} s, "
                + ", ".join(f"{p.split('_')[0]} {result['phases_s'][p]:.2f}" for p in PHASES)
                + f"; enclave peak {result['enclave_peak_hwm_mib']:.0f} MiB; joined rows "
                + f"{result['verify']['joined_rows']}; download+decrypt {result['verify']['download_decrypt_s']:.2f} s")
            if args.out:
                with open(args.out, "w", encoding="utf-8") as f:
                    json.dump({"uploads": uploads, "runs": runs}, f, indent=1)
    finally:
        collab.stop_server()
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(summarise(runs, uploads))


if __name__ == "__main__":
    main()
