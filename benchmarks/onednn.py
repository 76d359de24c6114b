"""TensorFlow's oneDNN CPU kernels on and off (``TF_ENABLE_ONEDNN_OPTS``), interleaved, each run in a fresh process.

TensorFlow enables oneDNN by itself only on some x86 CPUs; the ``keras-vae`` command turns it on unless the
environment says otherwise (keras_vae/_startup.py). This measures what that changes, A B A B:

- ``make-train``: the `make train` model (configs/sprites_quick.yaml), ms per training step of its batch of 64
  on rendered sprites (``--steps`` steps after 20 of warm-up);
- ``project-conv``, ``keras-io``, ``project-mlp``: images/s of the second epoch of `benchmarks/peers.py`'s
  cases (this project with the keras.io network, the keras.io example's own `train_step`, this project with the
  pytorch/examples MLP) on ``--images`` binarized MNIST images.

    python benchmarks/onednn.py --repeats 3
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from bench_common import RESULTS_DIR, machine, write_result  # noqa: E402

CASES = ("make-train", "project-conv", "keras-io", "project-mlp")


def make_train_step_ms(steps):
    """ms per training step of the `make train` model (run in the child process)."""
    from keras_vae.training import data
    from keras_vae.training.build import build_model, make_optimizer
    from keras_vae.training.config import load_config

    config = load_config(os.path.join(os.path.dirname(HERE), "configs", "sprites_quick.yaml"))
    model = build_model(config)
    model.compile(optimizer=make_optimizer(config))
    train = data.get_dataset("sprites", "train", batch_size=config.batch_size, shuffle=True, seed=0).repeat()
    model.fit(train, steps_per_epoch=20, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(train, steps_per_epoch=steps, epochs=1, verbose=0)
    return 1000 * (time.perf_counter() - start) / steps


def run(case, onednn, args):
    """The case's figure in a fresh process with ``TF_ENABLE_ONEDNN_OPTS`` set to ``onednn``."""
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if case == "make-train":
        command = [sys.executable, os.path.abspath(__file__), "--child", "--steps", str(args.steps)]
    else:
        command = [sys.executable, os.path.join(HERE, "peers.py"), "--worker", case, "--images", str(args.images),
                   "--data-dir", args.data_dir]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{case} (oneDNN {onednn}) failed:\n{proc.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    return result["ms_per_step"] if case == "make-train" else result["images_per_s"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100, help="timed steps of the make-train case")
    parser.add_argument("--images", type=int, default=12800, help="MNIST images per epoch of the peers' cases")
    parser.add_argument("--data-dir", default=os.path.join(os.path.dirname(HERE), "..", "shared", "data"))
    parser.add_argument("--out", default=os.path.join(RESULTS_DIR, "onednn.json"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps({"ms_per_step": make_train_step_ms(args.steps)}), flush=True)
        return
    figures = {(case, flag): [] for case in args.cases for flag in ("0", "1")}
    for round_ in range(args.repeats):
        for case in args.cases:
            for flag in ("0", "1"):
                figures[case, flag].append(run(case, flag, args))
                print(f"round {round_ + 1} {case} oneDNN={flag}: {figures[case, flag][-1]:.1f}", flush=True)
    rows = []
    print("\n| case | unit | oneDNN off (runs) | oneDNN on (runs) | speed-up of the medians |")
    print("| --- | --- | --- | --- | --- |")
    for case in args.cases:
        off, on = figures[case, "0"], figures[case, "1"]
        unit = "ms per step" if case == "make-train" else "images/s"
        speedup = statistics.median(off) / statistics.median(on) if case == "make-train" else (
            statistics.median(on) / statistics.median(off))
        rows.append({"case": case, "unit": unit, "off": off, "on": on, "speedup": speedup})
        print(f"| {case} | {unit} | {' / '.join(f'{v:.1f}' for v in off)} | {' / '.join(f'{v:.1f}' for v in on)} "
              f"| {speedup:.2f}x |")
    write_result(args.out, {"machine": machine(), "repeats": args.repeats, "steps": args.steps,
                            "images": args.images, "rows": rows})


if __name__ == "__main__":
    main()
