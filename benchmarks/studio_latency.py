"""Latent Studio's slider round trip: one decode request over local HTTP, as the page sends it, for a 64x64 decoder.

Exports a convolutional 64x64x1 VAE (the `make train` architecture; weights do not change the time),
serves it with the studio server on 127.0.0.1, and times ``POST :predict`` (``serving_default``, one
code, the page's JSON body) on a kept-alive connection, as the browser's fetch does. Also times the
8-image decode of an interpolation strip and the 16-image ``sample`` of the grid. Target: a slider
round trip under 100 ms.

Example:

    .venv/bin/python benchmarks/studio_latency.py --requests 200
"""

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import RESULTS_DIR, machine, write_result  # noqa: E402

TARGET_MS = 100.0
LATENT_DIM = 10


def timed_requests(port, body, count, warmup=10):
    """Milliseconds of ``count`` POSTs of ``body`` to the model's :predict on one kept-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times = []
    for i in range(warmup + count):
        start = time.perf_counter()
        connection.request("POST", "/v1/models/studio:predict", body=body)
        response = connection.getresponse()
        data = response.read()
        elapsed = 1000.0 * (time.perf_counter() - start)
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {data[:200]!r}")
        if i >= warmup:
            times.append(elapsed)
    connection.close()
    return np.asarray(times)


def summary(times):
    return {"mean_ms": float(times.mean()), "p50_ms": float(np.percentile(times, 50)),
            "p95_ms": float(np.percentile(times, 95)), "max_ms": float(times.max()), "requests": int(len(times))}


def cases(rng):
    """(name, request body) of the page's requests: a slider move, an interpolation strip, the sample grid."""
    def decode(n):
        codes = rng.standard_normal((n, LATENT_DIM)).round(4).tolist()
        return json.dumps({"signature_name": "serving_default", "inputs": {"z": codes}})

    grid = json.dumps({"signature_name": "sample", "inputs": {"num_samples": 16, "temperature": 1.0, "seed": 0}})
    return [("slider: decode 1 code", decode(1)), ("interpolation: decode 8 codes", decode(8)),
            ("grid: sample 16 images", grid)]


def serve_model(folder):
    """The studio server on a free port for a freshly exported 64x64 convolutional VAE."""
    import keras_vae
    from keras_vae.export.saved_model import export_model
    from keras_vae.export.studio import make_studio_server

    model = keras_vae.build_vae((64, 64, 1), LATENT_DIM, architecture="conv", filters=(16, 32), dense_units=128, seed=0)
    result = export_model(model, base_dir=folder, name="studio", with_encoder=True)
    server = make_studio_server(result.model_dir, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="timed requests per case")
    parser.add_argument("--out", default=os.path.join(RESULTS_DIR, "studio_latency.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        server = serve_model(folder)
        try:
            rows = [(name, summary(timed_requests(server.server_port, body, args.requests)))
                    for name, body in cases(np.random.default_rng(0))]
        finally:
            server.close()
    print(f"\n{'request':32s} {'mean':>8s} {'p50':>8s} {'p95':>8s} {'max':>8s}  (ms, {args.requests} requests)")
    for name, row in rows:
        print(f"{name:32s} {row['mean_ms']:8.1f} {row['p50_ms']:8.1f} {row['p95_ms']:8.1f} {row['max_ms']:8.1f}")
    slider = rows[0][1]
    verdict = "meets" if slider["p95_ms"] < TARGET_MS else "misses"
    print(f"slider round trip p95 {slider['p95_ms']:.1f} ms {verdict} the {TARGET_MS:.0f} ms target")
    write_result(args.out, {"machine": machine(), "image_shape": [64, 64, 1], "latent_dim": LATENT_DIM,
                            "target_ms": TARGET_MS, "cases": dict(rows)})


if __name__ == "__main__":
    main()
