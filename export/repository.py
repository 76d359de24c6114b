"""The versions of one served model: models.config, TF Serving's version policy, loading and polling.

`ModelRepository` follows TF Serving's file-system source and availability-preserving policy: it
serves the versions `aspired_versions` picks under ``BASE/NAME`` (the highest one by default), polls
the folder, loads new versions before unloading old ones, retries a version that failed to load (one
still being copied, say) and reports each version's state as TF Serving's GetModelStatus does, load
errors with the codes TF's loader gives (NOT_FOUND without ``saved_model.pb``, DATA_LOSS for an
unreadable one). Versions are the children `version_children` reads as TF Serving's source does; a poll
that cannot list ``BASE/NAME`` changes nothing.
`read_model_config` reads a model's name, version labels and policy from a models.config file.

Example:

>>> repository = ModelRepository("saved_models/vae", version_policy=("latest", 2), version_labels={"stable": 1})
>>> repository.start()                                       # loads, then polls in a thread
>>> repository.servable("vae", label="stable").version
1
>>> repository.status("vae")["model_version_status"][0]["state"]
'AVAILABLE'
>>> repository.stop()
"""

import os
import re
import sys
import threading
import time
import traceback

from keras_vae.export.layout import existing_versions
from keras_vae.export.rest_json import ServingError
from keras_vae.export.servable import Servable, json_proto

POLL_SECONDS = 1.0
MAX_LOAD_RETRIES = 5  # TF Serving's --max_num_load_retries default


def _error_codes():
    from tensorflow_serving.apis import get_model_status_pb2

    status = get_model_status_pb2.ModelVersionStatus.DESCRIPTOR.fields_by_name["status"].message_type
    return status.fields_by_name["error_code"].enum_type


