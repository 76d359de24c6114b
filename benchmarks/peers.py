"""Training speed of this project against two peers, timed side by side on the same data and batch.

Peers, written from their published network descriptions:

- ``keras-io``: the keras.io VAE example (conv 32/64 stride 2, dense 16, latent 2) with its own
  ``train_step`` (BCE on probabilities summed over pixels, KL, Adam), as the example has it; against
  ``project-conv``, this project's `build_vae` with that network.
- ``torch-mlp``: the pytorch/examples VAE (MLP 784-400-20, BCE summed, Adam 1e-3) in a plain PyTorch CPU
  loop on 2 threads (``torch-mlp-1t``: 1 thread), when ``--torch-python`` can import torch (never a
  dependency); against ``project-mlp``.
- this project also with ``compile(steps_per_execution=20)`` (``*-spe20``) and ``jit_compile=True``
  (``project-conv-jit``, ``project-mlp-jit*``). This project's cases train with `keras_vae.FusedAdam` (what ``keras-vae train``
  uses for ``optimizer: adam``); ``project-mlp-keras-adam`` with Keras' own Adam, for the A/B of the two.
- ``*-bf16*``: this project under Keras' ``mixed_bfloat16`` policy (float32 variables, bfloat16 compute).
- ``keras-io-mlp``: the keras.io example's model and ``train_step`` with the pytorch/examples network, to
  tell what a plain Keras step of that network costs from what this project adds.

Every case runs in its own process: ``--images`` statically binarized MNIST training images (cached as .npy
under benchmarks/results/), batch 128, one warm-up epoch, then one timed epoch. The cases run interleaved
(A B A B ...) for ``--repeats`` rounds; the table gives medians, ratios to the peer, the achieved GFLOP/s
(3x the forward FLOPs per image, for forward and backward) and its share of a 2048x2048 float32 matmul peak
measured here with TensorFlow on 1 and 2 threads.

    python benchmarks/peers.py --torch-python /path/to/venv-with-torch/bin/python     # ~15 min on 2 cores
    python benchmarks/peers.py --cases project-mlp torch-mlp --repeats 3 --images 25600
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE_DIR = os.path.join(HERE, "results", "binarized_mnist_cache")
BATCH_SIZE = 128

# case: (peer it is compared with, or None for a peer itself), in the interleaving order.
CASES = {
    "project-conv": "keras-io",
    "keras-io": None,
    "project-conv-spe20": "keras-io",
    "project-conv-jit": "keras-io",
    "project-mlp": "torch-mlp",
    "torch-mlp": None,
    "torch-mlp-1t": None,  # one thread: PyTorch's OpenMP threads collapse when the 2 cores are shared
    "project-mlp-spe20": "torch-mlp",
    "project-mlp-keras-adam": "torch-mlp",
    "keras-io-mlp": "torch-mlp",  # the keras.io example's plain train_step with the MLP network
    # As the keras-vae command runs them: TensorFlow's oneDNN CPU kernels on (keras_vae/_startup.py).
    "project-conv-onednn": "keras-io",
    "project-mlp-onednn": "torch-mlp",
    # Keras' mixed_bfloat16 policy (`keras-vae train --precision mixed_bfloat16`): oneDNN runs the bfloat16
    # convolutions and products on AMX / AVX512_BF16 where the CPU has them.
    "project-conv-bf16": "keras-io",
    "project-conv-bf16-spe20": "keras-io",
    "project-mlp-bf16": "torch-mlp",
    "project-mlp-bf16-spe20": "torch-mlp",
    "project-mlp-jit": "torch-mlp",  # XLA (`--jit-compile`, allowed for the MLP on CPU)
    "project-mlp-jit-spe20": "torch-mlp",
}


def binarized_mnist(split, data_dir):
    """Statically binarized MNIST ``split`` as float32 ``[N, 28, 28, 1]``, cached as .npy under benchmarks/results.

    >>> binarized_mnist("valid", "../shared/data").shape
    (10000, 28, 28, 1)
    """
    path = os.path.join(CACHE_DIR, f"{split}.npy")
    if not os.path.exists(path):
        source = os.path.join(data_dir, "binarized_mnist", f"binarized_mnist_{split}.amat")
        os.makedirs(CACHE_DIR, exist_ok=True)
        np.save(path, np.loadtxt(source, dtype=np.float32).reshape(-1, 28, 28, 1))
    return np.load(path)


def keras_flops(model):
    """Forward FLOPs per example of a Keras model's Dense, Conv2D and Conv2DTranspose layers (2 per multiply-add).

    >>> keras_flops(keras_vae.build_vae((28, 28, 1), 20, "mlp", hidden_units=(400,)).decoder)
    643200
    """
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            total += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
        elif isinstance(layer, keras.layers.Conv2DTranspose):  # each input pixel meets the whole kernel
            total += 2 * int(np.prod(layer.input.shape[1:3])) * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.Conv2D):  # each output pixel meets the whole kernel
            total += 2 * int(np.prod(layer.output.shape[1:3])) * int(np.prod(layer.kernel.shape))
        elif hasattr(layer, "layers"):  # a nested model
            total += keras_flops(layer)
    return int(total)


# ----------------------------------------------------------------------------- the peers' networks
def keras_io_vae(network="conv"):
    """The keras.io VAE example's model: its encoder, decoder, sampling layer and ``train_step``.

    ``network="mlp"``: the same model and step with the pytorch/examples network (784-400-20) instead, a plain
    Keras ``train_step`` beside this project's MLP case.
    """
    import keras
    from keras import layers, ops

    class Sampling(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = keras.random.SeedGenerator(1337)

        def call(self, inputs):
            z_mean, z_log_var = inputs
            epsilon = keras.random.normal(shape=ops.shape(z_mean), seed=self.seed_generator)
            return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    latent_dim = 2 if network == "conv" else 20
    encoder_inputs = keras.Input(shape=(28, 28, 1))
    if network == "conv":
        x = layers.Conv2D(32, 3, activation="relu", strides=2, padding="same")(encoder_inputs)
        x = layers.Conv2D(64, 3, activation="relu", strides=2, padding="same")(x)
        x = layers.Flatten()(x)
        x = layers.Dense(16, activation="relu")(x)
    else:
        x = layers.Dense(400, activation="relu")(layers.Flatten()(encoder_inputs))
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    z = Sampling()([z_mean, z_log_var])
    encoder = keras.Model(encoder_inputs, [z_mean, z_log_var, z], name="encoder")
    latent_inputs = keras.Input(shape=(latent_dim,))
    if network == "conv":
        x = layers.Dense(7 * 7 * 64, activation="relu")(latent_inputs)
        x = layers.Reshape((7, 7, 64))(x)
        x = layers.Conv2DTranspose(64, 3, activation="relu", strides=2, padding="same")(x)
        x = layers.Conv2DTranspose(32, 3, activation="relu", strides=2, padding="same")(x)
        decoder_outputs = layers.Conv2DTranspose(1, 3, activation="sigmoid", padding="same")(x)
    else:
        x = layers.Dense(400, activation="relu")(latent_inputs)
        decoder_outputs = layers.Reshape((28, 28, 1))(layers.Dense(784, activation="sigmoid")(x))
    decoder = keras.Model(latent_inputs, decoder_outputs, name="decoder")

    class VAE(keras.Model):
        def __init__(self, encoder, decoder, **kwargs):
            super().__init__(**kwargs)
            self.encoder, self.decoder = encoder, decoder
            self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
            self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
            self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

        @property
        def metrics(self):
            return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

        def train_step(self, data):
            import tensorflow as tf

            with tf.GradientTape() as tape:
                z_mean, z_log_var, z = self.encoder(data)
                reconstruction = self.decoder(z)
                reconstruction_loss = ops.mean(
                    ops.sum(keras.losses.binary_crossentropy(data, reconstruction), axis=(1, 2))
                )
                kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
                kl_loss = ops.mean(ops.sum(kl_loss, axis=1))
                total_loss = reconstruction_loss + kl_loss
            grads = tape.gradient(total_loss, self.trainable_weights)
            self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
            self.total_loss_tracker.update_state(total_loss)
            self.reconstruction_loss_tracker.update_state(reconstruction_loss)
            self.kl_loss_tracker.update_state(kl_loss)
            return {m.name: m.result() for m in self.metrics}

    return VAE(encoder, decoder)


def project_vae(case):
    """This project's VAE for ``case``: the keras.io network (conv) or the pytorch/examples one (mlp)."""
    import keras_vae

    if case.startswith("project-conv"):
        return keras_vae.build_vae((28, 28, 1), 2, "conv", filters=(32, 64), dense_units=16, seed=0)
    return keras_vae.build_vae((28, 28, 1), 20, "mlp", hidden_units=(400,), seed=0)


