"""train.compile=cuda-graph: the whole training step replayed from one CUDA graph.

The checks of the graph itself need a GPU (marked ``cuda``, skipped without one; run them on a
GPU machine with ``pytest -m cuda``); the configuration errors are checked everywhere.
"""

from __future__ import annotations

import copy
import csv

import pytest
import torch

from echoseg.config import load_config
from echoseg.errors import ConfigError
from echoseg.losses.class_sums import label_sums
from echoseg.models import build_model
from echoseg.training import loop
from echoseg.training.compiling import resolve_mode
from echoseg.training.cuda_graph import WARMUP_STEPS, CudaGraphStep, check_cuda_graph

TINY = ["model.encoder=[8, 8, 16]", "model.decoder=[8, 8]", "data.size=64",
        "train.batch_size=4", "train.lr=0.01"]


def cuda(test):
    """Mark ``test`` as needing a CUDA GPU: ``-m cuda`` selects it, a CPU machine skips it."""
    skip = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
    return pytest.mark.cuda(skip(test))


def read_history(path) -> list[dict[str, float]]:
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def tiny(samples_root, tmp_path, *extra):
    return load_config("lightweight", [*TINY, f"data.root={samples_root}",
                                       f"data.cache_dir={tmp_path / 'cache'}", *extra])


def test_cuda_graph_on_cpu_is_a_config_error_before_anything_is_written(samples_root, tmp_path):
    config = tiny(samples_root, tmp_path, "train.compile=cuda-graph")
    with pytest.raises(ConfigError, match=r"^train.compile: cuda-graph needs a CUDA device "
                                          r"\(this run is on cpu\); use none$"):
        loop.train(config, tmp_path / "run", device="cpu", quiet=True)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("device", "extra", "mode"), [
    ("cpu", [], "none"),
    ("cuda", [], "cuda-graph"),
    ("cuda", ["train.optimizer=sgd"], "none"),
    ("cuda", ["train.teachers=[lightweight]"], "none"),
    ("cuda", ["train.compile=none"], "none"),
    ("cuda", ["train.compile=default"], "default"),
    ("cuda", ["train.compile=cuda-graph"], "cuda-graph"),
])
def test_auto_is_cuda_graph_where_it_applies(device, extra, mode):
    config = load_config("lightweight", extra)
    assert resolve_mode(config.train, torch.device(device)) == mode


def test_auto_is_the_default():
    assert load_config("lightweight").train.compile == "auto"


@pytest.mark.parametrize(("extra", "message"), [
    ("train.optimizer=sgd", "needs train.optimizer adam or adamw, not sgd"),
    ("train.teachers=[lightweight]", "does not cover distillation \\(train.teachers\\)"),
])
def test_cuda_graph_refuses_what_it_cannot_capture(extra, message):
    config = load_config("lightweight", ["train.compile=cuda-graph", extra])
    with pytest.raises(ConfigError, match=f"^train.compile: cuda-graph {message}; use none$"):
        resolve_mode(config.train, torch.device("cuda"))
    check_cuda_graph(torch.device("cuda"), load_config("lightweight", ["train.optimizer=adamw"])
                     .train)  # no error


def _steps(config, batches, device):
    torch.manual_seed(0)
    model, step, _, optimizer, _ = loop.step_parts(config, build_model(config.model), device)
    losses = [float(step(x, y)) for x, y in batches]
    return model, step, optimizer, losses


def _batches(n, size=64, seed=0, device="cuda"):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(4, 1, size, size, generator=g).to(device),
             torch.randint(0, 4, (4, size, size), generator=g).to(device)) for _ in range(n)]


@cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_graph_replays_train_like_eager_steps(samples_root, tmp_path, precision, monkeypatch):
    # the same kernels both ways (no algorithm search, no TF32); what remains is the order of
    # float atomics in the loss's scatter_add
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    batches = _batches(WARMUP_STEPS + 4)
    dev = torch.device("cuda")
    eager = tiny(samples_root, tmp_path, f"train.precision={precision}", "train.compile=none")
    graphed = tiny(samples_root, tmp_path, f"train.precision={precision}",
                   "train.compile=cuda-graph")
    m1, _, _, l1 = _steps(eager, batches, dev)
    m2, _, _, l2 = _steps(graphed, batches, dev)
    # each step moves a weight by up to lr (0.01): allow a tenth of a step (fp32)
    tol = 1e-3 if precision == "fp32" else 5e-3
    assert l2 == pytest.approx(l1, rel=tol)
    for (name, a), b in zip(m1.state_dict().items(), m2.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), rtol=tol, atol=tol), name
    # every replay moved the weights: a stale graph would leave the last steps' losses equal
    assert len(set(l2)) == len(l2)


@cuda
def test_a_changed_learning_rate_reaches_the_captured_update(samples_root, tmp_path):
    config = tiny(samples_root, tmp_path, "train.compile=cuda-graph")
    batches = _batches(WARMUP_STEPS + 3)
    model, step, optimizer, _ = _steps(config, batches, torch.device("cuda"))  # replayed
    before = copy.deepcopy(model.state_dict())
    optimizer.param_groups[0]["lr"] = 0.0
    step(*batches[0])
    after = model.state_dict()
    for name, value in before.items():
        if "running" not in name and "num_batches" not in name:  # BatchNorm still counts
            assert torch.equal(value, after[name]), name
    optimizer.param_groups[0]["lr"] = 0.01
    step(*batches[0])
    assert not torch.equal(before["encoder.0.conv1.0.weight"],
                           model.state_dict()["encoder.0.conv1.0.weight"])


@cuda
def test_the_loss_captures_without_host_reads():
    """bincount reads the largest label back to the host; capture fails on such a read."""
    logits = torch.randn(2, 4, 8, 8, device="cuda")
    labels = torch.randint(0, 4, (2, 8, 8), device="cuda")
    expected = label_sums(logits, labels)
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        label_sums(logits, labels)  # warm-up outside capture, as CUDA graphs require
    torch.cuda.current_stream().wait_stream(stream)
    with torch.cuda.graph(graph):
        sums = label_sums(logits, labels)
    graph.replay()
    for got, want in zip(sums, expected, strict=True):
        assert torch.allclose(got, want)
    assert sums.t_sum.tolist() == torch.bincount(labels.flatten(), minlength=4).float().tolist()


@cuda
def test_training_with_cuda_graph_writes_the_same_run_and_resumes(samples_root, tmp_path):
    eager = tiny(samples_root, tmp_path, "train.epochs=2", "train.precision=fp32",
                 "train.compile=none")
    graphed = tiny(samples_root, tmp_path, "train.epochs=2", "train.precision=fp32")  # auto
    loop.train(eager, tmp_path / "eager", device="cuda", quiet=True)
    loop.train(graphed, tmp_path / "graph", device="cuda", quiet=True)
    model = build_model(graphed.model)
    assert isinstance(loop.step_parts(graphed, model, torch.device("cuda"))[1], CudaGraphStep)
    a = read_history(tmp_path / "eager" / "history.csv")
    b = read_history(tmp_path / "graph" / "history.csv")
    for row_a, row_b in zip(a, b, strict=True):
        assert row_b["lr"] == row_a["lr"]
        # cuDNN picks its algorithms per run: close, not equal
        assert row_b["train_loss"] == pytest.approx(row_a["train_loss"], rel=1e-2)
        assert row_b["val_dice_mean"] == pytest.approx(row_a["val_dice_mean"], abs=2e-2)
    more = tiny(samples_root, tmp_path, "train.epochs=3", "train.precision=fp32")
    loop.train(more, tmp_path / "graph", device="cuda", resume=True, quiet=True)
    assert [r["epoch"] for r in read_history(tmp_path / "graph" / "history.csv")] == [1, 2, 3]
