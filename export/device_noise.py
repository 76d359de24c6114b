"""Seeded noise built from TFLite builtin integer ops: the same ``seed`` gives the same draws in TensorFlow, in a
SavedModel and in every ``.tflite`` file (float32, float16, dynamic-range, int8).

TFLite has no stateless random op with a run-time seed (RANDOM_STANDARD_NORMAL's seed is fixed at conversion, and
``tf.random.stateless_*`` needs Flex ops, which the pip LiteRT runtime cannot run). `CounterNoise` is a
counter-based generator instead: element ``j`` of a draw is a hash of ``(seed, call, j)`` made of int32
BITWISE_XOR, RIGHT_SHIFT, MUL and ADD (wrapping modulo 2**32), turned into uniforms in (0, 1) and, by Box-Muller
(LOG, SQRT, COS), into standard normals. Draws are prefix-stable: the first ``k`` rows of an ``[n, d]`` draw are
the ``[k, d]`` draw of the same seed. `reference_normal` / `reference_uniform` compute the same numbers with NumPy.

Example:

>>> noise = CounterNoise(tf.constant(7, tf.int64))
>>> z = noise.normal([4, 2])                                # [4, 2] float32, the same for seed 7 everywhere
>>> np.allclose(z, reference_normal(7, 1, [4, 2]), atol=1e-5)
True
"""

import math

import numpy as np
import tensorflow as tf

# lowbias32's multipliers (Chris Wellons' hash-prospector) and the golden-ratio increment, as int32 bit patterns.
_M1, _M2, _GOLDEN = 0x7FEB352D, 0x846CA68B, 0x9E3779B9
_TWO_PI_HIGH = 6.28125  # 2 pi to float16's 11 bits; the rest below
_TWO_PI_LOW = 2.0 * math.pi - _TWO_PI_HIGH
_UNIFORM_BITS = 23  # a float32 holds (m + 0.5) * 2**-23 exactly for m < 2**23: uniforms in (0, 1), never 0 or 1

# Name scope of every noise op: `export.tflite` keeps the ops under it out of int8 quantization.
SCOPE = "device_noise"


def _int32(value):
    """The int32 whose bits are the unsigned 32-bit ``value``."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _shift_right(x, bits):
    # A logical shift from the builtins: RIGHT_SHIFT is arithmetic on int32 and TFLite has no BITWISE_AND, so the
    # copied sign bits are cleared by XOR with (x >> 31) * 2**(32 - bits) (all ones in the top ``bits`` bits).
    return tf.bitwise.bitwise_xor(tf.bitwise.right_shift(x, bits), tf.bitwise.right_shift(x, 31) * (1 << (32 - bits)))


def _mix(x):
    """lowbias32: a bijection of 32-bit words with a low avalanche bias, on int32 bit patterns."""
    x = tf.bitwise.bitwise_xor(x, _shift_right(x, 16)) * _int32(_M1)
    x = tf.bitwise.bitwise_xor(x, _shift_right(x, 15)) * _int32(_M2)
    return tf.bitwise.bitwise_xor(x, _shift_right(x, 16))


class CounterNoise:
    """Standard normal and uniform noise from an int64 ``seed`` tensor, with TFLite builtin ops only.

    The noise interface of `keras_vae.priors` (``normal(shape)``, ``uniform(shape)``), so every prior and ex-post
    sampler draws with it through ``sampler.draw(num_samples, temperature, CounterNoise(seed))``. Each call
    draws from its own stream.
    """

    def __init__(self, seed):
        with tf.name_scope(SCOPE):
            self._halves = tf.unstack(tf.bitcast(tf.cast(seed, tf.int64), tf.int32))  # low, high words
        self._calls = 0

    def _bits(self, shape, per_element):
        """``per_element`` hashed int32 words for each element of ``shape``: ``[prod(shape), per_element]``."""
        self._calls += 1
        low, high = self._halves
        key_a = _mix(low + _int32(self._calls * _GOLDEN))
        key_b = _mix(tf.bitwise.bitwise_xor(high, key_a))
        count = tf.reduce_prod(tf.cast(shape, tf.int32)) * per_element
        counters = tf.range(count, dtype=tf.int32) + key_a
        return tf.reshape(_mix(tf.bitwise.bitwise_xor(_mix(counters), key_b)), [-1, per_element])

    def _uniform(self, bits):
        mantissa = tf.cast(_shift_right(bits, 32 - _UNIFORM_BITS), tf.float32)
        return (mantissa + 0.5) * (2.0 ** -_UNIFORM_BITS)

    def uniform(self, shape):
        """Uniform noise in (0, 1) of ``shape``."""
        with tf.name_scope(SCOPE):
            return tf.reshape(self._uniform(self._bits(shape, 1)), shape)

    def normal(self, shape):
        """Standard normal noise of ``shape`` (Box-Muller on two uniforms per element)."""
        with tf.name_scope(SCOPE):
            u = self._uniform(self._bits(shape, 2))
            radius = tf.sqrt(-2.0 * tf.math.log(u[:, 0]))
            # 2 pi in two parts, each exact enough in float16: the float16 file stores float constants in float16.
            angle = u[:, 1] * _TWO_PI_HIGH + u[:, 1] * _TWO_PI_LOW
            return tf.reshape(radius * tf.cos(angle), shape)


def _reference_bits(seed, call, count):
    """NumPy twin of `CounterNoise._bits` (uint32 arithmetic), for tests and for checking a device's draws."""
    def mix(x):
        x = np.asarray(x, np.uint32)
        x = (x ^ (x >> np.uint32(16))) * np.uint32(_M1)
        x = (x ^ (x >> np.uint32(15))) * np.uint32(_M2)
        return x ^ (x >> np.uint32(16))

    with np.errstate(over="ignore"):
        low, high = np.array([seed], np.int64).view(np.uint32)
        key_a = mix(low + np.uint32(call * _GOLDEN & 0xFFFFFFFF))
        key_b = mix(high ^ key_a)
        return mix(mix(np.arange(count, dtype=np.uint32) + key_a) ^ key_b)


def reference_uniform(seed, call, shape):
    """What ``CounterNoise(seed).uniform(shape)`` returns as its ``call``-th draw, computed with NumPy."""
    bits = _reference_bits(seed, call, int(np.prod(shape)))
    return (((bits >> np.uint32(32 - _UNIFORM_BITS)).astype(np.float64) + 0.5) * 2.0 ** -_UNIFORM_BITS).reshape(shape)


def reference_normal(seed, call, shape):
    """What ``CounterNoise(seed).normal(shape)`` returns as its ``call``-th draw, computed with NumPy (float64)."""
    bits = _reference_bits(seed, call, 2 * int(np.prod(shape))).reshape(-1, 2)
    u = ((bits >> np.uint32(32 - _UNIFORM_BITS)).astype(np.float64) + 0.5) * 2.0 ** -_UNIFORM_BITS
    return (np.sqrt(-2.0 * np.log(u[:, 0])) * np.cos(2.0 * np.pi * u[:, 1])).reshape(shape)
