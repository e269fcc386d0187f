"""Versioned model artefacts: the fitted object plus what it was trained on and with."""

from __future__ import annotations

import hashlib
import json
import pickle
from importlib.metadata import version
from pathlib import Path
from typing import Any

LIBRARIES = ("scikit-learn", "numpy", "pandas", "scipy")


def save_artefact(model: Any, directory: Path, metadata: dict[str, Any]) -> str:
    """Write `model.pkl` and `metadata.json` to `directory`; returns the version (hash of the pickle).

    The metadata records the training window, features and metrics given by the caller, plus the library
    versions, so that a score can be traced to the exact model that produced it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    model_version = hashlib.sha256(payload).hexdigest()[:12]
    (directory / "model.pkl").write_bytes(payload)
    record = {
        **metadata,
        "model_version": model_version,
        "libraries": {name: version(name) for name in LIBRARIES},
    }
    (directory / "metadata.json").write_text(json.dumps(record, indent=2, default=str))
    return model_version


def load_artefact(directory: Path) -> tuple[Any, dict[str, Any]]:
    """The model and its metadata, as saved by `save_artefact`."""
    metadata = json.loads((directory / "metadata.json").read_text())
    model = pickle.loads((directory / "model.pkl").read_bytes())
    return model, metadata
