"""The built wheel works anywhere: packaged data, a clean install, no C compiler, no GPU.

The wheel of this checkout is built offline from a copy of the source tree (so that build/ and
*.egg-info never land in the checkout), its contents are checked against the source tree
(bundled weights, samples, YAML configs, the C sources of the native kernels, the licenses),
and it is installed with ``--no-deps --no-index`` into a fresh virtual environment. That
environment sees the dev venv's third-party packages (torch, ...) through a ``.pth`` file, but
not the dev venv's editable echoseg. ``echoseg predict`` and ``echoseg demo`` then run from it
in a temporary folder, with no C/C++ compiler reachable, no CUDA device, and an empty HOME and
cache, and their results are compared with the dev install's.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.wheel, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "echoseg"
# checkout entries a fresh clone does not have (or that the wheel must not be built from)
ROOT_ONLY_IGNORED = {".venv", "venv", ".git", "build", "dist", "runs", "demo_out", ".whl"}
IGNORED_ANYWHERE = ("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache", ".ruff_cache")
# files under src/echoseg that are developer notes, never read by the package
NOT_PACKAGED = {"models/README.md"}
# folders of data the package loads: every file in them must be in the wheel
DATA_FOLDERS = ("weights", "samples", "configs", "native")
SAMPLES = ("patient0200/patient0200_2CH_ED.png", "patient0232/patient0232_4CH_ES.png")
COMPILERS = ("cc", "gcc", "g++", "c++", "clang", "clang++", "icx", "tcc")
NOISE = re.compile(r"warning|traceback|cuda_home", re.IGNORECASE)
TIMEOUT = 600  # seconds, for any one command: a hang fails instead of blocking CI
MIN_SETUPTOOLS = (77,)  # PEP 639 `license = "..."` expressions and license-files


@dataclass
class BuiltWheel:
    """The wheel file, and the checkout's build artifacts before and after building it."""

    path: Path
    artifacts_before: dict[str, int]
    artifacts_after: dict[str, int]


@dataclass
class CleanVenv:
    """A fresh virtual environment with the wheel installed."""

    root: Path
    python: Path
    scripts: Path
    site_packages: Path


def _ignore(directory: str, names: list[str]) -> set[str]:
    """``shutil.copytree`` filter: checkout-only entries at the root, caches anywhere."""
    ignored = {n for n in names if any(Path(n).match(p) for p in IGNORED_ANYWHERE)}
    if Path(directory).resolve() == ROOT:
        ignored |= ROOT_ONLY_IGNORED & set(names)
    return ignored


def _build_artifacts(root: Path) -> dict[str, int]:
    """Build outputs in the checkout (build/, dist/, *.egg-info, *.whl): {path: mtime_ns}."""
    tops = [root / "build", root / "dist", *root.glob("*.egg-info"),
            *(root / "src").glob("*.egg-info"), *root.glob("*.whl")]
    found: dict[str, int] = {}
    for top in tops:
        for path in [top, *(top.rglob("*") if top.is_dir() else [])]:
            if path.exists():
                found[path.relative_to(root).as_posix()] = path.stat().st_mtime_ns
    return found


def _clean_env(**extra: str) -> dict[str, str]:
    """os.environ without what could point a child process at the checkout, the dev venv or
    another pip configuration (PYTHON*, VIRTUAL_ENV, PIP_*, ECHOSEG_*), plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "PIP_", "ECHOSEG_", "VIRTUAL_ENV", "CONDA"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_NO_INPUT="1", PIP_NO_CACHE_DIR="1")
    env.update(extra)
    return env


def _run(command: list[str | Path], **kwargs) -> subprocess.CompletedProcess:
    """Run ``command``, capturing text output; fail the test with its output when it fails."""
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True,
                          timeout=TIMEOUT, **kwargs)
    assert done.returncode == 0, (f"{command} exited {done.returncode}\n"
                                  f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}")
    return done


def _assert_quiet(done: subprocess.CompletedProcess) -> None:
    """No warning, traceback or CUDA_HOME message in a command's output."""
    for name, text in (("stderr", done.stderr), ("stdout", done.stdout)):
        assert not NOISE.search(text), f"unexpected text in {name}:\n{text}"


