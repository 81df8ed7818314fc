"""Training on the real samples: smoke run, run folder contents, exact resume, errors."""

import csv
import json

import pytest
import torch
import yaml

from echoseg.checkpoint import load_checkpoint
from echoseg.cli import main
from echoseg.config import load_config
from echoseg.errors import ConfigError, EchosegError
from echoseg.training import loop, train

TINY = ["model.encoder=[8, 8, 16]", "model.decoder=[8, 8]", "data.size=64",
        "train.batch_size=4", "train.lr=0.01"]


@pytest.fixture
def tiny_config(samples_root, tmp_path):
    def make(*extra):
        return load_config("lightweight", [*TINY, f"data.root={samples_root}",
                                           f"data.cache_dir={tmp_path / 'cache'}", *extra])
    return make


def train_killed_after(monkeypatch, config, run, epoch):
    """Train ``config`` into ``run`` and kill it (KeyboardInterrupt) once ``epoch`` is saved."""
    original = loop.TrainingProgress.end_epoch

    def die(self, done, *args):
        original(self, done, *args)
        if done == epoch:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(loop.TrainingProgress, "end_epoch", die)
        with pytest.raises(KeyboardInterrupt):
            train(config, run, quiet=True)


def read_history(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_smoke_training_writes_run_folder_and_loss_goes_down(tiny_config, tmp_path,
                                                             monkeypatch):
    monkeypatch.setenv("ECHOSEG_FUSED_LOSS", "1")  # a switch, recorded in the provenance
    run = tmp_path / "run"
    result = train(tiny_config("train.epochs=4"), run, quiet=True)
    for name in ("config.yaml", "provenance.json", "splits.json", "history.csv", "last.pt",
                 "best.pt"):
        assert (run / name).is_file(), name
    rows = read_history(run / "history.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert set(rows[0]) == set(loop.HISTORY_COLUMNS)
    assert 0.0 <= float(rows[-1]["val_dice_LV"]) <= 1.0
    assert json.loads((run / "splits.json").read_text())["val"] == [
        "patient0200", "patient0206", "patient0230", "patient0232"]
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["encoder"] == [8, 8, 16] and saved["train"]["epochs"] == 4
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["seed"] == 0 and prov["packages"]["torch"] and prov["end_time"]
    assert prov["environment"]["ECHOSEG_FUSED_LOSS"] == "1"
    assert "ECHOSEG_CACHE" not in prov["environment"]  # a location, not a switch
    if loop.autocast_dtype("auto", torch.device("cpu")) is not None:
        # bf16 steps ask for the C kernels; whether they ran is recorded
        assert set(prov["native_kernels"]) >= {"bn_mish", "class_sums"}
    state = load_checkpoint(run / "last.pt")
    assert state["epoch"] == 4 and state["config"]["data"]["size"] == 64
    assert state["provenance"]["git_commit"] == prov["git_commit"]
    assert result["best_epoch"] == load_checkpoint(run / "best.pt")["epoch"]


def test_resume_after_kill_equals_uninterrupted_run(tiny_config, tmp_path, monkeypatch):
    config = tiny_config("train.epochs=3", "train.scheduler=cosine")
    full = tmp_path / "full"
    train(config, full, quiet=True)

    killed = tmp_path / "killed"
    train_killed_after(monkeypatch, config, killed, epoch=1)
    assert load_checkpoint(killed / "last.pt")["epoch"] == 1
    train(config, killed, resume=True, quiet=True)

    a, b = read_history(full / "history.csv"), read_history(killed / "history.csv")
    drop = {"seconds"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in a] == \
           [{k: v for k, v in r.items() if k not in drop} for r in b]
    wa = load_checkpoint(full / "last.pt")["model"]
    wb = load_checkpoint(killed / "last.pt")["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_same_seed_same_history(tiny_config, tmp_path):
    config = tiny_config("train.epochs=2")
    train(config, tmp_path / "a", quiet=True)
    train(config, tmp_path / "b", quiet=True)
    strip = [{k: v for k, v in r.items() if k != "seconds"}
             for r in read_history(tmp_path / "a" / "history.csv")]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"}
                     for r in read_history(tmp_path / "b" / "history.csv")]


def test_existing_run_needs_resume_and_resume_needs_run(tiny_config, tmp_path):
    config = tiny_config("train.epochs=1")
    train(config, tmp_path / "run", quiet=True)
    with pytest.raises(EchosegError, match="a run is already there; pass --resume"):
        train(config, tmp_path / "run", quiet=True)
    with pytest.raises(EchosegError, match="nothing to resume"):
        train(config, tmp_path / "empty", resume=True, quiet=True)


def test_nan_loss_stops_with_message_and_keeps_last_good(tiny_config, tmp_path, monkeypatch):
    config = tiny_config("train.epochs=2")
    run = tmp_path / "run"
    real_step = loop.train_step
    calls = {"n": 0}

    def step(*args):
        calls["n"] += 1
        return float("nan") if calls["n"] > 4 else real_step(*args)  # 4 batches = epoch 1

    monkeypatch.setattr(loop, "train_step", step)
    with pytest.raises(EchosegError, match=r"epoch 2, batch 1: the loss is nan; training stopped"):
        train(config, run, quiet=True)
    assert load_checkpoint(run / "last.pt")["epoch"] == 1


def test_deferred_loss_reads_give_the_same_history_and_name_the_bad_batch(
        tiny_config, tmp_path, monkeypatch):
    config = tiny_config("train.epochs=2")
    train(config, tmp_path / "every", quiet=True)
    monkeypatch.setattr(loop, "_read_interval", lambda device: 3)  # as on a GPU (4 batches)
    train(config, tmp_path / "deferred", quiet=True)

    def without_time(run):
        return [{k: v for k, v in row.items() if k != "seconds"}
                for row in read_history(run / "history.csv")]

    assert without_time(tmp_path / "deferred") == without_time(tmp_path / "every")

    real_step = loop.train_step
    calls = {"n": 0}

    def step(*args):
        calls["n"] += 1
        loss = real_step(*args)
        return loss * float("inf") if calls["n"] == 6 else loss  # epoch 2, batch 2

    monkeypatch.setattr(loop, "train_step", step)
    with pytest.raises(EchosegError, match=r"epoch 2, batch 2: the loss is inf; training stopped"):
        train(config, tmp_path / "bad", quiet=True)
    assert load_checkpoint(tmp_path / "bad" / "last.pt")["epoch"] == 1


def test_cli_train_and_resume(samples_root, tmp_path):
    run = tmp_path / "cli_run"
    args = ["train", "lightweight", "--data", str(samples_root), "--out", str(run), "--quiet",
            *sum((["--set", s] for s in [*TINY, "train.epochs=1",
                                          f"data.cache_dir={tmp_path / 'c'}"]), [])]
    assert main(args) == 0
    assert main(args) == 2  # exists, no --resume
    assert main([*args, "--resume", "--set", "train.epochs=2"]) == 0
    assert len(read_history(run / "history.csv")) == 2
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"] == 2
    assert len(json.loads((run / "provenance.json").read_text())["resumed"]) == 1


def test_cli_bad_config_key_is_one_line(capsys, samples_root, tmp_path):
    code = main(["train", "lightweight", "--data", str(samples_root), "--out", str(tmp_path / "r"),
                 "--set", "train.epoch=3"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err.startswith("echoseg: error: ") and "unknown key 'train.epoch'" in err


def test_init_from_starts_from_given_weights(tiny_config, tmp_path):
    first = tmp_path / "first"
    train(tiny_config("train.epochs=1"), first, quiet=True)
    tuned = tmp_path / "tuned"
    train(tiny_config("train.epochs=1", "train.lr=0.0", f"train.init_from={first}"), tuned,
          quiet=True)
    a, b = load_checkpoint(first / "best.pt")["model"], load_checkpoint(tuned / "last.pt")["model"]
    convs = [k for k in a if k.endswith("weight") and a[k].ndim == 4]
    assert all(torch.equal(a[k], b[k]) for k in convs)  # lr 0: the loaded weights stay


def test_init_from_with_other_architecture_is_one_clear_error(tiny_config, tmp_path):
    train(tiny_config("train.epochs=1"), tmp_path / "first", quiet=True)
    config = tiny_config("train.epochs=1", "model.encoder=[4, 8, 16]",
                         f"train.init_from={tmp_path / 'first'}")
    with pytest.raises(EchosegError, match="its weights do not fit this model"):
        train(config, tmp_path / "other", quiet=True)


def test_git_commit_named_in_the_environment_wins(monkeypatch, tmp_path):
    from echoseg.provenance import git_commit

    assert git_commit(tmp_path) is None  # not a repository
    monkeypatch.setenv("ECHOSEG_GIT_COMMIT", "328b75c")
    assert git_commit(tmp_path) == "328b75c"
    assert git_commit() == "328b75c"  # even inside the (possibly stale) checkout


def test_swa_averages_the_last_epochs_and_recomputes_batchnorm(tiny_config, tmp_path):
    train(tiny_config("train.epochs=3", "train.swa_epochs=2"), tmp_path / "swa", quiet=True)
    plain = tiny_config("train.epochs=3")
    train(plain, tmp_path / "plain", quiet=True)
    # the same seed gives the same trajectory; rebuild the weights after epochs 2 and 3
    two = tmp_path / "two"
    train(tiny_config("train.epochs=2"), two, quiet=True)
    w2 = load_checkpoint(two / "last.pt")["model"]
    w3 = load_checkpoint(tmp_path / "plain" / "last.pt")["model"]
    swa = load_checkpoint(tmp_path / "swa" / "swa.pt")
    assert swa["epoch"] == "swa" and swa["swa_epochs"] == 2
    conv = next(k for k in w3 if k.endswith("weight") and w3[k].dim() == 4)
    assert torch.allclose(swa["model"][conv], (w2[conv] + w3[conv]) / 2, atol=1e-6)
    bn_mean = next(k for k in w3 if k.endswith("running_mean"))
    assert not torch.allclose(swa["model"][bn_mean], w3[bn_mean])  # recomputed, not copied

    rows = read_history(tmp_path / "swa" / "history.csv")
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "swa"]
    assert 0 < float(rows[-1]["val_dice_mean"]) <= 1
    best = load_checkpoint(tmp_path / "swa" / "best.pt")
    best_row = max(rows, key=lambda r: float(r["val_dice_mean"]))
    assert str(best["epoch"]) == best_row["epoch"]


def test_swa_resumes_with_its_running_average(tiny_config, tmp_path, monkeypatch):
    config = tiny_config("train.epochs=3", "train.swa_epochs=2")
    train(config, tmp_path / "full", quiet=True)
    train_killed_after(monkeypatch, config, tmp_path / "killed", epoch=2)
    train(config, tmp_path / "killed", resume=True, quiet=True)
    a = load_checkpoint(tmp_path / "full" / "swa.pt")["model"]
    b = load_checkpoint(tmp_path / "killed" / "swa.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_swa_longer_than_the_run_is_a_config_error(tiny_config, tmp_path):
    with pytest.raises(EchosegError, match=r"train.swa_epochs=5 must be between 0 \(off\) and "
                                           r"train.epochs=2"):
        train(tiny_config("train.epochs=2", "train.swa_epochs=5"), tmp_path / "r", quiet=True)
    assert not (tmp_path / "r").exists()  # nothing half-written


def test_best_snapshot_survives_the_next_save_of_last(tmp_path, monkeypatch):
    from echoseg.checkpoint import save_checkpoint, snapshot_checkpoint

    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    save_checkpoint(last, {"model": {"w": torch.tensor([1.0])}, "epoch": 1})
    snapshot_checkpoint(last, best)
    save_checkpoint(last, {"model": {"w": torch.tensor([2.0])}, "epoch": 2})
    assert load_checkpoint(best)["epoch"] == 1 and load_checkpoint(last)["epoch"] == 2

    def no_links(*args):
        raise OSError("hard links not supported")

    monkeypatch.setattr("os.link", no_links)  # e.g. some network file systems: a byte copy
    snapshot_checkpoint(last, best)
    assert load_checkpoint(best)["epoch"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]


def test_compiled_training_matches_eager_and_saves_plain_weights(tiny_config, tmp_path):
    # fp32 so that only inductor's summation order differs; one epoch of two batches
    extra = ("train.epochs=1", "train.max_batches_per_epoch=2", "train.precision=fp32")
    train(tiny_config(*extra), tmp_path / "eager", quiet=True)
    train(tiny_config(*extra, "train.compile=default"), tmp_path / "compiled", quiet=True)
    eager, compiled = (read_history(tmp_path / run / "history.csv")[0]
                       for run in ("eager", "compiled"))
    for key in ("train_loss", "val_loss", "val_dice_mean"):
        assert float(compiled[key]) == pytest.approx(float(eager[key]), rel=1e-4), key
    wa = load_checkpoint(tmp_path / "eager" / "last.pt")["model"]
    wb = load_checkpoint(tmp_path / "compiled" / "last.pt")["model"]
    assert list(wa) == list(wb)  # no "_orig_mod." prefix: the checkpoint loads anywhere
    for k in wa:
        # Adam moves each weight by up to lr = 0.01 per step; float-order noise in tiny
        # gradients moved the two runs apart by at most 1.4e-4 (decoder.0.conv1)
        assert (wa[k].float() - wb[k].float()).abs().max() < 1e-3, k
    saved = yaml.safe_load((tmp_path / "compiled" / "config.yaml").read_text())
    assert saved["train"]["compile"] == "default"


def test_unknown_compile_mode_is_a_config_error_before_any_work(tiny_config, tmp_path):
    with pytest.raises(ConfigError, match=r"train.compile: unknown mode 'fast'; valid: auto, "
                                          r"none, cuda-graph, default, reduce-overhead, "
                                          r"max-autotune$"):
        train(tiny_config("train.compile=fast"), tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()
