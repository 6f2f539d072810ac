#!/usr/bin/env python3
"""Writes the seed corpora of the Envelope fuzz targets from ../shared/vectors/esdk (read only).

usage: seed-envelope.py HEADER_DIR DECRYPT_DIR
Decrypt seeds get a leading chunk-size byte (see Fuzz/EnvelopeDecrypt/FuzzEnvelopeDecrypt.swift).
"""
import base64, json, os, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "vectors", "esdk")
header_dir, decrypt_dir = sys.argv[1], sys.argv[2]
os.makedirs(header_dir, exist_ok=True)
os.makedirs(decrypt_dir, exist_ok=True)
messages = {}
for name in sorted(os.listdir(os.path.join(root, "ciphertexts"))):
    with open(os.path.join(root, "ciphertexts", name), "rb") as f:
        messages[name] = f.read()
compat = json.load(open(os.path.join(root, "aws-js-fixtures", "message-format-v2-compat-vectors.json")))
for i, case in enumerate(compat["tests"]):
    messages[f"compat-{i + 1}"] = base64.b64decode(case["ciphertext"].strip())
v1 = json.load(open(os.path.join(root, "aws-js-fixtures", "v1-zero-data-key-fixtures.json")))
for name, case in v1["cases"].items():
    messages[f"v1-{name}"] = base64.b64decode(case["ciphertext-b64"])
for name, message in messages.items():
    with open(os.path.join(header_dir, name), "wb") as f:
        f.write(message[:4096])
    for chunk in (0, 6, 255):
        with open(os.path.join(decrypt_dir, f"{name}-{chunk}"), "wb") as f:
            f.write(bytes([chunk]) + message[:16384])
print(f"{len(messages)} seeds")
