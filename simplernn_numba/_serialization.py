"""Shared ``get``/``serialize`` logic for initializers, regularizers and constraints.

Objects are serialised as Keras does: ``{"class_name": ..., "config": {...}}``.
Deserialisation only ever instantiates classes from a fixed registry, so a
config can never execute arbitrary code.
"""

from __future__ import annotations

import re

from ._validate import did_you_mean


def snake_case(name: str) -> str:
    """``"GlorotUniform"`` -> ``"glorot_uniform"``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Serializable:
    """Base class: subclasses store their constructor arguments in ``get_config``."""

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(sorted(self.get_config().items()))))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def make_registry(classes, aliases: dict) -> dict:
    """Map class names, snake_case names and ``aliases`` to factories."""
    registry = {}
    for cls in classes:
        registry[cls.__name__] = cls
        registry[snake_case(cls.__name__)] = cls
    registry.update(aliases)
    return registry


def resolve(identifier, registry: dict, kind: str, allow_callable: bool = True):
    """Turn ``None``, a name, a Keras config dict, an instance or a callable into an object."""
    if identifier is None:
        return None
    if isinstance(identifier, str):
        if identifier not in registry:
            names = sorted(k for k in registry if not k[0].isupper())
            raise ValueError(f"Unknown {kind} {identifier!r};{did_you_mean(identifier, names)} "
                             f"Expected one of: {', '.join(names)}.")
        return registry[identifier]()
    if isinstance(identifier, dict):
        name = identifier.get("class_name")
        config = identifier.get("config") or {}
        if not isinstance(name, str) or name not in registry:
            hint = did_you_mean(name, registry) if isinstance(name, str) else ""
            raise ValueError(f"Unknown {kind} config {identifier!r}: class_name must be registered.{hint}")
        if not isinstance(config, dict):
            raise ValueError(f"{kind} config for {name!r} must be a dict; received {config!r}.")
        factory = registry[name]
        cls = factory if isinstance(factory, type) else type(factory())
        try:
            return cls.from_config(config)
        except TypeError as err:
            raise ValueError(f"Invalid config for {kind} {name!r}: {err}") from None
    if callable(identifier) and allow_callable:
        return identifier
    raise TypeError(
        f"Could not interpret {kind} {identifier!r} of type {type(identifier).__name__}; "
        "expected None, a name, a config dict or a callable."
    )


def serialize(obj):
    """Keras-style config dict for a registered object, ``None`` for None."""
    if obj is None:
        return None
    if isinstance(obj, Serializable):
        return {"class_name": type(obj).__name__, "config": obj.get_config()}
    return getattr(obj, "__name__", repr(obj))
