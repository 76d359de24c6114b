"""Training runs in-process: the run directory, the CLI, the NaN guard, evaluation."""

import csv
import glob
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

import keras_vae
from keras_vae import cli
from keras_vae.training.callbacks import NonFiniteLossError
from keras_vae.training.config import load_config
from keras_vae.training.data import get_dataset
from keras_vae.training.evaluate import evaluate_model
from keras_vae.training.build import build_model, make_optimizer
from keras_vae.training.train import train

TINY = {
    "dataset": "sprites",
    "model": {"architecture": "mlp", "latent_dim": 2, "hidden_units": [8]},
    "batch_size": 8,
    "validation_steps": 1,
    "strategy": "default",
    "image_grid_size": 4,
    "verbose": 0,
}


def _config(tmp_path, **values):
    return load_config(None, {**TINY, "run_dir": str(tmp_path / "run"), **values})


def _finite(weights):
    return all(np.all(np.isfinite(w)) for w in weights)


def _summary_tags(folder):
    tags = set()
    for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    return tags


def test_cli_train_then_evaluate(tmp_path, capsys):
    run = str(tmp_path / "run")
    code = cli.main([
        "train", "--dataset", "sprites", "--architecture", "mlp", "--latent-dim", "2", "--epochs", "2",
        "--steps-per-epoch", "3", "--validation-steps", "1", "--batch-size", "8", "--strategy", "default",
        "--run-dir", run, "--seed", "4", "--set", "model.hidden_units=[8]", "--set", "image_grid_size=4",
    ])
    assert code == 0
    out = capsys.readouterr().out
    assert "epoch 1/2" in out and "epoch 2/2" in out and "best val ELBO" in out

    with open(os.path.join(run, "config.yaml")) as f:
        config = yaml.safe_load(f)
    for key in ("dataset", "data_dir", "model", "seed", "image_shape"):
        assert key in config
    assert config["model"] == {"architecture": "mlp", "latent_dim": 2, "likelihood": "bernoulli", "variant": "vae",
                               "hidden_units": [8]}
    assert config["image_shape"] == [64, 64, 1] and config["seed"] == 4 and config["epochs"] == 2
    with open(os.path.join(run, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["epochs"] == 2 and len(metrics["history"]) == 2
    assert metrics["best_val_elbo"] == max(row["val_elbo"] for row in metrics["history"]) < 0
    final = keras_vae.load_vae(run)
    best = keras_vae.load_vae(os.path.join(run, "best.keras"))
    assert _finite(final.get_weights()) and _finite(best.get_weights())
    assert _summary_tags(os.path.join(run, "logs", "images")) >= {"samples", "reconstructions"}
    assert any("elbo" in tag for tag in _summary_tags(os.path.join(run, "logs", "validation")))
    assert os.path.isfile(os.path.join(run, "backup", "latest.keras"))

    out_json = str(tmp_path / "eval.json")
    code = cli.main(["evaluate", run, "--split", "valid", "--iw-samples", "20", "--max-examples", "24",
                     "--batch-size", "10", "--refine-steps", "3", "--out", out_json])
    assert code == 0
    table = capsys.readouterr().out
    assert "nll" in table and "active_units" in table
    with open(out_json) as f:
        result = json.load(f)
    assert set(result) >= {"nelbo", "nll", "bits_per_dim", "active_units", "kl_per_dimension", "iw_samples",
                           "num_examples"}
    assert result["iw_samples"] == 20 and result["num_examples"] == 24 and result["dataset"] == "sprites"
    assert result["refine_steps"] == 3 and np.isfinite(result["nll_refined"])
    assert len(result["kl_per_dimension"]) == 2 and 0 <= result["active_units"] <= 2
    assert result["bits_per_dim"] == pytest.approx(result["nll"] / (64 * 64 * np.log(2)))


def test_cli_reports_bad_input_cleanly(tmp_path, capsys):
    assert cli.main(["train", "--strategy", "gpu", "--run-dir", str(tmp_path)]) == 2
    assert "keras-vae train: error: Unknown strategy 'gpu'" in capsys.readouterr().err
    assert cli.main(["train", "--set", "epoch=3"]) == 2
    assert "Did you mean 'epochs'" in capsys.readouterr().err
    assert cli.main(["evaluate", str(tmp_path / "nothing"), "--dataset", "sprites"]) == 2
    assert "No model file or run directory" in capsys.readouterr().err


def test_finished_run_reruns_as_a_no_op_and_another_model_is_refused(tmp_path):
    first, _ = train(_config(tmp_path, epochs=1, steps_per_epoch=2))
    again, metrics = train(_config(tmp_path, epochs=1, steps_per_epoch=2))  # restores the end of epoch 1
    assert metrics["epochs"] == 1 and int(again.optimizer.iterations.numpy()) == 2
    for a, b in zip(first.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="model.latent_dim=2, not 3"):
        train(_config(tmp_path, epochs=1, steps_per_epoch=2, latent_dim=3))


def _data_with_nan_batch():
    images = np.concatenate(list(get_dataset("sprites", "valid", batch_size=8).take(4)))
    images[17, 3, 3, 0] = np.nan  # in the third of four batches
    return tf.data.Dataset.from_tensor_slices(images).batch(8)


def test_nan_guard_skips_and_counts(tmp_path):
    config = _config(tmp_path, epochs=2, nan_policy="skip")
    model, metrics = train(config, train_data=_data_with_nan_batch())
    assert metrics["skipped_steps_this_session"] == 2  # once per epoch
    assert [row["skipped_steps"] for row in metrics["history"]] == [1.0, 1.0]
    assert all(np.isfinite(row["loss"]) for row in metrics["history"])
    assert int(model.optimizer.iterations.numpy()) == 6  # 8 steps, 2 skipped
    assert float(model.optimizer.dynamic_scale.numpy()) == 1.0
    assert _finite(model.get_weights())
    assert _finite(keras_vae.load_vae(config.run_dir).get_weights())


def test_nan_guard_stop_raises_and_saves_nothing_non_finite(tmp_path):
    config = _config(tmp_path, epochs=1, nan_policy="stop", backup_every_steps=1)
    with pytest.raises(NonFiniteLossError, match="epoch 1, batch 3.*nan_policy: stop"):
        train(config, train_data=_data_with_nan_batch())
    assert not os.path.exists(os.path.join(config.run_dir, "model.keras"))
    model = build_model(config)
    model.compile(optimizer=make_optimizer(config))
    model.optimizer.build(model.trainable_variables)
    model.load_weights(os.path.join(config.run_dir, "backup", "latest.keras"))
    assert _finite(model.get_weights())
    assert int(model.optimizer.iterations.numpy()) == 2


def test_nan_on_one_replica_is_skipped_on_all():
    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) < 2:
        pytest.skip("needs two logical CPUs (configured in tests/conftest.py)")
    x = (np.random.RandomState(0).rand(8, 8, 8, 1) > 0.5).astype(np.float32)
    x[7, 0, 0, 0] = np.nan  # only the second replica's half of the batch
    # ReductionToOneDevice: collective all-reduces of two strategies in one process collide (a TF issue).
    strategy = tf.distribute.MirroredStrategy([d.name for d in cpus[:2]],
                                              cross_device_ops=tf.distribute.ReductionToOneDevice())
    with strategy.scope():
        vae = keras_vae.build_vae((8, 8, 1), 3, architecture="mlp", hidden_units=(16,), seed=0)
        vae.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-2), initial_scale=1.0))
    before = vae.get_weights()
    history = vae.fit(np.concatenate([x, x[:7][::-1], x[:1]]), batch_size=8, epochs=1, shuffle=False,
                      verbose=0).history
    after = vae.get_weights()
    assert _finite(after)
    assert int(vae.optimizer.iterations.numpy()) == 1  # the clean second batch was applied
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    assert np.isfinite(history["loss"][0])


