"""The configurable U-Net: one shared tester over layer variants, presets, errors, FLOPs."""

from __future__ import annotations

import io
import itertools

import pytest
import torch

from echoseg.config import ModelConfig
from echoseg.errors import ConfigError
from echoseg.models import build_model, count_parameters, list_presets, load_preset, model_stats

TINY = dict(encoder=[4, 8, 8], decoder=[8, 4])  # 3 levels: inputs divisible by 4
AXES = {
    "norm": ["none", "batch", "instance"],
    "act": ["relu", "leaky_relu", "mish", "gelu"],
    "down": ["maxpool", "conv"],
    "up": ["nearest", "transposed"],
    "residual": [False, True],
    "deep_supervision": [False, True],
}
# A pairwise covering set: every value of every axis meets every value of every other axis.
VARIANTS = [
    ("none", "relu", "maxpool", "nearest", False, False),
    ("none", "leaky_relu", "conv", "transposed", True, True),
    ("none", "mish", "maxpool", "transposed", True, False),
    ("none", "gelu", "conv", "nearest", False, True),
    ("batch", "relu", "conv", "transposed", False, True),
    ("batch", "leaky_relu", "maxpool", "nearest", True, False),
    ("batch", "mish", "conv", "nearest", False, True),
    ("batch", "gelu", "maxpool", "transposed", True, False),
    ("instance", "relu", "maxpool", "nearest", True, True),
    ("instance", "leaky_relu", "conv", "transposed", False, False),
    ("instance", "mish", "maxpool", "transposed", True, True),
    ("instance", "gelu", "conv", "nearest", False, False),
    ("none", "relu", "conv", "transposed", True, False),
    ("batch", "mish", "maxpool", "nearest", True, True),
]


def _cfg(variant) -> ModelConfig:
    return ModelConfig(**TINY, **dict(zip(AXES, variant, strict=True)))


def _ids(variant) -> str:
    return "-".join(str(v) for v in variant).replace("True", "res").replace("False", "plain")


def test_variants_cover_every_pair():
    names = list(AXES)
    for (i, a), (j, b) in itertools.combinations(enumerate(names), 2):
        seen = {(v[i], v[j]) for v in VARIANTS}
        missing = set(itertools.product(AXES[a], AXES[b])) - seen
        assert not missing, f"{a} x {b} not covered: {missing}"


@pytest.fixture(params=VARIANTS, ids=_ids)
def variant(request):
    torch.manual_seed(0)
    cfg = _cfg(request.param)
    return cfg, build_model(cfg)


def test_output_shapes_train_and_eval(variant):
    cfg, model = variant
    x = torch.randn(2, 1, 32, 32)
    out = model.train()(x)
    if cfg.deep_supervision:
        assert isinstance(out, list) and len(out) == len(cfg.decoder)  # final + 1 aux
        assert [o.shape for o in out] == [(2, 4, 32, 32), (2, 4, 16, 16)]  # aux: its level
    else:
        assert isinstance(out, torch.Tensor) and out.shape == (2, 4, 32, 32)
    assert model.eval()(x).shape == (2, 4, 32, 32)
    every = model.forward_all(x)
    assert len(every) == (len(cfg.decoder) if cfg.deep_supervision else 1)
    assert all(o.shape == (2, 4, 32, 32) for o in every)


def test_backward_reaches_every_parameter(variant):
    cfg, model = variant
    out = model.train()(torch.randn(2, 1, 32, 32))
    outs = out if isinstance(out, list) else [out]
    sum(o.square().mean() for o in outs).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
    assert sum(p.grad.abs().sum() for p in model.parameters()) > 0


def test_eval_is_deterministic(variant):
    _, model = variant
    model.train()(torch.randn(4, 1, 32, 32))  # move BatchNorm statistics away from the init
    model.eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_state_dict_round_trip(variant):
    cfg, model = variant
    model.train()(torch.randn(4, 1, 32, 32))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(1)
    fresh = build_model(cfg).eval()
    model.eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert not torch.equal(fresh(x), model(x))
        fresh.load_state_dict(torch.load(buffer, weights_only=True))
        assert torch.equal(fresh(x), model(x))