def epoch_timer():
    """A Keras callback whose ``seconds`` lists each epoch's wall time."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


def keras_worker(case, images):
    """Images/s of the second epoch of ``case`` (a Keras case) and its training FLOPs per image."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    if "-bf16" in case:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = keras_io_vae("mlp" if case == "keras-io-mlp" else "conv") if case.startswith("keras-io") else project_vae(case)
    compile_args = {"steps_per_execution": 20} if case.endswith("spe20") else {}
    if "-jit" in case:
        compile_args["jit_compile"] = True  # otherwise Keras' default ("auto": no XLA on CPU), as the example
    if case.startswith("keras-io") or case.endswith("-keras-adam"):
        optimizer = keras.optimizers.Adam(1e-3)
    else:
        import keras_vae

        optimizer = keras_vae.FusedAdam(1e-3)
    model.compile(optimizer=optimizer, **compile_args)
    timer = epoch_timer()
    model.fit(images, batch_size=BATCH_SIZE, epochs=2, shuffle=True, verbose=0, callbacks=[timer])
    flops = keras_flops(model.encoder) + keras_flops(model.decoder)
    return {"images_per_s": len(images) / timer.seconds[-1], "train_flops_per_image": 3 * flops}


def torch_worker(images, threads):
    """Images/s of the second epoch of the pytorch/examples VAE in a plain PyTorch loop, and its FLOPs."""
    import torch
    import torch.nn.functional as F
    from torch import nn, optim

    torch.set_num_threads(threads)
    torch.manual_seed(1)

    class VAE(nn.Module):  # pytorch/examples vae/main.py
        def __init__(self):
            super().__init__()
            self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
            self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

        def forward(self, x):
            h1 = F.relu(self.fc1(x.view(-1, 784)))
            mu, logvar = self.fc21(h1), self.fc22(h1)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar

    model = VAE()
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    data = torch.from_numpy(images.reshape(-1, 784))
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        order = torch.randperm(len(data))
        for i in range(0, len(data), BATCH_SIZE):
            batch = data[order[i:i + BATCH_SIZE]]
            optimizer.zero_grad()
            recon, mu, logvar = model(batch)
            bce = F.binary_cross_entropy(recon, batch, reduction="sum")
            kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            (bce + kld).backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
    flops = sum(2 * m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    return {"images_per_s": len(images) / seconds[-1], "train_flops_per_image": 3 * flops,
            "torch": torch.__version__}


def matmul_peak(threads, size=2048, repeats=10):
    """GFLOP/s of a ``size`` x ``size`` float32 matmul in TensorFlow on ``threads`` threads (best of ``repeats``)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    a = tf.random.normal([size, size])
    matmul = tf.function(lambda x: tf.matmul(x, x))
    matmul(a).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def worker_main(args):
    """``--worker``: runs one case (or the matmul peak) in this process and prints ``RESULT <json>``."""
    if args.worker == "matmul":
        result = {"gflops": matmul_peak(args.threads)}
    else:
        images = binarized_mnist("train", args.data_dir)[: args.images]
        if args.worker.startswith("torch-mlp"):
            result = torch_worker(images, args.threads)
        else:
            result = keras_worker(args.worker, images)
    print("RESULT " + json.dumps(result), flush=True)


def run_worker(python, case, args, threads=2):
    """Runs ``case`` in a fresh ``python`` process; its result dict."""
    command = [python, os.path.abspath(__file__), "--worker", case, "--threads", str(threads),
               "--images", str(args.images), "--data-dir", args.data_dir]
    env = dict(os.environ)
    if case.endswith("-onednn"):
        env["TF_ENABLE_ONEDNN_OPTS"] = "1"
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{case} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def measure_peak(threads):
    """`matmul_peak` on ``threads`` threads, in a fresh process (TensorFlow fixes its threads at start-up).

    >>> measure_peak(1)   # GFLOP/s
    61.3
    """
    args = argparse.Namespace(images=0, data_dir="")
    return run_worker(sys.executable, "matmul", args, threads=threads)["gflops"]


def torch_available(python):
    """True when ``python`` can import torch."""
    if not python:
        return False
    return subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0


def summarize(case, results, peaks):
    """One table row: median images/s, the ratio to the case's peer, GFLOP/s and their share of the peak.

    Also the best round and the ratio of best rounds: on a shared machine whose speed flips between two modes
    (a neighbour on the other hyperthread), the best round is the least disturbed one.
    """
    ips = statistics.median(r["images_per_s"] for r in results[case])
    best = max(r["images_per_s"] for r in results[case])
    flops = results[case][0]["train_flops_per_image"]
    gflops = ips * flops / 1e9
    row = {"case": case, "images_per_s": round(ips, 1), "best_images_per_s": round(best, 1), "runs": [round(r["images_per_s"], 1) for r in results[case]],
           "train_mflop_per_image": round(flops / 1e6, 3), "gflop_per_s": round(gflops, 2),
           "share_of_peak_2_threads": round(gflops / peaks[2], 3), "share_of_peak_1_thread": round(gflops / peaks[1], 3)}
    peer = CASES[case]
    if peer in results:
        row["peer"] = peer
        row["ratio_to_peer"] = round(ips / statistics.median(r["images_per_s"] for r in results[peer]), 3)
        row["ratio_of_best_to_peer"] = round(best / max(r["images_per_s"] for r in results[peer]), 3)
    return row


def print_table(rows, peaks):
    print(f"\nmatmul 2048x2048 float32 peak: {peaks[1]:.1f} GFLOP/s (1 thread), {peaks[2]:.1f} GFLOP/s (2 threads)\n")
    print("| case | images/s (median) | best | peer | ratio to peer | ratio of bests | MFLOP/image/step | GFLOP/s "
          "| share of 2-thread peak |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        ratio = f"{r['ratio_to_peer']:.2f}x" if "ratio_to_peer" in r else "-"
        best_ratio = f"{r['ratio_of_best_to_peer']:.2f}x" if "ratio_of_best_to_peer" in r else "-"
        print(f"| {r['case']} | {r['images_per_s']:,.0f} | {r['best_images_per_s']:,.0f} | {r.get('peer', '-')} | "
              f"{ratio} | {best_ratio} | "
              f"{r['train_mflop_per_image']:.2f} | {r['gflop_per_s']:.1f} | {100 * r['share_of_peak_2_threads']:.0f}% |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.path.join(os.path.dirname(HERE), "..", "shared", "data"))
    parser.add_argument("--images", type=int, default=50000, help="training images per epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--torch-python", default=sys.executable, help="a Python that can import torch")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "peers.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args)
    binarized_mnist("train", args.data_dir)  # build the cache once, before the timed processes
    cases = list(args.cases)
    torch_python = args.torch_python if torch_available(args.torch_python) else None
    if torch_python is None and any(case.startswith("torch") for case in cases):
        print(f"torch is not importable from {args.torch_python}: skipping the PyTorch peer", flush=True)
        cases = [case for case in cases if not case.startswith("torch")]
    peaks = {t: measure_peak(t) for t in (1, 2)}
    results = {case: [] for case in cases}
    versions = {}
    for round_ in range(args.repeats):
        for case in cases:  # interleaved: A B A B ...
            torch_case = case.startswith("torch")
            result = run_worker(torch_python if torch_case else sys.executable, case, args,
                                threads=1 if case.endswith("-1t") else 2)
            versions.update({k: result.pop(k) for k in ("torch",) if k in result})
            results[case].append(result)
            print(f"round {round_ + 1} {case:<20} {result['images_per_s']:10,.0f} images/s", flush=True)
    peaks_after = {t: measure_peak(t) for t in (1, 2)}
    peaks = {t: max(peaks[t], peaks_after[t]) for t in peaks}
    rows = [summarize(case, results, peaks) for case in cases]
    print_table(rows, peaks)
    from bench_common import write_result

    write_result(args.out, {"benchmark": "training speed against peers", "batch_size": BATCH_SIZE,
                            "images_per_epoch": args.images, "repeats": args.repeats,
                            "matmul_peak_gflops": {str(t): round(v, 1) for t, v in peaks.items()},
                            "peer_versions": versions, "rows": rows, "machine": machine_info(),
                            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")})


def machine_info():
    """`bench_common.machine` plus the CPU model and the load average."""
    from bench_common import machine

    with open("/proc/cpuinfo") as f:
        models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    return {**machine(), "cpu_model": models[0] if models else None, "load_average": os.getloadavg()}


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    sys.exit(main())
