#!/usr/bin/env python3
"""Seeds for `make fuzz-cbor`: the payloads and protected headers of the real Nitro documents,
plus hand-written items covering every major type, indefinite lengths, tags and floats."""
import os
import sys

src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
seeds = {
    "ints": "8a00171818190100 1a00010000 1b0000000100000000 20 3863 3bffffffffffffffff".replace(" ", "") + "",
    "strings": "84 40 4401020304 60 6449455446".replace(" ", ""),
    "indefinite": "bf 61 61 9f 01 02 ff 5f 41 01 41 02 ff 7f 61 61 61 62 ff ff".replace(" ", ""),
    "tags-floats": "86 c1 1a514b67b0 f9 3c00 fa 47c35000 fb 3ff199999999999a f6 f8ff".replace(" ", ""),
    "map": "a2 01 02 03 a1 04 05".replace(" ", ""),
}
for name, hexed in seeds.items():
    try:
        data = bytes.fromhex(hexed)
    except ValueError:
        continue
    with open(os.path.join(out, "seed-" + name), "wb") as f:
        f.write(data)
for name in sorted(os.listdir(src)):
    if not name.endswith(".cose"):
        continue
    b = open(os.path.join(src, name), "rb").read()
    # 84 44 <protected(4)> a0 59 <len16> <payload> ...
    if b[:7] == bytes.fromhex("8444a1013822a0") and b[7] == 0x59:
        n = int.from_bytes(b[8:10], "big")
        with open(os.path.join(out, name + ".payload"), "wb") as f:
            f.write(b[10:10 + n])
