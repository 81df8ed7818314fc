"""Restoring a checkpoint's entries into a model, optimiser or scheduler, with one clear line
when they do not fit.

torch's own errors list every mismatching key over hundreds of lines; here the message says what
the checkpoint holds against what the model expects, e.g. ``run/last.pt: its weights do not
fit this model (checkpoint: 42 tensors, model: 58; 16 missing from the checkpoint, first
encoder.3.conv1.weight)``, or the first tensor whose shape differs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pickle
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from echoseg.errors import ANSI_ESCAPE, EchosegError, plain_reason, shorten
from echoseg.errors import short_name as _name


def load_weights(model: nn.Module, state: Mapping[str, Any], path: str | Path) -> None:
    """Copy ``state["model"]`` (a state dict read by
    :func:`~echoseg.checkpoint.load_checkpoint`) into ``model``; raises EchosegError
    ``<path>: its weights do not fit this model (...)`` naming the first difference, and the
    first model setting that differs when the checkpoint carries its config."""
    weights = state["model"]
    for key, value in weights.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise EchosegError(f"{path}: not an echoseg checkpoint ('model' holds "
                               f"{type(value).__name__} at {_name(key)}, not a tensor)")
    problem = weights_mismatch(weights, model.state_dict())
    if problem is None:
        try:
            model.load_state_dict(weights)
            return
        except (RuntimeError, ValueError, TypeError) as exc:
            problem = plain_reason(exc)
    raise EchosegError(f"{path}: its weights do not fit this model "
                       f"({problem}{_config_difference(state, model)})")


def weights_mismatch(held: Mapping[str, torch.Tensor],
                     expected: Mapping[str, torch.Tensor]) -> str | None:
    """What differs between the tensors a checkpoint ``held`` and those a model ``expected``
    (counts, then the first missing or unexpected name, or the first shape that differs), or
    None when every name and shape matches."""
    counts = f"checkpoint: {len(held)} tensors, model: {len(expected)}"
    missing = [k for k in expected if k not in held]
    unexpected = [k for k in held if k not in expected]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing from the checkpoint, first {_name(missing[0])}")
    if unexpected:
        parts.append(f"{len(unexpected)} not in the model, first {_name(unexpected[0])}")
    if parts:
        return f"{counts}; " + "; ".join(parts)
    for key, tensor in expected.items():
        if tuple(held[key].shape) != tuple(tensor.shape):
            return (f"{counts}; first difference: {_name(key)} is {list(held[key].shape)} in "
                    f"the checkpoint, {list(tensor.shape)} in the model")
    return None


def load_optimizer(optimizer: torch.optim.Optimizer, saved: Any, path: str | Path) -> None:
    """Restore ``optimizer`` from its saved state dict; raises EchosegError naming ``path``
    when the state is of another optimiser or for other parameters."""
    with restoring(path, "optimizer state"):
        groups = saved["param_groups"]
        settings = set(optimizer.defaults) - {"differentiable", "foreach", "fused", "capturable"}
        for group in groups:
            lacking = sorted(settings - set(group))
            if lacking:
                raise ValueError(f"saved by another optimizer: no {lacking[0]!r} setting")
        optimizer.load_state_dict(saved)
        for param, entries in optimizer.state.items():
            for name, value in entries.items():
                if isinstance(value, torch.Tensor) and value.dim() and value.shape != param.shape:
                    raise ValueError(f"{name} is {list(value.shape)} for a parameter of "
                                     f"{list(param.shape)}")


@contextlib.contextmanager
def restoring(path: str | Path, what: str) -> Iterator[None]:
    """Turn an error raised while restoring ``what`` from the checkpoint ``path`` into one
    EchosegError ``<path>: cannot resume: its <what> does not fit (<reason>)``."""
    try:
        yield
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
        raise EchosegError(f"{path}: cannot resume: its {what} does not fit "
                           f"({plain_reason(exc)})") from None


def load_failure(exc: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` could not read a file: the problem part of a
    one-line message (a pickle that would run code is refused, and says so)."""
    text = ANSI_ESCAPE.sub("", str(exc))
    if "Weights only load failed" in text:
        found = re.search(r"GLOBAL ([\w.]+)", text)
        what = f" ({found.group(1)})" if found else ""
        return ("refused: it asks to run code or build objects other than tensors and plain "
                f"data{what}")
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot read ({exc.strerror})"
    if isinstance(exc, (KeyError, EOFError, pickle.UnpicklingError)):
        return "not a readable checkpoint (not a PyTorch file)"
    return f"not a readable checkpoint ({plain_reason(exc)})"


def entry_names(state: Mapping[Any, Any], limit: int = 10) -> str:
    """The first ``limit`` entry names of a checkpoint, for a message ('nothing' if empty)."""
    names = [_name(k) for k in list(state)[:limit]]
    more = f" and {len(state) - limit} more" if len(state) > limit else ""
    return ", ".join(names) + more if names else "nothing"


def _config_difference(state: Mapping[str, Any], model: nn.Module) -> str:
    """'; its config has model.X ... where this one has ...' for the first model setting that
    differs between the checkpoint's config and ``model``'s, else ''."""
    saved = state.get("config")
    saved_model = saved.get("model") if isinstance(saved, Mapping) else None
    cfg = getattr(model, "cfg", None)
    if not isinstance(saved_model, Mapping) or not dataclasses.is_dataclass(cfg):
        return ""
    for name, value in dataclasses.asdict(cfg).items():
        if name in saved_model and _normal(saved_model[name]) != _normal(value):
            held = shorten(repr(saved_model[name]), 60)
            return f"; the checkpoint's config has model.{name}={held}, this one {value!r}"
    return ""


def _normal(value: Any) -> Any:
    return [_normal(v) for v in value] if isinstance(value, (list, tuple)) else value
