"""upsample_nearest: F.interpolate's values, and gradients identical to its backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from echoseg.models.upsample import upsample_nearest


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_values_and_gradients_match_interpolate(factor, dtype):
    torch.manual_seed(0)
    x = torch.randn(2, 8, 5, 6, dtype=dtype).contiguous(memory_format=torch.channels_last)
    skip = torch.randn(2, 3, 5 * factor, 6 * factor, dtype=dtype)
    weight = torch.randn(2, 11, 5 * factor, 6 * factor, dtype=dtype)
    grads = []
    for up in (upsample_nearest, lambda t, f: F.interpolate(t, scale_factor=float(f))):
        leaf = x.detach().requires_grad_()
        y = up(leaf, factor)
        assert y.is_contiguous(memory_format=torch.channels_last) and y.dtype == dtype
        # the concatenation hands the upsampling a channel slice of its gradient: not contiguous
        (torch.cat([y, skip], dim=1) * weight).sum().backward()
        grads.append((y.detach(), leaf.grad))
    assert torch.equal(grads[0][0], grads[1][0])
    assert torch.equal(grads[0][1], grads[1][1])


def test_fast_backward_only_where_it_is_needed():
    x = torch.randn(1, 2, 4, 4, requires_grad=True)
    assert type(upsample_nearest(x, 2).grad_fn).__name__ == "_NearestUpBackward"
    with torch.no_grad():
        assert upsample_nearest(x, 2).grad_fn is None
    traced = torch.jit.trace(lambda t: upsample_nearest(t, 2), (x,))
    assert "upsample_nearest2d" in str(traced.graph) and "PythonOp" not in str(traced.graph)