def test_channels_last_bf16_autocast(variant):
    cfg, model = variant
    model = model.eval().to(memory_format=torch.channels_last)
    x = torch.randn(2, 1, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        reference = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert out.dtype == torch.bfloat16 and out.shape == (2, 4, 32, 32)
    assert out.is_contiguous(memory_format=torch.channels_last)
    scale = reference.abs().max()
    assert (out.float() - reference).abs().max() < 0.1 * scale
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outs = model(x)
    outs = outs if isinstance(outs, list) else [outs]
    sum(o.float().mean() for o in outs).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


# Exact counts (formulas in test_unet1_count_by_formula) and the paper's rounded figures.
PARAMS = {
    "unet0": (118_488, 119e3),
    "unet1": (1_976_644, 2e6),
    "lightweight": (1_979_828, 2e6),
    "unet2": (10_858_836, 11e6),
    "unet3": (31_387_472, 31e6),
    "nnunet2d": (33_467_800, 33e6),
}


def test_every_preset_has_a_count():
    assert sorted(PARAMS) == list_presets()


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_preset_parameter_counts(name):
    exact, paper = PARAMS[name]
    with torch.device("meta"):
        n = count_parameters(build_model(load_preset(name)))
    assert n == exact
    assert abs(n - paper) / paper < 0.10


def _conv(cin: int, cout: int, k: int = 3, bias: bool = True) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def test_unet1_count_by_formula():
    enc, dec = [32, 32, 64, 128, 128, 128], [128, 128, 64, 32, 16]
    n = 0
    for cin, cout in zip([1, *enc[:-1]], enc, strict=True):
        n += _conv(cin, cout) + _conv(cout, cout)
    # nearest upsampling has no parameters: the block sees [upsampled, skip] concatenated
    for prev, skip, cout in zip([enc[-1], *dec[:-1]], enc[-2::-1], dec, strict=True):
        n += _conv(prev + skip, cout) + _conv(cout, cout)
    n += _conv(16, 4, k=1)
    assert n == PARAMS["unet1"][0]
    # lightweight: conv biases -> BatchNorm (weight + bias per channel), plus 1x1 DS heads
    convs_out = 2 * sum(enc) + 2 * sum(dec)
    heads = sum(_conv(c, 4, k=1) for c in dec[:-1])
    assert n + convs_out + heads == PARAMS["lightweight"][0]


def test_gflops_count_two_per_multiply_accumulate():
    cfg = ModelConfig(encoder=[4, 8], decoder=[4], norm="none", deep_supervision=False)
    s = 16
    macs = (1 * 4 * 9 * s * s + 4 * 4 * 9 * s * s  # level 1
            + 4 * 8 * 9 * (s // 2) ** 2 + 8 * 8 * 9 * (s // 2) ** 2  # level 2 after pooling
            + (8 + 4) * 4 * 9 * s * s + 4 * 4 * 9 * s * s  # decoder on the concatenation
            + 4 * 4 * s * s)  # 1x1 head
    assert model_stats(cfg, size=s)["gflops"] == pytest.approx(2 * macs / 1e9, rel=1e-12)


def test_lightweight_preset_is_the_paper_model():
    cfg = load_preset("lightweight")
    assert (cfg.norm, cfg.act, cfg.deep_supervision) == ("batch", "mish", True)
    assert cfg.encoder == [32, 32, 64, 128, 128, 128] and cfg.decoder == [128, 128, 64, 32, 16]
    assert model_stats(cfg)["gflops"] == pytest.approx(8.011, abs=1e-3)


def test_aux_outputs_are_ordered_high_resolution_first():
    model = build_model(ModelConfig(encoder=[2, 2, 2, 2], decoder=[2, 2, 2])).train()
    x = torch.randn(1, 1, 32, 32)
    outs, every = model(x), model.forward_all(x)
    assert [o.shape[-1] for o in outs] == [32, 16, 8]
    # forward_all upscales (nearest) a level at 1/k resolution: each value in k x k blocks
    def blocky(out, k):
        return out[..., ::k, ::k].repeat_interleave(k, -1).repeat_interleave(k, -2)

    for out, full, k in zip(outs[1:], every[1:], (2, 4), strict=True):
        assert torch.equal(full, blocky(full, k)) and not torch.equal(full, blocky(full, 2 * k))
        assert torch.equal(full[..., ::k, ::k], out)


def test_bad_input_size_names_the_divisor():
    model = build_model(load_preset("lightweight")).eval()
    with pytest.raises(ConfigError, match=r"100x96.*divisible by 32.*128x96"):
        model(torch.randn(1, 1, 100, 96))
    with pytest.raises(ConfigError, match=r"\(N, 1, H, W\)"):
        model(torch.randn(1, 3, 64, 64))


@pytest.mark.parametrize("change, message", [
    ({"norm": "group"}, "model.norm: unknown value 'group'; valid: none, batch, instance"),
    ({"act": "swish"}, "model.act: unknown value 'swish'; valid: relu, leaky_relu, mish, gelu"),
    ({"down": "avgpool"}, "model.down: unknown value 'avgpool'; valid: maxpool, conv"),
    ({"up": "bilinear"}, "model.up: unknown value 'bilinear'; valid: nearest, transposed"),
    ({"decoder": [8]}, "one decoder level fewer than encoder levels"),
    ({"encoder": [4, 0, 8]}, "channel counts must be positive integers"),
])
def test_bad_config_values(change, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_model({**TINY, **change})


def test_build_from_dict_rejects_unknown_keys():
    assert isinstance(build_model(dict(TINY, norm="batch")), torch.nn.Module)
    with pytest.raises(ConfigError, match="unknown key 'dropout'"):
        build_model(dict(TINY, dropout=0.1))


@pytest.mark.filterwarnings(
    "ignore::UserWarning", "ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning"
)
def test_onnx_export_parity(variant):
    """Opset 17 with the TorchScript exporter (the torch.export one needs onnxscript)."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    cfg, model = variant
    model.train()(torch.randn(4, 1, 32, 32))
    model.eval()
    x = torch.randn(2, 1, 32, 32)
    buffer = io.BytesIO()
    torch.onnx.export(model, x, buffer, opset_version=17, dynamo=False,
                      input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}})
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    x3 = torch.randn(3, 1, 32, 32)
    (out,) = session.run(None, {"image": x3.numpy()})
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(out), model(x3), atol=1e-4)
