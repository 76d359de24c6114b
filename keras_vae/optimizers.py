"""The optimizer wrapper that keeps a model's weights finite: a non-finite step is skipped, not applied.

`VAE.compile` wraps any optimizer that is not already a `keras.optimizers.LossScaleOptimizer` in
`NonFiniteSkipping`, so NaN in the data or a diverging step never reaches the weights, with or without
the CLI trainer. Under ``mixed_float16`` Keras' own dynamic `LossScaleOptimizer` does the skipping.

Example:

>>> opt = NonFiniteSkipping(keras.optimizers.Adam(1e-3))
>>> vae.compile(optimizer=opt)      # what vae.compile(optimizer="adam") does

`FusedAdam` is Keras' Adam with each variable's update done by one fused TensorFlow kernel
(``ResourceApplyAdam``): the same arithmetic, fewer ops per step, which matters for small models on CPU.

>>> vae.compile(optimizer=FusedAdam(1e-3))
"""

import keras
import tensorflow as tf


def all_finite(tensors):
    """A boolean scalar: True when no element of ``tensors`` (a list; None entries are ignored) is NaN or ±Inf.

    One sum per tensor is tested first: a NaN or an infinity anywhere makes its tensor's sum NaN or infinite, so
    finite sums prove every element finite. Only when a sum is not finite (a non-finite element, or finite
    values whose sum overflowed) does the element-wise test run, so the answer is exact. On a training step's
    gradients this reads each tensor once instead of writing and reading a boolean copy of it.

    >>> all_finite([tf.constant([1.0, 3e38, 3e38])])    # the sum overflows, the elements are finite
    <tf.Tensor: shape=(), dtype=bool, numpy=True>
    """
    tensors = [t for t in tensors if t is not None]
    if not tensors:
        return tf.constant(True)
    sums = tf.stack([tf.cast(tf.reduce_sum(t), tf.float32) for t in tensors])
    return tf.cond(
        tf.reduce_all(tf.math.is_finite(sums)),
        lambda: tf.constant(True),
        lambda: tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in tensors]),
    )


@keras.saving.register_keras_serializable(package="keras_vae")
class NonFiniteSkipping(keras.optimizers.LossScaleOptimizer):
    """A `LossScaleOptimizer` with the scale fixed at 1: it only skips updates with non-finite gradients.

    The skip reuses the loss-scale optimizer's cross-replica logic, which applies or skips an update on
    every replica alike. A skipped step does not advance ``iterations``. With the scale fixed at 1 there is
    nothing to scale, unscale or count, so those per-step ops (a pass over every gradient) are left out.
    """

    def __init__(self, inner_optimizer, name=None, **kwargs):
        kwargs.pop("initial_scale", None)
        kwargs.pop("dynamic_growth_steps", None)
        super().__init__(inner_optimizer, initial_scale=1.0, dynamic_growth_steps=2**31 - 1, name=name, **kwargs)
        self._verdict = None

    def scale_loss(self, loss):
        return loss

    def check_finite(self, grads):
        return all_finite(grads) if self._verdict is None else self._verdict

    def apply_with_verdict(self, grads, trainable_variables, finite):
        """`apply`, skipping the update when ``finite`` (a boolean scalar the caller computed) is False, instead
        of testing the gradients again: a caller that already tested them saves a pass over every gradient.

        One replica only: under a multi-replica strategy each replica would hand over its own verdict tensor.
        """
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            raise ValueError("apply_with_verdict runs with one replica; under a multi-replica strategy, make the "
                             "gradients themselves non-finite on a skipped step and call apply.")
        self._verdict = tf.convert_to_tensor(finite, tf.bool)
        try:
            self.apply(grads, trainable_variables)
        finally:
            self._verdict = None

    def _stateful_handle_finite_grads(self, grads, trainable_variables):
        self.inner_optimizer.apply(grads, trainable_variables=trainable_variables)

    def _stateful_handle_non_finite_grads(self):
        self.step_counter.assign(0)  # the scale stays 1: float32 training needs no scaling


@keras.saving.register_keras_serializable(package="keras_vae")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` whose per-variable update is TensorFlow's fused ``ResourceApplyAdam`` kernel.

    Keras' Adam updates each variable with about ten element-wise ops (moments, bias correction, the step);
    on CPU their dispatch is a third of a small MLP's training step. ``ResourceApplyAdam`` computes the same
    update (``m += (g - m)(1 - beta_1)``, ``v += (g^2 - v)(1 - beta_2)``, ``w -= alpha m / (sqrt(v) + epsilon)``
    with ``alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)``) in one op, under any `tf.distribute` strategy and
    under XLA. ``amsgrad`` and sparse (`tf.IndexedSlices`) gradients take Keras' own update. Saved and loaded
    like Adam, with the same variables, so a checkpoint of one loads into the other.

    Example:

    >>> opt = FusedAdam(learning_rate=1e-3)
    >>> vae.compile(optimizer=opt)
    """

    def update_step(self, gradient, variable, learning_rate):
        import tensorflow as tf  # the model library runs on the TensorFlow backend

        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        local_step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(self._momentums[index]), v=_handle(self._velocities[index]),
            beta1_power=tf.pow(beta_1, local_step), beta2_power=tf.pow(beta_2, local_step),
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype), use_locking=False)


def _handle(variable):
    """The resource handle of a Keras or TensorFlow variable (of this replica's copy inside a strategy update)."""
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle
