"""How `make train`'s shapes improve with its training length: one run continued in stages, scored at each.

Trains ``--config`` (default `make train`'s, configs/sprites_quick.yaml) in one run directory to the cumulative
epoch counts of ``--stages``, each stage a ``keras-vae train`` that resumes the previous one (the learning rate
is constant, so a stage's model is the run of its epoch count; the first stage is `make train`'s run), with its
gmm sampler fitted at the end as `make train` does. Each stage's ``best.keras`` is kept, scored by
benchmarks/shape_fidelity.py's shape classifier (reconstructions named correctly per shape; samples and
reconstructions named a shape with >= 0.9 confidence) and drawn as a 36-sample gmm grid (seed 0). Prints a table
with each stage's wall time and writes JSON and the grids.

    python benchmarks/make_train_budget.py --stages 25 50 100
"""

import argparse
import os
import subprocess
import sys
import time
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

from bench_common import RESULTS_DIR, machine, write_result  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, nargs="+", default=[25, 50, 100],
                        help="cumulative epoch counts, increasing (make train: 25)")
    parser.add_argument("--config", default=os.path.join(ROOT, "configs", "sprites_quick.yaml"))
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                        help="a further keras-vae train --set for every stage")
    parser.add_argument("--examples", type=int, default=1000, help="reconstructions and samples scored per stage")
    parser.add_argument("--work-dir", default=os.path.join(RESULTS_DIR, "make_train_budget"),
                        help="run directory, stage models and grids")
    parser.add_argument("--classifier-dir", default=os.path.join(RESULTS_DIR, "shape_fidelity"),
                        help="where shape_fidelity.py caches its shape classifier")
    parser.add_argument("--out", default=os.path.join(RESULTS_DIR, "make_train_budget.json"))
    args = parser.parse_args(argv)
    if any(b <= a for a, b in zip(args.stages, args.stages[1:])) or args.stages[0] < 1:
        parser.error(f"--stages must be increasing epoch counts >= 1, got {args.stages}")
    if not os.path.isfile(args.config):
        parser.error(f"no such config file: {args.config}")
    if args.examples < 36:
        parser.error("--examples must be >= 36")
    return args


def train_stage(args, run_dir, epochs):
    """Runs (or resumes) the run to ``epochs`` epochs; returns its wall seconds."""
    command = [sys.executable, "-m", "keras_vae", "train", "--config", args.config, "--run-dir", run_dir,
               "--epochs", str(epochs), "--set", "eval_sample_quality=0", "--set", "eval_iw_samples=0"]
    for assignment in args.assignments:
        command += ["--set", assignment]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def save_grid(model, path):
    import keras
    import numpy as np

    from keras_vae.images import image_grid
    from keras_vae.atomic_files import atomic_write

    grid = image_grid(np.asarray(model.sample(36, seed=0, sampler="gmm")), columns=6)
    atomic_write(path, lambda temp: keras.utils.save_img(temp, grid, file_format="png"))


def main(argv=None):
    args = parse_args(argv)
    import shutil

    import numpy as np

    import keras_vae
    import shape_fidelity
    from keras_vae.training import data, sprites
    from keras_vae.atomic_files import atomic_write
    from keras_vae.training.run_dir import read_history

    run_dir = os.path.join(args.work_dir, "run")
    os.makedirs(args.work_dir, exist_ok=True)
    stages = []
    for epochs in args.stages:
        seconds = train_stage(args, run_dir, epochs)
        model_path = os.path.join(args.work_dir, f"epochs_{epochs}.keras")
        atomic_write(model_path, lambda temp: shutil.copyfile(os.path.join(run_dir, "best.keras"), temp))
        history = read_history(os.path.join(run_dir, "history.csv"))
        stages.append({"epochs": epochs, "stage_seconds": round(seconds, 1), "model": model_path,
                       "best_val_elbo": round(max(row["val_elbo"] for row in history), 2)})
        print(f"stage to {epochs} epochs: {seconds:.0f} s, best valid ELBO {stages[-1]['best_val_elbo']}", flush=True)

    clf, clf_info = shape_fidelity.shape_classifier(args.classifier_dir)
    print(f"shape classifier: held-out accuracy {clf_info['held_out_accuracy']:.3f}")
    rng = np.random.default_rng(1)
    factors = np.stack([rng.integers(0, size, args.examples) for size in sprites.FACTOR_SIZES], 1).astype("int32")
    real = sprites.render_sprites(factors).numpy()
    train_images, _ = data.load_examples("sprites", "train", count=5000, shuffle=True, seed=0)
    score_args = SimpleNamespace(gmm_components=100, covariance_type="diag", refit_gmm=False, seed=0,
                                 examples=args.examples, temperature=1.0)  # the run's own gmm is scored
    total = 0.0
    for stage in stages:
        stage.update(shape_fidelity.score_model(stage["model"], clf, factors, real, train_images, score_args))
        stage["grid"] = os.path.join(args.work_dir, f"gmm_samples_{stage['epochs']}.png")
        save_grid(keras_vae.load_vae(stage["model"], compile=False), stage["grid"])
        total += stage["stage_seconds"]
        stage["cumulative_minutes"] = round(total / 60, 2)

    print("\n| epochs | minutes (cumulative) | best valid −ELBO | reconstructions named right: all / square / ellipse"
          " / heart | reconstructions confidently square / ellipse / heart | gmm samples confidently square /"
          " ellipse / heart |")
    print("| --- | --- | --- | --- | --- | --- |")
    for s in stages:
        cells = [" / ".join(f"{v:.3f}" for v in s[key].values())
                 for key in ("reconstruction_accuracy", "reconstructions_confident", "gmm_confident")]
        print(f"| {s['epochs']} | {s['cumulative_minutes']:.1f} | {-s['best_val_elbo']:.1f} | " + " | ".join(cells)
              + " |")
    write_result(args.out, {"machine": machine(), "config": args.config, "sets": args.assignments,
                            "classifier": clf_info, "examples": args.examples, "stages": stages})


if __name__ == "__main__":
    main()
