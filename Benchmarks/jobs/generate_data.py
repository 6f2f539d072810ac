#!/usr/bin/env python3
"""Synthetic data for the jobs benchmark: make demo's three-party collaboration, scaled up.

The same three parties as scripts/demo_data.py, joined on a salted SHA-256 of the customer id,
but with 28 features (numpy, fixed seed, so the same command writes the same bytes):

  first-bank     customer_hash + 9 features + defaulted (the label, boolean)
  shopmart       customer_hash + 10 features (two nullable)
  metro-telecom  customer_hash + 9 features (one nullable)

Exactly --joined customers are known to all three parties (the inner join's row count); each
party also holds --extra-fraction × joined customers that at least one other party lacks, so
the join has real work to do. Whether a customer defaults depends on features of all three.

  generate_data.py data --out DIR [--joined 1000000]          DIR/<party>.csv, DIR/columns.json
  generate_data.py policy --out FILE --pcr0 HEX --bank P:D --retailer P:D --telco P:D [--rounds 40]
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import demo_data  # noqa: E402  (the demo's policy, shared)

SALT = "cleanroom-demo-2026"

# name: (type, nullable, printf format). Types are the policy's column types.
COLUMNS = {
    "first-bank": [
        ("income", "float", False, "%.2f"), ("credit_limit", "float", False, "%.2f"),
        ("months_on_book", "integer", False, "%d"), ("open_accounts", "integer", False, "%d"),
        ("utilisation", "float", False, "%.4f"), ("revolving_balance", "float", False, "%.2f"),
        ("age", "integer", False, "%d"), ("inquiries_6m", "integer", False, "%d"),
        ("savings_balance", "float", True, "%.2f"),
    ],
    "shopmart": [
        ("monthly_spend", "float", False, "%.2f"), ("visits_per_month", "float", False, "%.2f"),
        ("share_of_luxury", "float", True, "%.4f"), ("returns_rate", "float", True, "%.4f"),
        ("basket_size", "float", False, "%.2f"), ("online_share", "float", False, "%.4f"),
        ("loyalty_years", "integer", False, "%d"), ("promo_share", "float", False, "%.4f"),
        ("categories", "integer", False, "%d"), ("days_since_visit", "integer", False, "%d"),
    ],
    "metro-telecom": [
        ("tenure_months", "integer", False, "%d"), ("late_payments", "integer", False, "%d"),
        ("data_gb", "float", False, "%.2f"), ("plan_price", "float", False, "%.2f"),
        ("roaming_days", "integer", False, "%d"), ("support_calls", "integer", False, "%d"),
        ("device_age_months", "integer", False, "%d"), ("prepaid", "integer", False, "%d"),
        ("dropped_call_rate", "float", True, "%.4f"),
    ],
}
LABEL = "defaulted"
KEY = "customer_hash"
PARTIES = list(COLUMNS)
FEATURES = [name for party in PARTIES for name, *_ in COLUMNS[party]]
assert len(FEATURES) == 28


def column_spec(party):
    """The `cleanroom dataset create --columns` argument for a party."""
    items = [f"{KEY}:string"] + [f"{n}:{t}{'?' if nullable else ''}" for n, t, nullable, _ in COLUMNS[party]]
    if party == "first-bank":
        items.append(f"{LABEL}:boolean")
    return ",".join(items)


def customer_hashes(prefix, ids):
    return np.array([hashlib.sha256(f"{SALT}:{prefix}{i:08d}".encode()).hexdigest() for i in ids])


def features(rng, n):
    """All 28 features for n customers, and the default probability's logit."""
    income = np.maximum(8_000.0, rng.lognormal(10.6, 0.45, n))
    limit = income * rng.uniform(0.1, 0.6, n)
    util = np.clip(rng.beta(2, 5, n), 0, 1)
    f = {
        "income": income, "credit_limit": limit, "months_on_book": rng.integers(3, 241, n),
        "open_accounts": rng.poisson(4, n), "utilisation": util, "revolving_balance": util * limit,
        "age": rng.integers(18, 86, n), "inquiries_6m": rng.poisson(0.8, n),
        "savings_balance": rng.lognormal(8.5, 1.2, n),
        "monthly_spend": np.maximum(20.0, rng.normal(income / 40, income / 120)),
        "visits_per_month": np.maximum(0.0, rng.normal(6, 3, n)),
        "share_of_luxury": rng.beta(2, 8, n), "returns_rate": rng.beta(1.5, 12, n),
        "basket_size": rng.lognormal(3.5, 0.6, n), "online_share": rng.beta(2, 3, n),
        "loyalty_years": rng.integers(0, 21, n), "promo_share": rng.beta(2, 6, n),
        "categories": rng.integers(1, 16, n), "days_since_visit": np.minimum(365, rng.geometric(0.08, n) - 1),
        "tenure_months": rng.integers(1, 181, n), "late_payments": np.minimum(12, rng.geometric(0.55, n) - 1),
        "data_gb": np.maximum(0.1, rng.lognormal(2.3, 0.7, n)), "plan_price": rng.choice([9.99, 19.99, 29.99, 49.99], n),
        "roaming_days": rng.poisson(2, n), "support_calls": rng.poisson(0.7, n),
        "device_age_months": rng.integers(0, 61, n), "prepaid": (rng.random(n) < 0.3).astype(np.int64),
        "dropped_call_rate": rng.beta(1.2, 60, n),
    }
    # The truth uses every party's features (some non-linearly).
    z = (-2.2 - 1.1 * np.log(income / 40_000) + 1.8 * (limit / income) - 0.004 * f["months_on_book"]
         + 1.4 * util ** 2 + 0.25 * f["inquiries_6m"] - 0.15 * np.log1p(f["savings_balance"] / 1000)
         + 1.6 * (f["monthly_spend"] * 12 / income) + 2.5 * f["share_of_luxury"] + 3.0 * f["returns_rate"]
         + 0.8 * (f["promo_share"] > 0.5) - 0.03 * f["loyalty_years"]
         - 0.01 * f["tenure_months"] + 0.45 * f["late_payments"] + 0.3 * f["prepaid"]
         + 0.2 * np.minimum(f["support_calls"], 4) + 6.0 * f["dropped_call_rate"]
         + rng.normal(0, 0.6, n))
    return f, z


