"""Config loading: base inheritance, overrides, unknown keys and wrong types."""

from pathlib import Path

import pytest

from echoseg.config import Config, dump_config, from_dict, load_config
from echoseg.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_are_the_paper_recipe():
    cfg = Config()
    assert cfg.model.encoder == [32, 32, 64, 128, 128, 128]
    assert cfg.model.decoder == [128, 128, 64, 32, 16]
    assert (cfg.model.norm, cfg.model.act, cfg.model.deep_supervision) == ("batch", "mish", True)
    assert (cfg.train.optimizer, cfg.train.lr, cfg.train.batch_size) == ("adam", 1e-3, 32)
    assert (cfg.train.epochs, cfg.train.early_stopping_patience) == (100, 50)
    assert cfg.loss.ds_weight == 0.3 and cfg.data.size == 256


def test_base_chain_and_overrides(tmp_path):
    write(tmp_path / "base.yaml", "model:\n  norm: instance\n  act: relu\ntrain:\n  epochs: 7\n")
    child = write(tmp_path / "child.yaml", "base: base.yaml\nmodel:\n  act: gelu\n")
    cfg = load_config(child, ["train.lr=0.01", "model.encoder=[8, 16]", "data.root=/x"])
    assert cfg.model.norm == "instance"  # from the base
    assert cfg.model.act == "gelu"  # child wins
    assert cfg.train.epochs == 7
    assert cfg.train.lr == 0.01
    assert cfg.model.encoder == [8, 16]
    assert cfg.data.root == "/x"


def test_list_of_bases_later_wins(tmp_path):
    write(tmp_path / "a.yaml", "train:\n  epochs: 1\n  lr: 0.5\n")
    write(tmp_path / "b.yaml", "train:\n  epochs: 2\n")
    cfg = load_config(write(tmp_path / "c.yaml", "base: [a.yaml, b.yaml]\n"))
    assert (cfg.train.epochs, cfg.train.lr) == (2, 0.5)


def test_packaged_config_by_name():
    cfg = load_config("lightweight")
    assert cfg.model.norm == "batch" and cfg.augment.preset == "affine"


def test_unknown_key_lists_valid_keys(tmp_path):
    path = write(tmp_path / "bad.yaml", "train:\n  epoch: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "unknown key 'train.epoch'" in msg and "train.epochs" in msg and str(path) in msg


def test_unknown_section():
    with pytest.raises(ConfigError, match="unknown key 'trian'"):
        from_dict({"trian": {}})


@pytest.mark.parametrize("override, expected", [
    ("train.epochs=ten", "'train.epochs' must be int, got 'ten'"),
    ("train.epochs=true", "'train.epochs' must be int, got True"),
    ("model.encoder=[8, x]", "'model.encoder' must be int, got 'x'"),
    ("model.residual=3", "'model.residual' must be bool, got 3"),
])
def test_wrong_types(override, expected):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert expected in str(err.value)


def test_bad_override_syntax_and_missing_file():
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, ["train.epochs"])
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config("nope.yaml")


def test_circular_base(tmp_path):
    write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(tmp_path / "a.yaml")


def test_dump_round_trip(tmp_path):
    cfg = load_config("lightweight", ["train.epochs=3", "seed=5"])
    again = load_config(write(tmp_path / "c.yaml", dump_config(cfg)))
    assert again == cfg


@pytest.mark.parametrize("recipe, preset, scheduler", [
    ("unet0", "unet0", "plateau"), ("unet1", "unet1", "none"), ("unet2", "unet2", "plateau"),
    ("unet3", "unet3", "plateau"), ("nnunet2d", "nnunet2d", "none"),
    ("lightweight", "lightweight", "none"), ("lightweight_camus224", "lightweight", "cosine"),
])
def test_packaged_recipes_use_their_preset(recipe, preset, scheduler):
    cfg = load_config(recipe)
    assert cfg.model == load_config(f"models/{preset}").model
    assert cfg.train.scheduler == scheduler  # Table III: plateau for U-Net 0/2/3


def test_the_stage_3_recipe_of_the_bundled_weights_is_its_recorded_config():
    """configs/lightweight_camus224_dice.yaml resolves to the config the shipped weights record
    (they were trained with the equivalent --set overrides)."""
    import json
    from dataclasses import asdict
    from importlib import resources

    recorded = json.loads(
        resources.files("echoseg.weights").joinpath("lightweight.json").read_text()
    )["training"]["config"]
    overrides = ["seed=3", "data.root=../shared/data/camus224",
                 f"train.init_from={recorded['train']['init_from']}"]
    cfg = asdict(load_config("lightweight_camus224_dice", overrides))
    # keys added after the weights were trained must resolve to their defaults
    newer = {k: cfg["train"].pop(k) for k in set(cfg["train"]) - set(recorded["train"])}
    assert newer == {"compile": "auto"}  # none on the CPU, as the weights were trained
    newer = {k: cfg["data"].pop(k) for k in set(cfg["data"]) - set(recorded["data"])}
    assert newer == {"train_fraction": 1.0, "views": []}  # every training patient and view
    assert cfg == recorded
