"""The optimizer wrapper that keeps a model's weights finite: a non-finite step is skipped, not applied.

`VAE.compile` wraps any optimizer that is not already a `keras.optimizers.LossScaleOptimizer` in
`NonFiniteSkipping`, so NaN in the data or a diverging step never reaches the weights, with or without
the CLI trainer. Under ``mixed_float16`` Keras' own dynamic `LossScaleOptimizer` does the skipping.

Example:

>>> opt = NonFiniteSkipping(keras.optimizers.Adam(1e-3))
>>> vae.compile(optimizer=opt)      # what vae.compile(optimizer="adam") does
"""

import keras


@keras.saving.register_keras_serializable(package="keras_vae")
class NonFiniteSkipping(keras.optimizers.LossScaleOptimizer):
    """A `LossScaleOptimizer` with the scale fixed at 1: it only skips updates with non-finite gradients.

    The skip reuses the loss-scale optimizer's cross-replica logic, which applies or skips an update on
    every replica alike. A skipped step does not advance ``iterations``.
    """

    def __init__(self, inner_optimizer, name=None, **kwargs):
        kwargs.pop("initial_scale", None)
        kwargs.pop("dynamic_growth_steps", None)
        super().__init__(inner_optimizer, initial_scale=1.0, dynamic_growth_steps=2**31 - 1, name=name, **kwargs)

    def _stateful_handle_non_finite_grads(self):
        self.step_counter.assign(0)  # the scale stays 1: float32 training needs no scaling

