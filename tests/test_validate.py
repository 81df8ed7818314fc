"""Validation metrics during training, on hand-made predictions with known Dice."""

import numpy as np
import pytest
import torch

from echoseg.training.validate import validate


class FixedPrediction(torch.nn.Module):
    """Returns one-hot logits of a stored label map per image, in input order."""

    def __init__(self, predictions: np.ndarray) -> None:
        super().__init__()
        self.predictions = torch.from_numpy(predictions).long()
        self.seen = 0

    def forward(self, x):
        n = len(x)
        pred = self.predictions[self.seen:self.seen + n]
        self.seen += n
        return torch.nn.functional.one_hot(pred, 4).permute(0, 3, 1, 2).float() * 10


@pytest.mark.parametrize("batch_size", [1, 2])
def test_validation_dice_and_loss_on_known_masks(batch_size):
    labels = np.zeros((2, 4, 4), np.uint8)
    labels[0, 0, :] = 1            # LV: 4 pixels
    labels[0, 3, :2] = 3           # LA: 2 pixels
    pred = labels.copy()
    pred[0, 0, 2:] = 0             # LV: 2 of 4 found ...
    pred[0, 1, :2] = 1             # ... and 2 false positives: Dice 2*2/(4+4) = 0.5
    images = np.zeros((2, 4, 4), np.uint8)

    def label_sum(logits, y):      # a "loss" whose per-batch value is known: sum of labels
        return y.sum().float()

    m = validate(FixedPrediction(pred), images, labels, label_sum, torch.device("cpu"),
                 None, False, batch_size=batch_size)
    # image 2 is all background (every structure absent from both: Dice 1)
    assert m["val_dice_LV"] == pytest.approx((0.5 + 1) / 2)
    assert m["val_dice_MYO"] == pytest.approx(1.0)
    assert m["val_dice_LA"] == pytest.approx(1.0)
    assert m["val_dice_mean"] == pytest.approx((0.75 + 1 + 1) / 3)
    # mean over images of the per-batch loss: batch 1 -> 10 and 0; batch 2 -> 10 for both
    assert m["val_loss"] == pytest.approx(5.0 if batch_size == 1 else 10.0)