def _files(folder: Path) -> set[str]:
    """Paths of the files under ``folder`` (relative, POSIX), without Python caches."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def _dice(a: np.ndarray, b: np.ndarray, label: int) -> float:
    """Dice of ``label`` between two label maps (1.0 when both lack it)."""
    x, y = a == label, b == label
    total = int(x.sum() + y.sum())
    return 1.0 if total == 0 else 2.0 * int((x & y).sum()) / total


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory) -> BuiltWheel:
    """The wheel of this checkout, built offline with pip from a copy of the source tree."""
    try:
        setuptools_version = metadata.version("setuptools")
    except metadata.PackageNotFoundError:
        setuptools_version = "0"
    major = tuple(int(p) for p in re.findall(r"\d+", setuptools_version)[:1])
    if major < MIN_SETUPTOOLS:
        pytest.skip(f"building offline (--no-build-isolation) needs setuptools>=77 in "
                    f"{sys.prefix}, found {setuptools_version}: pip install 'setuptools>=77'")
    before = _build_artifacts(ROOT)
    work = tmp_path_factory.mktemp("wheel-build")
    source, out = work / "source", work / "dist"
    shutil.copytree(ROOT, source, symlinks=True, ignore=_ignore)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--no-index", "-w", out, source], cwd=work, env=_clean_env(TMPDIR=str(work)))
    wheels = list(out.glob("echoseg-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {out}: {os.listdir(out)}"
    return BuiltWheel(wheels[0], before, _build_artifacts(ROOT))


@pytest.fixture(scope="module")
def clean_venv(built_wheel, tmp_path_factory) -> CleanVenv:
    """A new venv of the same base interpreter with the wheel installed (no deps, no index),
    then the dev venv's site-packages appended to its sys.path by a ``.pth`` file (plain
    path lines: the .pth files in that folder, such as the editable install's, are not run)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    root = tmp_path_factory.mktemp("clean") / "venv"
    _run([base, "-m", "venv", "--without-pip", root], env=_clean_env())
    python = root / ("Scripts" if os.name == "nt" else "bin") / "python"
    paths = json.loads(_run([python, "-c", "import json, sysconfig; "
                             "print(json.dumps(sysconfig.get_paths()))"], env=_clean_env()).stdout)
    venv = CleanVenv(root, Path(paths["scripts"]) / "python", Path(paths["scripts"]),
                     Path(paths["purelib"]))
    # installed before the .pth exists, so pip sees no echoseg (the dev one) already there
    _run([sys.executable, "-m", "pip", "--python", venv.python, "install", "--no-deps",
          "--no-index", built_wheel.path], env=_clean_env(TMPDIR=str(root.parent)))
    dev_sites = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (venv.site_packages / "dev_venv_packages.pth").write_text(
        "".join(f"{p}\n" for p in dev_sites))
    return venv


@pytest.fixture
def no_compiler_env(clean_venv, tmp_path) -> dict[str, str]:
    """The environment of a machine without a C/C++ compiler or GPU, and with nothing cached:
    PATH is the clean venv's scripts plus an empty folder; $CC and $CXX (which echoseg.native,
    echoseg.models.mish and torch inductor try first) name a missing file; conda installs of
    gcc are off; HOME, the caches and TMPDIR (torch inductor's cache) are new, empty folders."""
    folders = {name: tmp_path / name for name in ("bin", "home", "cache", "tmp")}
    for folder in folders.values():
        folder.mkdir()
    missing = str(tmp_path / "no-such-compiler")
    env = {
        "PATH": os.pathsep.join([str(clean_venv.scripts), str(folders["bin"])]),
        "HOME": str(folders["home"]),
        "XDG_CACHE_HOME": str(folders["cache"]),
        "TMPDIR": str(folders["tmp"]),
        "CUDA_VISIBLE_DEVICES": "",
        "CC": missing,
        "CXX": missing,
    }
    for key in ("LANG", "LC_ALL", "SYSTEMROOT"):  # locale; SYSTEMROOT is needed on Windows
        if key in os.environ:
            env[key] = os.environ[key]
    found = {c: shutil.which(c, path=env["PATH"]) for c in COMPILERS}
    assert not any(found.values()), f"a compiler is reachable: {found}"
    return env


