"""Training step time with Keras' Adam against `keras_vae.FusedAdam`, interleaved in one process.

The pytorch/examples network (MLP 784-400-20) by default, batch 128, random binary 28x28 images; each round
times one epoch of ``--steps`` steps with each optimizer (A B A B ...). Prints a table and writes JSON.

    python benchmarks/fused_adam.py --rounds 8
"""

import argparse
import json
import os
import platform
import statistics
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50, help="steps per timed epoch")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden-units", type=int, nargs="+", default=[400])
    parser.add_argument("--latent-dim", type=int, default=20)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "fused_adam.json"))
    args = parser.parse_args(argv)

    import keras
    import numpy as np
    import tensorflow as tf

    import keras_vae

    images = (np.random.default_rng(0).random((args.batch_size * args.steps, 28, 28, 1)) > 0.5).astype("float32")
    optimizers = {"keras.optimizers.Adam": keras.optimizers.Adam, "keras_vae.FusedAdam": keras_vae.FusedAdam}
    models = {}
    for name, optimizer_class in optimizers.items():
        vae = keras_vae.build_vae((28, 28, 1), args.latent_dim, "mlp", hidden_units=tuple(args.hidden_units), seed=0)
        vae.compile(optimizer=optimizer_class(1e-3))
        vae.fit(images, batch_size=args.batch_size, epochs=1, verbose=0)  # warm-up: tracing
        models[name] = vae
    ms = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, vae in models.items():
            start = time.perf_counter()
            vae.fit(images, batch_size=args.batch_size, epochs=1, shuffle=False, verbose=0)
            ms[name].append((time.perf_counter() - start) / args.steps * 1000)
    ratios = [a / b for a, b in zip(*ms.values())]
    rows = [{"optimizer": name, "ms_per_step_median": round(statistics.median(v), 2), "ms_per_step": [round(t, 2) for t in v]}
            for name, v in ms.items()]
    print("| optimizer | ms per step (median) | rounds |")
    print("| --- | --- | --- |")
    for row in rows:
        print(f"| {row['optimizer']} | {row['ms_per_step_median']} | {' / '.join(map(str, row['ms_per_step']))} |")
    print(f"median per-round ratio Adam / FusedAdam: {statistics.median(ratios):.3f}")
    result = {"benchmark": "fused_adam", "args": vars(args), "rows": rows,
              "ratio_keras_to_fused_median": statistics.median(ratios),
              "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "tensorflow": tf.__version__,
                          "keras": keras.__version__},
              "load_average_1min": os.getloadavg()[0]}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
