"""Turning a name, a serialized config or a layer into a layer (for likelihood=/prior= arguments)."""

import keras


def layer_from(identifier, registry, kind):
    """Returns ``identifier`` as a layer: a layer as is, a config dict deserialized, a name from ``registry``."""
    if isinstance(identifier, keras.layers.Layer):
        return identifier
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    if isinstance(identifier, str) and identifier in registry:
        return registry[identifier]()
    raise ValueError(f"Unknown {kind} {identifier!r}; expected one of {sorted(registry)} or a {kind} layer.")
