"""Post-processing pipelines from a text spec such as ``"cca+close:5"``.

Syntax: steps joined by ``+``, applied left to right; ``none`` (or an empty spec) is identity.
    cca                      largest 8-connected component per structure
    open[:SIZE[:SHAPE]]      per-structure opening
    close[:SIZE[:SHAPE]]     per-structure closing
    fill                     fill holes enclosed by a single structure
SIZE is the odd width in pixels of the structuring element (default 3); SHAPE is ``disk``
(default) or ``square``: ``close:5`` is a 5x5 disk, ``open:3:square`` a 3x3 square.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from echoseg.errors import ConfigError
from echoseg.postprocess import ops

PostProcess = Callable[[np.ndarray], np.ndarray]
STEPS: tuple[str, ...] = ("none", "cca", "open", "close", "fill")


def _step(text: str, spec: str) -> PostProcess:
    name, *params = text.strip().lower().split(":")
    if name not in STEPS:
        raise ConfigError(
            f"unknown post-processing step {name!r} in {spec!r}; valid steps: {', '.join(STEPS)}"
        )
    if name in ("open", "close"):
        if len(params) > 2:
            raise ConfigError(f"post-processing step {text!r}: expected {name}[:SIZE[:SHAPE]]")
        try:
            size = int(params[0]) if params else 3
            element = ops.structuring_element(size, params[1] if len(params) > 1 else "disk")
        except ValueError as exc:
            raise ConfigError(f"post-processing step {text!r}: {exc}") from None
        return partial(ops.opening if name == "open" else ops.closing, element=element)
    if params:
        raise ConfigError(f"post-processing step {name!r} takes no parameters, got {text!r}")
    return {"none": _identity, "cca": ops.largest_component, "fill": ops.fill_holes}[name]


def _identity(labels: np.ndarray) -> np.ndarray:
    return labels


def parse_postprocess(spec: str | None) -> PostProcess:
    """Turn a spec like ``"cca+close:5"`` into a function label map -> label map.

    Raises ConfigError (an EchosegError) naming the valid steps when a step is unknown.
    """
    if spec is None or not spec.strip():
        return _identity
    steps = [_step(part, spec) for part in spec.split("+")]
    steps = [s for s in steps if s is not _identity]
    if not steps:
        return _identity

    def pipeline(labels: np.ndarray) -> np.ndarray:
        for step in steps:
            labels = step(labels)
        return labels

    return pipeline
