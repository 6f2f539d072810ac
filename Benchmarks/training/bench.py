#!/usr/bin/env python3
"""Training benchmark: cleanroom's engine against scikit-learn, XGBoost and LightGBM, side by side.

    python Benchmarks/training/generate_data.py --rows 1000000 --out /tmp/bench
    swift build -c release --product cleanroom
    python Benchmarks/training/bench.py --data /tmp/bench --cleanroom .build/release/cleanroom --runs 3

Every contender trains on the same 80% of the rows (the split `cleanroom train --seed 1` makes,
read from its scores file) and is scored on the same 20%, on 2 threads. Fit time is what each
reports for fitting alone: ours from its metrics (binning or standardisation + training), the
peers' timed around their own data preparation (DMatrix / Dataset / scaler) + training. Peak
memory is the whole process's maximum resident set (data included), from wait4(). Reports the
median of the runs and writes the raw figures as JSON.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

THREADS = 2
PEER_ENV = dict(os.environ, OMP_NUM_THREADS=str(THREADS), OPENBLAS_NUM_THREADS=str(THREADS),
                MKL_NUM_THREADS=str(THREADS))


def run_measured(args, env=None):
    """Runs a command; returns (stdout, peak RSS in MiB, wall seconds)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(args, stdout=out, stderr=err, env=env or PEER_ENV)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if status != 0:
            sys.exit(f"failed: {' '.join(args)}\n{err.read().decode()}")
        return out.read().decode(), usage.ru_maxrss / 1024, wall


def ours(cleanroom, csv, algorithm, work, scores=False):
    params = []
    if algorithm == "gbdt":
        params = ["--param", "num_round=100", "--param", "max_depth=6", "--param", "eta=0.3", "--param", "max_bin=256"]
    metrics = os.path.join(work, f"{algorithm}.metrics.json")
    args = [cleanroom, "train", "--data", csv, "--label", "label", "--algorithm", algorithm, *params,
            "--validation-fraction", "0.2", "--seed", "1", "--model-out", os.path.join(work, f"{algorithm}.json"),
            "--metrics-out", metrics]
    if scores:
        args += ["--scores-out", os.path.join(work, "scores.csv")]
    _, rss, _ = run_measured(args)
    with open(metrics) as f:
        m = json.load(f)
    return {"fit": m["seconds"]["fit"], "auc": m["validation"]["auc"], "rss": rss}


def peer_main(args):
    import numpy as np
    from sklearn.metrics import roc_auc_score

    d = np.load(os.path.join(args.data, "data.npz"))
    x, y = d["x"], d["y"]
    validation = np.load(os.path.join(args.work, "mask.npy"))
    xt, yt, xv, yv = x[~validation], y[~validation], x[validation], y[validation]
    if args.peer == "sklearn":
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler
        start = time.perf_counter()
        filled = np.where(np.isnan(xt), 0.0, xt)  # cleanroom's linear models count missing as 0
        scaler = StandardScaler().fit(filled)
        model = LogisticRegression(solver="lbfgs", C=1.0, max_iter=100, tol=1e-4).fit(scaler.transform(filled), yt)
        fit = time.perf_counter() - start
        p = model.predict_proba(scaler.transform(np.where(np.isnan(xv), 0.0, xv)))[:, 1]
    elif args.peer == "xgboost":
        import xgboost as xgb
        start = time.perf_counter()
        dtrain = xgb.DMatrix(xt, yt, nthread=THREADS)
        params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6, "eta": 0.3,
                  "max_bin": 256, "nthread": THREADS}
        model = xgb.train(params, dtrain, 100)
        fit = time.perf_counter() - start
        p = model.predict(xgb.DMatrix(xv, nthread=THREADS))
    else:
        import lightgbm as lgb
        start = time.perf_counter()
        params = {"objective": "binary", "max_depth": 6, "num_leaves": 64, "learning_rate": 0.3, "max_bin": 255,
                  "lambda_l2": 1.0, "min_sum_hessian_in_leaf": 1.0, "min_data_in_leaf": 1,
                  "num_threads": THREADS, "verbose": -1}
        model = lgb.train(params, lgb.Dataset(xt, yt, params={"max_bin": 255, "verbose": -1}), 100)
        fit = time.perf_counter() - start
        p = model.predict(xv, num_threads=THREADS)
    print(json.dumps({"fit": fit, "auc": float(roc_auc_score(yv, p))}))


def peer(name, data, work):
    out, rss, _ = run_measured([sys.executable, __file__, "--peer", name, "--data", data, "--work", work])
    result = json.loads(out.strip().splitlines()[-1])
    result["rss"] = rss
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="directory with data.csv and data.npz")
    parser.add_argument("--cleanroom", default=".build/release/cleanroom")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--peer", choices=["sklearn", "xgboost", "lightgbm"], help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="training-benchmark.json")
    args = parser.parse_args()
    if args.peer:
        return peer_main(args)
    import numpy as np

    work = tempfile.mkdtemp(prefix="training-bench-")
    csv = os.path.join(args.data, "data.csv")
    results = {k: [] for k in ["cleanroom_logistic", "sklearn", "cleanroom_gbdt", "xgboost", "lightgbm"]}
    for run in range(args.runs):
        results["cleanroom_logistic"].append(ours(args.cleanroom, csv, "logistic", work, scores=(run == 0)))
        if run == 0:
            scores = np.loadtxt(os.path.join(work, "scores.csv"), delimiter=",", skiprows=1)
            np.save(os.path.join(work, "mask.npy"), scores[:, 1] == 1)
        results["sklearn"].append(peer("sklearn", args.data, work))
        results["cleanroom_gbdt"].append(ours(args.cleanroom, csv, "gbdt", work))
        results["xgboost"].append(peer("xgboost", args.data, work))
        results["lightgbm"].append(peer("lightgbm", args.data, work))
        print(f"run {run + 1}: " + ", ".join(
            f"{k} {v[-1]['fit']:.2f}s auc {v[-1]['auc']:.5f} {v[-1]['rss']:.0f}MiB" for k, v in results.items()),
            flush=True)
    summary = {}
    for name, runs in results.items():
        summary[name] = {key: statistics.median(r[key] for r in runs) for key in ["fit", "auc", "rss"]}
        summary[name]["fits"] = [round(r["fit"], 3) for r in runs]
    print(f"{'contender':<20}{'fit s (median)':>16}{'runs':>24}{'test AUC':>10}{'peak MiB':>10}")
    for name, s in summary.items():
        print(f"{name:<20}{s['fit']:>16.3f}{str(s['fits']):>24}{s['auc']:>10.5f}{s['rss']:>10.0f}")
    lr, sk, gb, xg, lg = (summary[k] for k in results)
    print(f"logistic: AUC difference {lr['auc'] - sk['auc']:+.5f}, fit time ratio ours/sklearn {lr['fit'] / sk['fit']:.2f}")
    print(f"gbdt: AUC difference vs XGBoost {gb['auc'] - xg['auc']:+.5f}, fit time ratio ours/XGBoost "
          f"{gb['fit'] / xg['fit']:.2f}, ours/LightGBM {gb['fit'] / lg['fit']:.2f}")
    with open(args.out, "w") as f:
        json.dump({"summary": summary, "runs": results}, f, indent=2)


if __name__ == "__main__":
    main()
