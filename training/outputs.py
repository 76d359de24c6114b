"""Writing a run's outputs to files: pictures (`keras_vae.training.plots`) and per-example anomaly scores.

Example:

>>> check_output_path("scores.csv", SCORE_FORMATS, "--out")        # ValueError / FileNotFoundError before work
>>> save_picture(plots.samples_picture(vae), "samples.png")
>>> write_scores("scores.csv", scores, flagged, summary)
"""

import os

from keras_vae.training.plots import grid_axes, new_figure

PICTURE_FORMATS = (".png", ".jpg", ".jpeg", ".pdf", ".svg")
SCORE_FORMATS = (".csv", ".json")


def check_output_path(path, formats, option):
    """Raises before any work when ``path`` has none of ``formats`` or its folder does not exist."""
    if os.path.splitext(path)[1].lower() not in formats:
        raise ValueError(f"{option} must end in one of {', '.join(formats)}; got {path!r}.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"The folder of {option} {path!r} does not exist.")


def save_picture(picture, path):
    """Writes a uint8 grid (as an image) or a matplotlib Figure to ``path``."""
    if not hasattr(picture, "savefig") and os.path.splitext(path)[1].lower() in (".png", ".jpg", ".jpeg"):
        from PIL import Image

        Image.fromarray(picture[..., 0] if picture.shape[-1] == 1 else picture).save(path)  # pixel-exact
        return
    if not hasattr(picture, "savefig"):  # vector formats: the grid inside a bare figure
        figure = new_figure(picture.shape[1] / 100, picture.shape[0] / 100)
        grid_axes(figure, picture, "").set_axis_off()
        picture = figure
    picture.savefig(path)


def write_scores(path, scores, flagged, summary):
    """Per-example scores as CSV (index, score, anomalous) or, for ``.json``, ``summary`` with an examples list."""
    import csv  # here: the command line's parsers read the formats above without them
    import json

    if path.lower().endswith(".json"):
        rows = [{"index": i, "score": float(s), "anomalous": bool(f)} for i, (s, f) in enumerate(zip(scores, flagged))]
        with open(path, "w") as f:
            json.dump({**summary, "examples": rows}, f, indent=1)
        return
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "score", "anomalous"])
        writer.writerows((i, f"{s:.6f}", int(a)) for i, (s, a) in enumerate(zip(scores, flagged)))
