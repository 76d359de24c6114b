"""Latent Studio: a web page for exploring a trained VAE, served beside `keras-vae serve`'s REST API.

The page (``static/``: plain HTML, JS and CSS, no build step, nothing from the network) computes
everything through TF Serving's REST API (``:predict`` with ``sample``, ``serving_default``,
``encode``, ``reconstruct`` and ``score``), so it also runs against a real TF Serving (open it with
``?api=http://HOST:8501&model=NAME``). This module adds, on the same origin:

- ``GET /``, ``/studio/studio.js``, ``/studio/studio.css``: the page, from this package only;
- ``GET /studio/studio.json``: the served version's extras (attributes, threshold, KL ranking,
  condition size) from its ``metadata.json`` and ``assets.extra/attributes.json``;
- ``POST /studio/image``: an uploaded PNG/JPEG (raw body) checked, centre-cropped and resized to
  the model's image shape (`keras_vae.images.decode_image`: every bit depth and mode scaled by its own range,
  transparency composited on white); answers ``{"image": [H][W][C]}`` or ``{"error": ...}``.

Nothing is read or written outside the package and the model folder; uploads stay in memory.

Example:

>>> base = prepare_model("runs/sprites")      # exports to runs/sprites/studio/sprites once
>>> server = make_studio_server(base, port=0)
>>> threading.Thread(target=server.serve_forever, daemon=True).start()
>>> f"http://127.0.0.1:{server.server_port}/"
"""

import json
import os
import re
import traceback
import urllib.parse

import numpy as np

from keras_vae.export.attributes import read_attributes
from keras_vae.export.layout import existing_versions
from keras_vae.export.metadata import METADATA_FILENAME
from keras_vae.export.rest_format import ServingError, dumps
from keras_vae.export.server import DEFAULT_PORT, RestHandler, make_server
from keras_vae.images import DECODED_FORMATS, MAX_IMAGE_PIXELS, decode_image

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
STUDIO_DIR = "studio"  # the studio-owned export folder inside a run directory
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_UPLOAD_PIXELS = MAX_IMAGE_PIXELS  # decompression bombs: a small file claiming a huge image
UPLOAD_FORMATS = DECODED_FORMATS

# URL path -> (file in STATIC_DIR, content type); nothing else is ever read from disk for a URL.
STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/studio/studio.js": ("studio/studio.js", "text/javascript; charset=utf-8"),
    "/studio/studio.css": ("studio/studio.css", "text/css; charset=utf-8"),
}
# The page may call another API origin (a real TF Serving); everything else comes from here.
CONTENT_SECURITY_POLICY = "default-src 'self'; img-src 'self' data: blob:; connect-src *"


def _model_name(path):
    """A TF Serving model name from a file or folder name (letters, digits, '.', '_', '-')."""
    stem = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._") or "model"


def _is_fresh(version_dir, model_file):
    """Whether the studio's export of ``model_file`` exists and is newer than the file."""
    pb = os.path.join(version_dir, "saved_model.pb")
    return os.path.isfile(pb) and os.path.getmtime(pb) >= os.path.getmtime(model_file)


def prepare_model(source, log=print):
    """The export base folder (BASE/NAME) to serve for ``source``; exports run dirs and .keras files first.

    An export base folder (holding version folders) or one version folder is served as it is. A run
    directory or ``.keras`` file is exported (with the encoder signatures) to
    ``<its folder>/studio/<name>/1``, again only when the model file is newer than that export.

    >>> prepare_model("runs/sprites/model.keras")
    'runs/sprites/studio/model'
    """
    from keras_vae.saving import resolve_model_path

    source = os.fspath(source)
    if existing_versions(source):
        return source
    if os.path.isfile(os.path.join(source, "saved_model.pb")):
        return os.path.dirname(os.path.abspath(source))
    model_file = resolve_model_path(source)
    name = _model_name(source)
    base_dir = os.path.join(os.path.dirname(os.path.abspath(model_file)), STUDIO_DIR)
    model_dir = os.path.join(base_dir, name)
    if not _is_fresh(os.path.join(model_dir, "1"), model_file):
        from keras_vae.export.saved_model import export_model

        log(f"keras-vae studio: exporting {model_file} to {model_dir}")
        export_model(model_file, base_dir=base_dir, name=name, version=1, with_encoder=True, overwrite=True)
    return model_dir


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _condition(meta):
    """``{"kind", "size"}`` of the export's condition (``model.condition.get_config()`` in its metadata)."""
    condition = meta.get("condition") or {}
    return {"kind": condition.get("kind", "none"), "size": int(condition.get("size", 0))}


