"""What ``--resume`` may change: a resumed run must go on training what was trained so far.

The model, data, loss and augmentation sections must equal those the checkpoint was trained
with (``data.cache_dir`` is only a location and may differ; ``data.root`` may be written
differently but must name the same folder). ``train.epochs`` may be extended, never set below
the epochs already done (config.yaml would then no longer match history.csv).
"""

from __future__ import annotations

import os
from pathlib import Path

from echoseg.config import Config, to_dict
from echoseg.errors import ConfigError

FIXED_SECTIONS = ("model", "data", "loss", "augment")
LOCATIONS = {"data.cache_dir"}


def check_resume(run: Path | str, config: Config, trained: dict, epochs_done: int) -> None:
    """Raise ConfigError naming ``run`` when ``config`` cannot continue the run whose
    checkpoint holds the config dict ``trained`` after ``epochs_done`` epochs; returns None."""
    changed = changed_keys(trained, to_dict(config))
    if changed:
        key, old, new = changed[0]
        more = f" (and {', '.join(k for k, _, _ in changed[1:])})" if changed[1:] else ""
        raise ConfigError(f"{run}: --resume cannot change {key} (trained with {old!r}, now "
                          f"{new!r}){more}; start a new run with another --out")
    epochs = config.train.epochs
    if epochs < epochs_done:
        raise ConfigError(f"{run}: {epochs_done} epochs are done; --resume cannot set "
                          f"train.epochs={epochs} (it can only extend the run)")


def changed_keys(trained: dict, wanted: dict) -> list[tuple[str, object, object]]:
    """``(dotted key, trained value, wanted value)`` for every key of the fixed sections whose
    value differs; keys missing from either side (older or newer versions) are not compared."""
    changed = []
    for section in FIXED_SECTIONS:
        old_section, new_section = trained.get(section), wanted.get(section)
        if not isinstance(old_section, dict) or not isinstance(new_section, dict):
            continue
        for name, old in old_section.items():
            key = f"{section}.{name}"
            if key in LOCATIONS or name not in new_section:
                continue
            new = new_section[name]
            if key == "data.root" and _same_folder(old, new):
                continue
            if _normal(old) != _normal(new):
                changed.append((key, old, new))
    return changed


def _same_folder(a, b) -> bool:
    if not isinstance(a, str) or not isinstance(b, str):
        return a == b
    return os.path.realpath(a) == os.path.realpath(b)


def _normal(value):
    """Lists and tuples compare alike (YAML gives lists, dataclasses may hold tuples)."""
    return [_normal(v) for v in value] if isinstance(value, (list, tuple)) else value
