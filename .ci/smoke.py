"""Install-and-smoke run on the newest supported Python: build, fit a few steps, export, sample.

Run by `make smoke-newest` (which .ci/run calls) in a fresh venv of that Python; exits non-zero on any failure.
"""

import os
import sys
import tempfile

import numpy as np


def main():
    import keras

    import keras_vae
    from keras_vae.export import TFLiteModel, export_model
    from keras_vae.export.sampling import sample_images

    print(f"Python {sys.version.split()[0]}, keras_vae {keras_vae.__version__}, keras {keras.__version__}")
    rng = np.random.default_rng(0)
    images = (rng.random((256, 28, 28, 1)) > 0.7).astype("float32")
    vae = keras_vae.build_vae((28, 28, 1), 4, architecture="conv", filters=(8, 16), dense_units=32, seed=0)
    vae.compile(optimizer="adam")
    history = vae.fit(images, epochs=1, batch_size=64, verbose=0)
    assert np.isfinite(history.history["loss"][-1]), history.history
    with tempfile.TemporaryDirectory() as tmp:
        result = export_model(vae, base_dir=tmp, name="smoke", tflite=True, with_encoder=True)
        grid = sample_images(os.path.join(tmp, "smoke"), num_samples=4, seed=0)
        assert np.asarray(grid).shape[0] == 4 and np.all(np.isfinite(grid)), np.asarray(grid).shape
        on_device = TFLiteModel(result.tflite_paths["float32"]).sample(4)["images"]
        assert np.all(np.isfinite(on_device)) and np.asarray(on_device).shape == (4, 28, 28, 1)
    print("smoke: build, fit, export (SavedModel + TFLite), sample: ok")


if __name__ == "__main__":
    main()
