"""`echoseg predict --executor ray`: the same folder and table as a local run, failures per
file, one-line errors for a missing extra and a model the workers cannot load."""

from __future__ import annotations

import csv
import logging
import sys

import pytest

from echoseg.cli import main
from echoseg.inference.archive import chunk_files
from echoseg.inference.files import bundled_samples, find_inputs


def table(folder) -> list[dict]:
    with open(folder / "predictions.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for path in sorted(bundled_samples().rglob("*_E?.png"))[:5]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    return folder


def test_chunks_keep_order_and_cover_every_file(tmp_path):
    for i in range(7):
        (tmp_path / f"{i}.png").write_bytes(b"")
    files = find_inputs([tmp_path]).files
    chunks = chunk_files(files, 3)
    assert [len(c) for c in chunks] == [3, 3, 1]
    assert [f for c in chunks for f in c] == files


def test_missing_ray_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    code = main(["predict", "lightweight", str(inputs(tmp_path)), "--out", str(tmp_path / "o"),
                 "--executor", "ray"])
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "o").exists()
    assert err.strip().splitlines() == ["echoseg: error: --executor ray needs Ray, which is not "
                                        "installed; install it with: pip install 'echoseg[ray]'"]


@pytest.mark.slow
def test_ray_writes_what_a_local_run_writes(tmp_path, capsys):
    ray = pytest.importorskip("ray")
    folder = inputs(tmp_path)
    assert main(["predict", "lightweight", str(folder), "--out", str(tmp_path / "local"),
                 "--runtime", "torch", "--quiet"]) == 1
    capsys.readouterr()
    logging.getLogger("ray").setLevel(logging.ERROR)  # this test's own start-up notices
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        code = main(["predict", "lightweight", str(folder), "--out", str(tmp_path / "ray"),
                     "--runtime", "torch", "--executor", "ray", "--workers", "2",
                     "--files-per-task", "2"])
        bad = main(["predict", str(tmp_path / "missing.pt"), str(folder), "--out",
                    str(tmp_path / "bad"), "--executor", "ray"])
        one = tmp_path / "one"
        one.mkdir()
        (one / "a.png").write_bytes(next(folder.glob("*_ED.png")).read_bytes())
        with_tta = main(["predict", "lightweight", str(one), "--out", str(tmp_path / "tta"),
                         "--runtime", "torch", "--tta", "--executor", "ray", "--workers", "1",
                         "--quiet"])
    finally:
        ray.shutdown()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1  # the broken file failed, the others were written
    assert err[0].startswith("echoseg: error: ") and "broken.png" in err[0]
    assert bad == 2 and "missing.pt" in err[-1] and len(err) == 2
    assert with_tta == 0 and [r["runtime"] for r in table(tmp_path / "tta")] == ["torch tta"]
    assert table(tmp_path / "ray") == table(tmp_path / "local")
    local = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == local
    for name in local:
        if name != "predictions.csv":
            assert (tmp_path / "ray" / name).read_bytes() == \
                (tmp_path / "local" / name).read_bytes(), name
