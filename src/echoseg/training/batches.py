"""Training batches from in-memory uint8 arrays, augmented on the CPU or on the GPU.

Each epoch's order and augmentation are drawn from generators seeded by (seed, epoch), so a
resumed run sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from echoseg.transforms import batch_affine, build_augmentation


class BatchSource:
    """Yields ``(images (N,1,S,S) float32 in [0,1], labels (N,S,S) int64)`` on ``device``.

    ``images``/``labels`` are uint8 arrays (N, S, S). With ``on_device=True`` the whole dataset
    is copied to the device once and the affine preset runs there in one batched call;
    otherwise Albumentations augments each image on the CPU.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, preset: str,
                 device: torch.device, seed: int, on_device: bool = False,
                 max_batches: int = 0) -> None:
        self.n = len(images)
        self.batch_size = batch_size
        self.preset = preset
        self.device = device
        self.seed = seed
        self.on_device = on_device
        self.max_batches = max_batches
        if on_device:
            self.images = torch.from_numpy(images).to(device)
            self.labels = torch.from_numpy(labels).to(device)
        else:
            self.images, self.labels = images, labels
            self.augment = build_augmentation(preset)

    def __len__(self) -> int:
        n = max(1, self.n // self.batch_size)  # drop the last partial batch (BatchNorm)
        return min(n, self.max_batches) if self.max_batches else n

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of one epoch (numbered from 1), reproducible for (seed, epoch)."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.n)
        if self.on_device:  # one upload per epoch: each upload from host memory waits for the GPU
            order = torch.from_numpy(order).to(self.device)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            if self.on_device:
                yield self._gpu_batch(idx, epoch, b)
            else:
                yield self._cpu_batch(idx, rng)

    def _cpu_batch(self, idx: np.ndarray, rng: np.random.Generator):
        images, labels = [], []
        for i in idx:
            img, lbl = self.augment(self.images[i], self.labels[i], rng)
            images.append(img)
            labels.append(lbl)
        x = torch.from_numpy(np.stack(images)).unsqueeze(1).float().div_(255.0)
        y = torch.from_numpy(np.stack(labels).astype(np.int64))
        return x.to(self.device), y.to(self.device)

    def _gpu_batch(self, index: torch.Tensor, epoch: int, b: int):
        x = self.images.index_select(0, index).unsqueeze(1).float().div_(255.0)
        y = self.labels.index_select(0, index).long()
        if self.preset == "none":
            return x, y
        gen = torch.Generator(device=self.device)
        gen.manual_seed(self.seed * 1_000_003 + epoch * 10_007 + b)
        return batch_affine(x, y, gen)
