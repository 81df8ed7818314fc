"""The "affine" preset for a whole batch on any device: one affine_grid + grid_sample."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from echoseg.transforms.presets import PRESETS

_AFFINE = PRESETS["affine"]


def batch_affine(
    images: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    shift: float = _AFFINE.shift,
    scale: tuple[float, float] = _AFFINE.scale,
    rotate_deg: float = _AFFINE.rotate,
    p: float = _AFFINE.affine_p,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly shift, zoom and rotate each image of a batch together with its label.

    Takes images (N, 1, H, W) float and labels (N, H, W) long on the same device; per sample it
    draws a shift of ±``shift`` of the image side in x and y, an isotropic zoom factor in
    ``scale``, a rotation of ±``rotate_deg`` degrees about the centre, and applies them with
    probability ``p`` (identity otherwise), the same parameters to image and label, as in the
    CPU "affine" preset. Images are resampled bilinearly, labels nearest-neighbour; outside
    pixels are 0 in both. All draws come from ``generator`` (on any device), so the output is
    deterministic given its state. Returns (images, labels) with the input dtypes and shapes.
    """
    n, _, h, w = images.shape
    if labels.shape != (n, h, w):
        raise ValueError(f"labels must be (N, H, W) = {(n, h, w)}, got {tuple(labels.shape)}")
    u = torch.rand(n, 5, generator=generator, device=generator.device, dtype=torch.float32)
    u = u.to(images.device)
    tx, ty = (2 * u[:, 0] - 1) * shift, (2 * u[:, 1] - 1) * shift
    zoom = scale[0] + (scale[1] - scale[0]) * u[:, 2]
    angle = (2 * u[:, 3] - 1) * math.radians(rotate_deg)
    apply = u[:, 4] < p
    tx, ty = torch.where(apply, tx, 0), torch.where(apply, ty, 0)
    zoom, angle = torch.where(apply, zoom, 1), torch.where(apply, angle, 0)
    theta = _inverse_theta(tx, ty, zoom, angle, h, w)
    grid = F.affine_grid(theta.float(), [n, 1, h, w], align_corners=False)
    out_images = F.grid_sample(
        images.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    ).to(images.dtype)
    out_labels = F.grid_sample(
        labels.unsqueeze(1).float(), grid, mode="nearest", padding_mode="zeros",
        align_corners=False,
    ).squeeze(1).to(labels.dtype)
    return out_images, out_labels


def _inverse_theta(tx, ty, zoom, angle, h: int, w: int) -> torch.Tensor:
    """affine_grid's theta (output -> input, normalised coordinates) of the forward map
    ``out = zoom * R(angle) @ in + (tx * W, ty * H)`` in pixels about the image centre."""
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # inverse in pixel units: in = R(-angle)/zoom @ (out - t); the normalised coordinates scale
    # x by 2/W and y by 2/H, so the off-diagonal terms pick up the aspect ratio h/w.
    a, b = cos, sin * h / w
    c, d = -sin * w / h, cos
    ox, oy = 2 * tx, 2 * ty  # shift as a fraction of the side -> normalised units
    row1 = torch.stack([a, b, -(a * ox + b * oy)], dim=1)
    row2 = torch.stack([c, d, -(c * ox + d * oy)], dim=1)
    return torch.stack([row1, row2], dim=1)