def test_evaluation_orders_as_expected(binary_images):
    vae = keras_vae.build_vae((28, 28, 1), 4, architecture="mlp", hidden_units=(32,), seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(3e-3))
    vae.fit(binary_images, epochs=20, batch_size=16, verbose=0)
    data = tf.data.Dataset.from_tensor_slices(binary_images).batch(32)
    results = {k: evaluate_model(vae, data, iw_samples=k, seed=1) for k in (1, 20, 500)}
    nll = {k: r["nll"] for k, r in results.items()}
    assert nll[500] < nll[20] < nll[1]  # the importance-weighted bound tightens as K grows
    assert nll[500] <= results[500]["nelbo"]
    assert nll[1] == pytest.approx(results[1]["nelbo"], rel=0.05)  # K=1 is an ELBO estimate
    r = results[500]
    assert r["num_examples"] == len(binary_images) and r["iw_samples"] == 500
    assert r["kl"] == pytest.approx(sum(r["kl_per_dimension"]), rel=1e-4)
    assert 1 <= r["active_units"] <= 4
    limited = evaluate_model(vae, data, iw_samples=5, max_examples=40)
    assert limited["num_examples"] == 40
    assert r["nll_refined"] is None and r["refine_steps"] == 0
    # A per-example refined proposal estimates the same model's NLL more tightly.
    refined = evaluate_model(vae, data, iw_samples=20, seed=1, refine_steps=50, refine_learning_rate=0.05)
    assert refined["nll"] == pytest.approx(nll[20], abs=1e-4) and refined["refine_steps"] == 50
    assert refined["nll_refined"] < refined["nll"] - 0.05, refined


