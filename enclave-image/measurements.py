#!/usr/bin/env python3
"""Turns `nitro-cli build-enclave` output into enclave-image/measurements.json.

nitro-cli prints progress lines and then a JSON object:
  {"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": "…", "PCR1": "…", "PCR2": "…"[, "PCR8": "…"]}}
The file written keeps those values and adds `policy_measurement`, the object to paste into a
policy's `enclave.measurements` list (lower-case hex, 96 digits each).

usage: measurements.py NITRO_CLI_OUTPUT OUT_JSON [--image TAG] [--eif PATH]
"""
import hashlib
import json
import re
import sys


def parse_nitro_cli_output(text):
    start = next((i for i, line in enumerate(text.splitlines()) if line.lstrip().startswith("{")), None)
    if start is None:
        raise ValueError("nitro-cli printed no JSON object")
    document = json.loads("\n".join(text.splitlines()[start:]))
    measurements = document.get("Measurements")
    if not isinstance(measurements, dict):
        raise ValueError("no Measurements in nitro-cli output")
    if not str(measurements.get("HashAlgorithm", "")).startswith("Sha384"):
        raise ValueError("expected SHA-384 measurements")
    pcrs = {}
    for name in ("PCR0", "PCR1", "PCR2", "PCR8"):
        value = measurements.get(name)
        if value is None:
            if name == "PCR8":
                continue
            raise ValueError(f"{name} missing from nitro-cli output")
        if not re.fullmatch(r"[0-9a-fA-F]{96}", value):
            raise ValueError(f"{name} is not 48 bytes of hex")
        pcrs[name] = value.lower()
    return pcrs


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    source, out = argv[1], argv[2]
    image = argv[argv.index("--image") + 1] if "--image" in argv else None
    eif = argv[argv.index("--eif") + 1] if "--eif" in argv else None
    try:
        pcrs = parse_nitro_cli_output(open(source, encoding="utf-8").read())
    except (OSError, ValueError) as error:
        print(f"measurements.py: {error}", file=sys.stderr)
        return 1
    result = {"HashAlgorithm": "SHA384", **pcrs,
              "policy_measurement": {k.lower(): v for k, v in pcrs.items()}}
    if image:
        result["image"] = image
    if eif:
        with open(eif, "rb") as f:
            result["eif_sha384"] = hashlib.sha384(f.read()).hexdigest()
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, sort_keys=True)
        f.write("\n")
    print(json.dumps(result["policy_measurement"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
