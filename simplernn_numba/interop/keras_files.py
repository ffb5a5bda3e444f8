"""Read a saved Keras model's config and weights: Keras 3 ``.keras`` and legacy ``.h5`` files.

A ``.keras`` file is a zip of ``metadata.json`` (the Keras version), ``config.json``
(the model's config) and ``model.weights.h5`` (one group per layer under ``layers/``,
named in its ``vars`` group's ``name`` attribute, the arrays in ``vars/0``, ``vars/1``,
...). A legacy HDF5 file (tf_keras, Keras 2, or Keras 3's ``model.save("x.h5")``) holds
the config in the root attribute ``model_config`` and the weights under ``model_weights/
<layer name>``, listed in order by the group's ``weight_names`` attribute.

Nothing is executed and nothing but JSON and numeric arrays is read; anything missing,
truncated or unexpected raises :class:`ModelFileError`. h5py is imported here, so this
module is imported only by :func:`simplernn_numba.interop.keras.load_model`.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from os import PathLike

import numpy as np

from .keras_config import ModelFileError

try:
    import h5py
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        'Reading Keras model files needs h5py: pip install "simplernn_numba[h5]" (or pip install h5py).'
    ) from error

#: Keras major versions whose files are read, per format.
KERAS_VERSIONS = {"keras": (3,), "h5": (2, 3)}


@dataclass(frozen=True)
class ModelFile:
    """A saved model's config and weights.

    Attributes
    ----------
    config : dict
        ``{"class_name": "Sequential" | "Functional" | "Model", "config": {...}}``.
    keras_version : str
        The version of Keras that wrote the file.
    legacy : bool
        True for a legacy HDF5 file (flat weight lists per layer).
    """

    config: dict
    keras_version: str
    legacy: bool
    _weights: dict

    @property
    def keras2(self) -> bool:
        """Whether the file was written by Keras 2 (tf_keras), whose configs differ from Keras 3's."""
        return _major(self.keras_version) < 3

    def weights(self, layer_name: str, parts: tuple[str, ...] = ("",)) -> list[np.ndarray]:
        """The arrays of one layer, in Keras' ``get_weights()`` order.

        ``parts`` names the sub-objects of a Keras 3 layer whose variables are
        concatenated in that order (``"cell"``, ``"forward_layer/cell"``, ...; ``""`` is
        the layer itself); a legacy file lists them already in order.
        """
        if layer_name not in self._weights:
            return []
        found = self._weights[layer_name]
        if self.legacy:
            return list(found)
        arrays = []
        for part in parts:
            arrays.extend(found.get(part, []))
        return arrays


def _major(version: str) -> int:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        raise ModelFileError(f"Unreadable Keras version {version!r} in the file.") from None


def _check_version(version, kind: str, path) -> str:
    if not isinstance(version, str) or _major(version) not in KERAS_VERSIONS[kind]:
        known = " or ".join(str(v) for v in KERAS_VERSIONS[kind])
        raise ModelFileError(
            f"{path}: written by Keras {version!r}; this reader knows .{kind} files of Keras {known}."
        )
    return version


def _json(text, what: str, path) -> dict:
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:
        raise ModelFileError(f"{path}: {what} is not valid JSON ({error}).") from None
    if not isinstance(value, dict):
        raise ModelFileError(f"{path}: {what} is not a JSON object.")
    return value


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _array(dataset) -> np.ndarray:
    if not isinstance(dataset, h5py.Dataset) or dataset.dtype.kind not in "fiub":
        raise ModelFileError(f"Weight {dataset.name!r} is not a numeric array.")
    return np.asarray(dataset[()])


def _variables(group) -> dict[str, list[np.ndarray]]:
    """{sub-object path ("" for the layer itself): its arrays} of a Keras 3 layer group."""
    found: dict[str, list[np.ndarray]] = {}

    def visit(name, item):
        if isinstance(item, h5py.Group) and name.split("/")[-1] == "vars":
            keys = sorted(item.keys(), key=lambda k: int(k) if k.isdigit() else -1)
            if any(not key.isdigit() for key in keys):
                raise ModelFileError(f"Unexpected entries {keys} in {item.name!r}.")
            found[name[:-len("vars")].rstrip("/")] = [_array(item[key]) for key in keys]

    group.visititems(visit)
    return found


def _read_keras(path) -> ModelFile:
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        missing = {"metadata.json", "config.json", "model.weights.h5"} - names
        if missing:
            raise ModelFileError(f"{path}: not a complete .keras file (missing {sorted(missing)}).")
        metadata = _json(archive.read("metadata.json"), "metadata.json", path)
        version = _check_version(metadata.get("keras_version"), "keras", path)
        config = _json(archive.read("config.json"), "config.json", path)
        weights_file = io.BytesIO(archive.read("model.weights.h5"))
    weights = {}
    with h5py.File(weights_file, "r") as store:
        layers = store.get("layers", {})
        for key in layers:
            name = layers[key].get("vars", None)
            name = _text(name.attrs.get("name", key)) if name is not None else key
            weights[name] = _variables(layers[key])
    return ModelFile(config, version, legacy=False, _weights=weights)


def _read_h5(path) -> ModelFile:
    with h5py.File(path, "r") as store:
        if "model_config" not in store.attrs:
            raise ModelFileError(f"{path}: an HDF5 file without a model config (a weights-only file?).")
        version = _check_version(_text(store.attrs.get("keras_version", "")), "h5", path)
        config = _json(_text(store.attrs["model_config"]), "model_config", path)
        group = store["model_weights"] if "model_weights" in store else store
        weights = {}
        for name in (_text(n) for n in group.attrs.get("layer_names", [])):
            layer = group[name]
            weights[name] = [_array(layer[_text(w)]) for w in layer.attrs.get("weight_names", [])]
    return ModelFile(config, version, legacy=True, _weights=weights)


def read_model_file(path: str | PathLike) -> ModelFile:
    """The config and weights of a ``.keras`` or legacy ``.h5`` Keras model file.

    Raises
    ------
    ModelFileError
        The file is truncated, corrupted, incomplete, not a Keras model file, or was
        written by a Keras version whose format is not known here.
    """
    try:
        if zipfile.is_zipfile(path):
            return _read_keras(path)
        if h5py.is_hdf5(path):
            return _read_h5(path)
    except ModelFileError:
        raise
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile, EOFError) as error:
        raise ModelFileError(f"{path}: cannot read the Keras model file ({error}).") from error
    with open(path, "rb") as file:
        if file.read(4) == b"PK\x03\x04":
            raise ModelFileError(f"{path}: cannot read the .keras file (a truncated or corrupted zip).")
    raise ModelFileError(f"{path}: neither a .keras (zip) nor an HDF5 Keras model file.")
