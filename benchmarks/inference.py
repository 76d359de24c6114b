"""Decoding latency and throughput: the Keras model, its SavedModel and each TFLite variant (1 and 2 threads).

Exports a VAE (``--model RUN_DIR_OR_.keras``, or by default an untrained convolutional VAE for
28x28x1 images with ``--latent-dim`` codes: latency does not depend on the weights) with all four
TFLite variants, then times the decode path (``z -> images``) at each batch size: the median of
repeated calls after a warm-up, and images/s = batch / median. Keras is ``model.decode(z)`` (eager),
SavedModel is its ``serving_default`` signature, TFLite is the ``decode`` signature run with
ai_edge_litert. Prints a table and writes JSON (with file sizes) under benchmarks/results/.

Usage:

    python benchmarks/inference.py                          # about 2 minutes on 2 CPU cores
    python benchmarks/inference.py --model runs/mnist --batch-sizes 1 64
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the project root, for `export`


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="run directory or .keras file (default: an untrained conv VAE)")
    parser.add_argument("--latent-dim", type=int, default=16, help="latent size of the default model")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 256])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="TFLite interpreter threads")
    parser.add_argument("--min-seconds", type=float, default=0.5, help="timing budget per measurement")
    parser.add_argument("--min-repeats", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "inference.json"))
    args = parser.parse_args(argv)
    if min(args.batch_sizes) < 1 or min(args.threads) < 1 or args.min_repeats < 1 or args.latent_dim < 1:
        parser.error("batch sizes, threads, --min-repeats and --latent-dim must be >= 1")
    return args


def median_seconds(fn, min_seconds, min_repeats):
    """Median wall time of ``fn()`` over at least ``min_repeats`` calls and ``min_seconds``, after 2 warm-up calls."""
    fn()
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), len(times)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    import keras_vae
    from keras_vae.export.saved_model import export_model
    from keras_vae.export.tflite import TFLiteModel

    if args.model:
        model = keras_vae.load_vae(args.model, compile=False)
        model_name = os.path.abspath(args.model)
    else:
        model = keras_vae.build_vae((28, 28, 1), args.latent_dim, architecture="conv", seed=0)
        model_name = f"untrained conv VAE 28x28x1, latent_dim={args.latent_dim} (build_vae defaults)"

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = export_model(model, base_dir=tmp, name="vae", tflite=True)
        export_seconds = time.perf_counter() - started
        signature = tf.saved_model.load(result.saved_model_dir).signatures["serving_default"]
        sizes = {"saved_model": sum(
            os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(result.saved_model_dir) for f in files
        )}
        sizes.update({variant: os.path.getsize(path) for variant, path in result.tflite_paths.items()})

        backends = [("keras", None, model.decode), ("saved_model", None, lambda z: signature(z=tf.constant(z)))]
        for variant, path in result.tflite_paths.items():
            for threads in args.threads:
                backends.append((f"tflite_{variant}", threads, TFLiteModel(path, num_threads=threads).decode))

        rng = np.random.default_rng(0)
        for backend, threads, decode in backends:
            for batch in args.batch_sizes:
                z = rng.standard_normal((batch, model.latent_dim)).astype(np.float32)
                seconds, repeats = median_seconds(lambda: decode(z), args.min_seconds, args.min_repeats)
                rows.append({
                    "backend": backend,
                    "threads": threads,
                    "batch": batch,
                    "latency_ms": round(seconds * 1e3, 3),
                    "images_per_second": round(batch / seconds, 1),
                    "repeats": repeats,
                })
                print(f"{backend:>22} threads={threads or '-':>2} batch={batch:>4}: {seconds * 1e3:9.3f} ms", flush=True)

    report = {
        "benchmark": "decode latency (z -> images)",
        "model": model_name,
        "latent_dim": model.latent_dim,
        "image_shape": list(model.image_shape),
        "export_seconds": round(export_seconds, 1),
        "file_sizes_bytes": sizes,
        "results": rows,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras_vae": keras_vae.__version__,
        },
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    print_table(report, args.batch_sizes)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(f"\nWrote {args.out}")
    return 0


def print_table(report, batch_sizes):
    print(f"\nDecode latency, {report['model']} (median ms; images/s in brackets)\n")
    header = "| backend | threads | " + " | ".join(f"batch {b}" for b in batch_sizes) + " | file size |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    cells = {}
    for row in report["results"]:
        cells.setdefault((row["backend"], row["threads"]), {})[row["batch"]] = row
    sizes = report["file_sizes_bytes"]
    for (backend, threads), by_batch in cells.items():
        size = sizes.get(backend.removeprefix("tflite_"), sizes["saved_model"] if backend == "saved_model" else None)
        timing = " | ".join(
            f"{by_batch[b]['latency_ms']:.2f} ({by_batch[b]['images_per_second']:,.0f}/s)" for b in batch_sizes
        )
        size_text = f"{size / 1024:,.0f} KiB" if size else "-"
        print(f"| {backend} | {threads or 'TF default'} | {timing} | {size_text} |")


if __name__ == "__main__":
    sys.exit(main())
