import csv
import json

import keras
import matplotlib.image
import numpy as np
import PIL.Image
import pytest
import yaml

import keras_vae
from keras_vae.cli import main
from keras_vae.training import plots
from keras_vae.training.data import load_examples


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two run directories of small MLP VAEs briefly trained on sprites: latent_dim 2 and 3."""
    images, _ = load_examples("sprites", "train", count=256, shuffle=True, seed=1)
    dirs = {}
    for latent_dim in (2, 3):
        vae = keras_vae.build_vae((64, 64, 1), latent_dim, architecture="mlp", hidden_units=(32,), seed=0)
        vae.compile(optimizer=keras.optimizers.Adam(3e-3))
        vae.fit(images, batch_size=64, epochs=3, verbose=0)
        run = tmp_path_factory.mktemp(f"run{latent_dim}")
        vae.save(run / "model.keras")
        (run / "config.yaml").write_text(yaml.safe_dump({"dataset": "sprites", "latent_dim": latent_dim}))
        dirs[latent_dim] = run
    return dirs


def _gray(path):
    return np.asarray(PIL.Image.open(path))


def test_samples_picture_is_the_grid_of_seeded_samples(runs, tmp_path):
    out = tmp_path / "samples.png"
    assert main(["plot", str(runs[2]), "--kind", "samples", "--num", "16", "--seed", "3", "--out", str(out)]) == 0
    vae = keras_vae.load_vae(runs[2])
    expected = keras_vae.image_grid(vae.sample(16, seed=3).numpy(), columns=4)[..., 0]
    np.testing.assert_array_equal(_gray(out), expected)


def test_reconstructions_picture_alternates_inputs_and_reconstructions(runs, tmp_path):
    out = tmp_path / "rec.png"
    assert main(["plot", str(runs[2]), "--kind", "reconstructions", "--num", "8", "--out", str(out)]) == 0
    images, _ = load_examples("sprites", "test", count=8, shuffle=True, seed=0)
    picture = _gray(out)
    assert picture.shape == (2 * 64 + 1, 8 * 64 + 7)
    np.testing.assert_array_equal(picture[:64, :64], np.round(images[0, ..., 0] * 255))
    recon = keras_vae.load_vae(runs[2]).reconstruct(images[:1]).numpy()[0, ..., 0]
    np.testing.assert_array_equal(picture[65:, :64], np.round(recon * 255))


@pytest.mark.parametrize("kind", ["interpolation", "traversal", "manifold", "latent-scatter"])
def test_other_kinds_write_a_picture(runs, tmp_path, kind):
    out = tmp_path / f"{kind}.png"
    args = ["plot", str(runs[2]), "--kind", kind, "--out", str(out), "--num", "300" if kind == "latent-scatter" else "4"]
    assert main(args) == 0
    picture = matplotlib.image.imread(str(out))
    assert picture.shape[0] > 100 and picture.shape[1] > 100
    assert picture[..., :3].std() > 0.05  # not a blank canvas
    if kind == "interpolation":  # 2 strips of 10 steps
        assert picture.shape[:2] == (2 * 64 + 1, 10 * 64 + 9)


def test_latent_scatter_uses_pca_above_two_dimensions_and_manifold_needs_two(runs, tmp_path, capsys):
    out = tmp_path / "scatter.png"
    assert main(["plot", str(runs[3]), "--kind", "latent-scatter", "--num", "200", "--colour-by", "scale",
                 "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    assert main(["plot", str(runs[3]), "--kind", "manifold", "--out", str(tmp_path / "m.png")]) == 2
    assert "needs a model with a 2-D latent space; this one has latent_dim=3" in capsys.readouterr().err


def test_pca_finds_the_principal_axes():
    rng = np.random.RandomState(0)
    codes = rng.randn(2000, 3) * [5.0, 0.1, 2.0]
    points, explained = plots.pca_2d(codes)
    assert explained[0] > 0.8 and explained[0] + explained[1] > 0.99
    np.testing.assert_allclose(np.abs(np.corrcoef(points[:, 0], codes[:, 0])[0, 1]), 1.0, atol=1e-3)


def test_score_writes_csv_and_json_with_a_training_quantile_threshold(runs, tmp_path, capsys):
    csv_path, json_path = tmp_path / "scores.csv", tmp_path / "scores.json"
    common = ["--limit", "40", "--threshold-examples", "200", "--quantile", "0.9", "--num-samples", "4"]
    assert main(["score", str(runs[2]), "--out", str(csv_path), *common]) == 0
    assert "40 examples scored" in capsys.readouterr().out
    assert main(["score", str(runs[2]), "--out", str(json_path), *common]) == 0
    result = json.loads(json_path.read_text())
    vae = keras_vae.load_vae(runs[2])
    train, _ = load_examples("sprites", "train", count=200, shuffle=True, seed=0)
    threshold = keras_vae.score_threshold(keras_vae.anomaly_scores(vae, train, num_samples=4), 0.9)
    assert result["threshold"] == pytest.approx(threshold, rel=1e-6)
    test, _ = load_examples("sprites", "test", count=40)
    scores = keras_vae.anomaly_scores(vae, test, num_samples=4)
    np.testing.assert_allclose([row["score"] for row in result["examples"]], scores, rtol=1e-5)
    assert [row["anomalous"] for row in result["examples"]] == (scores > threshold).tolist()
    assert result["num_anomalous"] == int((scores > threshold).sum())
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 40 and rows[0].keys() == {"index", "score", "anomalous"}
    np.testing.assert_allclose([float(r["score"]) for r in rows], scores, rtol=1e-5)


def test_bad_arguments_exit_2_with_a_message(runs, tmp_path, capsys):
    assert main(["score", str(runs[2]), "--out", str(tmp_path / "s.txt")]) == 2
    assert "must end in one of .csv, .json" in capsys.readouterr().err
    model_file = tmp_path / "alone.keras"
    keras_vae.load_vae(runs[2]).save(model_file)
    assert main(["plot", str(model_file), "--kind", "traversal", "--out", str(tmp_path / "t.png")]) == 2
    assert "give --dataset" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "missing"), "--kind", "samples", "--out", str(tmp_path / "x.png")]) == 2


def test_blend_picture_rows_end_with_the_blend_of_their_inputs(runs, tmp_path):
    out = tmp_path / "blend.png"
    assert main(["plot", str(runs[2]), "--kind", "blend", "--weights", "3", "1", "--num", "4", "--seed", "2",
                 "--out", str(out)]) == 0
    images, _ = load_examples("sprites", "test", count=4, shuffle=True, seed=2)
    picture = _gray(out)
    assert picture.shape == (2 * 64 + 1, 3 * 64 + 2)  # 2 groups of (2 inputs + their blend)
    mixed = keras_vae.blend(keras_vae.load_vae(runs[2]), images[2:4], [3.0, 1.0])[0, ..., 0]
    np.testing.assert_array_equal(picture[65:, 130:], np.round(mixed * 255))


def test_attribute_picture_and_attribute_specs(runs, tmp_path, capsys):
    labels = np.array([[0, 1], [2, 1], [2, 0]])
    assert plots.attribute_mask(labels, "shape=2", ("shape", "scale")).tolist() == [False, True, True]
    assert plots.attribute_mask(np.array([7, 1, 7]), "7").tolist() == [True, False, True]
    with pytest.raises(ValueError, match="FACTOR=VALUE"):
        plots.attribute_mask(labels, "colour=1", ("shape", "scale"))
    out = tmp_path / "attribute.png"
    assert main(["plot", str(runs[2]), "--kind", "attribute", "--attribute", "shape=2", "--num", "300",
                 "--out", str(out)]) == 0
    assert matplotlib.image.imread(str(out)).shape[0] > 300
    assert main(["plot", str(runs[2]), "--kind", "attribute", "--out", str(out)]) == 2
    assert "needs --attribute" in capsys.readouterr().err


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    """A run directory of a small MLP VAE conditioned on the sprites' factor vectors, briefly trained."""
    images, factors = load_examples("sprites", "train", count=128, shuffle=True, seed=1, with_labels=True)
    vae = keras_vae.build_vae((64, 64, 1), 2, architecture="mlp", hidden_units=(16,), variant="cvae",
                              label_dim=factors.shape[1], seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(3e-3))
    vae.fit(images, factors.astype(np.float32), batch_size=64, epochs=1, verbose=0)
    run = tmp_path_factory.mktemp("cvae")
    vae.save(run / "model.keras")
    (run / "config.yaml").write_text(yaml.safe_dump({"dataset": "sprites", "latent_dim": 2}))
    return run


