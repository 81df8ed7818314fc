"""Configuration as data: dataclasses filled from YAML files with ``base:`` inheritance.

A config file is a mapping with the sections below; ``base:`` (a path or a list of paths,
relative to the file, or to the packaged ``configs/`` folder) names files merged underneath it.
``--set section.key=value`` overrides are parsed as YAML scalars. Unknown keys and values of the
wrong type fail with a :class:`ConfigError` that lists the valid keys.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from echoseg.errors import ConfigError

PACKAGE_CONFIGS = Path(__file__).parent / "configs"


@dataclass
class DataConfig:
    root: str | None = None
    size: int = 256  # side of the square model grid, pixels
    split_file: str | None = None
    split_seed: int = 0  # seeded 80/10/10 patient split when there is no split file
    train_split: str = "train"
    val_split: str = "val"
    cache_dir: str | None = None


@dataclass
class ModelConfig:
    encoder: list[int] = field(default_factory=lambda: [32, 32, 64, 128, 128, 128])
    decoder: list[int] = field(default_factory=lambda: [128, 128, 64, 32, 16])
    norm: str = "batch"  # none | batch | instance
    act: str = "mish"  # relu | leaky_relu | mish | gelu
    negative_slope: float = 0.01  # for leaky_relu
    down: str = "maxpool"  # maxpool | conv (strided)
    up: str = "nearest"  # nearest (+ conv) | transposed
    residual: bool = False
    deep_supervision: bool = True
    in_channels: int = 1
    num_classes: int = 4


@dataclass
class LossConfig:
    name: str = "dice_ce"  # dice | ce | dice_ce
    ds_weight: float = 0.3  # lambda of every auxiliary deep-supervision output


@dataclass
class AugmentConfig:
    preset: str = "affine"  # none | I | II | III | IV | V | affine
    device: str = "auto"  # auto (gpu when training on cuda) | cpu | gpu


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 32
    optimizer: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 0.0
    scheduler: str = "none"  # none | plateau | cosine
    plateau_factor: float = 0.5
    plateau_patience: int = 10
    min_lr: float = 1e-6
    early_stopping_patience: int = 50  # epochs without val improvement; 0 disables
    precision: str = "auto"  # auto (bf16 where fast) | bf16 | fp32
    channels_last: bool = True
    threads: int = 0  # torch intra-op threads on CPU; 0 = all cores
    max_batches_per_epoch: int = 0  # 0 = the whole training set (tests use a few)
    init_from: str | None = None  # start from these weights: bundled name, run or checkpoint
    swa_epochs: int = 0  # average the weights of the last N epochs (SWA); 0 = off
    teachers: list[str] = field(default_factory=list)  # distil from these models' mean softmax
    distill_weight: float = 0.5  # weight of the distillation term when teachers are given
    compile: str = "auto"  # auto (cuda-graph on CUDA) | none | cuda-graph | torch.compile modes


@dataclass
class Config:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    postprocess: str = "cca"


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (with its ``base:`` chain) and apply ``key=value`` overrides.

    ``path`` may also be the name of a packaged config (e.g. ``"lightweight"`` or
    ``"models/unet1"``). Returns a fully resolved :class:`Config`.
    """
    raw = _read_chain(resolve_config_path(path), seen=()) if path is not None else {}
    for item in overrides or []:
        _apply_override(raw, item)
    return from_dict(raw, source=str(path) if path else "config")


def resolve_config_path(path: str | Path, relative_to: Path | None = None) -> Path:
    """Find a config file: as given, relative to ``relative_to``, or in the packaged configs."""
    p = Path(path)
    candidates = [p] if p.is_absolute() else [
        *([relative_to / p] if relative_to else []),
        p,
        PACKAGE_CONFIGS / p,
    ]
    for c in list(candidates):
        if c.suffix not in (".yaml", ".yml"):
            candidates.append(c.with_name(c.name + ".yaml"))
    for c in candidates:
        if c.is_file():
            return c
    raise ConfigError(f"{path}: config file not found")


def _read_chain(path: Path, seen: tuple[Path, ...]) -> dict:
    if path.resolve() in seen:
        raise ConfigError(f"{path}: circular 'base:' chain")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections")
    bases = data.pop("base", None) or []
    merged: dict = {}
    for base in [bases] if isinstance(bases, str) else bases:
        base_path = resolve_config_path(base, relative_to=path.parent)
        _deep_merge(merged, _read_chain(base_path, (*seen, path.resolve())))
    _deep_merge(merged, data)
    return merged


def _deep_merge(into: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


def _apply_override(raw: dict, item: str) -> None:
    if "=" not in item:
        raise ConfigError(f"--set {item}: expected key=value, e.g. train.epochs=10")
    key, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        value = text
    node = raw
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {item}: '{part}' is not a section")
    node[parts[-1]] = value


def from_dict(raw: dict, source: str = "config") -> Config:
    """Build a :class:`Config` from a nested dict, checking keys and types against the schema."""
    return _build(Config, raw, prefix="", source=source)


def _build(cls: type, raw: Any, prefix: str, source: str):
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: '{prefix.rstrip('.')}' must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        valid = ", ".join(prefix + name for name in fields)
        raise ConfigError(f"{source}: unknown key '{prefix}{unknown[0]}'; valid keys: {valid}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in raw.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, value, f"{prefix}{name}.", source)
        else:
            values[name] = _check_type(value, hint, f"{prefix}{name}", source)
    return cls(**values)


def _check_type(value: Any, hint: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        hint = next(o for o in options if o is not type(None))
        origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        if isinstance(value, list):
            return [_check_type(v, item, key, source) for v in value]
    elif hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif hint is float and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" as a string
            return float(value)
        except ValueError:
            pass
    elif isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{source}: '{key}' must be {name}, got {value!r}")


def to_dict(config: Config) -> dict:
    """The config as plain nested dicts and lists (what config.yaml and checkpoints store)."""
    return dataclasses.asdict(config)


def dump_config(config: Config) -> str:
    """The resolved config as YAML text."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)
