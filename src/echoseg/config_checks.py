"""The rules a :class:`~echoseg.config.Config` must satisfy, checked when a config is loaded.

Names are checked against the tables of the factories that build them (norms, activations,
losses) or the choices declared beside the config fields; numbers against :data:`RANGES`;
a few fixed values against :data:`FIXED`; the model against the grid it runs on; the
post-processing spec by parsing it. Every problem names its key, the value and what is valid.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Iterator
from typing import TYPE_CHECKING, Any

from echoseg import config as schema
from echoseg.errors import ConfigError

if TYPE_CHECKING:
    from echoseg.config import Config, ModelConfig

SEEDS = (0, 2**32 - 1)
# key -> (low, high, low excluded); both ends are otherwise inclusive
RANGES: dict[str, tuple[float, float, bool]] = {
    "seed": (*SEEDS, False),
    "data.size": (8, 4096, False),
    "data.split_seed": (*SEEDS, False),
    "data.train_fraction": (0, 1, True),
    "model.negative_slope": (0, 1, False),
    "loss.ds_weight": (0, 1, False),
    "train.epochs": (1, math.inf, False),
    "train.batch_size": (1, math.inf, False),
    "train.lr": (0, math.inf, False),  # 0 freezes the weights (e.g. BatchNorm statistics only)
    "train.weight_decay": (0, math.inf, False),
    "train.plateau_factor": (0, 1, True),
    "train.plateau_patience": (0, math.inf, False),
    "train.min_lr": (0, math.inf, False),
    "train.early_stopping_patience": (0, math.inf, False),
    "train.threads": (0, 4096, False),
    "train.max_batches_per_epoch": (0, math.inf, False),
    "train.swa_epochs": (0, math.inf, False),
    "train.distill_weight": (0, 1, False),
}
# key -> (the one supported value, why)
FIXED: dict[str, tuple[int, str]] = {
    "model.in_channels": (1, "grayscale images"),
    "model.num_classes": (4, "labels 0..3: background, LV, MYO, LA"),
}


def choices() -> dict[str, Collection[str]]:
    """The valid values of every setting chosen by name, keyed by dotted config key."""
    from echoseg.losses import LOSSES
    from echoseg.models.layers import ACTS, DOWNS, NORMS, UPS

    return {
        "model.norm": NORMS, "model.act": ACTS, "model.down": DOWNS, "model.up": UPS,
        "loss.name": LOSSES,
        "augment.preset": schema.AUGMENT_PRESETS, "augment.device": schema.AUGMENT_DEVICES,
        "train.optimizer": schema.OPTIMIZERS, "train.scheduler": schema.SCHEDULERS,
        "train.precision": schema.PRECISIONS, "train.compile": schema.COMPILE_MODES,
    }


# what a choice is called in messages, where "value" would say less
NOUNS = {"train.compile": "mode", "loss.name": "loss", "augment.preset": "preset"}


def check_config(config: Config, where: Callable[[str], str] = lambda key: "config") -> Config:
    """Return ``config`` if every value is valid; otherwise raise ConfigError
    ``<where(key)>: <problem>`` for the first problem (see :func:`config_problems`)."""
    for key, problem in config_problems(config):
        raise ConfigError(f"{where(key)}: {problem}")
    return config


def config_problems(config: Config) -> Iterator[tuple[str, str]]:
    """``(key, problem)`` for each invalid value of ``config``: a name not among the choices,
    a number out of range or not finite, a model that does not fit its grid, a
    post-processing spec that does not parse."""
    values = _flatten(dataclasses.asdict(config))
    yield from _choice_problems(values, "")
    for key, (low, high, low_excluded) in RANGES.items():
        problem = _out_of_range(values[key], low, high, low_excluded)
        if problem:
            yield key, f"{key}={values[key]!r} must be {problem}"
    for key, (value, why) in FIXED.items():
        if values[key] != value:
            yield key, f"{key}={values[key]!r} must be {value} ({why})"
    # the encoder/decoder structure is checked when the model is built (build_model): a
    # config may set model.encoder and model.decoder in different files or overrides
    yield from _channel_problems(config.model)
    levels = len(config.model.encoder)
    factor = 2 ** (levels - 1)
    if config.data.size % factor:
        yield "data.size", (f"data.size={config.data.size} must be divisible by {factor} "
                            f"(2^(levels-1) for the {levels} levels of model.encoder), "
                            f"e.g. {-(-config.data.size // factor) * factor}")
    train = config.train
    if train.swa_epochs > train.epochs:
        yield "train.swa_epochs", (f"train.swa_epochs={train.swa_epochs} must be between 0 "
                                   f"(off) and train.epochs={train.epochs}")
    if any(not name.strip() for name in [train.init_from or "x", *train.teachers]):
        yield "train.teachers", "train.init_from and train.teachers: a model name cannot be empty"
    yield from _postprocess_problems(config.postprocess)


def model_problems(cfg: ModelConfig) -> Iterator[tuple[str, str]]:
    """``(key, problem)`` for a model that cannot be built: unknown layer names, fewer than 2
    encoder levels, a decoder that is not one level shorter, channel counts below 1."""
    yield from _choice_problems(_flatten(dataclasses.asdict(cfg), "model."), "model.")
    yield from _structure_problems(cfg)
    yield from _channel_problems(cfg)


def _choice_problems(values: dict[str, Any], prefix: str) -> Iterator[tuple[str, str]]:
    for key, valid in choices().items():
        if key.startswith(prefix) and values[key] not in valid:
            noun = NOUNS.get(key, "value")
            yield key, f"{key}: unknown {noun} {values[key]!r}; valid: {', '.join(valid)}"


def _structure_problems(cfg: ModelConfig) -> Iterator[tuple[str, str]]:
    if len(cfg.encoder) < 2 or len(cfg.decoder) != len(cfg.encoder) - 1:
        yield "model.decoder", (
            f"model: need at least 2 encoder levels and one decoder level fewer than encoder "
            f"levels; got encoder {cfg.encoder} ({len(cfg.encoder)}), "
            f"decoder {cfg.decoder} ({len(cfg.decoder)})")


def _channel_problems(cfg: ModelConfig) -> Iterator[tuple[str, str]]:
    channels = [*cfg.encoder, *cfg.decoder, cfg.in_channels, cfg.num_classes]
    if any(not isinstance(c, int) or isinstance(c, bool) or c < 1 for c in channels):
        yield "model.encoder", f"model: channel counts must be positive integers, got {channels}"


def _out_of_range(value: float, low: float, high: float, low_excluded: bool) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return "a finite number"
    if not (value > low if low_excluded else value >= low) or value > high:
        if high == math.inf:
            return f"greater than {low}" if low_excluded else f"at least {low}"
        return f"between {low} and {high}" + (f", not {low}" if low_excluded else "")
    return None


def _postprocess_problems(spec: str) -> Iterator[tuple[str, str]]:
    from echoseg.postprocess.spec import parse_postprocess

    try:
        parse_postprocess(spec)
    except ConfigError as exc:
        yield "postprocess", f"postprocess: {exc}"


def _flatten(node: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
