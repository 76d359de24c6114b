"""What a `VAE` training step does with a non-finite loss or gradient, and the optimizers that apply its steps.

A step whose loss or gradient holds NaN or Inf on any replica is skipped: no weight moves, the step stays out
of the metrics (an epoch with no applied step reports them as NaN) and counts in ``skipped_steps``, and `fit`
warns at the end. ``compile(nonfinite="stop")``
also stops `fit` with `NonFiniteLossError`. A model with an adversary (FactorVAE, VAE-GAN) trains it with a
second optimizer, ``adversary_optimizer``, under the same policy. `StepPolicy` is a mixin of `VAE`.

Example:

>>> vae.compile(optimizer="adam", nonfinite="stop")
>>> vae.fit(images_with_nan, batch_size=64)
Traceback (most recent call last):
NonFiniteLossError: Non-finite loss or gradient at batch 1 (nonfinite='stop'). ...
"""

import warnings

import keras
import tensorflow as tf

from keras_vae.optimizers import NonFiniteSkipping, all_finite

NONFINITE_POLICIES = ("skip", "stop")


class NonFiniteLossError(RuntimeError):
    """Training met a non-finite loss or gradient and stopped (the update was not applied)."""


class StopOnSkippedStep(keras.callbacks.Callback):
    """Stops `fit` at the first skipped (non-finite) step: ``compile(nonfinite="stop")``."""

    def on_train_batch_end(self, batch, logs=None):
        if logs and logs.get("skipped_steps", 0) > 0:
            self.model.stop_training = True
            raise NonFiniteLossError(
                f"Non-finite loss or gradient at batch {batch + 1} (nonfinite='stop'). The update was not applied; "
                "the weights hold the last finite state. Check the data for NaN/Inf, lower the learning rate or "
                "clip gradients (clipnorm)."
            )


class AppliedMean(keras.metrics.Mean):
    """`keras.metrics.Mean` that is NaN, not 0.0, while nothing has weight: the metric of an epoch whose steps were
    all skipped (e.g. by the loss scale's warm-up under mixed_float16) has no value to report.

    Skipped steps weigh 0 (`StepPolicy._metric_weight`), so a partly skipped epoch averages its applied steps only.

    >>> m = AppliedMean(name="loss"); m.update_state([5.0], sample_weight=[0.0], applied=0.0); float(m.result())
    nan
    """

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        # Steps applied since the reset: all-zero sample weights still give 0.0, a wholly skipped epoch NaN.
        self.applied = self.add_variable(shape=(), initializer="zeros", dtype=self.dtype, name="applied")

    def update_state(self, values, sample_weight=None, applied=1.0):
        """`Mean.update_state`; ``applied`` is 0.0 for a skipped step."""
        super().update_state(values, sample_weight=sample_weight)
        self.applied.assign_add(tf.cast(applied, self.dtype))

    def result(self):
        mean = tf.math.divide_no_nan(self.total, tf.cast(self.count, self.dtype))
        return tf.where(self.applied > 0, mean, tf.constant(float("nan"), self.dtype))


def guarded(optimizer):
    """``optimizer`` wrapped so non-finite steps are skipped (under mixed_float16 Keras adds its dynamic one)."""
    optimizer = keras.optimizers.get(optimizer)
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) or \
            keras.mixed_precision.global_policy().name == "mixed_float16":
        return optimizer
    return NonFiniteSkipping(optimizer)


def _replicas(ctx):
    return ctx.num_replicas_in_sync if ctx is not None else 1


def apply_unless_nonfinite(optimizer, grads, variables, terms):
    """Applies ``grads`` unless a loss term or gradient is non-finite on any replica; keeps such a step out of
    the metrics. Returns ``(terms, finite)``: the terms zeroed on a skipped step, ``finite`` 1.0 or 0.0.

    The loss-scale optimizer tests the gradients of the first replica only (before the all-reduce), so a
    NaN on another replica would reach every replica's weights through the sum: under several replicas a
    non-finite step turns all gradients to NaN, so every replica skips. With one replica `NonFiniteSkipping`
    takes the verdict as it is instead of testing the gradients a second time.
    """
    finite = all_finite([*terms.values(), *grads])
    ctx = tf.distribute.get_replica_context()
    replicas = _replicas(ctx)
    if replicas > 1:
        num_bad = ctx.all_reduce(tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, tf.float32))
        finite = tf.equal(num_bad, 0.0)
    if replicas == 1 and isinstance(optimizer, NonFiniteSkipping):
        optimizer.apply_with_verdict(grads, variables, finite)
    else:
        # A cond, not a select per gradient: a finite step passes its gradients on without touching them.
        grads = tf.cond(
            finite,
            lambda: list(grads),
            lambda: [None if g is None else tf.fill(tf.shape(g), tf.constant(float("nan"), g.dtype)) for g in grads],
        )
        optimizer.apply_gradients(zip(grads, variables))
    terms = {k: tf.where(finite, v, tf.zeros_like(v)) for k, v in terms.items()}
    return terms, tf.cast(finite, tf.float32)


def warn_skipped_steps(history):
    """Warns, at the caller of `fit`, when any step of the `fit` that returned ``history`` was skipped."""
    skipped = sum(history.history.get("skipped_steps", []))
    if skipped:
        warnings.warn(f"{int(skipped)} training steps had a non-finite loss or gradient and were skipped "
                      "(the weights stayed finite): check the data for NaN/Inf or lower the learning rate.",
                      RuntimeWarning, stacklevel=3)


