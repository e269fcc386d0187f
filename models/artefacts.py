"""Versioned model artefacts: the fitted object plus what it was trained on and with.

Layout: ``<CRM_HOME>/artefacts/<model>/<YYYY-MM>/`` holds ``model.pkl`` (the fitted object) and
``metadata.json`` (model name, as-of month, training window, inputs, metrics, the version, and the versions of
the libraries that fitted it). The version is a hash of the pickle, so identical fits get identical versions and
a score row can name the exact model that produced it. Loading needs the same code and library versions (the
metadata records them; :func:`load_artefact` warns when they differ).
"""

from __future__ import annotations

import json
import math
import pickle
import warnings
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import Any

import joblib

LIBRARIES = ("scikit-learn", "numpy", "pandas", "scipy", "duckdb")


def artefact_dir(home: Path | str, model: str, month: date) -> Path:
    """Where the artefact of ``model`` fitted as of ``month`` lives: ``<home>/artefacts/<model>/<YYYY-MM>``."""
    return Path(home) / "artefacts" / model / f"{month:%Y-%m}"


def library_versions() -> dict[str, str]:
    return {name: version(name) for name in LIBRARIES}


def _json_safe(value: Any) -> Any:
    """Metadata as strict JSON: NaN and infinities become null, dates ISO strings, numpy scalars numbers."""
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def save_artefact(model: Any, directory: Path, metadata: dict[str, Any]) -> str:
    """Write ``model.pkl`` and ``metadata.json`` to ``directory``; returns the version (a hash of the model's content).

    The metadata records the training window, features and metrics given by the caller, plus the library
    versions, so that a score can be traced to the exact model that produced it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    # The version hashes the content of the model as it is loaded back (joblib.hash: arrays and strings by value),
    # not the pickle's bytes: those also record which equal strings happened to be one object and how a fitted
    # array was laid out in memory, which differ between processes fitting the same model.
    model_version = joblib.hash(pickle.loads(payload), hash_name="sha1")[:12]
    (directory / "model.pkl").write_bytes(payload)
    record = {**metadata, "model_version": model_version, "libraries": library_versions()}
    (directory / "metadata.json").write_text(json.dumps(_json_safe(record), indent=2, allow_nan=False))
    return model_version


def load_artefact(directory: Path) -> tuple[Any, dict[str, Any]]:
    """The model and its metadata, as saved by :func:`save_artefact`.

    Raises ``FileNotFoundError`` naming the directory when there is no artefact; warns when the libraries that
    fitted the model differ from the ones installed now (predictions may then differ).
    """
    directory = Path(directory)
    if not (directory / "model.pkl").exists():
        raise FileNotFoundError(f"no model artefact in {directory} (materialise the asset that fits it first)")
    metadata = json.loads((directory / "metadata.json").read_text())
    saved = metadata.get("libraries", {})
    installed = library_versions()
    changed = {
        name: (saved[name], installed[name]) for name in saved if name in installed and saved[name] != installed[name]
    }
    if changed:
        warnings.warn(
            f"artefact {directory} was fitted with other library versions {changed} (saved, installed)",
            RuntimeWarning,
            stacklevel=2,
        )
    model = pickle.loads((directory / "model.pkl").read_bytes())
    return model, metadata
