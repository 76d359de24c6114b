"""How fast does a decoder learn to draw sprites when it is given their true factors?

`make train`'s samples lose the squares' corners and the hearts' notch. This benchmark separates the decoder from
the rest of the VAE: each decoder (`keras_vae.conv_decoder` with an ``upsampling`` choice) is trained alone, as a
renderer from the sprites' true factors (shape one-hot, scale, cos/sin of 1, 2 and 4 times the angle, x, y) to
the image, with the Bernoulli likelihood, Adam and ``--steps`` steps of ``--batch-size`` (by default 3,640 steps
of 64: `make train`'s 14 epochs until the seventeenth session, which trains 20 since). If a decoder cannot draw
corners from the true factors in that budget, no encoder, KL weight or sampler can make a VAE with it draw them.

It prints and writes (JSON) the held-out cross-entropy in nats per image (1,000 sprites from uniformly drawn
factors), the images per second of training, and writes a picture per decoder: squares, ellipses and hearts
at scale 1 and 0.5 over ten angles (the diagnostic of the ``make train`` section of BENCHMARKS.md).

    python benchmarks/decoder_rendering.py --decoders depth_to_space spatial_broadcast implicit
"""

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from bench_common import RESULTS_DIR, machine, write_result  # noqa: E402

# Decoder options per name: the depth-to-space decoder (make train's until the seventeenth session) and its
# options (a second convolution per level, CoordConv channels, both: make train's since), the spatial broadcast
# decoder of the disentanglement runs, and the implicit decoder (CoordinateMLP).
DECODERS = {
    "depth_to_space": {"filters": (64, 32, 16), "dense_units": 256, "upsampling": "depth_to_space"},
    "depth_to_space_2convs": {"filters": (64, 32, 16), "dense_units": 256, "upsampling": "depth_to_space",
                              "convs_per_level": 2},
    "depth_to_space_coords": {"filters": (64, 32, 16), "dense_units": 256, "upsampling": "depth_to_space",
                              "coordinate_channels": True},
    "depth_to_space_2convs_coords": {"filters": (64, 32, 16), "dense_units": 256, "upsampling": "depth_to_space",
                                     "convs_per_level": 2, "coordinate_channels": True},
    "spatial_broadcast": {"filters": (32, 32, 32), "upsampling": "spatial_broadcast"},
    "implicit": {"dense_units": 256, "upsampling": "implicit", "render_units": (64, 64)},
}
FEATURES = 12


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decoders", nargs="+", default=list(DECODERS), choices=list(DECODERS))
    parser.add_argument("--steps", type=int, default=3640,
                        help="training steps (make train: 14 x 260 until the seventeenth session, 20 x 260 since)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(RESULTS_DIR, "decoder_rendering.json"))
    parser.add_argument("--image-dir", default=os.path.join(RESULTS_DIR, "decoder_rendering"))
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1:
        parser.error("--steps and --batch-size must be >= 1")
    return args


def factor_features(factors):
    """The renderer's input ``[n, 12]`` for factor indices ``[n, 5]``."""
    import tensorflow as tf

    from keras_vae.training.sprites import factor_values

    values = factor_values(factors)
    angle = values[:, 2]
    turns = [f(k * angle) for k in (1, 2, 4) for f in (tf.cos, tf.sin)]
    return tf.concat([tf.one_hot(factors[:, 0], 3), values[:, 1:2], tf.stack(turns, 1), values[:, 3:5]], 1)


def train_renderer(name, args):
    import keras
    import tensorflow as tf

    from keras_vae.networks import conv_decoder
    from keras_vae.training.sprites import FACTOR_SIZES, render_sprites

    keras.utils.set_random_seed(args.seed)
    decoder = conv_decoder((64, 64, 1), FEATURES, **DECODERS[name])
    optimizer = keras.optimizers.Adam(args.learning_rate)
    sizes = tf.constant(FACTOR_SIZES, tf.float32)

    def nats(images, logits):
        return tf.reduce_mean(tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(images, logits), [1, 2, 3]))

    @tf.function
    def step(seed):
        factors = tf.cast(tf.random.stateless_uniform([args.batch_size, 5], seed) * sizes, tf.int32)
        images, features = render_sprites(factors), factor_features(factors)
        with tf.GradientTape() as tape:
            loss = nats(images, decoder(features, training=True))
        grads = tape.gradient(loss, decoder.trainable_variables)
        optimizer.apply_gradients(zip(grads, decoder.trainable_variables))
        return loss

    rng = np.random.default_rng(123)
    held_out = np.stack([rng.integers(0, s, 1000) for s in FACTOR_SIZES], 1).astype(np.int32)
    held_images, held_features = render_sprites(held_out), factor_features(held_out)
    step(tf.constant([args.seed, 0]))  # traced outside the timing
    start = time.perf_counter()
    for i in range(1, args.steps):
        step(tf.constant([args.seed, i]))
    seconds = time.perf_counter() - start
    row = {"decoder": name, "options": {k: list(v) if isinstance(v, tuple) else v for k, v in DECODERS[name].items()},
           "steps": args.steps, "held_out_nats": round(float(nats(held_images, decoder(held_features))), 2),
           "images_per_second": round((args.steps - 1) * args.batch_size / seconds, 1),
           "train_seconds": round(seconds, 1), "params": int(decoder.count_params())}
    save_picture(decoder, os.path.join(args.image_dir, f"{name}.png"))
    return row


def save_picture(decoder, path):
    """Rows: square, ellipse, heart at scale 1 and 0.5; columns: ten angles over a quarter turn and more."""
    import keras
    import tensorflow as tf

    from keras_vae.images import image_grid
    from keras_vae.atomic_files import atomic_write
    from keras_vae.training.sprites import render_sprites

    factors = np.array([[shape, scale, angle, 16, 16] for shape in range(3) for scale in (5, 0)
                        for angle in range(0, 20, 2)], np.int32)
    drawn = tf.sigmoid(decoder(factor_features(factors))).numpy()[:, 16:48, 16:48]
    real = np.asarray(render_sprites(factors))[:, 16:48, 16:48]
    grid = image_grid(np.concatenate([real[:10], drawn]), columns=10)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write(path, lambda temp: keras.utils.save_img(temp, grid))


def main(argv=None):
    args = parse_args(argv)
    rows = [train_renderer(name, args) for name in args.decoders]
    print(f"{'decoder':<30} {'held-out nats':>13} {'images/s':>9} {'train s':>8} {'params':>9}")
    for row in rows:
        print(f"{row['decoder']:<30} {row['held_out_nats']:>13} {row['images_per_second']:>9} "
              f"{row['train_seconds']:>8} {row['params']:>9}")
    write_result(args.out, {"settings": {k: v for k, v in vars(args).items() if k not in ("out",)},
                            "rows": rows, "machine": machine()})
    print(f"pictures under {args.image_dir}")


if __name__ == "__main__":
    main()
