"""A trained model wrapped for use: native-size images in, native-size label maps out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from echoseg.config import Config
from echoseg.data.preprocess import image_to_grid, label_to_native
from echoseg.errors import EchosegError
from echoseg.inference.runtimes import Backend, TorchBackend
from echoseg.inference.tta import average, averaged_probabilities, view_probabilities
from echoseg.metrics.quality import QualityThresholds
from echoseg.postprocess import parse_postprocess


class Segmenter:
    """Segments 2D echo images with a model trained on a ``size`` x ``size`` grid.

    ``predict(image)`` takes a 2D array of any size (uint8 or float) and returns a uint8 label
    map (0 background, 1 LV, 2 MYO, 3 LA) of the same size, post-processed with
    ``postprocess`` (default: the one in the model's config, e.g. ``cca``).

    The network runs on ``backend`` (see ``echoseg.inference.runtimes``), by default PyTorch
    running ``model`` on ``device``; ``runtime`` names it (torch, onnxruntime, openvino) and
    ``device`` is where it runs. ``model`` is the PyTorch module when there is one (None for
    an exported .onnx/.xml file); results are the same whatever the runtime, up to float noise.
    ``quality``: the calibrated quality thresholds stored with the weights
    (``echoseg.metrics.quality``, on this model's grid), or None. ``precision`` (fp32 or int8)
    is what the backend computes in; ``runtime`` says it when int8 (e.g. ``openvino int8``),
    so predictions.csv and summary.json record it. ``tta``: average the class probabilities
    over the affine views of ``echoseg.inference.tta`` (7 network runs per image);
    ``runtime`` then ends in ``tta``.
    """

    def __init__(self, model: torch.nn.Module | None, config: Config, name: str = "model",
                 device: str | torch.device = "cpu", postprocess: str | None = None,
                 backend: Backend | None = None,
                 quality: QualityThresholds | None = None, precision: str = "fp32",
                 tta: bool = False) -> None:
        if backend is None:
            if model is None:
                raise ValueError("Segmenter needs a model or a backend")
            backend = TorchBackend(model, device)
        self.backend = backend
        self.precision = precision
        self.tta = tta
        self.runtime = " ".join([backend.runtime] + [precision] * (precision != "fp32")
                                + ["tta"] * tta)
        self.device = torch.device(backend.device)
        self.model = model.to(self.device).eval() if model is not None else None
        self.config = config
        self.name = name
        self.size = config.data.size
        self.postprocess_spec = postprocess or config.postprocess
        self._postprocess = parse_postprocess(self.postprocess_spec)
        self.quality = quality

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Label map (H, W) uint8 for one 2D image (H, W)."""
        return self.predict_batch([image])[0]

    def predict_batch(self, images: Sequence[np.ndarray], batch_size: int = 16) -> list[np.ndarray]:
        """Label maps at each image's own size, for a list of 2D images of any sizes."""
        results: list[np.ndarray] = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            labels = self.predict_grid(self._grid(chunk))
            results += [self._to_native(lbl, im) for im, lbl in zip(chunk, labels, strict=True)]
        return results

    def predict_batch_with_views(self, images: Sequence[np.ndarray], batch_size: int = 16
                                 ) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
        """With ``tta``: (label maps as :meth:`predict_batch` gives them, and per image the
        label map of each TTA view alone, in ``echoseg.inference.tta.VIEWS`` order), all
        post-processed and at each image's own size, from one run of every view. The views'
        disagreement measures how much the result hangs on the image's exact position and
        scale. Raises ValueError without ``tta``."""
        if not self.tta:
            raise ValueError("predict_batch_with_views needs a Segmenter with tta=True")
        labels: list[np.ndarray] = []
        views: list[list[np.ndarray]] = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            per_view = list(view_probabilities(self._run, self._grid(chunk)))
            labels += [self._to_native(lbl, im) for im, lbl in
                       zip(chunk, _argmax(average(per_view)), strict=True)]
            view_labels = [_argmax(probs) for probs, _ in per_view]
            views += [[self._to_native(v[i], im) for v in view_labels]
                      for i, im in enumerate(chunk)]
        return labels, views

    def _grid(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([image_to_grid(np.asarray(im), self.size) for im in images])

    def _to_native(self, labels: np.ndarray, image: np.ndarray) -> np.ndarray:
        return label_to_native(self._postprocess(labels), np.asarray(image).shape[:2])

    def predict_grid(self, grid: np.ndarray) -> np.ndarray:
        """Raw argmax label maps (N, S, S) uint8 for images already on the grid, float [0, 1]."""
        return _argmax(self._logits(grid))

    def logits(self, grid: np.ndarray) -> torch.Tensor:
        """Final logits (N, 4, S, S) float32 on the CPU for grid images (N, S, S) in [0, 1]
        (with ``tta``: the log of the averaged probabilities)."""
        return torch.from_numpy(self._logits(grid))

    def _logits(self, grid: np.ndarray) -> np.ndarray:
        grid = np.ascontiguousarray(grid, dtype=np.float32)
        if self.tta:
            return np.log(averaged_probabilities(self._run, grid) + 1e-12)
        return self._run(grid[:, None])

    def _run(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self.backend(images))

    @torch.no_grad()
    def decoder_outputs(self, image: np.ndarray) -> list[np.ndarray]:
        """Logits (4, S, S) of every output head for one image, final head first.

        For a deep-supervision model these are the upscaled intermediate decoder segmentations
        (the paper's Fig. 2); otherwise a one-element list. Needs the PyTorch model: raises
        EchosegError for an exported .onnx/.xml model (it has the final head only).
        """
        if self.model is None:
            raise EchosegError(f"{self.name}: decoder outputs need the PyTorch model (a "
                               "checkpoint, run folder or bundled name); an exported model "
                               "has the final output only")
        x = torch.from_numpy(image_to_grid(np.asarray(image), self.size)[None, None])
        outputs = self.model.forward_all(x.to(self.device))
        return [o[0].float().cpu().numpy() for o in outputs]


def _argmax(scores: np.ndarray) -> np.ndarray:
    """Labels (N, S, S) uint8 of class scores (N, C, S, S)."""
    # numpy's argmax over the class axis is several times faster than torch's on the CPU
    return scores.argmax(1).astype(np.uint8)
