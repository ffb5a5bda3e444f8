"""Save and load layers as ``.npz`` files, without pickle.

A file is a NumPy ``.npz`` archive (``np.savez``) whose members are plain numeric arrays:

- ``header``: uint8, the UTF-8 JSON text ``{"format": "simplernn_numba", "version": 1,
  "class_name": "SimpleRNN" | "Bidirectional", "config": <get_config()>,
  "features": F or null (unbuilt), "batch_size": B or null}``;
- a built SimpleRNN: ``kernel`` (F, U), ``recurrent_kernel`` (U, U) and, with
  ``use_bias``, ``bias`` (U,), in the layer dtype; a stateful layer whose state
  exists also stores it as ``state`` (B, U), and gets it back on load;
- a Bidirectional: the same members prefixed ``forward.`` and ``backward.``.

Loading never executes code from the file: the config is JSON and is turned into
objects only through the package's registries of built-in names; every member's
name, dtype and shape is checked from its ``.npy`` header before its data is read,
and data is read with ``allow_pickle=False``. Any problem raises ``ValueError``
naming the file and the problem. What is not stored: the ``device`` (pass it to
:func:`load`), and the position of the dropout random stream (a loaded layer
restarts it from ``seed``).

>>> import os, tempfile
>>> import numpy as np
>>> from simplernn_numba import SimpleRNN
>>> layer = SimpleRNN(3)
>>> x = np.ones((2, 4, 5), np.float32)
>>> path = os.path.join(tempfile.mkdtemp(), "rnn.npz")
>>> y = layer(x)
>>> save(layer, path)
>>> bool(np.array_equal(load(path)(x), y))
True
"""

from __future__ import annotations

import inspect
import json
import os
import zipfile

import numpy as np

from .. import activations
from .._serialization import Serializable
from ..bidirectional import Bidirectional
from ..layer import CONFIG_OBJECTS, SimpleRNN

FORMAT = "simplernn_numba"
VERSION = 1
_HEADER = "header"
_HEADER_KEYS = {"format", "version", "class_name", "config", "features", "batch_size"}
_MAX_HEADER_BYTES = 1 << 20
#: Constructor arguments a saved SimpleRNN config may hold (not the shape keywords or device).
_SIMPLE_RNN_KEYS = frozenset(inspect.signature(SimpleRNN).parameters) - {
    "device", "input_shape", "batch_input_shape", "batch_size"}
_BIDIRECTIONAL_KEYS = frozenset({"name", "trainable", "dtype", "merge_mode", "layer", "backward_layer"})


class LoadError(ValueError):
    """A file that is not a valid saved layer."""


# ---------------------------------------------------------------------- save
def _check_savable(layer: SimpleRNN) -> None:
    if activations.name_of(layer.activation) is None:
        raise ValueError(
            f"Layer {layer.name!r} has a Python-callable activation, which a file cannot hold "
            "without executing code on load; use a built-in activation name."
        )
    for key in CONFIG_OBJECTS:
        value = getattr(layer, key)
        if value is not None and not isinstance(value, Serializable):
            raise ValueError(
                f"Layer {layer.name!r} has a Python callable as {key} ({value!r}); only built-in "
                "initializers, regularizers and constraints can be saved."
            )


def _simple_rnn_arrays(layer: SimpleRNN, prefix: str = "") -> dict:
    arrays = {}
    if layer.built:
        arrays.update({prefix + key: w for key, w in zip(layer.weight_names, layer.weights)})
    if layer.stateful and layer.states[0] is not None:
        arrays[prefix + "state"] = layer.states[0]
    return arrays


