"""`keras-vae serve`: a local HTTP server that follows TF Serving's REST API, for development and tests.

Production serving is TF Serving (tensorflow_model_server or the tensorflow/serving image); this
server mirrors its REST behaviour (tensorflow_serving/model_servers/http_rest_api_handler.cc and
util/json_tensor.cc), so a client written against one works unchanged against the other:

- ``GET  /v1/models/NAME[/versions/N | /labels/L]``            model status, newest version first
- ``GET  /v1/models/NAME[/versions/N | /labels/L]/metadata``   the signature_def map
- ``POST /v1/models/NAME[/versions/N | /labels/L]:predict``    row (``instances``) or columnar (``inputs``)
  requests, optional ``signature_name``; answers ``predictions`` / ``outputs``
- ``POST ...:classify`` / ``...:regress``: TF Serving's 400 errors (keras-vae models have no such signatures)
- errors as ``{"error": "..."}`` with TF Serving's texts and status codes; chunked and
  ``Content-Encoding: gzip`` request bodies are accepted.

Versions follow TF Serving's file-system source and availability-preserving policy: it serves the
highest version under ``BASE/NAME`` (or the versions a models.config ``model_version_policy`` names),
polls the folder, loads new versions before unloading old ones, and retries a version that failed to
load (e.g. one still being copied). Version labels come from a models.config file or ``version_labels``.
Differences from TF Serving: request bodies and batch sizes are bounded (413 / 400); the server
refuses to start on a folder without versions.

Modules: `keras_vae.export.repository` (versions, models.config, policy; `servable`: one loaded
version), `keras_vae.export.rest_api` (routing), `keras_vae.export.http_transport` (HTTP); this one
puts them together (`make_server`), and their public names import from here too.

Example:

>>> server = make_server("saved_models/vae", port=0)        # port 0: any free port
>>> threading.Thread(target=server.serve_forever, daemon=True).start()
>>> RestClient(f"http://127.0.0.1:{server.server_port}", "vae").status()
{'model_version_status': [{'version': '1', 'state': 'AVAILABLE', 'status': {'error_code': 'OK', ...}}]}
>>> server.close()
"""

from keras_vae.export.http_transport import MAX_REQUEST_BYTES, RestHandler, RestServer
from keras_vae.export.repository import (
    MAX_LOAD_RETRIES,
    POLL_SECONDS,
    ModelRepository,
    aspired_versions,
    policy_from_argument,
    read_model_config,
)
from keras_vae.export.rest_api import MAX_BATCH_SIZE, RestApi
from keras_vae.export.servable import Servable

__all__ = [
    "DEFAULT_PORT", "MAX_BATCH_SIZE", "MAX_LOAD_RETRIES", "MAX_REQUEST_BYTES", "POLL_SECONDS", "ModelRepository",
    "RestApi", "RestHandler", "RestServer", "Servable", "aspired_versions", "make_server", "read_model_config",
]

DEFAULT_PORT = 8501


def make_server(
    model_base_path,
    host="127.0.0.1",
    port=DEFAULT_PORT,
    model_name=None,
    max_request_bytes=MAX_REQUEST_BYTES,
    max_batch_size=MAX_BATCH_SIZE,
    poll_seconds=POLL_SECONDS,
    verbose=False,
    model_config_file=None,
    version_labels=None,
    version_policy=None,
    max_load_retries=MAX_LOAD_RETRIES,
    load_retry_seconds=None,
    handler_class=None,
):
    """A started repository behind a bound (not yet serving) `RestServer`; call ``serve_forever()``.

    ``model_config_file``: a models.config (``model_config_list``) whose entry for the model gives its
    name, ``version_labels`` and ``model_version_policy``. ``version_labels`` ({label: version}) adds
    or overrides labels; ``version_policy`` ('latest', N latest, 'all' or a list of versions) overrides
    the policy. A version that fails to load is retried every ``load_retry_seconds`` (default: each
    poll) up to ``max_load_retries`` times. Raises FileNotFoundError for a folder without versions and
    ValueError for a label on a version that is not available.

    >>> server = make_server("saved_models/vae", port=0, version_labels={"stable": 1}, version_policy="all")
    """
    labels, policy = {}, ("latest", 1)
    if model_config_file is not None:
        model_name, labels, policy = read_model_config(model_config_file, model_name)
    if version_policy is not None:
        policy = policy_from_argument(version_policy)
    labels.update(version_labels or {})
    repository = ModelRepository(
        model_base_path, model_name, poll_seconds, version_policy=policy, version_labels=labels,
        max_load_retries=max_load_retries, load_retry_seconds=load_retry_seconds,
    )
    try:
        repository.start()
        return RestServer(repository, host, port, max_request_bytes, max_batch_size, verbose, handler_class)
    except BaseException:
        repository.stop()
        raise