def studio_document(version_dir, model_name):
    """What the page needs beyond the REST metadata, for the served version folder.

    >>> studio_document("saved_models/vae/1", "vae")["threshold"]
    104.2
    """
    meta = _read_json(os.path.join(version_dir, METADATA_FILENAME))
    extras = read_attributes(version_dir) or {}
    return {
        "model": model_name,
        "version": int(os.path.basename(os.path.normpath(version_dir))),
        "dataset": meta.get("dataset"),
        "condition": _condition(meta),
        "samplers": meta.get("samplers", ["prior"]),
        "attributes": extras.get("attributes", []),
        "kl_per_dim": extras.get("kl_per_dim"),
        "threshold": extras.get("threshold"),
        "threshold_quantile": extras.get("threshold_quantile"),
        "class_names": extras.get("class_names"),  # a folder's class sub-folders, when attributes.json has them
        "upload": "studio/image",
        "max_upload_bytes": MAX_UPLOAD_BYTES,
    }


def decode_upload(data, image_shape):
    """Pixels ``[H, W, C]`` float32 in [0, 1] of an uploaded PNG/JPEG (`keras_vae.images.decode_image`), centre-cropped
    and resized to ``image_shape``; a ServingError (400) saying what is wrong with any other upload.

    >>> decode_upload(open("digit.png", "rb").read(), (28, 28, 1)).shape
    (28, 28, 1)
    """
    try:
        return decode_image(data, tuple(image_shape), max_pixels=MAX_UPLOAD_PIXELS)
    except ValueError as err:
        raise ServingError(str(err).replace("The image is", "The upload is", 1)) from None


class StudioHandler(RestHandler):
    """`keras-vae serve`'s request handler, plus the page, studio.json and image uploads."""

    server_version = "keras-vae-studio"

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path in STATIC_FILES:
            self._answer(lambda: self._static(*STATIC_FILES[path]))
        elif path == "/studio/studio.json":
            self._answer(lambda: (200, "application/json", dumps(self._document()).encode()))
        else:
            super().do_GET()

    def do_POST(self):
        if urllib.parse.urlsplit(self.path).path == "/studio/image":
            self._answer(self._upload)
        else:
            super().do_POST()

    def _servable(self):
        repository = self.server.repository
        return repository.servable(repository.model_name)

    def _document(self):
        return studio_document(self._servable().path, self.server.repository.model_name)

    def _static(self, filename, content_type):
        with open(os.path.join(STATIC_DIR, filename), "rb") as f:
            return 200, content_type, f.read()

    def _upload(self):
        # Read even an oversized body (up to the server's request limit) so the client gets a clean 413.
        body = self._read_body()
        if len(body) > MAX_UPLOAD_BYTES:
            raise ServingError(
                f"The upload is {len(body)} bytes; the limit is {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.",
                "PAYLOAD_TOO_LARGE",
            )
        specs = self._servable().input_specs.get("encode")
        if specs is None:
            raise ServingError("This export has no encode signature: export it with --with-encoder.", "FAILED_PRECONDITION")
        pixels = decode_upload(body, specs["images"].shape[1:])
        return 200, "application/json", dumps({"image": np.round(pixels, 4).tolist()}).encode()

    def _answer(self, produce):
        """Sends what ``produce()`` returns (status, content type, bytes), or its error as JSON."""
        try:
            status, content_type, data = produce()
        except ServingError as err:
            status, content_type, data = err.http_status, "application/json", dumps({"error": err.message}).encode()
        except Exception as err:  # one bad request must not take the studio down
            self.server.repository.log(traceback.format_exc())
            status, content_type = 500, "application/json"
            data = dumps({"error": f"Internal error: {type(err).__name__}: {err}"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


def make_studio_server(model_base_path, host="127.0.0.1", port=DEFAULT_PORT, **options):
    """`keras-vae serve`'s server for ``model_base_path`` that also serves the studio; call ``serve_forever()``.

    ``options`` are `make_server`'s (model_name, max_request_bytes, max_batch_size, poll_seconds, verbose).

    >>> server = make_studio_server("saved_models/vae", port=0)
    """
    return make_server(model_base_path, host=host, port=port, handler_class=StudioHandler, **options)
