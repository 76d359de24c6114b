"""The same measurements on two checkouts of the project, side by side: training throughput and a short-budget
NLL, interleaved A B A B in fresh processes (these machines are shared and noisy: compare the ratios).

Each checkout is imported from its own folder (``PYTHONPATH=TREE``), through the API both share:
``keras_vae.build_vae``, ``compile``/``fit`` and ``keras_vae.iwae_bound``.

    git worktree add /tmp/before <commit>
    python benchmarks/before_after.py --before /tmp/before --after . --data-dir ../shared/data
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_common import RESULTS_DIR, write_result  # noqa: E402

CASES = {
    # name: (architecture, latent_dim, network options): the two peers' networks
    "mlp-784-400-20": ("mlp", 20, {"hidden_units": [400]}),
    "kerasio-conv-32-64-16-2": ("conv", 2, {"filters": [32, 64], "dense_units": 16}),
}

CHILD = r"""
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, keras, keras_vae
case, data_dir, mode = json.loads(sys.argv[1])
architecture, latent_dim, options = case
train = np.load(os.path.join(sys.argv[2], "train.npy")); valid = np.load(os.path.join(sys.argv[2], "valid.npy"))
keras.utils.set_random_seed(0)
vae = keras_vae.build_vae((28, 28, 1), latent_dim, architecture=architecture, seed=0, **options)
vae.compile(optimizer=keras.optimizers.Adam(1e-3))
times = []
class Timer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None): self.t = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None): times.append(time.perf_counter() - self.t)
epochs = 2 if mode == "throughput" else 5
vae.fit(train, epochs=epochs, batch_size=128, verbose=0, callbacks=[Timer()], shuffle=True)
out = {"images_per_s": len(train) / times[-1]}
if mode == "nll":
    log_px = keras_vae.iwae_bound(vae, valid[:1000], num_samples=1000, chunk_size=250, seed=0)
    out["nll"] = float(-np.mean(log_px))
print("RESULT " + json.dumps(out))
"""


def run(tree, case, data_dir, mode, cache):
    env = {**os.environ, "PYTHONPATH": os.path.abspath(tree)}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps([case, data_dir, mode]), cache],
                          cwd=os.path.abspath(tree), env=env, capture_output=True, text=True, timeout=1800)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{tree} {mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", default=".")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--out", default=os.path.join(RESULTS_DIR, "before_after.json"))
    args = parser.parse_args()
    import numpy as np

    cache = os.path.join(RESULTS_DIR, "binarized_mnist_cache")
    os.makedirs(cache, exist_ok=True)
    for split in ("train", "valid"):
        path = os.path.join(cache, f"{split}.npy")
        if not os.path.exists(path):
            source = os.path.join(args.data_dir, "binarized_mnist", f"binarized_mnist_{split}.amat")
            np.save(path, np.loadtxt(source, dtype=np.float32).reshape(-1, 28, 28, 1))
    data_dir = os.path.abspath(args.data_dir)
    rows = []
    jobs = [(name, "throughput") for name in args.cases]
    jobs += [("mlp-784-400-20", "nll")] if "mlp-784-400-20" in args.cases else []
    for name, mode in jobs:
        results = {"before": [], "after": []}
        for _ in range(args.repeats if mode == "throughput" else 1):
            for side in ("before", "after"):  # interleaved
                results[side].append(run(getattr(args, side), CASES[name], data_dir, mode, cache))
        row = {"case": name, "mode": mode}
        for side in results:
            row[f"{side}_images_per_s"] = statistics.median(r["images_per_s"] for r in results[side])
            row[f"{side}_best_images_per_s"] = max(r["images_per_s"] for r in results[side])
            row[f"{side}_runs"] = [round(r["images_per_s"]) for r in results[side]]
            if mode == "nll":
                row[f"{side}_nll"] = results[side][0]["nll"]
        row["ratio_after_before"] = row["after_images_per_s"] / row["before_images_per_s"]
        # The machine's speed flips between modes run to run: the best runs compare like with like.
        row["ratio_of_bests"] = row["after_best_images_per_s"] / row["before_best_images_per_s"]
        rows.append(row)
        print(json.dumps(row))
    print(f"\n{'case':<26}{'mode':<12}{'before img/s':>14}{'after img/s':>14}{'ratio':>8}{'of bests':>10}"
          f"{'NLL before':>12}{'NLL after':>11}")
    for r in rows:
        nll = f"{r.get('before_nll', float('nan')):>12.2f}{r.get('after_nll', float('nan')):>11.2f}"
        print(f"{r['case']:<26}{r['mode']:<12}{r['before_images_per_s']:>14.0f}{r['after_images_per_s']:>14.0f}"
              f"{r['ratio_after_before']:>8.2f}{r['ratio_of_bests']:>10.2f}{nll}")
    from bench_common import machine

    write_result(args.out, {"machine": machine(), "repeats": args.repeats, "rows": rows})


if __name__ == "__main__":
    main()