def test_time_limit_stops_after_the_epoch(tmp_path):
    _, metrics = train(_config(tmp_path, epochs=5, steps_per_epoch=2, max_train_minutes=1e-4))
    assert metrics["epochs"] == 1


def test_moving_average_weights_are_validated_saved_and_kept_when_stopped_early(tmp_path):
    # Stopped by the time limit after epoch 1 of 5: the final model must hold the average, as best.keras does.
    model, _ = train(_config(tmp_path, epochs=5, steps_per_epoch=4, max_train_minutes=1e-4, ema_momentum=0.5,
                             learning_rate=0.05))
    inner = model.optimizer.inner_optimizer
    assert isinstance(inner, keras_vae.FusedAdam) and inner.use_ema and inner.ema_momentum == 0.5
    run = tmp_path / "run"
    final, best = (keras_vae.load_vae(str(run / name)) for name in ("model.keras", "best.keras"))
    for f, b in zip(final.weights, best.weights):
        np.testing.assert_array_equal(f.numpy(), b.numpy())
    # ...and the average is not the raw weights: the backup keeps those, so a resumed run trains on.
    raw = keras_vae.build_vae((64, 64, 1), 2, architecture="mlp", hidden_units=(8,))
    raw.load_weights(str(run / "backup" / "latest.keras"))
    assert any(not np.allclose(r.numpy(), b.numpy()) for r, b in zip(raw.trainable_weights, best.trainable_weights))
    with pytest.raises(ValueError, match="ema_momentum must be in"):
        _config(tmp_path, ema_momentum=1.0)


def test_variants_get_dataset_options_and_labels(tmp_path):
    model, metrics = train(_config(tmp_path, variant="cvae", epochs=1, steps_per_epoch=2, eval_iw_samples=5,
                                   eval_max_examples=8))
    assert model.condition.kind == "vector" and model.condition.size == 5  # the sprite factor vector
    assert np.isfinite(metrics["evaluation"]["nll"])
    with open(os.path.join(tmp_path, "run", "config.yaml")) as f:
        assert yaml.safe_load(f)["model"]["label_dim"] == 5
    model, _ = train(_config(tmp_path, variant="beta_tcvae", epochs=1, steps_per_epoch=1,
                             run_dir=str(tmp_path / "tc")))
    assert model.objective.dataset_size == 663_552  # the train split, from the dataset


