"""Bounds of one sampling request, shared by the `sample` signature, `sample_images` and the CLI.

Example:

>>> check_sample_request(16, temperature=0.8)
>>> check_sample_request(10**6, temperature=1.0)
Traceback (most recent call last):
ValueError: num_samples must be <= 1024 (the maximum per request), got 1000000.
"""

import math

# Upper bound of `num_samples` in the `sample` signature and in `keras-vae sample`: one request stays a
# bounded amount of work and memory (a million 28x28 samples would ask for gigabytes of buffers).
MAX_SAMPLES = 1024


def check_sample_request(num_samples, temperature):
    """ValueError unless ``1 <= num_samples <= MAX_SAMPLES`` and ``temperature`` is finite and > 0."""
    if not 1 <= num_samples <= MAX_SAMPLES:
        bound = "num_samples must be >= 1" if num_samples < 1 else f"num_samples must be <= {MAX_SAMPLES} (the maximum per request)"
        raise ValueError(f"{bound}, got {num_samples}.")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be > 0 and finite, got {temperature}.")
