"""What every benchmark script records: the machine, and its result JSON under benchmarks/results/."""

import json
import os
import platform

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def machine():
    """Platform, CPU and library versions of this run."""
    import keras
    import tensorflow as tf

    return {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
            "tensorflow": tf.__version__, "keras": keras.__version__}


def write_result(path, result):
    """Writes ``result`` as JSON to ``path`` (folders created; atomically, so a killed run leaves the last result)
    and says where."""
    from keras_vae.atomic_files import atomic_write_text

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_text(path, json.dumps(result, indent=2))
    print(f"\nwrote {path}")