def test_prior_options_build_the_named_prior(tmp_path):
    model = build_model(_config(tmp_path, prior="vamp", prior_options={"num_pseudo_inputs": 7}))
    assert isinstance(model.prior, keras_vae.VampPrior) and model.prior.pseudo_inputs.shape == (7, 64, 64, 1)
    with pytest.raises(ValueError, match="Invalid prior_options.*num_components"):
        build_model(_config(tmp_path, prior="vamp", prior_options={"num_components": 7}))


def test_reduce_lr_on_plateau_lowers_the_learning_rate(tmp_path):
    # A learning rate this small leaves the weights in place, so val_elbo only moves with the posterior noise
    # and stops improving within a few epochs (the run is seeded, so this is deterministic).
    train(_config(tmp_path, epochs=6, steps_per_epoch=1, learning_rate=1e-9, reduce_lr_patience=1,
                  reduce_lr_factor=0.5))
    with open(os.path.join(tmp_path, "run", "history.csv")) as f:
        rates = [float(row["learning_rate"]) for row in csv.DictReader(f)]
    assert rates[0] == pytest.approx(1e-9) and rates[-1] < 0.6e-9, rates
    # Without the option the rate stays constant.
    model, _ = train(_config(tmp_path, epochs=3, steps_per_epoch=1, learning_rate=1e-9,
                             run_dir=str(tmp_path / "constant")))
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-9)


def test_cosine_schedule_decays_to_zero_over_the_run(tmp_path):
    train(_config(tmp_path, epochs=4, steps_per_epoch=2, learning_rate=0.01, learning_rate_schedule="cosine"))
    with open(os.path.join(tmp_path, "run", "history.csv")) as f:
        rates = [float(row["learning_rate"]) for row in csv.DictReader(f)]
    # The rate after epoch e (2e steps of the run's 8): half a cosine from 0.01 down to 0.
    want = [0.005 * (1 + np.cos(np.pi * 2 * e / 8)) for e in range(1, 5)]
    np.testing.assert_allclose(rates, want, rtol=1e-4, atol=1e-9)
    # Without steps_per_epoch the run's length is one pass over the train split per epoch.
    from keras_vae.training.build import training_steps
    from keras_vae.training.data import dataset_info

    config = _config(tmp_path, epochs=3, steps_per_epoch=None, batch_size=64, learning_rate_schedule="cosine")
    assert training_steps(config) == 3 * -(-dataset_info("sprites").split_sizes["train"] // 64)


def test_warm_start_from_init_weights_and_its_errors(tmp_path):
    first, _ = train(_config(tmp_path, epochs=2, steps_per_epoch=2, run_dir=str(tmp_path / "first")))
    best = keras_vae.load_vae(tmp_path / "first" / "best.keras")
    # A learning rate this small keeps the loaded weights: the second run starts where best.keras is.
    second, _ = train(_config(tmp_path, epochs=1, steps_per_epoch=1, learning_rate=1e-9,
                              init_weights=str(tmp_path / "first"), run_dir=str(tmp_path / "second")))
    for got, want in zip(second.weights, best.weights):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-6)
    with pytest.raises(FileNotFoundError, match="init_weights: no such file.*missing.keras"):
        train(_config(tmp_path, init_weights=str(tmp_path / "missing.keras"), run_dir=str(tmp_path / "x")))
    with pytest.raises(ValueError, match="init_weights .* does not fit this model"):
        train(_config(tmp_path, latent_dim=3, init_weights=str(tmp_path / "first"), run_dir=str(tmp_path / "y")))


def test_importance_weighted_training_selects_on_the_trained_bound(tmp_path):
    model, metrics = train(_config(tmp_path, epochs=3, steps_per_epoch=2, iw_train_samples=4))
    assert model.objective.num_samples == 4
    history = metrics["history"]
    best = min(range(len(history)), key=lambda i: history[i]["val_loss"])
    assert metrics["best_epoch"] == best + 1
    assert all(row["val_loss"] < -row["val_elbo"] for row in history)  # the IW bound is tighter than the ELBO