def save(layer: SimpleRNN | Bidirectional, path: str | os.PathLike) -> None:
    """Write ``layer`` (SimpleRNN or Bidirectional) to ``path`` (a path or a binary file).

    As with ``np.savez``, a path without the ``.npz`` suffix gets it appended.

    Raises
    ------
    ValueError
        When the layer is not built, or uses a Python callable that a file cannot hold.
    """
    if isinstance(layer, Bidirectional):
        parts = {"forward.": layer.forward_layer, "backward.": layer.backward_layer}
    elif isinstance(layer, SimpleRNN):
        parts = {"": layer}
    else:
        raise TypeError(f"Expected a SimpleRNN or Bidirectional layer; received {type(layer).__name__}.")
    arrays = {}
    for prefix, part in parts.items():
        _check_savable(part)
        if not part.built:
            raise ValueError(f"Layer {part.name!r} is not built; call or build it before saving.")
        arrays.update(_simple_rnn_arrays(part, prefix))
    first = next(iter(parts.values()))
    header = {
        "format": FORMAT, "version": VERSION, "class_name": type(layer).__name__,
        "config": layer.get_config(), "features": int(first.kernel.shape[0]),
        "batch_size": first.batch_size,
    }
    text = json.dumps(header, allow_nan=False).encode("utf-8")
    np.savez(path, **{_HEADER: np.frombuffer(text, np.uint8)}, **arrays)


# ---------------------------------------------------------------------- load
def _member_headers(archive: zipfile.ZipFile, where: str) -> dict:
    """{name: (shape, dtype, ZipInfo)} read from each member's ``.npy`` header, data unread."""
    members = {}
    for info in archive.infolist():
        if not info.filename.endswith(".npy"):
            raise LoadError(f"{where}: unexpected member {info.filename!r} (only .npy arrays are allowed).")
        with archive.open(info) as fp:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
            else:
                raise LoadError(f"{where}: member {info.filename!r} has .npy version {version}.")
            offset = fp.tell()
        if dtype.hasobject or dtype.kind not in "uf":
            raise LoadError(f"{where}: member {info.filename!r} has dtype {dtype}; numbers only.")
        expected = offset + int(np.prod(shape)) * dtype.itemsize
        if info.file_size != expected:
            raise LoadError(
                f"{where}: member {info.filename!r} holds {info.file_size} bytes; its header "
                f"(shape {shape}, dtype {dtype}) needs {expected}."
            )
        members[info.filename[:-4]] = (tuple(shape), dtype, info)
    return members


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    with archive.open(info) as fp:
        return np.lib.format.read_array(fp, allow_pickle=False)


