"""Training throughput (images/s) of the MLP and conv configs: with and without jit_compile, on the default
strategy and on MirroredStrategy over 2 logical CPUs.

Data are fixed in-memory batches (input pipeline excluded). Each case runs one warm-up epoch (tracing,
compilation) and reports the timed epochs after it.

    python benchmarks/train_throughput.py                 # table + benchmarks/results/train_throughput.json
    python benchmarks/train_throughput.py --steps 50 --batch-size 128
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

# Two logical CPUs for MirroredStrategy; must happen before TensorFlow initializes its devices.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import keras_vae  # noqa: E402
from bench_common import RESULTS_DIR, machine, write_result  # noqa: E402
from keras_vae.training.config import load_config  # noqa: E402
from keras_vae.training.strategies import make_strategy  # noqa: E402
from keras_vae.training.build import make_optimizer  # noqa: E402

CASES = {
    # name: (image shape, architecture, latent_dim, network options)
    "mlp-28x28": ((28, 28, 1), "mlp", 50, {"hidden_units": (512, 256)}),
    "conv-64x64": ((64, 64, 1), "conv", 10, {"filters": (32, 64), "dense_units": 256}),
}


class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = getattr(self, "seconds", []) + [time.perf_counter() - self._start]


def measure(case, jit, strategy_name, batch_size, steps, epochs):
    shape, architecture, latent_dim, options = CASES[case]
    strategy = make_strategy(strategy_name)
    if jit and strategy.num_replicas_in_sync > 1:
        return {"images_per_second": None, "note": "not supported (XLA over several local devices)"}
    config = load_config(None, {"learning_rate": 1e-3})
    with strategy.scope():
        vae = keras_vae.build_vae(shape, latent_dim, architecture, seed=0, **options)
        vae.compile(optimizer=make_optimizer(config), jit_compile=jit)
    images = (np.random.RandomState(0).rand(batch_size * 4, *shape) > 0.8).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices(images).batch(batch_size, drop_remainder=True).cache().repeat()
    timer = EpochTimer()
    vae.fit(data, epochs=epochs + 1, steps_per_epoch=steps, callbacks=[timer], shuffle=False, verbose=0)
    timed = timer.seconds[1:]
    return {"images_per_second": round(batch_size * steps * len(timed) / sum(timed), 1),
            "seconds_per_epoch": [round(s, 3) for s in timed]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=15, help="steps per timed epoch")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs (after one warm-up epoch)")
    parser.add_argument("--out", default=os.path.join(RESULTS_DIR, "train_throughput.json"))
    args = parser.parse_args(argv)

    rows = []
    for case in CASES:
        for strategy_name in ("default", "mirrored"):
            for jit in (False, True):
                result = measure(case, jit, strategy_name, args.batch_size, args.steps, args.epochs)
                rows.append({"config": case, "strategy": strategy_name, "jit_compile": jit, **result})
                ips = result["images_per_second"]
                print(f"{case:<12} {strategy_name:<9} jit={str(jit):<5} "
                      f"{'n/a' if ips is None else f'{ips:9.1f}'} images/s  {result.get('note', '')}", flush=True)

    print("\n| config | strategy | jit_compile | images/s |\n| --- | --- | --- | --- |")
    for row in rows:
        ips = row["images_per_second"]
        print(f"| {row['config']} | {row['strategy']} | {row['jit_compile']} | "
              f"{row.get('note', 'n/a') if ips is None else ips} |")
    result = {
        "benchmark": "train_throughput",
        "batch_size": args.batch_size,
        "steps_per_epoch": args.steps,
        "timed_epochs": args.epochs,
        "machine": machine(),
        "rows": rows,
    }
    write_result(args.out, result)


if __name__ == "__main__":
    main()
