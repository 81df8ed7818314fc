"""Hostile configs: every bad value, file and option fails at load time in one line naming the
file (or ``--set`` / the option) and the valid choices, before anything is written."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from conftest import assert_one_error

TINY = ["--set", "model.encoder=[8, 8, 16]", "--set", "model.decoder=[8, 8]",
        "--set", "data.size=64"]


@pytest.mark.parametrize("override, expected", [
    ("train.epochs=0", "train.epochs=0 must be at least 1"),
    ("train.batch_size=0", "train.batch_size=0 must be at least 1"),
    ("train.lr=-1", "train.lr=-1.0 must be at least 0"),
    ("train.lr=nan", "train.lr=nan must be a finite number"),
    ("train.lr=.inf", "train.lr=inf must be a finite number"),
    ("train.weight_decay=-0.1", "train.weight_decay=-0.1 must be at least 0"),
    ("train.min_lr=-1e-6", "train.min_lr=-1e-06 must be at least 0"),
    ("train.plateau_factor=0", "train.plateau_factor=0.0 must be between 0 and 1, not 0"),
    ("train.plateau_patience=-1", "train.plateau_patience=-1 must be at least 0"),
    ("train.early_stopping_patience=-2", "train.early_stopping_patience=-2 must be at least 0"),
    ("train.threads=-5", "train.threads=-5 must be between 0 and 4096"),
    ("train.max_batches_per_epoch=-1", "train.max_batches_per_epoch=-1 must be at least 0"),
    ("train.swa_epochs=-1", "train.swa_epochs=-1 must be at least 0"),
    ("train.swa_epochs=101", "train.swa_epochs=101 must be between 0 (off) and train.epochs=100"),
    ("train.distill_weight=1.5", "train.distill_weight=1.5 must be between 0 and 1"),
    ("loss.ds_weight=-0.3", "loss.ds_weight=-0.3 must be between 0 and 1"),
    ("data.size=0", "data.size=0 must be between 8 and 4096"),
    ("data.size=100000", "data.size=100000 must be between 8 and 4096"),
    ("data.size=100", "data.size=100 must be divisible by 32 (2^(levels-1) for the 6 levels "
                      "of model.encoder), e.g. 128"),
    ("seed=-1", "seed=-1 must be between 0 and 4294967295"),
    ("data.split_seed=-3", "data.split_seed=-3 must be between 0 and 4294967295"),
    ("model.negative_slope=nan", "model.negative_slope=nan must be a finite number"),
    ("model.num_classes=2", "model.num_classes=2 must be 4 (labels 0..3: background, LV, MYO, LA)"),
    ("model.in_channels=3", "model.in_channels=3 must be 1 (grayscale images)"),
    ("model.encoder=[8, 0, 16]", "model: channel counts must be positive integers"),
    ("train.precision=fp16", "train.precision: unknown value 'fp16'; valid: auto, bf16, fp32"),
    ("train.optimizer=lamb", "train.optimizer: unknown value 'lamb'; valid: adam, adamw, sgd"),
    ("train.scheduler=step", "train.scheduler: unknown value 'step'; valid: none, plateau, cosine"),
    ("train.compile=fast", "train.compile: unknown mode 'fast'; valid: auto, none, cuda-graph, "
                           "default, reduce-overhead, max-autotune"),
    ("model.norm=group", "model.norm: unknown value 'group'; valid: none, batch, instance"),
    ("model.act=swish", "model.act: unknown value 'swish'; valid: relu, leaky_relu, mish, gelu"),
    ("model.down=avgpool", "model.down: unknown value 'avgpool'; valid: maxpool, conv"),
    ("model.up=bilinear", "model.up: unknown value 'bilinear'; valid: nearest, transposed"),
    ("loss.name=focal", "loss.name: unknown loss 'focal'; valid: dice, ce, dice_ce"),
    ("augment.preset=VI", "augment.preset: unknown preset 'VI'; valid: none, I, II, III, IV, V, "
                          "affine"),
    ("augment.device=tpu", "augment.device: unknown value 'tpu'; valid: auto, cpu, gpu"),
    ("postprocess=bogus", "postprocess: unknown post-processing step 'bogus' in 'bogus'; valid "
                          "steps: none, cca, open, close, fill"),
    ("train.teachers=['']", "train.init_from and train.teachers: a model name cannot be empty"),
    ("train.epochs=ten", "'train.epochs' must be int, got 'ten'"),
])
def test_bad_value_from_set_fails_at_load(cli, samples_root, tmp_path, override, expected):
    out = tmp_path / "run"
    result = cli("train", "lightweight", "--data", samples_root, "--out", out, "--set", override)
    line = assert_one_error(result, expected)
    assert line == f"echoseg: error: --set: {expected}" or line.startswith(
        f"echoseg: error: --set: {expected}")
    assert not out.exists()


@pytest.mark.parametrize("text, expected", [
    ("train:\n  epochs: 0\n", "train.epochs=0 must be at least 1"),
    ("train:\n  precision: fp16\n", "train.precision: unknown value 'fp16'; valid: auto, bf16, "
                                    "fp32"),
    ("postprocess: bogus\n", "postprocess: unknown post-processing step 'bogus'"),
    ("model:\n  encoder: [8, 8, 16]\n  decoder: [8, 8]\ndata:\n  size: 66\n",
     "data.size=66 must be divisible by 4 (2^(levels-1) for the 3 levels of model.encoder), "
     "e.g. 68"),
])
def test_bad_value_names_the_file_that_holds_it(cli, tmp_path, text, expected):
    """In a base chain the error names the base that holds the value, not the child."""
    (tmp_path / "base.yaml").write_text(text)
    child = tmp_path / "child.yaml"
    child.write_text("base: base.yaml\nseed: 3\n")
    out = tmp_path / "run"
    line = assert_one_error(cli("train", child, "--out", out), expected)
    assert line.startswith(f"echoseg: error: {tmp_path / 'base.yaml'}: {expected}")
    assert not out.exists()


def _torch_file() -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save({"model": {}}, buffer)
    return buffer.getvalue()


PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")


@pytest.mark.parametrize("name, content, expected", [
    ("latin1.yaml", "train:\n  lr: 0.5 \u00b5\n".encode("latin-1"),
     "not a YAML config (not UTF-8 text: byte 0xb5 at offset 17)"),
    ("image.png", PNG, "a binary file, not a YAML config"),
    ("last.pt", _torch_file(), "a binary file, not a YAML config (a checkpoint? start from its "
                               "weights with train.init_from)"),
    ("base5.yaml", b"base: 5\n", "'base' must be a config path or a list of them, got 5"),
    ("base_list.yaml", b"base: [1]\n", "'base' must be a config path or a list of them, "
                                       "got [1]"),
    ("int_key.yaml", b"1: x\nfoo: 2\n", "key 1 is not a name (keys are words such as 'train' "
                                        "or 'epochs')"),
    ("int_key_in_section.yaml", b"train:\n  1: 2\n  null: 3\n",
     "key 1 in 'train' is not a name (keys are words such as 'train' or 'epochs')"),
    ("a_list.yaml", b"- train\n- model\n", "a config must be a mapping of sections, got a list"),
    ("a_word.yaml", b"lightweight\n", "a config must be a mapping of sections, got a str"),
    ("cut.yaml", b"train: [1, 2\n", "not valid YAML (expected ',' or ']', but got '<stream "
                                    "end>' at line 2, column 1)"),
    ("loop.yaml", b"a: &a\n  b: *a\n", "more than 100000 keys (anchors that repeat or refer "
                                       "to themselves?)"),
])
def test_bad_config_file_is_one_line_naming_it(cli, tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    out = tmp_path / "run"
    line = assert_one_error(cli("train", path, "--out", out), expected)
    assert line == f"echoseg: error: {path}: {expected}"
    assert not out.exists()


def test_a_folder_given_as_config(cli, tmp_path):
    out = tmp_path / "run"
    line = assert_one_error(cli("train", tmp_path, "--out", out))
    assert line == f"echoseg: error: {tmp_path}: a folder, not a config file"
    assert not out.exists()


@pytest.mark.parametrize("split, expected", [
    ("val", "the split 'val' (data.val_split) has no patients in {splits}; training needs "
            "patients in both 'train' and 'val'"),
    ("train", "the split 'train' (data.train_split) has no patients in {splits}; training "
              "needs patients in both 'train' and 'val'"),
])
def test_empty_split_fails_at_training_start(cli, samples_root, tmp_path, split, expected):
    data = tmp_path / "data"
    shutil.copytree(samples_root, data)
    splits = json.loads((data / "splits.json").read_text())
    splits[split] = []
    (data / "splits.json").write_text(json.dumps(splits))
    out = tmp_path / "run"
    line = assert_one_error(cli("train", "lightweight", "--data", data, "--out", out, *TINY))
    assert line == f"echoseg: error: {data}: " + expected.format(splits=data / "splits.json")
    assert not out.exists()


@pytest.mark.parametrize("command", [
    ["predict", "tiny", "{image}", "--out", "{out}"],
    ["evaluate", "tiny", "--data", "{data}", "--split", "val", "--out", "{out}"],
    ["demo", "--model", "tiny", "--out", "{out}"],
    ["train", "lightweight", "--data", "{data}", "--out", "{out}"],
    ["bench", "tiny"],
    ["bench", "--train", "unet0"],
])
@pytest.mark.parametrize("device, shown", [
    ("tpu", "tpu"), ("gpu0", "gpu0"), ("cuda:x", "cuda:x"), ("cuda:-1", "cuda:-1"),
    ("CPU0", "CPU0"), ("", "''"), ("cuda\n0", "'cuda\\n0'"),
])
def test_bad_device_is_one_line_for_every_command(cli, tiny_model, samples_root, tmp_path,
                                                  command, device, shown):
    out = tmp_path / "out"
    image = next(samples_root.glob("patient0001/*_ED.png"))
    args = [a.format(image=image, out=out, data=samples_root) for a in command]
    line = assert_one_error(cli(*args, "--device", device))
    assert line == (f"echoseg: error: --device {shown}: unknown device; valid: auto, cpu, "
                    "cuda, cuda:N")
    assert not out.exists()


@pytest.mark.parametrize("name, count, expected", [
    ("cuda:3", 1, "--device cuda:3: no such GPU (this machine has 1: cuda:0)"),
    ("cuda:2", 2, "--device cuda:2: no such GPU (this machine has 2: cuda:0 to cuda:1)"),
    ("cuda", 0, "--device cuda: CUDA is not available on this machine"),
    ("cuda:0", 0, "--device cuda:0: CUDA is not available on this machine"),
])
def test_missing_gpu_is_named(monkeypatch, name, count, expected):
    from echoseg import devices
    from echoseg.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    with pytest.raises(ConfigError) as err:
        devices.resolve_device(name)
    assert str(err.value) == expected


@pytest.mark.parametrize("option, value", [
    ("--steps", "0"), ("--steps", "-3"), ("--batch-size", "0"), ("--batch-size", "-1"),
    ("--batch-size", "1000000"),
])
@pytest.mark.parametrize("train", [False, True])
def test_bench_counts_must_be_positive(cli, option, value, train):
    result = cli("bench", *(["--train"] if train else []), "unet0", option, value)
    line = assert_one_error(result)
    assert line == f"echoseg: error: {option} {value}: must be between 1 and 100000"
    assert result.out == ""


def test_augment_presets_named_in_config_are_the_table_rows():
    """config.AUGMENT_PRESETS (kept beside the field so that loading a config does not import
    Albumentations) lists exactly the rows of transforms/presets.py."""
    from echoseg.config import AUGMENT_PRESETS
    from echoseg.transforms.presets import PRESETS

    assert tuple(PRESETS) == AUGMENT_PRESETS
