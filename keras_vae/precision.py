"""Running a model in float32 whatever mixed-precision policy it was built or trained under.

Example:

>>> with float32_compute(vae):     # a model trained with precision="mixed_bfloat16"
...     nll = iwae_bound(vae, images, num_samples=100)
"""

import contextlib


@contextlib.contextmanager
def float32_compute(model):
    """Runs every layer of ``model`` in float32 inside the block; the layers get their policies back afterwards.

    A model trained under ``mixed_bfloat16`` or ``mixed_float16`` keeps that policy in its layers: traced as it is,
    an exported signature would compute in bfloat16 or float16 (TFLite's converter refuses bfloat16 convolutions,
    serving clients expect float32), and an evaluation would carry bfloat16's three significant digits. Mixed
    policies keep float32 weights, so only the compute dtype changes.
    """
    layers = list(model._flatten_layers(include_self=True, recursive=True))
    policies = [layer.dtype_policy for layer in layers]
    try:
        for layer in layers:
            layer.dtype_policy = "float32"
        yield model
    finally:
        for layer, policy in zip(layers, policies):
            layer.dtype_policy = policy