def _header(archive: zipfile.ZipFile, members: dict, where: str) -> dict:
    if _HEADER not in members:
        raise LoadError(f"{where}: no {_HEADER!r} member; not a {FORMAT} file.")
    shape, dtype, info = members[_HEADER]
    if dtype != np.uint8 or len(shape) != 1 or shape[0] > _MAX_HEADER_BYTES:
        raise LoadError(f"{where}: {_HEADER!r} must be 1-D uint8 JSON text; got {dtype} {shape}.")
    try:
        header = json.loads(_read(archive, info).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise LoadError(f"{where}: {_HEADER!r} is not JSON text ({err}).") from None
    if not isinstance(header, dict) or set(header) != _HEADER_KEYS:
        keys = sorted(header) if isinstance(header, dict) else type(header).__name__
        raise LoadError(f"{where}: header must have the keys {sorted(_HEADER_KEYS)}; got {keys}.")
    if header["format"] != FORMAT or header["version"] != VERSION:
        raise LoadError(
            f"{where}: format {header['format']!r} version {header['version']!r}; "
            f"this package reads {FORMAT!r} version {VERSION}."
        )
    for key in ("features", "batch_size"):
        value = header[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise LoadError(f"{where}: header {key!r} must be a positive integer or null; got {value!r}.")
    return header


def _simple_rnn_from_config(config, where: str, device: str) -> SimpleRNN:
    if not isinstance(config, dict) or not set(config) <= _SIMPLE_RNN_KEYS:
        extra = sorted(set(config) - _SIMPLE_RNN_KEYS) if isinstance(config, dict) else config
        raise LoadError(f"{where}: SimpleRNN config has unknown keys {extra!r}.")
    if not isinstance(config.get("name"), str) or not isinstance(config.get("activation"), str):
        raise LoadError(f"{where}: SimpleRNN config needs a string name and activation name.")
    try:
        return SimpleRNN(**config, device=device)
    except (TypeError, ValueError) as err:
        raise LoadError(f"{where}: invalid SimpleRNN config: {err}") from None


def _layer_from_header(header: dict, where: str, device: str):
    config = header["config"]
    if header["class_name"] == "SimpleRNN":
        return _simple_rnn_from_config(config, where, device)
    if header["class_name"] != "Bidirectional":
        raise LoadError(f"{where}: class {header['class_name']!r} is not one this package saves.")
    if not isinstance(config, dict) or set(config) != _BIDIRECTIONAL_KEYS:
        raise LoadError(f"{where}: Bidirectional config must have the keys {sorted(_BIDIRECTIONAL_KEYS)}.")
    config = dict(config)
    for key in ("layer", "backward_layer"):
        entry = config[key]
        if not isinstance(entry, dict) or set(entry) != {"class_name", "config"} \
                or entry["class_name"] != "SimpleRNN":
            raise LoadError(f"{where}: Bidirectional {key!r} must be a SimpleRNN config entry.")
        config[key] = {"class_name": "SimpleRNN",
                       "config": _simple_rnn_from_config(entry["config"], where, device).get_config()}
    try:
        layer = Bidirectional.from_config(config, device=device)
    except (TypeError, ValueError) as err:
        raise LoadError(f"{where}: invalid Bidirectional config: {err}") from None
    return layer


def _expected_members(part: SimpleRNN, prefix: str, features: int, batch_size) -> dict:
    shapes = {"kernel": (features, part.units), "recurrent_kernel": (part.units, part.units)}
    if part.use_bias:
        shapes["bias"] = (part.units,)
    if part.stateful and batch_size is not None:
        shapes["state"] = (batch_size, part.units)
    return {prefix + key: shape for key, shape in shapes.items()}


def _load(archive: zipfile.ZipFile, where: str, device: str):
    members = _member_headers(archive, where)
    header = _header(archive, members, where)
    layer = _layer_from_header(header, where, device)
    if isinstance(layer, SimpleRNN):
        parts = {"": layer}
    else:
        parts = {"forward.": layer.forward_layer, "backward.": layer.backward_layer}
    features, batch_size = header["features"], header["batch_size"]
    if features is None:
        raise LoadError(f"{where}: header 'features' is null; saved layers are always built.")
    expected = {}
    for prefix, part in parts.items():
        expected.update(_expected_members(part, prefix, features, batch_size))
    optional = {key for key in expected if key.endswith("state")}
    present = set(members) - {_HEADER}
    if present - set(expected) or set(expected) - optional - present:
        raise LoadError(
            f"{where}: members {sorted(present)}; expected {sorted(expected)} "
            f"({', '.join(sorted(optional)) or 'no'} optional)."
        )
    dtype = np.dtype(layer.dtype)
    for key in sorted(present):
        shape, member_dtype, _ = members[key]
        if shape != expected[key] or member_dtype != dtype:
            raise LoadError(
                f"{where}: {key!r} must be {dtype} with shape {expected[key]}; "
                f"found {member_dtype} with shape {shape}."
            )
    for prefix, part in parts.items():
        part.build((batch_size, None, features))
        part.set_weights([_read(archive, members[prefix + key][2]) for key in part.weight_names])
        if prefix + "state" in present:
            part.reset_states(_read(archive, members[prefix + "state"][2]))
    return layer


def load(path: str | os.PathLike, *, device: str = "auto") -> SimpleRNN | Bidirectional:
    """Read a layer written by :func:`save`.

    Parameters
    ----------
    path : str, os.PathLike or binary file
    device : {"auto", "cpu", "cuda"}
        Where the loaded layer runs (not stored in the file).

    Returns
    -------
    SimpleRNN or Bidirectional, built, with the saved weights (and state).

    Raises
    ------
    ValueError
        (:class:`LoadError`) for anything but a valid file: not a zip archive,
        truncated or corrupt data, pickled or object arrays, unknown or missing
        members, wrong shapes or dtypes, unknown config keys, names that are
        not registered, or another format or version.
    """
    where = os.fspath(path) if isinstance(path, (str, os.PathLike)) else "file"
    try:
        with zipfile.ZipFile(path) as archive:
            return _load(archive, where, device)
    except LoadError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
            NotImplementedError, RuntimeError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise LoadError(f"{where}: not a valid {FORMAT} file ({type(err).__name__}: {err}).") from None
