"""Data layer: read CAMUS releases and image/label folders, split patients, cache arrays.

Typical use::

    dataset = open_dataset("data/camus")            # DataError on the first problem
    splits = resolve_splits(dataset)                # {"train": [...], "val": [...], ...}
    images, labels = load_arrays(dataset.select(splits["train"]), size=256)
"""

from echoseg.data.cache import load_arrays
from echoseg.data.check import CheckReport, check
from echoseg.data.dataset import EchoDataset, open_dataset
from echoseg.data.preprocess import image_to_grid, label_to_grid, label_to_native
from echoseg.data.readers import read_header, read_image, write_image, write_label_map
from echoseg.data.sample import Sample, SequenceFile
from echoseg.data.splits import random_split, read_split_file, resolve_splits, save_splits

__all__ = [
    "CheckReport", "EchoDataset", "Sample", "SequenceFile", "check", "image_to_grid",
    "label_to_grid", "label_to_native", "load_arrays", "open_dataset", "random_split",
    "read_header", "read_image", "read_split_file", "resolve_splits", "save_splits",
    "write_image", "write_label_map",
]
