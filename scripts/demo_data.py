#!/usr/bin/env python3
"""Synthetic data and the policy for `make demo` (Python standard library only, fixed seed).

A vertical join of three parties on a salted SHA-256 of a customer id that all three compute the
same way:

  first-bank     customer_hash, income, credit_limit, months_on_book, defaulted   (the label)
  shopmart       customer_hash, monthly_spend, visits_per_month, share_of_luxury?, returns_rate?
  metro-telecom  customer_hash, tenure_months, late_payments, data_gb

Whether a customer defaults depends on features of all three parties, so the joint model is
better than any one party's. Each party also holds customers the others do not know.

  demo_data.py data --out DIR [--customers N] [--seed S]      writes DIR/<party>.csv
  demo_data.py policy --out FILE --pcr0 HEX --bank ID:DATASET --retailer ID:DATASET --telco ID:DATASET
"""

import argparse
import hashlib
import json
import math
import os
import random
import sys

SALT = "cleanroom-demo-2026"

COLUMNS = {
    "first-bank": "customer_hash:string,income:float,credit_limit:float,months_on_book:integer,defaulted:boolean",
    "shopmart": "customer_hash:string,monthly_spend:float,visits_per_month:float,share_of_luxury:float?,returns_rate:float?",
    "metro-telecom": "customer_hash:string,tenure_months:integer,late_payments:integer,data_gb:float",
}


def customer_hash(customer_id):
    return hashlib.sha256(f"{SALT}:{customer_id}".encode()).hexdigest()