def test_style_transfer_picture_rows_are_inputs_under_each_target(conditional_run, runs, tmp_path, capsys):
    out = tmp_path / "styles.png"
    assert main(["plot", str(conditional_run), "--kind", "style-transfer", "--num", "3", "--out", str(out)]) == 0
    images, factors = load_examples("sprites", "test", count=3, shuffle=True, seed=0, with_labels=True)
    targets = plots.style_targets(keras_vae.load_vae(conditional_run), factors)
    assert len(targets) == 3  # three sprites, three distinct factor vectors
    picture = _gray(out)
    assert picture.shape == (3 * 64 + 2, 4 * 64 + 3)  # rows: inputs; columns: the input, then each target
    np.testing.assert_array_equal(picture[65:129, :64], np.round(images[1, ..., 0] * 255))
    grid = keras_vae.style_transfer(keras_vae.load_vae(conditional_run), images, factors, targets)
    np.testing.assert_array_equal(picture[130:, 195:], np.round(grid[2, 2, ..., 0] * 255))
    capsys.readouterr()
    assert main(["plot", str(runs[2]), "--kind", "style-transfer", "--out", str(tmp_path / "u.png")]) == 2
    err = capsys.readouterr().err
    assert "--kind style-transfer needs a conditional model" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "u.png").exists()


def test_style_transfer_picture_of_a_class_model_has_a_column_per_class():
    cvae = keras_vae.build_vae((8, 8, 1), 2, architecture="mlp", hidden_units=(8,), variant="cvae", num_classes=3)
    x = np.random.RandomState(0).rand(2, 8, 8, 1).astype(np.float32)
    picture = plots.plot_picture(cvae, "style-transfer", x, np.array([2, 0]), num=2)
    assert picture.shape == (2 * 8 + 1, 4 * 8 + 3, 1)
    expected = keras_vae.image_grid(keras_vae.style_transfer(cvae, x, [2, 0], [0, 1, 2])[1], columns=3)
    np.testing.assert_array_equal(picture[9:, 9:], expected)
