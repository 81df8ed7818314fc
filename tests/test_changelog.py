"""The version follows CHANGELOG.md: its newest release is echoseg.__version__."""

import re
from importlib import metadata
from pathlib import Path

import echoseg

CHANGELOG = Path(__file__).resolve().parents[1] / "CHANGELOG.md"


def releases() -> list[tuple[str, str]]:
    """(version, date) of every ``## [X.Y.Z] - YYYY-MM-DD`` heading, newest first."""
    return re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$",
                      CHANGELOG.read_text(encoding="utf-8"), flags=re.MULTILINE)


def test_newest_release_is_the_package_version():
    found = releases()
    assert found, "CHANGELOG.md has no release heading"
    assert found[0][0] == echoseg.__version__
    assert metadata.version("echoseg") == echoseg.__version__, \
        "installed metadata is stale: reinstall (pip install -e .)"
    versions = [tuple(int(p) for p in v.split(".")) for v, _ in found]
    assert versions == sorted(versions, reverse=True) and len(set(versions)) == len(versions)
    dates = [d for _, d in found]
    assert dates == sorted(dates, reverse=True)
    assert CHANGELOG.read_text(encoding="utf-8").index("## [Unreleased]") < \
        CHANGELOG.read_text(encoding="utf-8").index(f"## [{echoseg.__version__}]")