def generate(customers, seed):
    rng = random.Random(seed)
    bank, retail, telco = [], [], []
    for i in range(customers):
        cid = customer_hash(f"C{i:07d}")
        income = max(8_000.0, rng.lognormvariate(10.6, 0.45))
        limit = round(income * rng.uniform(0.1, 0.6), 2)
        months = rng.randint(3, 240)
        spend = max(20.0, rng.gauss(income / 40, income / 120))
        visits = max(0.0, rng.gauss(6, 3))
        luxury = min(1.0, max(0.0, rng.betavariate(2, 8)))
        returns = min(1.0, max(0.0, rng.betavariate(1.5, 12)))
        tenure = rng.randint(1, 180)
        late = min(12, int(rng.expovariate(0.9)))
        data_gb = max(0.1, rng.lognormvariate(2.3, 0.7))
        # The truth uses every party's features.
        z = (-2.2 - 1.1 * math.log(income / 40_000) + 1.8 * (limit / income) - 0.004 * months
             + 1.6 * (spend * 12 / income) + 2.5 * luxury + 3.0 * returns - 0.01 * tenure + 0.45 * late
             + rng.gauss(0, 0.6))
        defaulted = rng.random() < 1 / (1 + math.exp(-z))
        if rng.random() < 0.95:
            bank.append([cid, f"{income:.2f}", f"{limit:.2f}", str(months), "true" if defaulted else "false"])
        if rng.random() < 0.85:
            retail.append([cid, f"{spend:.2f}", f"{visits:.2f}",
                           "" if rng.random() < 0.05 else f"{luxury:.4f}",
                           "" if rng.random() < 0.03 else f"{returns:.4f}"])
        if rng.random() < 0.8:
            telco.append([cid, str(tenure), str(late), f"{data_gb:.2f}"])
    # Each party also knows people the others do not.
    for name, rows, make in (
        ("bank", bank, lambda j: [customer_hash(f"B{j}"), f"{rng.uniform(9e3, 2e5):.2f}", f"{rng.uniform(500, 3e4):.2f}",
                                  str(rng.randint(3, 240)), "true" if rng.random() < 0.2 else "false"]),
        ("retail", retail, lambda j: [customer_hash(f"R{j}"), f"{rng.uniform(20, 3e3):.2f}", f"{rng.uniform(0, 15):.2f}",
                                      f"{rng.random():.4f}", f"{rng.random() / 5:.4f}"]),
        ("telco", telco, lambda j: [customer_hash(f"T{j}"), str(rng.randint(1, 180)), str(rng.randint(0, 5)),
                                    f"{rng.uniform(0.1, 80):.2f}"]),
    ):
        rows.extend(make(j) for j in range(customers // 10))
        rng.shuffle(rows)
    return {"first-bank": bank, "shopmart": retail, "metro-telecom": telco}


def write_data(args):
    os.makedirs(args.out, exist_ok=True)
    for party, rows in generate(args.customers, args.seed).items():
        header = [c.split(":")[0] for c in COLUMNS[party].split(",")]
        path = os.path.join(args.out, f"{party}.csv")
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(",".join(header) + "\n")
            for row in rows:
                f.write(",".join(row) + "\n")
        print(f"{path}: {len(rows)} rows")


def columns_json(spec):
    out = []
    for item in spec.split(","):
        name, kind = item.split(":")
        column = {"name": name, "type": kind.rstrip("?")}
        if kind.endswith("?"):
            column["nullable"] = True
        out.append(column)
    return out


def party_datasets(args):
    """{role: (party id, dataset id)} from --bank/--retailer/--telco PARTY_ID:DATASET_ID."""
    roles = {"first-bank": args.bank, "shopmart": args.retailer, "metro-telecom": args.telco}
    ids = {}
    for role, value in roles.items():
        party, _, dataset = value.partition(":")
        if not party or not dataset:
            sys.exit(f"--{role}: expected PARTY_ID:DATASET_ID, not {value!r}")
        ids[role] = (party, dataset)
    return ids


def policy_document(ids, columns, features, hyperparameters, name, description, pcrs, min_rows, max_runs):
    """The demo's policy: an inner join on the customer hash, boosted trees predicting `defaulted`; the
    bank receives the model, the metrics and its own customers' scores, the others the metrics."""
    zeros = "0" * 96
    pcr0, pcr1, pcr2 = pcrs
    bank, retail, telco = ids["first-bank"][0], ids["shopmart"][0], ids["metro-telecom"][0]
    return {
        "version": 1,
        "name": name,
        "description": description,
        "parties": [{"id": party} for party, _ in ids.values()],
        "datasets": [{"id": dataset, "owner": party, "columns": columns_json(columns[role])}
                     for role, (party, dataset) in ids.items()],
        "join": {"type": "inner", "key": "customer_hash"},
        "training": {
            "algorithm": "gradient_boosted_trees",
            "objective": "binary:logistic",
            "label": "defaulted",
            "features": features,
            "hyperparameters": hyperparameters,
            "validation": {"fraction": 0.25, "seed": 7},
        },
        "enclave": {"measurements": [{"pcr0": pcr0, "pcr1": pcr1 or zeros, "pcr2": pcr2 or zeros}],
                    "allowDebug": False},
        "outputs": [
            {"recipient": bank, "artifacts": ["model", "metrics", "scores:own"]},
            {"recipient": retail, "artifacts": ["metrics"]},
            {"recipient": telco, "artifacts": ["metrics"]},
        ],
        "constraints": {"minRowsPerParty": min_rows, "minJoinedRows": min_rows,
                        "expiresAt": "2030-12-31T00:00:00Z", "maxRuns": max_runs},
    }


def write_json(path, document):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2)
        f.write("\n")


def write_policy(args):
    policy = policy_document(
        party_datasets(args), COLUMNS,
        features=["income", "credit_limit", "months_on_book", "monthly_spend", "visits_per_month",
                  "share_of_luxury", "returns_rate", "tenure_months", "late_payments", "data_gb"],
        hyperparameters={"num_rounds": args.rounds, "max_depth": 4, "learning_rate": 0.2, "max_bin": 64,
                         "lambda": 1.0},
        name="Credit default with retail and telecom features",
        description="A vertical inner join of three parties on a salted SHA-256 of the customer id. The bank "
                    "receives the boosted-tree model, the metrics and scores for its own customers; the "
                    "retailer and the telecom operator receive the metrics only.",
        pcrs=(args.pcr0, args.pcr1, args.pcr2), min_rows=args.min_rows, max_runs=3)
    write_json(args.out, policy)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", help="write the three parties' CSV files")
    data.add_argument("--out", required=True)
    data.add_argument("--customers", type=int, default=4000)
    data.add_argument("--seed", type=int, default=20261121)
    data.set_defaults(func=write_data)
    policy = sub.add_parser("policy", help="write the collaboration policy")
    policy.add_argument("--out", required=True)
    policy.add_argument("--pcr0", required=True, help="the enclave image's PCR0 (cleanroom enclave measure)")
    policy.add_argument("--pcr1")
    policy.add_argument("--pcr2")
    policy.add_argument("--bank", required=True, help="PARTY_ID:DATASET_ID")
    policy.add_argument("--retailer", required=True, help="PARTY_ID:DATASET_ID")
    policy.add_argument("--telco", required=True, help="PARTY_ID:DATASET_ID")
    policy.add_argument("--rounds", type=int, default=40)
    policy.add_argument("--min-rows", type=int, default=500)
    policy.set_defaults(func=write_policy)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
