"""Turning a name, a serialized config or an object into a part (for likelihood=/prior=/posterior=/objective=)."""

import keras


def resolve(identifier, registry, kind, base):
    """``identifier`` as a ``base`` instance: an instance as is, a config dict deserialized, a name from ``registry``."""
    if isinstance(identifier, dict):
        identifier = keras.saving.deserialize_keras_object(identifier)
    elif isinstance(identifier, str) and identifier in registry:
        identifier = registry[identifier]()
    if isinstance(identifier, base):
        return identifier
    raise ValueError(f"Unknown {kind} {identifier!r}; expected one of {sorted(registry)} or a {base.__name__}.")
