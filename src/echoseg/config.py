"""Configuration as data: dataclasses filled from YAML files with ``base:`` inheritance.

A config file is a mapping with the sections below; ``base:`` (a path or a list of paths,
relative to the file, or to the packaged ``configs/`` folder) names files merged underneath it.
``--set section.key=value`` overrides are parsed as YAML scalars. Unknown keys, values of the
wrong type and values out of range fail at load time with a :class:`ConfigError` that names the
file (or ``--set``) holding the value and lists the valid keys or choices.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from echoseg.errors import ConfigError

PACKAGE_CONFIGS = Path(__file__).parent / "configs"

# Valid choices of the settings that no layer factory owns; the code that acts on each imports
# it from here. Norms, activations, up/down sampling and losses are the keys of their factories.
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "plateau", "cosine")
PRECISIONS = ("auto", "bf16", "fp32")  # auto: bf16 where the hardware runs it fast
COMPILE_MODES = ("auto", "none", "cuda-graph", "default", "reduce-overhead", "max-autotune")
AUGMENT_DEVICES = ("auto", "cpu", "gpu")
# the rows of transforms/presets.py (kept here: importing echoseg.transforms loads Albumentations)
AUGMENT_PRESETS = ("none", "I", "II", "III", "IV", "V", "affine")


@dataclass
class DataConfig:
    root: str | None = None
    size: int = 256  # side of the square model grid, pixels
    split_file: str | None = None
    split_seed: int = 0  # seeded 80/10/10 patient split when there is no split file
    train_split: str = "train"
    val_split: str = "val"
    train_fraction: float = 1.0  # share of the training patients used, drawn with split_seed
    views: list[str] = field(default_factory=list)  # only these views (e.g. [2CH]); [] = all
    cache_dir: str | None = None


@dataclass
class ModelConfig:
    encoder: list[int] = field(default_factory=lambda: [32, 32, 64, 128, 128, 128])
    decoder: list[int] = field(default_factory=lambda: [128, 128, 64, 32, 16])
    norm: str = "batch"  # models.layers.NORMS: none | batch | instance
    act: str = "mish"  # models.layers.ACTS: relu | leaky_relu | mish | gelu
    negative_slope: float = 0.01  # for leaky_relu, in [0, 1]
    down: str = "maxpool"  # models.layers.DOWNS: maxpool | conv (strided)
    up: str = "nearest"  # models.layers.UPS: nearest (+ conv) | transposed
    residual: bool = False
    deep_supervision: bool = True
    in_channels: int = 1  # grayscale images only
    num_classes: int = 4  # labels 0..3 only (echoseg.labels)


@dataclass
class LossConfig:
    name: str = "dice_ce"  # losses.LOSSES: dice | ce | dice_ce
    ds_weight: float = 0.3  # lambda of every auxiliary deep-supervision output, in [0, 1]


@dataclass
class AugmentConfig:
    preset: str = "affine"  # AUGMENT_PRESETS: none | I | II | III | IV | V | affine
    device: str = "auto"  # AUGMENT_DEVICES: auto (gpu when training on cuda) | cpu | gpu


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 32
    optimizer: str = "adam"  # OPTIMIZERS: adam | adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 0.0
    scheduler: str = "none"  # SCHEDULERS: none | plateau | cosine
    plateau_factor: float = 0.5
    plateau_patience: int = 10
    min_lr: float = 1e-6
    early_stopping_patience: int = 50  # epochs without val improvement; 0 disables
    precision: str = "auto"  # PRECISIONS: auto (bf16 where fast) | bf16 | fp32
    channels_last: bool = True
    threads: int = 0  # torch intra-op threads on CPU; 0 = all cores
    max_batches_per_epoch: int = 0  # 0 = the whole training set (tests use a few)
    init_from: str | None = None  # start from these weights: bundled name, run or checkpoint
    swa_epochs: int = 0  # average the weights of the last N epochs (SWA); 0 = off
    teachers: list[str] = field(default_factory=list)  # distil from these models' mean softmax
    distill_weight: float = 0.5  # weight of the distillation term when teachers are given
    compile: str = "auto"  # COMPILE_MODES: auto (cuda-graph on CUDA) | none | cuda-graph | ...


@dataclass
class Config:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    postprocess: str = "cca"  # a spec of echoseg.postprocess, e.g. "cca+close:5"


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                updates: list[tuple[str, dict[str, Any]]] | None = None) -> Config:
    """Read a YAML config (with its ``base:`` chain) and apply ``key=value`` overrides.

    ``path`` may also be the name of a packaged config (e.g. ``"lightweight"`` or
    ``"models/unet1"``). ``updates`` are ``(origin, {dotted key: value})`` pairs applied in
    order after the overrides (an ablation plan's variants; ``origin`` names them in errors).
    A top-level section given a text value (``model=models/unet2``) takes that section from
    the named config file. Returns a fully resolved and validated :class:`Config`; a
    ConfigError names the file (or ``--set``, or the origin) that holds a bad key or value.
    """
    origins: dict[str, str] = {}
    raw = _read_chain(resolve_config_path(path), (), origins) if path is not None else {}
    for item in overrides or []:
        _apply_override(raw, item, origins)
    for origin, values in updates or []:
        for key, value in values.items():
            set_value(raw, str(key), value, origins, origin)
    return from_dict(raw, source=str(path) if path else "config", origins=origins)


SECTIONS = ("data", "model", "loss", "augment", "train")


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
    if p.is_dir():
        raise ConfigError(f"{path}: a folder, not a config file")
    raise ConfigError(f"{path}: config file not found")


def _read_chain(path: Path, seen: tuple[Path, ...], origins: dict[str, str]) -> dict:
    if path.resolve() in seen:
        raise ConfigError(f"{path}: circular 'base:' chain")
    data = _read_yaml(path)
    bases = data.pop("base", None) or []
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) and b for b in bases):
        raise ConfigError(f"{path}: 'base' must be a config path or a list of them, "
                          f"got {bases!r}")
    merged: dict = {}
    for base in bases:
        base_path = resolve_config_path(base, relative_to=path.parent)
        _deep_merge(merged, _read_chain(base_path, (*seen, path.resolve()), origins))
    _deep_merge(merged, data)
    origins.update(dict.fromkeys(_keys(data), str(path)))
    return merged


def _read_yaml(path: Path) -> dict:
    """The mapping in the YAML file ``path``; ConfigError for a binary, non-UTF-8 or malformed
    file, a key that is not text, or a document that is not a mapping."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if b"\0" in data[:8192] or path.suffix.lower() in (".pt", ".pth", ".onnx"):
        hint = " (a checkpoint? start from its weights with train.init_from)" \
            if path.suffix.lower() in (".pt", ".pth") else ""
        raise ConfigError(f"{path}: a binary file, not a YAML config{hint}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a YAML config (not UTF-8 text: byte "
                          f"{data[exc.start]:#04x} at offset {exc.start})") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({_yaml_problem(exc)})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, "
                          f"got a {type(loaded).__name__}")
    _check_keys(loaded, path)
    return loaded


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def _check_keys(data: dict, path: Path, limit: int = 100_000) -> None:
    """Every key of ``data`` must be text; anchors that nest or loop are refused."""
    stack, seen = [("", data)], 0
    while stack:
        prefix, node = stack.pop()
        seen += len(node)
        if seen > limit:
            raise ConfigError(f"{path}: more than {limit} keys (anchors that repeat or "
                              "refer to themselves?)")
        for key, value in node.items():
            if not isinstance(key, str):
                where = f" in '{prefix[:-1]}'" if prefix else ""
                raise ConfigError(f"{path}: key {key!r}{where} is not a name (keys are words "
                                  "such as 'train' or 'epochs')")
            if isinstance(value, dict):
                stack.append((f"{prefix}{key}.", value))