class StepPolicy:
    """Mixin of `VAE`: `compile` with the non-finite policy and the adversary's optimizer, their saved state,
    the optimizer's step count, the adversary's update and the count of skipped steps.

    Reads the model's ``objective``, ``adversary``, ``trackers`` and ``noise_seed()``.
    """

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, nonfinite="skip", adversary_optimizer=None,
                **kwargs):
        """Compiles with ``optimizer`` only: the model owns its objective and metrics.

        Args:
            nonfinite: ``"skip"`` (default) skips an update whose loss or gradient is not finite and counts it
                in ``skipped_steps``; ``"stop"`` also stops `fit` with `NonFiniteLossError`.
            adversary_optimizer: the optimizer of the model's adversary (default: the adversary's own, e.g.
                Adam(1e-4, 0.5, 0.9) for FactorVAE); non-finite discriminator steps are skipped the same way.
        """
        for name, value in (("loss", loss), ("metrics", metrics), ("loss_weights", kwargs.get("loss_weights")),
                            ("weighted_metrics", kwargs.get("weighted_metrics"))):
            if value is not None:
                raise ValueError(f"{type(self).__name__}.compile takes no {name}=: the model trains on its own "
                                 f"objective ({type(self.objective).__name__}) and reports its own metrics. "
                                 "Choose the objective when building the model.")
        if nonfinite not in NONFINITE_POLICIES:
            raise ValueError(f"nonfinite must be one of {list(NONFINITE_POLICIES)}, got {nonfinite!r}")
        self.nonfinite_policy = nonfinite
        super().compile(optimizer=guarded(optimizer), **kwargs)
        self.adversary_optimizer = None
        if self.adversary is not None:
            mixed = keras.mixed_precision.global_policy().name == "mixed_float16"
            adversary_optimizer = guarded(adversary_optimizer or self.adversary.default_optimizer())
            if mixed and not isinstance(adversary_optimizer, keras.optimizers.LossScaleOptimizer):
                adversary_optimizer = keras.optimizers.LossScaleOptimizer(adversary_optimizer)
            self.adversary_optimizer = adversary_optimizer

    def get_compile_config(self):
        config = super().get_compile_config()
        if config is None:
            return None
        extra = {"nonfinite": self.nonfinite_policy}
        if getattr(self, "adversary_optimizer", None) is not None:
            extra["adversary_optimizer"] = keras.saving.serialize_keras_object(self.adversary_optimizer)
        return {**config, **extra}

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        keep = ("optimizer", "nonfinite", "adversary_optimizer", "run_eagerly", "steps_per_execution", "jit_compile",
                "auto_scale_loss_with_mixed_precision")
        self.compile(**{k: v for k, v in config.items() if k in keep and v is not None})
        if self.optimizer is not None and self.built:
            self.optimizer.build(self.model_variables())  # so the saved optimizer state can be restored
        if getattr(self, "adversary_optimizer", None) is not None:
            self.adversary_optimizer.build(self.adversary.trainable_variables)

    def model_variables(self):
        """The trainable variables of the model's own objective: all but its adversary's."""
        if self.adversary is None:
            return self.trainable_variables
        held_out = {id(v) for v in self.adversary.trainable_variables}
        return [v for v in self.trainable_variables if id(v) not in held_out]

    def optimizer_step(self):
        """The optimizer's step count as a float (0 before compile): schedules of objectives read it."""
        if getattr(self, "optimizer", None) is None:
            return tf.constant(0.0)
        return tf.cast(self.optimizer.iterations, tf.float32)

    def _adversary_step(self, x, terms, sample_weight):
        """One update of the adversary on the batch and what the model's step drew (held out of its gradient)."""
        variables = self.adversary.trainable_variables
        with tf.GradientTape() as tape:
            adversary_terms = self.adversary.discriminator_terms(self, x, terms, self.noise_seed(), training=True)
            loss = tf.nn.compute_average_loss(adversary_terms["discriminator_loss"], sample_weight=sample_weight)
            scaled_loss = self.adversary_optimizer.scale_loss(loss)
        grads = tape.gradient(scaled_loss, variables)
        return apply_unless_nonfinite(self.adversary_optimizer, grads, variables, adversary_terms)

    def _metric_weight(self, finite, terms, sample_weight):
        """Counts a skipped step (``finite`` 0.0) and returns the per-example metric weights of the step."""
        # A Sum adds every replica's update: count each skipped step once.
        self.trackers["skipped_steps"].update_state((1.0 - finite) / _replicas(tf.distribute.get_replica_context()))
        # Per example, not a scalar: Keras' Mean turns a scalar weight on a replica's empty batch into NaN.
        weight = tf.fill(tf.shape(terms["loss"]), finite)
        return weight if sample_weight is None else weight * sample_weight

    def _fit_callbacks(self, callbacks):
        """Gets the policy ready for `fit`: builds the adversary's optimizer and returns ``callbacks`` with a stop
        at the first skipped step for ``nonfinite="stop"``."""
        if getattr(self, "adversary_optimizer", None) is not None and not self.adversary_optimizer.built:
            # Built here, in the strategy's scope: built lazily inside a distributed step it would create its
            # variables in a cond branch, which fails.
            with self.distribute_strategy.scope():
                self.adversary_optimizer.build(self.adversary.trainable_variables)
        callbacks = list(callbacks or [])
        if self.nonfinite_policy == "stop":
            callbacks.append(StopOnSkippedStep())
        return callbacks