def test_build_leaves_the_checkout_unchanged(built_wheel):
    """Building from a copy writes no build/, dist/, *.egg-info or wheel into the checkout."""
    assert built_wheel.artifacts_after == built_wheel.artifacts_before


def test_wheel_holds_the_package_and_its_data(built_wheel):
    """Every module and every data file of src/echoseg, the licenses, and nothing else."""
    with zipfile.ZipFile(built_wheel.path) as wheel:
        names = set(wheel.namelist())
        dist_info = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        assert len(dist_info) == 1, dist_info
        (dist_info,) = dist_info
        assert {n.split("/")[0] for n in names} == {"echoseg", dist_info}
        packaged = {n.removeprefix("echoseg/") for n in names if n.startswith("echoseg/")}

        source = _files(PACKAGE)
        missing = sorted(source - NOT_PACKAGED - packaged)
        assert not missing, f"files of src/echoseg missing from the wheel: {missing}"
        for folder in DATA_FOLDERS:
            in_source = {f for f in source if f.startswith(f"{folder}/")}
            assert in_source, f"src/echoseg/{folder} is empty"
            assert {f for f in packaged if f.startswith(f"{folder}/")} == in_source, folder
            for name in in_source:  # the same bytes (the weights are not, e.g., an LFS stub)
                assert wheel.read(f"echoseg/{name}") == (PACKAGE / name).read_bytes(), name
        # what the package loads by name, and the license notes beside the CAMUS data
        for name in ("weights/lightweight.pt", "weights/lightweight.json",
                     "weights/lightweight.quality.json", "weights/MODEL_CARD.md",
                     "weights/README.md", "samples/camus224/README.md",
                     "samples/camus224/splits.json", "configs/lightweight.yaml",
                     "native/bn_mish.c", "native/class_sums.c", "native/interleave.c",
                     "native/simd.h"):
            assert name in packaged, name
        for note in ("samples/camus224/README.md", "weights/README.md", "weights/MODEL_CARD.md"):
            assert "CC BY-NC-SA 4.0" in wheel.read(f"echoseg/{note}").decode(), note
        assert len([n for n in packaged if n.startswith("samples/") and n.endswith(".png")]) == 32
        assert {f for f in source if f.startswith("configs/") and f.endswith(".yaml")} <= packaged

        for license_file in ("LICENSE", "NOTICE"):
            hits = [n for n in names if n.startswith(f"{dist_info}/")
                    and n.rsplit("/", 1)[-1] == license_file]
            assert len(hits) == 1, f"{license_file} in {dist_info}: {hits}"
            assert wheel.read(hits[0]) == (ROOT / license_file).read_bytes()
        meta = wheel.read(f"{dist_info}/METADATA").decode()
        assert "License-Expression: MIT AND CC-BY-NC-SA-4.0" in meta
        assert "Classifier: " in meta
        assert "echoseg = echoseg.cli:main" in wheel.read(f"{dist_info}/entry_points.txt").decode()

        for name in names:
            parts = name.split("/")
            assert not {"tests", ".venv", "__pycache__", ".git", "build"} & set(parts), name
            assert not name.endswith((".pyc", ".pyo", ".so", ".egg-info")), name
            assert parts[-1] != "conftest.py" and not parts[-1].startswith("test_"), name


