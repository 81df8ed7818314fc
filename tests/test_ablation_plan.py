"""Ablation plans: the packaged plans, bad plans failing before training, run and eval keys."""

import textwrap

import pytest

from echoseg.ablation.plan import load_plan
from echoseg.ablation.runs import EvalSpec, run_key
from echoseg.config import load_config
from echoseg.errors import ConfigError
from echoseg.training.data import of_views, subset_patients

GOOD = """\
base: unet1
steps:
  - name: normalization
    variants:
      none: {model.norm: none}
      BN: {model.norm: batch}
"""


def write(tmp_path, text, name="plan.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_packaged_plans_follow_the_paper():
    paper = load_plan("paper")
    assert [s.name for s in paper.steps] == [
        "normalization", "activation", "post-processing", "augmentation", "loss",
        "deep supervision", "size", "architecture"]
    assert [v.name for v in paper.steps[3].variants] == ["none", "I", "II", "III", "IV", "V",
                                                         "Affine"]
    assert all(v.evaluation_only for v in paper.steps[2].variants)
    assert not any(v.evaluation_only for v in paper.steps[0].variants)
    assert paper.strategy == "greedy" and paper.evaluation.split == "val"
    assert [d.views for d in paper.cross] == [["2CH"], ["4CH"]]
    nnunet = load_plan("nnunet")
    assert nnunet.strategy == "leave-one-out" and len(nnunet.steps[0].variants) == 5
    config = nnunet.resolve(nnunet.start, "start")
    assert config.model.norm == "instance" and config.postprocess == "cca"
    smoke = load_plan("smoke")
    assert [len(s.variants) for s in smoke.steps] == [2, 2]


def test_variants_resolve_on_top_of_base_set_and_command_line(tmp_path):
    plan = load_plan(write(tmp_path, GOOD + "set: {train.epochs: 7, data.size: 128}\n"))
    config = plan.resolve({"model.norm": "batch"}, "x", {"data.size": 64}, seed=3)
    assert (config.model.norm, config.train.epochs, config.data.size, config.seed) == \
        ("batch", 7, 64, 3)
    assert config.model.act == "relu"  # U-Net 1's


def test_a_section_named_by_a_config_file_takes_that_files_section():
    config = load_config("unet1", updates=[("x", {"model": "models/nnunet2d"})])
    assert config.model.encoder == [32, 64, 128, 256, 512, 512, 512]
    assert config.augment.preset == "none"  # other sections stay U-Net 1's


@pytest.mark.parametrize(("text", "message"), [
    (GOOD + "strategy: random\n", "strategy must be one of greedy, leave-one-out"),
    (GOOD + "stepz: []\n", "unknown key 'stepz' in the plan"),
    (GOOD.replace("base: unet1", "base: nosuch"), "base nosuch: config file not found"),
    ("steps: []\n", "'base' must name a config"),
    ("base: unet1\nsteps:\n  - name: empty\n    variants: {}\n", "step 'empty' has no variants"),
    (GOOD.replace("model.norm: batch", "model.nrom: batch"),
     "step 'normalization', variant 'BN': unknown key 'model.nrom'"),
    (GOOD.replace("model.norm: batch", "model.norm: group"),
     "variant 'BN': model.norm: unknown value 'group'; valid: none, batch, instance"),
    (GOOD + "  - name: normalization\n    variants: {a: {}}\n", "two steps are named"),
    (GOOD + "rule: {alpha: 2}\n", "rule.alpha must be in (0, 1)"),
    (GOOD + "rule: {metrics: [hd95]}\n", "rule.metrics must be a list of dice, hausdorff"),
    (GOOD + "evaluation: {grid: huge}\n", "evaluation.grid"),
    (GOOD + "cross: {datasets: {a: {views: [2CH]}}}\n", "at least two datasets"),
    (GOOD + "baselines: {nn: {model: models/nosuch}}\n", "config file not found"),
    (GOOD + "seeds: [1, 1]\n", "lists a seed twice"),
])
def test_bad_plans_fail_naming_the_problem(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        load_plan(write(tmp_path, text))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unknown_plan_lists_the_packaged_ones():
    with pytest.raises(ConfigError, match="packaged plans: nnunet, paper, smoke"):
        load_plan("nosuch")


def test_run_key_ignores_what_does_not_change_the_weights(tmp_path):
    base = ["data.root=/data/x"]
    key = run_key(load_config("unet1", base))
    assert run_key(load_config("unet1", [*base, "postprocess=cca", "train.threads=2",
                                         f"data.cache_dir={tmp_path}"])) == key
    for change in ("seed=1", "model.norm=batch", "data.size=128", "data.train_fraction=0.5",
                   "data.root=/data/y", "data.views=[2CH]"):
        assert run_key(load_config("unet1", [*base, change])) != key, change
    assert len(key) == 12


def test_eval_keys_differ_by_postprocess_split_and_views():
    spec = EvalSpec("/d", "val", "model", "none")
    assert spec.key() == EvalSpec("/d", "val", "model", " NONE ").key()
    assert spec.key().startswith("val-")
    others = [EvalSpec("/d", "val", "model", "cca"), EvalSpec("/d", "test", "model", "none"),
              EvalSpec("/d", "val", 256, "none"), EvalSpec("/d", "val", "model", "none", ["2CH"])]
    assert len({spec.key(), *(o.key() for o in others)}) == 5


def test_train_fraction_draws_nested_patient_subsets():
    patients = [f"p{i:03d}" for i in range(40)]
    quarter, half = subset_patients(patients, 0.25, 0), subset_patients(patients, 0.5, 0)
    assert len(quarter) == 10 and len(half) == 20 and set(quarter) <= set(half)
    assert subset_patients(patients, 0.25, 1) != quarter
    assert subset_patients(patients, 1.0, 0) == patients
    assert subset_patients(["a", "b"], 0.01, 0) in (["a"], ["b"])


def test_views_filter_and_a_view_the_data_lacks(samples_root):
    from echoseg.data.dataset import open_dataset

    samples = open_dataset(samples_root).samples
    two = of_views(samples, ["2CH"], samples_root)
    assert two and {s.view for s in two} == {"2CH"} and len(two) == len(samples) // 2
    with pytest.raises(Exception, match="no images of view 3CH"):
        of_views(samples, ["3CH"], samples_root)
