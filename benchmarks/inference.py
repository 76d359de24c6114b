"""Decoding latency and throughput: the Keras model, its SavedModel and each TFLite variant (1 and 2 threads).

Exports a VAE (``--model RUN_DIR_OR_.keras``, or by default an untrained convolutional VAE for
28x28x1 images with ``--latent-dim`` codes and ``--upsampling``: latency does not depend on the weights)
with all four TFLite variants, then times the decode path (``z -> images``) at each batch size: the median
of repeated calls after a warm-up, and images/s = batch / median. Keras is ``model.decode(z)`` (eager),
SavedModel is its ``serving_default`` signature; TFLite (ai_edge_litert) is `TFLiteModel.decode`, which
runs the fixed-batch signatures (``decode_1``/``_8``/``_64``), and ``..._dynamic`` is the dynamic-batch
``decode`` signature called directly, as before those existed. The backends are timed interleaved for
``--rounds`` rounds (medians of the rounds' medians), since the machine is shared.

It also reports the decoder's FLOPs per image, the achieved GFLOP/s against a one-thread 2048x2048 float32
matmul peak measured here (`peers.measure_peak`), and each quantized variant's parity with float32 (mean
and max abs pixel difference on 1000 prior codes). Prints tables and writes JSON under benchmarks/results/.

Usage:

    python benchmarks/inference.py                          # about 3 minutes on 2 CPU cores
    python benchmarks/inference.py --upsampling depth_to_space --threads 1 --batch-sizes 1 64
    python benchmarks/inference.py --model benchmarks/results/device_decoder/depth_to_space.keras
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
sys.path.insert(0, HERE)

from peers import keras_flops, measure_peak  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="run directory or .keras file (default: an untrained conv VAE)")
    parser.add_argument("--latent-dim", type=int, default=16, help="latent size of the default model")
    parser.add_argument("--upsampling", default="transpose", choices=("transpose", "resize", "depth_to_space"),
                        help="decoder upsampling of the default model")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 256])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="TFLite interpreter threads")
    parser.add_argument("--backends", nargs="+", default=["keras", "saved_model", "tflite", "tflite_dynamic"],
                        choices=["keras", "saved_model", "tflite", "tflite_dynamic"])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds over all backends")
    parser.add_argument("--min-seconds", type=float, default=0.3, help="timing budget per measurement")
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


def load_model(args):
    """The VAE to time and its description: ``--model``, or an untrained default conv VAE."""
    import keras_vae
    from keras_vae.networks import build_networks

    if args.model:
        return keras_vae.load_vae(args.model, compile=False), os.path.abspath(args.model)
    encoder, decoder = build_networks("conv", (28, 28, 1), args.latent_dim, args.latent_dim,
                                      upsampling=args.upsampling)
    model = keras_vae.VAE(encoder, decoder, args.latent_dim, seed=0)
    return model, f"untrained conv VAE 28x28x1, latent_dim={args.latent_dim}, upsampling={args.upsampling}"


def tflite_backends(paths, threads, kinds):
    """``[(backend, threads, decode)]`` for each variant: `TFLiteModel.decode` and/or the dynamic signature."""
    from keras_vae.export.tflite import TFLiteModel

    backends = []
    for variant, path in paths.items():
        for count in threads:
            model = TFLiteModel(path, num_threads=count)
            if "tflite" in kinds:
                backends.append((f"tflite_{variant}", count, model.decode))
            if "tflite_dynamic" in kinds:
                dynamic = model.interpreter.get_signature_runner("decode")
                backends.append((f"tflite_{variant}_dynamic", count, lambda z, run=dynamic: run(z=z)["images"]))
    return backends


def parity(paths, model):
    """``{variant: {"mean_abs_diff", "max_abs_diff"}}`` of each TFLite variant against float32, 1000 prior codes."""
    from keras_vae.export.tflite import TFLiteModel

    z = np.asarray(model.prior.sample(1000, temperature=1.0, seed=(7, 7)), np.float32)
    reference = TFLiteModel(paths["float32"]).decode(z)
    result = {}
    for variant, path in paths.items():
        difference = np.abs(TFLiteModel(path).decode(z) - reference)
        result[variant] = {"mean_abs_diff": float(difference.mean()), "max_abs_diff": float(difference.max())}
    return result


def time_backends(backends, args, latent_dim):
    """One row per (backend, threads, batch): the median over ``--rounds`` interleaved rounds."""
    rng = np.random.default_rng(0)
    codes = {b: rng.standard_normal((b, latent_dim)).astype(np.float32) for b in args.batch_sizes}
    seconds = {}
    for round_ in range(args.rounds):
        for backend, threads, decode in backends:
            for batch in args.batch_sizes:
                median, _ = median_seconds(lambda: decode(codes[batch]), args.min_seconds, args.min_repeats)
                seconds.setdefault((backend, threads, batch), []).append(median)
        print(f"round {round_ + 1}/{args.rounds} done", flush=True)
    rows = []
    for (backend, threads, batch), values in seconds.items():
        median = float(np.median(values))
        rows.append({"backend": backend, "threads": threads, "batch": batch, "latency_ms": round(median * 1e3, 4),
                     "ms_per_image": round(median * 1e3 / batch, 4), "images_per_second": round(batch / median, 1),
                     "rounds_ms": [round(v * 1e3, 4) for v in values]})
    return rows


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    import keras_vae
    from keras_vae.export.saved_model import export_model

    model, model_name = load_model(args)
    decoder_flops = keras_flops(model.decoder)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = export_model(model, base_dir=tmp, name="vae", tflite=True)
        export_seconds = time.perf_counter() - started
        signature = tf.saved_model.load(result.saved_model_dir).signatures["serving_default"]
        sizes = {"saved_model": sum(
            os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(result.saved_model_dir) for f in files
        )}
        sizes.update({variant: os.path.getsize(path) for variant, path in result.tflite_paths.items()})
        backends = []
        if "keras" in args.backends:
            backends.append(("keras", None, model.decode))
        if "saved_model" in args.backends:
            backends.append(("saved_model", None, lambda z: signature(z=tf.constant(z))))
        backends += tflite_backends(result.tflite_paths, args.threads, args.backends)
        rows = time_backends(backends, args, model.latent_dim)
        parities = parity(result.tflite_paths, model)
    peak = measure_peak(1)
    for row in rows:
        row["gflop_per_s"] = round(decoder_flops * row["images_per_second"] / 1e9, 2)
    report = {
        "benchmark": "decode latency (z -> images)",
        "model": model_name,
        "latent_dim": model.latent_dim,
        "image_shape": list(model.image_shape),
        "decoder_mflop_per_image": round(decoder_flops / 1e6, 3),
        "matmul_peak_gflops_1_thread": round(peak, 1),
        "one_thread_flop_limit_ms_per_image": round(decoder_flops / peak / 1e6, 4),
        "export_seconds": round(export_seconds, 1),
        "file_sizes_bytes": sizes,
        "parity_vs_float32": parities,
        "results": rows,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg(),
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
    print(f"\nDecode latency, {report['model']}: {report['decoder_mflop_per_image']} MFLOP/image; one-thread matmul "
          f"peak {report['matmul_peak_gflops_1_thread']} GFLOP/s, so at least "
          f"{report['one_thread_flop_limit_ms_per_image']} ms/image on one thread\n")
    print("(median ms per call; ms per image and GFLOP/s in brackets)\n")
    header = "| backend | threads | " + " | ".join(f"batch {b}" for b in batch_sizes) + " | file size |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    cells = {}
    for row in report["results"]:
        cells.setdefault((row["backend"], row["threads"]), {})[row["batch"]] = row
    sizes = report["file_sizes_bytes"]
    for (backend, threads), by_batch in cells.items():
        variant = backend.removeprefix("tflite_").removesuffix("_dynamic")
        size = sizes.get(variant, sizes["saved_model"] if backend == "saved_model" else None)
        timing = " | ".join(
            f"{by_batch[b]['latency_ms']:.3f} ({by_batch[b]['ms_per_image']:.3f}; {by_batch[b]['gflop_per_s']:.0f})"
            for b in batch_sizes
        )
        size_text = f"{size / 1024:,.0f} KiB" if size else "-"
        print(f"| {backend} | {threads or 'TF default'} | {timing} | {size_text} |")
    print("\n| variant | mean abs diff vs float32 | max abs diff |\n| --- | --- | --- |")
    for variant, p in report["parity_vs_float32"].items():
        print(f"| {variant} | {p['mean_abs_diff']:.2e} | {p['max_abs_diff']:.2e} |")


if __name__ == "__main__":
    sys.exit(main())
