#!/usr/bin/env python3
"""Splits a `bench.py --perf` CPU profile of the enclave by job phase.

perf recorded the enclave with CLOCK_MONOTONIC timestamps, the clock bench.py timestamps the SSE
events with, so each sample falls into one phase. For each phase: the hottest functions by self
time, and by inclusive time among cleanroom's own modules (Training, Enclave, Envelope, Crypto)
and OpenSSL.

  profile_phases.py --results results.json --run 1 --perf enclave.perf [--top 12]
"""
import argparse
import collections
import json
import subprocess

ORDER = ["t0", "decrypting", "joining", "validating", "splitting", "binning", "training", "evaluating", "exporting",
         "encrypting", "delivering", "succeeded"]
OURS = ("$s8Training", "$s7Enclave", "$s8Envelope", "$s6Crypto", "$s9CleanRoom")


def demangle(names):
    names = list(names)
    if not names:
        return {}
    done = subprocess.run(["swift", "demangle", "--simplified", "--compact"], input="\n".join(names),
                          capture_output=True, text=True)
    out = done.stdout.split("\n") if done.returncode == 0 else names
    return {n: (out[i] if i < len(out) and out[i] else n) for i, n in enumerate(names)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", required=True)
    parser.add_argument("--run", type=int, default=1)
    parser.add_argument("--perf", required=True)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    run = json.load(open(args.results))["runs"][args.run - 1]
    t0, marks = run["t0_monotonic"], run["marks_s"]
    bounds = [(a, t0 + marks[a], t0 + marks[b]) for a, b in zip(ORDER, ORDER[1:])]
    script = subprocess.run(["perf", "script", "-i", args.perf, "-F", "time,ip,sym"], capture_output=True, text=True).stdout
    self_counts = collections.defaultdict(collections.Counter)
    incl_counts = collections.defaultdict(collections.Counter)
    totals = collections.Counter()
    phase, chain = None, []

    def flush():
        if phase is None or not chain:
            return
        totals[phase] += 1
        self_counts[phase][chain[0]] += 1
        for name in set(chain):
            if name.startswith(OURS) or "EVP_" in name or "aesni" in name or "gcm" in name:
                incl_counts[phase][name] += 1

    for line in script.split("\n"):
        if line and not line[0].isspace() and line.rstrip().endswith(":"):
            flush()
            t = float(line.strip().rstrip(":"))
            phase = next((name for name, start, end in bounds if start <= t < end), "after")
            chain = []
        elif line.strip():
            parts = line.split(None, 1)
            chain.append(parts[1] if len(parts) > 1 else parts[0])
    flush()
    names = demangle({n for c in list(self_counts.values()) + list(incl_counts.values()) for n in c})
    rate = 250.0
    for name, start, end in bounds + [("after", 0, 0)]:
        if not totals[name]:
            continue
        print(f"\n== {name} → next: wall {end - start:.2f} s, {totals[name]} samples ≈ {totals[name] / rate:.2f} CPU s")
        print("   self:")
        for sym, n in self_counts[name].most_common(args.top):
            print(f"   {100 * n / totals[name]:5.1f}%  {names.get(sym, sym)[:150]}")
        print("   inclusive (cleanroom modules, OpenSSL):")
        for sym, n in incl_counts[name].most_common(args.top):
            print(f"   {100 * n / totals[name]:5.1f}%  {names.get(sym, sym)[:150]}")


if __name__ == "__main__":
    main()
