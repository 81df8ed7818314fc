"""Post-processing steps and their composition by name, on hand-made label maps."""

from __future__ import annotations

import numpy as np
import pytest

from echoseg.errors import EchosegError
from echoseg.postprocess import (
    closing,
    fill_holes,
    largest_component,
    opening,
    parse_postprocess,
    structuring_element,
)


def grid(*rows: str) -> np.ndarray:
    """Label map from strings: '.' background, digits labels."""
    return np.array([[0 if ch == "." else int(ch) for ch in row] for row in rows], dtype=np.uint8)


def test_structuring_elements():
    assert structuring_element(3, "square").all()
    np.testing.assert_array_equal(structuring_element(3), grid(".1.", "111", ".1.").astype(bool))
    np.testing.assert_array_equal(
        structuring_element(5), grid("..1..", ".111.", "11111", ".111.", "..1..").astype(bool)
    )
    for bad in (2, 1, 4):
        with pytest.raises(ValueError):
            structuring_element(bad)


def test_largest_component_per_class_removed_pixels_become_background():
    m = grid(
        "11..1",
        "11...",
        "....2",
        "22..2",
        "1..3.",
    )
    expected = grid(  # MYO: two 2-pixel pieces tie, the first in raster order stays
        "11...",
        "11...",
        "....2",
        "....2",
        "...3.",
    )
    np.testing.assert_array_equal(largest_component(m), expected)


def test_largest_component_uses_8_connectivity():
    m = grid("1..", ".1.", "..1")
    np.testing.assert_array_equal(largest_component(m), m)


SQUARE_WITH_SPUR = grid(
    ".......",
    ".11111.",
    ".11111.",
    ".111111",
    ".11111.",
    ".11111.",
    ".......",
)


def test_opening_with_square_removes_a_spur():
    expected = SQUARE_WITH_SPUR.copy()
    expected[3, 6] = 0
    np.testing.assert_array_equal(opening(SQUARE_WITH_SPUR, structuring_element(3, "square")),
                                  expected)


def test_opening_with_cross_rounds_corners_and_keeps_the_spur_on_its_axis():
    expected = SQUARE_WITH_SPUR.copy()
    expected[[1, 1, 5, 5], [1, 5, 1, 5]] = 0
    out = parse_postprocess("open:3")(SQUARE_WITH_SPUR)
    np.testing.assert_array_equal(out, expected)


def test_closing_fills_a_gap_but_never_takes_another_structure():
    m = grid(
        ".......",
        ".11.11.",
        ".11.11.",
        ".11211.",
        ".......",
    )
    out = closing(m, structuring_element(3, "square"))
    expected = grid(
        ".......",
        ".11111.",
        ".11111.",
        ".11211.",
        ".......",
    )
    np.testing.assert_array_equal(out, expected)


def test_closing_keeps_structures_touching_the_image_edge():
    m = grid("11.11", "11.11", ".....")
    out = parse_postprocess("close:3:square")(m)
    np.testing.assert_array_equal(out, grid("11111", "11111", "....."))


def test_fill_holes_fills_background_enclosed_by_one_structure_only():
    m = grid(
        "11111....",
        "1..11.333",
        "11111.3.3",
        "1.2.1.333",
        "11111....",
    )
    expected = grid(
        "11111....",
        "11111.333",
        "11111.333",
        "1.2.1.333",  # this hole holds MYO: left alone
        "11111....",
    )
    np.testing.assert_array_equal(fill_holes(m), expected)


def test_parse_composes_steps_left_to_right():
    m = grid(
        "1111...",
        "1..1..1",
        "1111...",
    )
    out = parse_postprocess("cca+fill")(m)
    np.testing.assert_array_equal(out, grid("1111...", "1111...", "1111..."))
    # fill first, then cca: same here; and "none" parts are ignored
    np.testing.assert_array_equal(parse_postprocess("none+FILL+cca")(m), out)


@pytest.mark.parametrize("spec", ["none", "", None, "  none "])
def test_none_is_identity(spec):
    m = grid("1.2", "3..")
    assert parse_postprocess(spec)(m) is m


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cca+blur", "unknown post-processing step 'blur'.*none, cca, open, close, fill"),
        ("close:4", "odd"),
        ("close:x", "close:x"),
        ("open:3:hexagon", "disk"),
        ("cca:3", "takes no parameters"),
        ("close:3:disk:1", "expected close"),
    ],
)
def test_bad_specs_raise_user_errors(spec, message):
    with pytest.raises(EchosegError, match=message):
        parse_postprocess(spec)


def test_steps_do_not_modify_their_input():
    m = SQUARE_WITH_SPUR.copy()
    for spec in ("cca", "open", "close:5", "fill"):
        parse_postprocess(spec)(m)
    np.testing.assert_array_equal(m, SQUARE_WITH_SPUR)