def _keys(node: dict, prefix: str = "") -> Iterator[str]:
    """Every dotted key of a nested mapping, sections included."""
    for key, value in node.items():
        yield f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _keys(value, f"{prefix}{key}.")


def _deep_merge(into: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


def parse_override(item: str) -> tuple[str, Any]:
    """``"key=value"`` -> (key, value parsed as a YAML scalar, else the text); ConfigError
    for an item without ``=``."""
    if "=" not in item:
        raise ConfigError(f"--set {item}: expected key=value, e.g. train.epochs=10")
    key, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        value = text
    return key.strip(), value


def _apply_override(raw: dict, item: str, origins: dict[str, str]) -> None:
    key, value = parse_override(item)
    set_value(raw, key, value, origins, "--set", shown=f"--set {item}")


def set_value(raw: dict, key: str, value: Any, origins: dict[str, str], origin: str,
              shown: str | None = None) -> None:
    """Set the dotted ``key`` of the nested config mapping ``raw`` to ``value``, recording
    ``origin`` for its keys in ``origins``. A section name with a text value (``model:
    models/unet2``) is replaced by that section of the named config file. Raises ConfigError
    (prefixed by ``shown``, default ``origin``) when a part of the key is not a section."""
    parts = key.strip().split(".")
    if len(parts) == 1 and parts[0] in SECTIONS and isinstance(value, str):
        section = _read_chain(resolve_config_path(value), (), {}).get(parts[0])
        if not isinstance(section, dict):
            raise ConfigError(f"{shown or origin}: {value} has no '{parts[0]}' section")
        value = section
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{shown or origin}: '{part}' is not a section")
    node[parts[-1]] = value
    key = ".".join(parts)
    origins.update(dict.fromkeys([key, *_keys(value, f"{key}.")] if isinstance(value, dict)
                                 else [key], origin))


def from_dict(raw: dict, source: str = "config", origins: dict[str, str] | None = None) -> Config:
    """Build a :class:`Config` from a nested dict, checking keys, types and values against the
    schema (see :func:`check_config`). ``source`` names the data in errors; ``origins`` maps a
    dotted key to the file (or ``--set``) it came from, when that is known better."""
    from echoseg.config_checks import check_config

    where = _Where(source, origins or {})
    return check_config(_build(Config, raw, "", where), where)


@dataclass(frozen=True)
class _Where:
    """``where(key)``: the file (or ``--set``) a dotted key came from, for error messages."""

    source: str
    origins: dict[str, str]

    def __call__(self, key: str) -> str:
        parts = key.split(".")
        for n in range(len(parts), 0, -1):
            origin = self.origins.get(".".join(parts[:n]))
            if origin is not None:
                return origin
        return self.source


def _build(cls: type, raw: Any, prefix: str, where: _Where):
    if not isinstance(raw, dict):
        if not prefix:
            raise ConfigError(f"{where('')}: a config must be a mapping of sections, "
                              f"got {type(raw).__name__}")
        raise ConfigError(f"{where(prefix[:-1])}: '{prefix.rstrip('.')}' must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted((k for k in raw if k not in fields), key=str)
    if unknown:
        valid = ", ".join(prefix + name for name in fields)
        key = f"{prefix}{unknown[0]}"
        raise ConfigError(f"{where(key)}: unknown key '{key}'; valid keys: {valid}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in raw.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, value, f"{prefix}{name}.", where)
        else:
            values[name] = _check_type(value, hint, f"{prefix}{name}", where)
    return cls(**values)


def _check_type(value: Any, hint: Any, key: str, where: _Where) -> Any:
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
            return [_check_type(v, item, key, where) for v in value]
    elif hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an integer beyond float range: refused as not finite
            return float("inf") if value > 0 else float("-inf")
    elif hint is float and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" as a string
            return float(value)
        except ValueError:
            pass
    elif isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    name = getattr(hint, "__name__", str(hint))
    shown = repr(value) if len(repr(value)) <= 80 else f"a {type(value).__name__}"
    raise ConfigError(f"{where(key)}: '{key}' must be {name}, got {shown}")


def to_dict(config: Config) -> dict:
    """The config as plain nested dicts and lists (what config.yaml and checkpoints store)."""
    return dataclasses.asdict(config)


def dump_config(config: Config) -> str:
    """The resolved config as YAML text."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)
