"""What the data checks cost `fit` on a tf.data pipeline: steps/s with and without the in-step checks, interleaved.

Two identical models train on the same pipeline (random binary 28x28 images, batched, prefetched): "checked" is
the model as shipped (pixel range and label checks in every step, `keras_vae.data_checks.graph_checked`);
"unchecked" was traced with that function replaced by the identity. Each round times one epoch of ``--steps``
steps of each (A B A B ...). Also timed: the up-front check of the dataset (its element_spec), and what a peek at
the first batch (``ds.take(1)``) would cost on this pipeline and on one with a 10,000-image shuffle buffer, the
reason the values of a dataset are checked in the step rather than peeked. Prints a table and writes JSON.

    python benchmarks/input_checks_cost.py --rounds 8
    python benchmarks/input_checks_cost.py --architecture conv --steps 20
"""

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def _seconds(fn, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50, help="steps per timed epoch")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--architecture", default="mlp", choices=["mlp", "conv"])
    parser.add_argument("--out", default=os.path.join(HERE, "results", "input_checks_cost.json"))
    args = parser.parse_args(argv)
    for flag in ("rounds", "steps", "batch_size"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")

    import numpy as np
    import tensorflow as tf

    import keras_vae
    from bench_common import machine, write_result
    from keras_vae import data_checks

    n = args.batch_size * args.steps
    images = (np.random.default_rng(0).random((n, 28, 28, 1)) > 0.5).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(args.batch_size).prefetch(tf.data.AUTOTUNE)
    options = {"hidden_units": (400,)} if args.architecture == "mlp" else {}

    def model():
        vae = keras_vae.build_vae((28, 28, 1), 20, args.architecture, seed=0, **options)
        vae.compile(optimizer="adam")
        return vae

    checked = model()
    checked.fit(dataset, epochs=1, verbose=0)  # traced with the checks
    unchecked = model()
    shipped = data_checks.graph_checked
    data_checks.graph_checked = lambda images, *rest: images
    try:
        unchecked.fit(dataset, epochs=1, verbose=0)  # traced without them; the trace is kept
    finally:
        data_checks.graph_checked = shipped
    models = {"checked": checked, "unchecked": unchecked}
    ms = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, vae in models.items():
            start = time.perf_counter()
            vae.fit(dataset, epochs=1, verbose=0)
            ms[name].append((time.perf_counter() - start) / args.steps * 1000)
    ratios = [a / b for a, b in zip(ms["checked"], ms["unchecked"])]

    upfront_ms = _seconds(lambda: data_checks.checked_input(checked, dataset, None, "fit")) * 1000
    shuffled = tf.data.Dataset.from_tensor_slices(np.repeat(images, -(-10_000 // n), axis=0)[:10_000]).shuffle(
        10_000).batch(args.batch_size)
    peek_ms = _seconds(lambda: next(iter(dataset.take(1)))) * 1000
    peek_shuffled_ms = _seconds(lambda: next(iter(shuffled.take(1)))) * 1000

    rows = [{"model": name, "ms_per_step_median": round(statistics.median(v), 3), "ms_per_step_min": round(min(v), 3),
             "steps_per_s_median": round(1000 / statistics.median(v), 1), "ms_per_step": [round(t, 3) for t in v]}
            for name, v in ms.items()]
    print(f"{args.architecture}, batch {args.batch_size}, {args.steps} steps per epoch, {args.rounds} rounds")
    print("| model | ms per step (median) | ms per step (min) | steps/s (median) | rounds (ms per step) |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['model']} | {row['ms_per_step_median']} | {row['ms_per_step_min']} | "
              f"{row['steps_per_s_median']} | "
              f"{' / '.join(map(str, row['ms_per_step']))} |")
    ratio = statistics.median(ratios)
    min_ratio = min(ms["checked"]) / min(ms["unchecked"])
    print(f"median per-round ratio checked / unchecked: {ratio:.3f}; ratio of the fastest rounds: {min_ratio:.3f}")
    print(f"up-front check of the dataset (element_spec): {upfront_ms:.2f} ms once per fit")
    print(f"a ds.take(1) peek, not done: {peek_ms:.1f} ms on this pipeline, {peek_shuffled_ms:.1f} ms with a "
          "10,000-image shuffle buffer")
    write_result(args.out, {
        "benchmark": "input_checks_cost", "args": vars(args), "rows": rows,
        "ratio_checked_to_unchecked_median": round(ratio, 4), "ratios": [round(r, 4) for r in ratios],
        "ratio_checked_to_unchecked_min": round(min_ratio, 4),
        "upfront_check_ms": round(upfront_ms, 3), "take1_peek_ms": round(peek_ms, 2),
        "take1_peek_shuffle_10000_ms": round(peek_shuffled_ms, 2),
        "machine": machine(), "load_average_1min": os.getloadavg()[0]})


if __name__ == "__main__":
    main()
