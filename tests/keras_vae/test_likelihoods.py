"""The observation models' log-likelihoods against TensorFlow Probability's and TensorFlow's own formulas."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.likelihoods import BernoulliLikelihood


def test_bernoulli_log_prob_matches_tfp_on_binary_images_and_cross_entropy_on_grey_ones():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=8.0, size=(3, 5, 5, 1)).astype("float32")
    logits[0, 0, 0, 0], logits[0, 0, 1, 0] = 100.0, -100.0  # saturated pixels stay exact
    binary = (rng.random(logits.shape) > 0.5).astype("float32")
    want = tfp.distributions.Independent(tfp.distributions.Bernoulli(logits=logits), 3).log_prob(binary)
    got = BernoulliLikelihood().log_prob(binary, logits)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5)

    grey = rng.random(logits.shape).astype("float32")
    want = -tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=grey, logits=logits), [1, 2, 3])
    np.testing.assert_allclose(BernoulliLikelihood().log_prob(grey, logits).numpy(), want.numpy(), rtol=1e-5)


def test_bernoulli_log_prob_broadcasts_over_samples_and_has_the_logistic_gradient():
    rng = np.random.default_rng(1)
    images = (rng.random((2, 4, 4, 1)) > 0.5).astype("float32")
    logits = tf.constant(rng.normal(scale=3.0, size=(6, 2, 4, 4, 1)).astype("float32"))  # 6 samples per image
    with tf.GradientTape() as tape:
        tape.watch(logits)
        log_prob = BernoulliLikelihood().log_prob(images, logits)
    assert log_prob.shape == (6, 2)
    np.testing.assert_allclose(log_prob[3].numpy(), BernoulliLikelihood().log_prob(images, logits[3]).numpy())
    np.testing.assert_allclose(tape.gradient(log_prob, logits).numpy(), (images - tf.sigmoid(logits)).numpy(),
                               atol=1e-6)
