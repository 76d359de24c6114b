"""Quality of the device decoder: valid NLL of the default conv VAE (transposed convolutions) against the same
VAE with ``conv_decoder(upsampling="depth_to_space")`` (or ``"resize"``), trained with the same budget.

Each model trains on the 50,000 statically binarized MNIST training images (batch 128, Adam 1e-3, seed 0,
``--epochs`` epochs), then its NLL is the importance-weighted estimate with ``--iw-samples`` samples on the
first ``--eval-examples`` valid images. The trained models are saved under
``benchmarks/results/device_decoder/<upsampling>.keras`` so `benchmarks/inference.py --model` can time them
and measure int8 parity on trained weights.

    python benchmarks/device_decoder.py                          # 5 epochs, K=1000 on 2000 images, ~25 min
    python benchmarks/device_decoder.py --epochs 10 --upsampling transpose depth_to_space resize
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from bench_common import RESULTS_DIR, machine, write_result  # noqa: E402
from peers import binarized_mnist  # noqa: E402


def build_model(upsampling, latent_dim=16, seed=0):
    """The default 28x28 conv VAE (`build_vae` defaults) with the decoder's ``upsampling``.

    >>> build_model("depth_to_space").decoder.output_shape
    (None, 28, 28, 1)
    """
    import keras_vae
    from keras_vae.networks import build_networks

    encoder, decoder = build_networks("conv", (28, 28, 1), latent_dim, latent_dim, upsampling=upsampling)
    return keras_vae.VAE(encoder, decoder, latent_dim, seed=seed)


def valid_nll(model, images, num_samples, batch=50, chunk=100):
    """Mean of -log p(x) over ``images`` (nats), the K=``num_samples`` importance-weighted estimate."""
    import numpy as np

    import keras_vae

    values = [keras_vae.iwae_bound(model, images[i:i + batch], num_samples, chunk_size=chunk, seed=0).numpy()
              for i in range(0, len(images), batch)]
    return float(-np.mean(np.concatenate(values)))


def train_and_score(upsampling, train, valid, args):
    """Trains one model; returns its row (train time, final train loss, valid NLL) and saves it."""
    import keras

    model = build_model(upsampling)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    started = time.perf_counter()
    history = model.fit(train, batch_size=128, epochs=args.epochs, shuffle=True, verbose=0)
    train_seconds = time.perf_counter() - started
    os.makedirs(os.path.join(RESULTS_DIR, "device_decoder"), exist_ok=True)
    model.save(os.path.join(RESULTS_DIR, "device_decoder", f"{upsampling}.keras"))
    started = time.perf_counter()
    nll = valid_nll(model, valid[: args.eval_examples], args.iw_samples)
    row = {"upsampling": upsampling, "epochs": args.epochs, "train_seconds": round(train_seconds, 1),
           "train_loss_last_epoch": round(float(history.history["loss"][-1]), 3),
           "valid_nll": round(nll, 3), "eval_seconds": round(time.perf_counter() - started, 1),
           "decoder_parameters": int(model.decoder.count_params())}
    print(row, flush=True)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.path.join(os.path.dirname(HERE), "..", "shared", "data"))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--iw-samples", type=int, default=1000)
    parser.add_argument("--eval-examples", type=int, default=2000)
    parser.add_argument("--upsampling", nargs="+", default=["transpose", "depth_to_space"])
    parser.add_argument("--out", default=os.path.join(RESULTS_DIR, "device_decoder.json"))
    args = parser.parse_args(argv)
    train, valid = binarized_mnist("train", args.data_dir), binarized_mnist("valid", args.data_dir)
    rows = [train_and_score(upsampling, train, valid, args) for upsampling in args.upsampling]
    print("\n| decoder upsampling | epochs | train s | train loss | valid NLL (K=%d, %d images) |" %
          (args.iw_samples, args.eval_examples))
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['upsampling']} | {r['epochs']} | {r['train_seconds']} | {r['train_loss_last_epoch']} | "
              f"{r['valid_nll']:.2f} |")
    write_result(args.out, {"benchmark": "device decoder NLL", "machine": machine(), "rows": rows,
                            "load_average_1min": os.getloadavg()[0], "args": vars(args)})


if __name__ == "__main__":
    main()