def test_clean_venv_imports_the_wheel_not_the_checkout(clean_venv):
    """echoseg comes from the new venv's site-packages, torch from the dev venv's."""
    probe = ("import json, sys, echoseg, torch; from importlib import metadata; "
             "print(json.dumps({'echoseg': echoseg.__file__, 'torch': torch.__file__, "
             "'dist': str(metadata.distribution('echoseg').locate_file('')), "
             "'path': sys.path, 'prefix': sys.prefix}))")
    seen = json.loads(_run([clean_venv.python, "-c", probe], cwd=clean_venv.root,
                           env=_clean_env()).stdout)
    assert Path(seen["echoseg"]).is_relative_to(clean_venv.site_packages), seen["echoseg"]
    assert Path(seen["dist"]) == clean_venv.site_packages, seen["dist"]
    assert Path(seen["prefix"]) == clean_venv.root
    assert not Path(seen["torch"]).is_relative_to(clean_venv.root)  # the dev venv's torch
    for entry in seen["path"]:
        assert not entry or not Path(entry).resolve().is_relative_to(ROOT / "src"), entry
    assert (clean_venv.scripts / "echoseg").is_file()


def test_predict_without_compiler_matches_the_dev_install(clean_venv, no_compiler_env,
                                                           tmp_path):
    """`echoseg predict lightweight` (PyTorch runtime) from the wheel writes the label maps
    and predictions.csv, quietly, and they match the dev install's on the same files."""
    installed = clean_venv.site_packages / "echoseg" / "samples" / "camus224"
    work = tmp_path / "work"
    work.mkdir()
    done = _run(["echoseg", "predict", "lightweight", *(installed / s for s in SAMPLES),
                 "--out", "out", "--runtime", "torch"], cwd=work, env=no_compiler_env)
    _assert_quiet(done)

    from echoseg.cli import main  # the dev install, in this process

    reference = tmp_path / "reference"
    assert main(["predict", "lightweight", *(str(PACKAGE / "samples" / "camus224" / s)
                                             for s in SAMPLES),
                 "--out", str(reference), "--runtime", "torch", "--quiet"]) == 0

    from PIL import Image

    out = work / "out"
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    stems = [Path(s).stem for s in SAMPLES]
    assert [r["output"] for r in rows] == [f"{s}_seg.png" for s in stems]
    assert {r["runtime"] for r in rows} == {"torch"}
    for stem in stems:
        assert (out / f"{stem}_overlay.png").is_file()
        got = np.asarray(Image.open(out / f"{stem}_seg.png"))
        want = np.asarray(Image.open(reference / f"{stem}_seg.png"))
        assert got.shape == want.shape == (224, 224)
        assert set(np.unique(got)) <= {0, 1, 2, 3} and {1, 2, 3} <= set(np.unique(got))
        if not np.array_equal(got, want):
            dice = {label: _dice(got, want, label) for label in (1, 2, 3)}
            assert min(dice.values()) >= 0.99, (stem, dice)


def test_demo_without_compiler(clean_venv, no_compiler_env, tmp_path):
    """`echoseg demo` from the wheel (default runtime) segments the 16 packaged samples
    with the packaged weights, writes its report and figures, quietly."""
    done = _run(["echoseg", "demo", "--out", "demo", "--device", "cpu"], cwd=tmp_path,
                env=no_compiler_env)
    _assert_quiet(done)
    out = tmp_path / "demo"
    report = json.loads((out / "report.json").read_text())
    assert report["model"] == "lightweight" and report["n_images"] == 16
    assert Path(report["samples"]).is_relative_to(clean_venv.site_packages)
    assert (out / "report.md").is_file()
    assert len(list((out / "figures").glob("*.png"))) == 16
    # the real weights, not a stub: the bundled samples score about 0.96 / 0.91 / 0.93
    assert report["mean_dice"]["LV"] > 0.9, report["mean_dice"]
    assert min(report["mean_dice"].values()) > 0.85, report["mean_dice"]
    assert report["recorded_validation"]["dice"]["LV"] > 0.9
