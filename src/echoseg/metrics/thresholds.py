"""Anatomical plausibility criteria of the CAMUS tooling, as data.

Each criterion maps to the bounds its measured value must lie within (inclusive) to pass:
``min`` / ``max`` are absolute; ``max_image_fraction`` is a bound in pixels equal to that
fraction of the image area H*W (small gaps left by morphology are tolerated). A NaN value (a
structure the criterion needs is missing) always fails. Kept in Python rather than YAML so it
ships with the package without packaging rules.
"""

from __future__ import annotations

ANATOMICAL_THRESHOLDS: dict[str, dict[str, float]] = {
    # background pixels enclosed by the structure (8-connected background)
    "holes_in_lv": {"max": 0},
    "holes_in_la": {"max": 0},
    "holes_in_lv_myo": {"max": 0},
    # number of 8-connected components
    "components_in_lv": {"min": 1, "max": 1},
    "components_in_myo": {"min": 1, "max": 1},
    "components_in_la": {"min": 1, "max": 1},
    # background pixels enclosed by the union of two structures but by neither alone
    "holes_between_lv_and_myo": {"max_image_fraction": 2**-14},
    "holes_between_lv_and_la": {"max_image_fraction": 2**-14},
    # pixels of the first structure touching the second / bounding-box width of the first
    "frontier_ratio_lv_bg": {"max": 0.4},
    "frontier_ratio_myo_la": {"max": 0.11},
    # LV width / MYO width on the row through the centre of mass of LV and MYO together
    "width_ratio_lv_myo": {"max": 4.15},
    # 3x3 erosions until MYO splits / its maximal distance-transform value
    "erosion_ratio_myo": {"min": 0.12},
}
