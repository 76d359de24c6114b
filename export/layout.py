"""The folder layout TF Serving polls, and writing into it without a server ever seeing half a version.

::

    BASE/NAME/                        the model base path (--model_base_path, or /models/NAME in docker)
        models.config                 model_config_list for --model_config_file
        batching_parameters.txt       for --enable_batching --batching_parameters_file
        1/ 2/ ...                     versions: saved_model.pb, variables/, assets.extra/, metadata.json
        tflite/1/ ...                 .tflite files of the same versions (TF Serving skips non-integer names)

A version is built in a hidden temporary sibling (``.tmp-<pid>-...``, which TF Serving ignores because
its name is not an integer) and renamed into place once complete; rename is atomic on one file system.
The pid in the name lets the next export remove what a killed one left (`clean_stale`).

Example:

>>> root = model_dir("saved_models", "vae")
>>> clean_stale(root)                                        # staging folders of killed exports
>>> version = resolve_version(root, None, overwrite=False)   # highest existing + 1
>>> staged = stage(root)
>>> ...                                                      # write the SavedModel into `staged`
>>> publish(staged, os.path.join(root, str(version)), overwrite=False)
"""

import os
import re
import shutil
import tempfile
import time

from keras_vae.atomic_files import atomic_write_text, process_alive

write_text = atomic_write_text  # the name the export modules write their JSON files with

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_VERSION = 2**63 - 1  # TF Serving versions are int64
MODELS_CONFIG = "models.config"
BATCHING_PARAMETERS = "batching_parameters.txt"
TFLITE_DIR = "tflite"
_STAGED = re.compile(r"^\.(?:tmp|old)-(?:(\d+)-)?")  # staging / retired entries, with their writer's pid
STALE_SECONDS = 3600  # entries without a pid (older writers) count as abandoned after this long


class ExportError(ValueError):
    """An export could not be written (read-only or full folder, ...): the message names the folder."""

# Server-side batching for tensorflow_model_server --enable_batching. TF Serving batches every
# signature, and its batching session needs a batch dimension on every input: the `sample`
# signature (scalar inputs) then fails, while serving_default/encode/reconstruct/score batch well.
BATCHING_PARAMETERS_TEXT = """\
# Batching parameters for: tensorflow_model_server --enable_batching --batching_parameters_file=THIS_FILE
# Note: with batching on, TF Serving requires a batch dimension on every input, so the `sample`
# signature (scalar num_samples/temperature/seed) is rejected; serve it from a server without batching.
max_batch_size { value: 256 }
batch_timeout_micros { value: 2000 }
max_enqueued_batches { value: 100 }
num_batch_threads { value: 4 }
"""


def model_dir(base_dir, name):
    """``base_dir/name``, after checking ``name`` works as a TF Serving model name and a folder name."""
    if not _NAME.match(name or ""):
        raise ValueError(
            f"Invalid model name {name!r}: use letters, digits, '.', '_' and '-', starting with a letter or digit."
        )
    return os.path.join(os.fspath(base_dir), name)


def existing_versions(directory):
    """Sorted integer version numbers of the version folders in ``directory`` (none if it is absent)."""
    if not os.path.isdir(directory):
        return []
    return sorted(
        int(entry.name)
        for entry in os.scandir(directory)
        if entry.is_dir() and entry.name.isdigit() and int(entry.name) <= MAX_VERSION
    )


def latest_version_dir(directory):
    """``directory/<highest version>``; FileNotFoundError when there is none."""
    versions = existing_versions(directory)
    if not versions:
        raise FileNotFoundError(f"No version folders (1/, 2/, ...) in {directory!r}.")
    return os.path.join(directory, str(versions[-1]))


def resolve_version(root, version, overwrite):
    """The version to write: ``version`` (checked), or one past the highest under ``root`` and ``root/tflite``."""
    taken = set(existing_versions(root)) | set(existing_versions(os.path.join(root, TFLITE_DIR)))
    if version is None:
        return max(taken, default=0) + 1
    version = int(version)
    if not 0 <= version <= MAX_VERSION:
        raise ValueError(f"The version must be an integer from 0 to {MAX_VERSION}, got {version}.")
    if version in taken and not overwrite:
        raise ValueError(
            f"Version {version} already exists in {root!r}; pass --overwrite to replace it, or omit --version."
        )
    return version


def _prefix(kind="tmp"):
    return f".{kind}-{os.getpid()}-"


def stage(parent):
    """A new hidden folder in ``parent`` to build a version in (same file system, so `publish` can rename)."""
    os.makedirs(parent, exist_ok=True)
    staged = tempfile.mkdtemp(prefix=_prefix(), dir=parent)
    os.chmod(staged, 0o755)  # mkdtemp makes it 0700; a server running as another user must read it
    return staged


def publish(staged, final, overwrite):
    """Renames the finished ``staged`` folder to ``final``; replaces an existing one only if ``overwrite``."""
    if os.path.exists(final):
        if not overwrite:
            raise ValueError(f"{final!r} already exists; pass --overwrite to replace it.")
        retired = tempfile.mkdtemp(prefix=_prefix("old"), dir=os.path.dirname(final))
        os.rename(final, os.path.join(retired, "version"))
        os.rename(staged, final)
        shutil.rmtree(retired, ignore_errors=True)
        return final
    try:
        os.rename(staged, final)
    except OSError as err:  # another export created the same version meanwhile
        raise ValueError(f"Could not publish {final!r}: {err}. Was it written concurrently?") from err
    return final


def discard(staged):
    shutil.rmtree(staged, ignore_errors=True)


def _abandoned(entry):
    match = _STAGED.match(entry.name)
    if not match:
        return False
    if match.group(1):
        return not process_alive(int(match.group(1)))
    return time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS


def clean_stale(directory):
    """Removes the ``.tmp-``/``.old-`` entries of exports killed while writing into ``directory``.

    Entries of running exports (their pid is alive) are left alone. Returns the names removed.

    >>> clean_stale("saved_models/vae")
    ['.tmp-4242-k2j1x9']
    """
    if not os.path.isdir(directory):
        return []
    removed = []
    for entry in os.scandir(directory):
        if _abandoned(entry):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.remove(entry.path)
            removed.append(entry.name)
    return sorted(removed)


def write_error(directory, err):
    """An `ExportError` naming ``directory`` for an OSError or a TF file error met while writing into it.

    >>> write_error("saved_models/vae", OSError(28, "No space left on device"))
    ExportError("Could not write the export into 'saved_models/vae': No space left on device.")
    """
    # TF's file errors read "<path>; <reason> [Op:X]": the path is a staging file, the reason is what helps.
    # An AtomicWriteError's `reason` is the failed write's own text.
    text = str(getattr(err, "reason", None) or getattr(err, "strerror", None) or getattr(err, "message", None) or err)
    reason = text.split("; ")[-1].split(" [Op:")[0]
    return ExportError(f"Could not write the export into {os.fspath(directory)!r}: {reason.rstrip('.')}.")


def models_config_text(name, base_path):
    """The ``model_config_list`` text proto tensorflow_model_server reads with --model_config_file."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    entry = config.model_config_list.config.add()
    entry.name = name
    entry.base_path = os.path.abspath(base_path)
    entry.model_platform = "tensorflow"
    return text_format.MessageToString(config)


def write_server_configs(root, name):
    """Writes models.config and batching_parameters.txt beside the versions of ``root``."""
    atomic_write_text(os.path.join(root, MODELS_CONFIG), models_config_text(name, root))
    atomic_write_text(os.path.join(root, BATCHING_PARAMETERS), BATCHING_PARAMETERS_TEXT)