# ----------------------------------------------------------------------------- models.config and version policies
def read_model_config(path, model_name=None):
    """``(name, version_labels, version_policy)`` of one model in a models.config (``model_config_list``) file.

    The entry is the one named ``model_name``, or the only one. ``version_policy`` is what
    `aspired_versions` takes: ``("latest", n)``, ``("all", None)`` or ``("specific", {versions})``.

    >>> read_model_config("saved_models/vae/models.config")
    ('vae', {'stable': 1, 'canary': 2}, ('specific', {1, 2}))
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    try:
        with open(path) as f:
            text_format.Parse(f.read(), config)
    except (OSError, text_format.ParseError) as err:
        raise ValueError(f"Cannot read the model config file {path!r}: {err}") from None
    entries = list(config.model_config_list.config)
    chosen = [e for e in entries if e.name == model_name] if model_name else entries
    if len(chosen) != 1:
        names = [e.name for e in entries]
        raise ValueError(f"{path!r} must configure model {model_name or 'exactly one model'}; it configures {names}.")
    entry = chosen[0]
    return entry.name, dict(entry.version_labels), _policy_of(entry.model_version_policy)


def _policy_of(proto):
    kind = proto.WhichOneof("policy_choice")
    if kind == "all":
        return ("all", None)
    if kind == "specific":
        return ("specific", set(proto.specific.versions))
    return ("latest", proto.latest.num_versions or 1)  # TF Serving's default: the latest version


def aspired_versions(versions, policy=("latest", 1)):
    """The versions TF Serving's ServableVersionPolicy wants loaded, out of the version folders ``versions``.

    >>> aspired_versions([1, 2, 3], ("latest", 2)), aspired_versions([1, 3], ("specific", {1, 2}))
    ({2, 3}, {1})
    """
    kind, value = policy
    if kind == "all":
        return set(versions)
    if kind == "specific":
        return set(versions) & set(value)
    return set(sorted(versions)[-value:]) if value > 0 else set()


def policy_from_argument(version_policy):
    """``None``/``"latest"``/N/``"all"``/[versions] (`make_server`'s argument) as an `aspired_versions` policy.

    >>> policy_from_argument(2), policy_from_argument([1, 3])
    (('latest', 2), ('specific', {1, 3}))
    """
    if version_policy is None or version_policy == "latest":
        return ("latest", 1)
    if version_policy == "all":
        return ("all", None)
    if isinstance(version_policy, int) and not isinstance(version_policy, bool) and version_policy > 0:
        return ("latest", version_policy)
    if isinstance(version_policy, (list, tuple, set)) and all(isinstance(v, int) for v in version_policy):
        return ("specific", set(version_policy))
    raise ValueError(f"version_policy must be 'latest', 'all', a positive int or a list of versions, got {version_policy!r}.")


_VERSION_NAME = re.compile(r"[ \t\n\v\f\r]*[+-]?[0-9]+[ \t\n\v\f\r]*")


def version_children(base_path):
    """``{version: child name}`` of the entries TF Serving's file-system source reads as versions, or None.

    Like its ``ParseVersionNumber`` (absl::SimpleAtoi into an int64), any child whose name is an
    integer counts, file or folder ("007" is version 7; of two names for one version the last in
    sorted order wins). None when ``base_path`` cannot be listed: TF Serving then skips the poll and
    keeps what it serves.

    >>> version_children("saved_models/vae")
    {1: '1', 2: '2'}
    """
    try:
        names = sorted(os.listdir(base_path))
    except OSError:
        return None
    versions = {}
    for name in names:
        if _VERSION_NAME.fullmatch(name) and -(2**63) <= int(name) < 2**63:
            versions[int(name)] = name
    return versions


def _load_error(err, path):
    """``(canonical code, message)`` of a failed load, as TF Serving's SavedModel loader reports it."""
    code = getattr(err, "error_code", None)  # a tf.errors.OpError
    if code is not None and getattr(err, "message", None) is not None:
        value = _error_codes().values_by_number.get(code)
        return (value.name if value else "UNKNOWN"), err.message
    text = str(err)
    if isinstance(err, OSError) and "SavedModel file does not exist" in text:
        return "NOT_FOUND", (
            "Specified file path does not appear to contain a SavedModel bundle (should have a file called "
            f"`saved_model.pb`)\nSpecified file path: {path}"
        )
    if isinstance(err, OSError) and text.startswith("Cannot parse file"):
        return "DATA_LOSS", f"Can't parse {os.path.join(path, 'saved_model.pb')} as binary proto"
    return "UNKNOWN", f"{type(err).__name__}: {text}".strip()


def _folder_signature(path):
    """Names, sizes and mtimes under ``path``: it changes while a version is still being copied in."""
    entries = []
    for root, _, files in os.walk(path):
        for name in files:
            try:
                stat = os.stat(os.path.join(root, name))
            except OSError:
                continue
            entries.append((os.path.join(root, name), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


class _LoadAttempts:
    """Failed loads of one version: retried on later polls, up to ``MAX_LOAD_RETRIES`` times per folder content."""

    def __init__(self, signature):
        self.signature = signature
        self.failures = 0
        self.next_try = 0.0
        self.error = ("OK", "")


class ModelRepository:
    """The versions of one model under ``base_path``, loaded and unloaded as TF Serving's manager does.

    A version that fails to load is reported LOADING while it is retried (``max_load_retries`` more
    times, ``load_retry_seconds`` apart, the count restarting while its folder still changes) and END
    with its error after that; the version(s) already serving keep serving.
    """

    def __init__(
        self,
        base_path,
        model_name=None,
        poll_seconds=POLL_SECONDS,
        log=None,
        version_policy=("latest", 1),
        version_labels=None,
        max_load_retries=MAX_LOAD_RETRIES,
        load_retry_seconds=None,
    ):
        self.base_path = os.path.abspath(os.fspath(base_path))
        _check_model_folder(self.base_path)
        self.model_name = model_name or os.path.basename(self.base_path)
        self.poll_seconds = poll_seconds
        self.log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self.version_policy = version_policy
        self.version_labels = dict(version_labels or {})
        self.max_load_retries = max_load_retries
        self.load_retry_seconds = poll_seconds if load_retry_seconds is None else load_retry_seconds
        self._lock = threading.Lock()
        self._servables = {}  # version -> Servable (AVAILABLE); replaced, never mutated, so readers need no lock
        self._states = {}  # version -> (state, error_code, error_message)
        self._attempts = {}  # version -> _LoadAttempts
        self._stop = threading.Event()
        self._poller = None
        self._base_missing = False

    def refresh(self):
        """One poll: loads aspired versions (highest first), then unloads what the policy lets go."""
        children = version_children(self.base_path)
        if children is None:
            # TF Serving's source fails the poll ("Could not find base path") and changes nothing
            if not self._base_missing:
                self.log(f"keras-vae serve: cannot list {self.base_path!r}; serving what is loaded until it returns")
            self._base_missing = True
            return
        self._base_missing = False
        aspired = aspired_versions(children, self.version_policy)
        for version in set(self._attempts) - aspired:
            self._forget_attempts(version)
        for version in sorted(aspired - set(self._servables), reverse=True):
            if self._stop.is_set():
                return
            self._try_load(version, os.path.join(self.base_path, children[version]))
        self._unload_unaspired(aspired)

    def _try_load(self, version, path):
        attempts = self._attempts.get(version)
        signature = _folder_signature(path)
        if attempts is not None and attempts.signature != signature:
            attempts = None  # the folder changed (a copy in progress): start counting again
        if attempts is not None and (attempts.failures > self.max_load_retries or time.monotonic() < attempts.next_try):
            return
        self._set_state(version, "LOADING")
        try:
            servable = Servable(version, path)
        except Exception as err:  # a broken or incomplete version must not take the server down
            self._load_failed(version, attempts or _LoadAttempts(signature), _load_error(err, path))
            return
        self._attempts.pop(version, None)
        with self._lock:
            self._servables = {**self._servables, version: servable}
            self._states[version] = ("AVAILABLE", "OK", "")
        self.log(f"keras-vae serve: serving version {version} of {self.model_name!r} from {path}")

    def _load_failed(self, version, attempts, error):
        attempts.failures += 1
        attempts.next_try = time.monotonic() + self.load_retry_seconds
        attempts.error = error
        self._attempts[version] = attempts
        final = attempts.failures > self.max_load_retries
        self._set_state(version, *(("END", *attempts.error) if final else ("LOADING",)))
        retry = "giving up" if final else f"will retry ({attempts.failures}/{self.max_load_retries})"
        self.log(f"keras-vae serve: version {version} of {self.model_name!r} failed to load, {retry}: {attempts.error[1]}")

    def _forget_attempts(self, version):
        attempts = self._attempts.pop(version)
        if self._states.get(version, ("",))[0] == "LOADING":
            self._set_state(version, "END", *attempts.error)

    def _unload_unaspired(self, aspired):
        """AvailabilityPreservingPolicy: unload a non-aspired version once an aspired one serves (or none is aspired)."""
        while True:
            unaspired = sorted(set(self._servables) - aspired)
            serving_aspired = bool(aspired & set(self._servables))
            if not unaspired or not (not aspired or serving_aspired or len(unaspired) > 1):
                return
            version = unaspired[0]
            with self._lock:
                self._servables = {v: s for v, s in self._servables.items() if v != version}
                self._states[version] = ("END", "OK", "")
            self.log(f"keras-vae serve: version {version} of {self.model_name!r} is no longer served")

    def _set_state(self, version, state, code="OK", message=""):
        with self._lock:
            self._states[version] = (state, code, message)

    def start(self):
        self.refresh()
        self._check_labels()
        self._poller = threading.Thread(target=self._poll, name="version-poller", daemon=True)
        self._poller.start()

    def _check_labels(self):
        """TF Serving refuses a label on a version that is not available (server_core.cc)."""
        for label, version in sorted(self.version_labels.items()):
            if version not in self._servables:
                raise ValueError(
                    f"Request to assign label to version {version} of model {self.model_name}, which is not "
                    f"currently available for inference (label {label!r}; versions under {self.base_path!r})"
                )

    def _poll(self):
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # keep polling whatever one scan hit (e.g. a folder deleted mid-scan)
                self.log(traceback.format_exc())

    def stop(self):
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=10)

    def resolve(self, model_name, version=None, label=None):
        """The version a request names: its number, its label's version (TF's error if unknown), or None (latest)."""
        if label is None:
            return version
        if model_name == self.model_name and label in self.version_labels:
            return self.version_labels[label]
        raise ServingError(f"Unrecognized servable version label: {label}")

    def servable(self, model_name, version=None, label=None):
        """The Servable a request names; TF Serving's NotFound/InvalidArgument errors otherwise."""
        version = self.resolve(model_name, version, label)
        servables = self._servables if model_name == self.model_name else {}
        if version is None and servables:
            return servables[max(servables)]
        if version in servables:
            return servables[version]
        request = f"Latest({model_name})" if version is None else f"Specific({model_name}, {version})"
        raise ServingError(f"Servable not found for request: {request}", "NOT_FOUND")

    def status(self, model_name, version=None):
        """GetModelStatusResponse as JSON, newest version first (TF's ServableStateMonitor order)."""
        from tensorflow_serving.apis import get_model_status_pb2

        with self._lock:
            states = dict(self._states) if model_name == self.model_name else {}
        if version is not None:
            if version not in states:
                raise ServingError(f"Could not find version {version} of model {model_name}", "NOT_FOUND")
            states = {version: states[version]}
        if not states:
            raise ServingError(f"Could not find any versions of model {model_name}", "NOT_FOUND")
        response = get_model_status_pb2.GetModelStatusResponse()
        for v, (state, code, message) in sorted(states.items(), reverse=True):
            entry = response.model_version_status.add(version=v)
            entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(state)
            entry.status.error_code = _error_codes().values_by_name[code].number
            entry.status.error_message = message
        return json_proto(response)


def _check_model_folder(path):
    """A clear error at start for a folder TF Serving could serve nothing from."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"No model folder at {path!r} (expected BASE/NAME with version folders 1/, 2/, ...).")
    if existing_versions(path):
        return
    hint = (
        f" It holds a SavedModel itself: serve its parent folder, {os.path.dirname(path)!r}."
        if os.path.isfile(os.path.join(path, "saved_model.pb"))
        else " Export one with `keras-vae export RUN_DIR --base-dir ...`."
    )
    raise FileNotFoundError(f"No model versions in {path!r}: expected version folders (1/, 2/, ...).{hint}")
