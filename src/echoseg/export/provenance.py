"""Where an exported model came from: its weight file and the training record stored with it."""

from __future__ import annotations

import json
from pathlib import Path


def model_provenance(model: str | Path) -> dict:
    """A JSON-able dict for the MODEL argument (bundled name, run folder or checkpoint):
    ``source`` (the weight file), ``training`` (the provenance recorded at training time: git
    commit, packages, machine; {} when none) and ``license`` when the weights record one.
    Never raises for a missing record (the model itself was already loaded)."""
    from echoseg.inference.loading import bundled_models, resolve_model_path

    path = resolve_model_path(model)
    result: dict = {"source": str(model) if str(model) in bundled_models() else str(path)}
    record = _bundled_record(path) if path.with_suffix(".json").is_file() else {}
    if not record:
        record = _checkpoint_record(path)
    result.update(record)
    return result


def _bundled_record(path: Path) -> dict:
    try:
        data = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    training = data.get("training") if isinstance(data.get("training"), dict) else {}
    record: dict = {"training": training.get("provenance") or {}}
    for key in ("run", "best_epoch", "epochs_run"):
        if key in training:
            record[key] = training[key]
    if isinstance(data.get("license"), str):
        record["license"] = data["license"]
    return record


def _checkpoint_record(path: Path) -> dict:
    from echoseg.checkpoint import load_checkpoint
    from echoseg.errors import EchosegError

    try:
        state = load_checkpoint(path)
    except EchosegError:
        return {}
    record: dict = {"training": state.get("provenance") or {}}
    if isinstance(state.get("epoch"), int):
        record["epoch"] = state["epoch"]
    if isinstance(state.get("license"), str):
        record["license"] = state["license"]
    return record
