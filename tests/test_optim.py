"""Optimizer choice: Adam's fused kernel where the device has one, the plain one otherwise."""

from __future__ import annotations

import pytest
import torch

from echoseg.config import TrainConfig
from echoseg.training.optim import build_optimizer


def _params() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.zeros(2, 2))]


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_fused_adam_on_cpu_takes_the_same_step(name):
    torch.manual_seed(0)
    grads = [torch.randn(3), torch.randn(2, 2)]
    results = []
    for fused in (True, False):
        params = _params()
        opt = build_optimizer(params, TrainConfig(optimizer=name, lr=1e-2, weight_decay=1e-4))
        if not fused:  # the same optimiser without the fused kernel
            opt = type(opt)(params, lr=1e-2, weight_decay=1e-4)
        assert bool(opt.defaults.get("fused")) is fused
        for _ in range(3):
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
            opt.step()
        results.append(params)
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_falls_back_where_torch_has_no_fused_kernel(monkeypatch):
    real = torch.optim.Adam

    def no_fused(params, fused=None, **kwargs):
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be on a supported device")
        return real(params, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", no_fused)
    opt = build_optimizer(_params(), TrainConfig(optimizer="adam"))
    assert isinstance(opt, real) and not opt.defaults.get("fused")