def test_a_damaged_backup_falls_back_to_the_previous_one_naming_the_file(tmp_path, capsys):
    train(_config(tmp_path, epochs=2, steps_per_epoch=2))
    backup = tmp_path / "run" / "backup"
    latest = backup / "latest.keras"
    latest.write_bytes(latest.read_bytes()[:1000])  # what a kill during a plain rewrite of the file left
    model, metrics = train(_config(tmp_path, epochs=3, steps_per_epoch=2))
    err = capsys.readouterr().err
    assert f"Backup {str(latest)!r} is damaged or incomplete" in err and "previous.keras" in err
    assert int(model.optimizer.iterations.numpy()) == 6  # from the end of epoch 1: epochs 2 and 3 run again
    assert [row["epoch"] for row in metrics["history"]] == [0, 1, 2]
    for name in ("latest.keras", "previous.keras"):
        path = backup / name
        path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="No loadable backup in .*backup.*Delete that folder"):
        train(_config(tmp_path, epochs=4, steps_per_epoch=2))


def test_a_backup_in_the_old_weights_h5_format_still_resumes(tmp_path):
    """Backups written as latest.weights.h5 (earlier versions, Keras' BackupAndRestore) resume; the first new
    generations replace them and the old files go."""
    from keras_vae.training.run_dir import file_digest

    train(_config(tmp_path, epochs=1, steps_per_epoch=2))
    backup = tmp_path / "run" / "backup"
    model = build_model(_config(tmp_path))
    model.compile(optimizer=make_optimizer(_config(tmp_path)))
    model.optimizer.build(model.trainable_variables)
    model.load_weights(str(backup / "latest.keras"))
    model.save_weights(str(backup / "latest.weights.h5"))
    metadata = json.loads((backup / "training_metadata.json").read_text())
    metadata["weights_sha256"] = file_digest(backup / "latest.weights.h5")
    (backup / "training_metadata.json").write_text(json.dumps(metadata))
    for name in ("latest.keras", "previous.keras", "previous_metadata.json"):
        if (backup / name).exists():
            os.remove(backup / name)
    model, metrics = train(_config(tmp_path, epochs=3, steps_per_epoch=2))
    assert int(model.optimizer.iterations.numpy()) == 6  # epochs 2 and 3 ran on the restored optimizer
    assert [row["epoch"] for row in metrics["history"]] == [0, 1, 2]
    assert sorted(os.listdir(backup)) == ["latest.keras", "previous.keras", "previous_metadata.json",
                                          "training_metadata.json"]


def test_an_epoch_committed_with_its_backup_is_completed_on_resume(tmp_path):
    """A kill after an epoch's backup commit but before its records were applied: the resumed run applies them
    (the history row, the best.keras candidate) from the backup's metadata, so no epoch is lost."""
    run = tmp_path / "run"
    train(_config(tmp_path, epochs=2, steps_per_epoch=2, learning_rate=0.01))
    records = json.loads((run / "backup" / "training_metadata.json").read_text())["records"]
    assert records["history_row"]["epoch"] == 1
    lines = (run / "history.csv").read_text().splitlines()
    (run / "history.csv").write_text("\n".join(lines[:-1]) + "\n")  # epoch 2's row never written
    if records["best"]:  # epoch 2 improved: its candidate was never renamed into place
        os.replace(run / "best.keras", run / records["best"]["file"])
    _, metrics = train(_config(tmp_path, epochs=2, steps_per_epoch=2, learning_rate=0.01))
    assert [row["epoch"] for row in metrics["history"]] == [0, 1]
    assert metrics["history"][1] == pytest.approx(records["history_row"])
    assert (run / "best.keras").is_file() and not list(run.glob(".tmp-*"))
