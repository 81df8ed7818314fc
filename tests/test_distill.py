"""Knowledge distillation: soft cross-entropy values, teacher averaging, wiring into training."""

import csv
import math

import pytest
import torch

from echoseg.config import load_config
from echoseg.training import train
from echoseg.training.distill import Teachers, soft_cross_entropy

TINY = ["model.encoder=[8, 8, 16]", "model.decoder=[8, 8]", "data.size=64",
        "train.batch_size=4", "train.lr=0.01"]


def test_soft_cross_entropy_known_values():
    uniform_logits = torch.zeros(2, 4, 3, 3)
    target = torch.softmax(torch.randn(2, 4, 3, 3), 1)
    assert soft_cross_entropy(uniform_logits, target).item() == pytest.approx(math.log(4))
    logits = torch.randn(2, 4, 3, 3)
    labels = torch.randint(0, 4, (2, 3, 3))
    one_hot = torch.nn.functional.one_hot(labels, 4).permute(0, 3, 1, 2).float()
    assert soft_cross_entropy(logits, one_hot).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, labels).item(), rel=1e-6)


@pytest.fixture
def teacher_run(samples_root, tmp_path):
    config = load_config("lightweight", [*TINY, f"data.root={samples_root}", "train.epochs=1",
                                         f"data.cache_dir={tmp_path / 'cache'}"])
    train(config, tmp_path / "teacher", quiet=True)
    return tmp_path / "teacher"


def test_teachers_average_their_softmax(teacher_run):
    teachers = Teachers([str(teacher_run), str(teacher_run / "best.pt")], torch.device("cpu"),
                        channels_last=False)
    x = torch.rand(2, 1, 64, 64)
    one = torch.softmax(teachers.models[0](x), 1)
    probs = teachers.probabilities(x, None)
    assert torch.allclose(probs, one, atol=1e-6)  # the same weights twice: mean = each
    assert torch.allclose(probs.sum(1), torch.ones(2, 64, 64), atol=1e-5)
    assert not any(p.requires_grad for m in teachers.models for p in m.parameters())


def test_distillation_changes_training_only_with_a_weight(teacher_run, samples_root, tmp_path):
    def history(*extra):
        name = "run" + str(len(list(tmp_path.glob("run*"))))
        config = load_config("lightweight", [*TINY, f"data.root={samples_root}",
                                             "train.epochs=2", "seed=3",
                                             f"data.cache_dir={tmp_path / 'cache'}", *extra])
        train(config, tmp_path / name, quiet=True)
        with open(tmp_path / name / "history.csv") as f:
            return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]

    plain = history()
    teachers = f"train.teachers=[{teacher_run}]"
    assert history(teachers, "train.distill_weight=0") == plain
    distilled = history(teachers, "train.distill_weight=0.5")
    assert distilled != plain
    assert all(0 < float(r["train_loss"]) < 10 for r in distilled)