def write_party(path, hashes, columns, values, label, rng, order):
    """Writes one party's CSV: its columns for the rows `order` (a permutation), nullables ~4% empty."""
    names = [KEY] + [c[0] for c in columns] + ([LABEL] if label is not None else [])
    cells = []
    for name, _, nullable, fmt in columns:
        text = np.char.mod(fmt, values[name][order])
        if nullable:
            text[rng.random(len(order)) < 0.04] = ""
        cells.append(text)
    if label is not None:
        cells.append(np.where(label[order], "true", "false"))
    keys = hashes[order]
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write(",".join(names) + "\n")
        step = 100_000
        for start in range(0, len(order), step):
            end = min(len(order), start + step)
            rows = zip(keys[start:end], *(c[start:end] for c in cells))
            out.write("\n".join(",".join(row) for row in rows) + "\n")


def write_data(args):
    rng = np.random.default_rng(args.seed)
    joined, extra = args.joined, int(args.joined * args.extra_fraction)
    # Customers 0..joined-1 are known to all three; then `extra` customers per pair of parties and
    # `extra` per single party, so each party holds joined + 3·extra rows and no other customer
    # reaches all three.
    groups = [("all", PARTIES, joined)]
    groups += [(f"{a}+{b}", [a, b], extra) for i, a in enumerate(PARTIES) for b in PARTIES[i + 1:]]
    groups += [(p, [p], extra) for p in PARTIES]
    total = sum(n for _, _, n in groups)
    hashes = customer_hashes("C", range(total))
    values, z = features(rng, total)
    label = rng.random(total) < 1 / (1 + np.exp(-z))
    members = {p: [] for p in PARTIES}
    offset = 0
    for _, parties, n in groups:
        for p in parties:
            members[p].append(np.arange(offset, offset + n))
        offset += n
    os.makedirs(args.out, exist_ok=True)
    for party in PARTIES:
        order = rng.permutation(np.concatenate(members[party]))
        path = os.path.join(args.out, f"{party}.csv")
        write_party(path, hashes, COLUMNS[party], values, label if party == "first-bank" else None, rng, order)
        print(f"{path}: {len(order)} rows, {os.path.getsize(path) / 2**20:.1f} MiB")
    with open(os.path.join(args.out, "columns.json"), "w", encoding="utf-8") as f:
        json.dump({"joined": joined, "columns": {p: column_spec(p) for p in PARTIES}, "features": FEATURES}, f, indent=2)
    print(f"{joined} customers known to all three parties; default rate {label[:joined].mean():.3f}")


def write_policy(args):
    policy = demo_data.policy_document(
        demo_data.party_datasets(args), {p: column_spec(p) for p in PARTIES}, features=FEATURES,
        hyperparameters={"num_rounds": args.rounds, "max_depth": args.max_depth, "learning_rate": 0.2,
                         "max_bin": args.max_bin, "lambda": 1.0},
        name="Credit default with retail and telecom features (jobs benchmark)",
        description="make demo's vertical inner join of three parties on a salted SHA-256 of the customer id, "
                    "with 28 features. The bank receives the model, the metrics and scores for its own "
                    "customers; the retailer and the telecom operator receive the metrics.",
        pcrs=(args.pcr0, None, None), min_rows=args.min_rows, max_runs=args.max_runs)
    demo_data.write_json(args.out, policy)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", help="write the three parties' CSV files")
    data.add_argument("--out", required=True)
    data.add_argument("--joined", type=int, default=1_000_000, help="customers known to all three parties")
    data.add_argument("--extra-fraction", type=float, default=0.05,
                      help="per party and per pair of parties, customers not in the join (× joined)")
    data.add_argument("--seed", type=int, default=20261121)
    data.set_defaults(func=write_data)
    policy = sub.add_parser("policy", help="write the collaboration policy")
    policy.add_argument("--out", required=True)
    policy.add_argument("--pcr0", required=True)
    policy.add_argument("--bank", required=True, help="PARTY_ID:DATASET_ID")
    policy.add_argument("--retailer", required=True, help="PARTY_ID:DATASET_ID")
    policy.add_argument("--telco", required=True, help="PARTY_ID:DATASET_ID")
    policy.add_argument("--rounds", type=int, default=40, help="boosting rounds (make demo's default: 40)")
    policy.add_argument("--max-depth", type=int, default=4)
    policy.add_argument("--max-bin", type=int, default=64)
    policy.add_argument("--min-rows", type=int, default=500)
    policy.add_argument("--max-runs", type=int, default=20)
    policy.set_defaults(func=write_policy)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
