"""Ablation plans: YAML files naming a base config, ordered steps of variants, a rule.

A plan (see configs/ablation/*.yaml) is a mapping::

    name: paper                    # optional, default: the file name
    base: unet1                    # the config every run starts from (file or packaged name)
    set: {train.epochs: 100}       # overrides for every run (the --set language, as a mapping)
    strategy: greedy               # greedy | leave-one-out
    start: {}                      # leave-one-out: the full model, as a diff of base
    seeds: [0]                     # training seeds (--seeds K gives 0..K-1)
    rule: {alpha: 0.05, metrics: [dice, hausdorff]}
    evaluation: {split: val, grid: model, final_split: test}
    steps:
      - name: normalization
        table: VI                  # optional: a detailed table of this step in the report
        variants:
          none: {model.norm: none}
          BN: {model.norm: batch}
    baselines: {U-Net 1: {}, nnU-Net: {model: models/nnunet2d}}
    cross: {datasets: {2CH: {views: [2CH]}, 4CH: {views: [4CH]}}, model: final}

A variant is a diff of dotted config keys. A variant that changes only ``postprocess`` is an
evaluation of the current model, not a new training. Every variant is resolved when the plan is
loaded, so a bad key fails before anything trains, naming the step and the variant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from echoseg.config import Config, load_config, resolve_config_path
from echoseg.errors import ConfigError

PACKAGED_PLANS = Path(__file__).resolve().parents[1] / "configs" / "ablation"
STRATEGIES = ("greedy", "leave-one-out")
PLAN_KEYS = ("name", "description", "base", "set", "strategy", "start", "seeds", "rule",
             "evaluation", "steps", "baselines", "cross")
RULE_KEYS = ("alpha", "metrics", "require_mean_dice_gain")
EVALUATION_KEYS = ("split", "grid", "final_split")
STEP_KEYS = ("name", "table", "variants")
CROSS_KEYS = ("datasets", "model")
DATASET_KEYS = ("root", "views", "split")
METRICS = ("dice", "hausdorff")
EVALUATION_ONLY_KEYS = ("postprocess",)


@dataclass(frozen=True)
class Variant:
    """One candidate of a step: its name and its config diff (dotted key -> value)."""

    name: str
    diff: dict[str, Any]

    @property
    def evaluation_only(self) -> bool:
        """True when the variant changes only how a trained model is evaluated."""
        return bool(self.diff) and all(k in EVALUATION_ONLY_KEYS for k in self.diff)


@dataclass(frozen=True)
class Step:
    """An ordered step of the study: a name, its variants, and an optional report table."""

    name: str
    variants: list[Variant]
    table: str | None = None


@dataclass(frozen=True)
class Rule:
    """When a variant replaces the current best (see ablation/rule.py)."""

    alpha: float = 0.05
    metrics: tuple[str, ...] = METRICS
    require_mean_dice_gain: bool = True


@dataclass(frozen=True)
class EvaluationSettings:
    """Where variants are scored: the selection split, the metric grid ("model", "native" or a
    size) and the split the final model and the baseline are shown on (when the data has it)."""

    split: str = "val"
    grid: str | int = "model"
    final_split: str | None = "test"


@dataclass(frozen=True)
class CrossDataset:
    """A dataset of the cross-dataset matrix: a root (None: the study's data), views, split."""

    name: str
    root: str | None = None
    views: list[str] = field(default_factory=list)
    split: str | None = None


@dataclass
class Plan:
    """A loaded, checked ablation plan (see the module docstring)."""

    name: str
    path: Path
    base: str
    set: dict[str, Any]
    strategy: str
    start: dict[str, Any]
    seeds: list[int]
    rule: Rule
    evaluation: EvaluationSettings
    steps: list[Step]
    baselines: list[Variant]
    cross: list[CrossDataset]
    cross_model: str = "final"
    description: str = ""

    def resolve(self, diff: dict[str, Any], origin: str, extra: dict[str, Any] | None = None,
                seed: int | None = None) -> Config:
        """The full config of a run: base, then ``set``, ``diff`` (named ``origin`` in
        errors), ``extra`` (the command line's overrides) and ``seed``."""
        updates = [(f"{self.path}: set", self.set), (origin, diff),
                   ("command line", extra or {})]
        if seed is not None:
            updates.append(("--seeds", {"seed": seed}))
        return load_config(self.base, updates=updates)


def find_plan(name_or_path: str | Path) -> Path:
    """A plan file: as given, or a packaged plan by name (``paper``, ``nnunet``, ``smoke``)."""
    path = Path(name_or_path)
    for candidate in (path, PACKAGED_PLANS / path, PACKAGED_PLANS / f"{path}.yaml"):
        if candidate.is_file():
            return candidate
    packaged = ", ".join(sorted(p.stem for p in PACKAGED_PLANS.glob("*.yaml")))
    raise ConfigError(f"{name_or_path}: no such plan (packaged plans: {packaged})")


def load_plan(name_or_path: str | Path, extra: dict[str, Any] | None = None) -> Plan:
    """Read and check a plan; every variant is resolved against its base with ``extra`` (the
    command line's overrides). Raises ConfigError naming the file, the step and the key."""
    path = find_plan(name_or_path)
    raw = _read(path)
    where = str(path)
    _known(raw, PLAN_KEYS, where, "the plan")
    strategy = raw.get("strategy", "greedy")
    if strategy not in STRATEGIES:
        raise ConfigError(f"{where}: strategy must be one of {', '.join(STRATEGIES)}, "
                          f"got {strategy!r}")
    base = raw.get("base")
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{where}: 'base' must name a config (e.g. unet1)")
    try:
        resolve_config_path(base, relative_to=path.parent)
    except ConfigError as exc:
        raise ConfigError(f"{where}: base {exc}") from None
    base_path = str(resolve_config_path(base, relative_to=path.parent))
    plan = Plan(
        name=str(raw.get("name") or path.stem), path=path, base=base_path,
        set=_diff(raw.get("set"), where, "'set'"), strategy=strategy,
        start=_diff(raw.get("start"), where, "'start'"), seeds=_seeds(raw.get("seeds"), where),
        rule=_rule(raw.get("rule"), where), evaluation=_evaluation(raw.get("evaluation"), where),
        steps=_steps(raw.get("steps"), where), baselines=_variants(raw.get("baselines") or {},
                                                                   where, "baselines"),
        cross=[], description=str(raw.get("description") or ""))
    plan.cross, plan.cross_model = _cross(raw.get("cross"), where)
    _resolve_all(plan, extra)
    return plan


def _read(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the plan ({type(exc).__name__})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{at}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a plan must be a mapping with 'base' and 'steps'")
    return data


def _known(raw: dict, keys: tuple[str, ...], where: str, what: str) -> None:
    unknown = [k for k in raw if k not in keys]
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' in {what}; valid keys: "
                          f"{', '.join(keys)}")


def _diff(raw: Any, where: str, what: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
        raise ConfigError(f"{where}: {what} must be a mapping of config keys to values, "
                          f"e.g. {{model.norm: batch}}")
    return dict(raw)


def _seeds(raw: Any, where: str) -> list[int]:
    seeds = [0] if raw is None else raw
    if not isinstance(seeds, list) or not seeds or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ConfigError(f"{where}: 'seeds' must be a non-empty list of integers >= 0")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{where}: 'seeds' lists a seed twice")
    return seeds


def _rule(raw: Any, where: str) -> Rule:
    raw = _diff(raw, where, "'rule'")
    _known(raw, RULE_KEYS, where, "'rule'")
    rule = Rule(**{k: tuple(v) if k == "metrics" and isinstance(v, list) else v
                   for k, v in raw.items()})
    if not isinstance(rule.alpha, (int, float)) or not 0 < rule.alpha < 1:
        raise ConfigError(f"{where}: rule.alpha must be in (0, 1), got {rule.alpha!r}")
    if not rule.metrics or any(m not in METRICS for m in rule.metrics):
        raise ConfigError(f"{where}: rule.metrics must be a list of {', '.join(METRICS)}")
    return rule


def _evaluation(raw: Any, where: str) -> EvaluationSettings:
    from echoseg.evaluation.grid import parse_grid

    raw = _diff(raw, where, "'evaluation'")
    _known(raw, EVALUATION_KEYS, where, "'evaluation'")
    settings = EvaluationSettings(**raw)
    try:
        parse_grid(settings.grid)
    except ConfigError as exc:
        raise ConfigError(f"{where}: evaluation.grid: {exc}") from None
    return settings


def _steps(raw: Any, where: str) -> list[Step]:
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: 'steps' must be a list of steps, each with a name and "
                          "variants")
    steps, names = [], set()
    for i, item in enumerate(raw, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ConfigError(f"{where}: step {i} must be a mapping with a 'name'")
        _known(item, STEP_KEYS, where, f"step '{item['name']}'")
        if item["name"] in names:
            raise ConfigError(f"{where}: two steps are named '{item['name']}'")
        names.add(item["name"])
        variants = _variants(item.get("variants"), where, f"step '{item['name']}'")
        if not variants:
            raise ConfigError(f"{where}: step '{item['name']}' has no variants")
        table = item.get("table")
        steps.append(Step(item["name"], variants, None if table is None else str(table)))
    return steps


def _variants(raw: Any, where: str, what: str) -> list[Variant]:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: the variants of {what} must be a mapping of names to "
                          "config diffs")
    return [Variant(str(name), _diff(diff, where, f"variant '{name}' of {what}"))
            for name, diff in raw.items()]


def _cross(raw: Any, where: str) -> tuple[list[CrossDataset], str]:
    if raw is None:
        return [], "final"
    raw = _diff(raw, where, "'cross'")
    _known(raw, CROSS_KEYS, where, "'cross'")
    model = raw.get("model", "final")
    if model not in ("final", "base"):
        raise ConfigError(f"{where}: cross.model must be final or base, got {model!r}")
    datasets = _diff(raw.get("datasets"), where, "cross.datasets")
    if len(datasets) < 2:
        raise ConfigError(f"{where}: cross.datasets needs at least two datasets")
    found = []
    for name, spec in datasets.items():
        spec = _diff(spec, where, f"cross dataset '{name}'")
        _known(spec, DATASET_KEYS, where, f"cross dataset '{name}'")
        views = spec.get("views") or []
        if not isinstance(views, list) or not all(isinstance(v, str) for v in views):
            raise ConfigError(f"{where}: views of cross dataset '{name}' must be a list "
                              "such as [2CH]")
        found.append(CrossDataset(str(name), spec.get("root"), views, spec.get("split")))
    return found, model


def _resolve_all(plan: Plan, extra: dict[str, Any] | None) -> None:
    """Resolve every variant once, so a plan with a bad key fails before anything trains."""
    plan.resolve(plan.start, f"{plan.path}: start", extra)
    for step in plan.steps:
        for v in step.variants:
            plan.resolve({**plan.start, **v.diff},
                         f"{plan.path}: step '{step.name}', variant '{v.name}'", extra)
    for v in plan.baselines:
        plan.resolve(v.diff, f"{plan.path}: baseline '{v.name}'", extra)
