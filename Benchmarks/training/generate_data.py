#!/usr/bin/env python3
"""Synthetic binary classification data for the training benchmark and parity tests.

28 numeric features: 8 informative (the label depends on them, partly non-linearly), 6 redundant
(noisy linear combinations of the informative ones) and 14 noise; about 1% of cells missing.
Everything comes from one fixed seed, so the same command writes the same bytes.

    python generate_data.py --rows 1000000 --out /tmp/bench   # data.csv (+ data.npz)
"""
import argparse
import os

import numpy as np

N_INFORMATIVE, N_REDUNDANT, N_NOISE = 8, 6, 14


def generate(rows: int, seed: int, missing: float):
    rng = np.random.default_rng(seed)
    informative = rng.standard_normal((rows, N_INFORMATIVE))
    mixing = rng.standard_normal((N_INFORMATIVE, N_REDUNDANT))
    redundant = informative @ mixing / np.sqrt(N_INFORMATIVE) + 0.3 * rng.standard_normal((rows, N_REDUNDANT))
    noise = rng.standard_normal((rows, N_NOISE))
    x = informative
    logit = (
        0.9 * x[:, 0] - 0.7 * x[:, 1] + 0.5 * x[:, 2]
        + 0.8 * x[:, 2] * x[:, 3]
        + 1.2 * np.sin(1.5 * x[:, 4])
        + 0.9 * (np.abs(x[:, 5]) - 0.8)
        + 1.0 * (x[:, 6] > 0.5) * x[:, 7]
        - 0.6 * (x[:, 0] > 1.0)
    )
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    features = np.concatenate([informative, redundant, noise], axis=1)
    # Shuffle the column order so that informative features are not simply the first ones.
    order = rng.permutation(features.shape[1])
    features = features[:, order]
    mask = rng.random(features.shape) < missing
    features[mask] = np.nan
    return features, label


def write_csv(path: str, features: np.ndarray, label: np.ndarray) -> None:
    names = ["label"] + [f"f{i}" for i in range(features.shape[1])]
    with open(path, "w") as out:
        out.write(",".join(names) + "\n")
        step = 50_000
        for start in range(0, len(label), step):
            block = features[start:start + step]
            text = np.char.mod("%.7g", block)
            text[np.isnan(block)] = ""
            lines = [str(int(y)) + "," + ",".join(row) for y, row in zip(label[start:start + step], text)]
            out.write("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--missing", type=float, default=0.01)
    parser.add_argument("--out", required=True, help="directory for data.csv and data.npz")
    parser.add_argument("--no-npz", action="store_true", help="write only the CSV")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    features, label = generate(args.rows, args.seed, args.missing)
    csv_path = os.path.join(args.out, "data.csv")
    write_csv(csv_path, features, label)
    if not args.no_npz:
        # The CSV text parsed back, so the peers see exactly the numbers the Swift reader sees.
        x = np.char.mod("%.7g", features).astype(np.float64)
        np.savez(os.path.join(args.out, "data.npz"), x=x, y=label.astype(np.float64))
    print(f"wrote {args.rows} rows to {csv_path}")


if __name__ == "__main__":
    main()
