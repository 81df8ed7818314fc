"""Exported copies of PyTorch models, made once and kept in a cache for the ONNX Runtime and
OpenVINO backends.

The cache is the folder ``exported/`` of :func:`echoseg.data.cache.default_cache_dir`
(``$ECHOSEG_CACHE/exported/``, else ``~/.cache/echoseg/exported/``). An entry is keyed by the
weights' sha256 (``weights_digest``) and a digest of the config, so new weights or a changed
architecture get a new export. ``<key>.onnx`` is one file written atomically; the OpenVINO IR
is a folder ``<key>.openvino/`` (``model.xml`` + ``model.bin``) renamed into place whole, so
that a reader, in this process or another, sees a complete export or none. int8 copies
(``<key>.int8.onnx``, ``<key>.int8.openvino/``) are quantized from those, calibrated on the
bundled CAMUS samples (:data:`INT8_CALIBRATION_IMAGES` of them) as ``echoseg export --int8``
does, layers kept in float chosen by measurement.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from echoseg.atomic import TMP_SUFFIX, WriteError, failure_reason
from echoseg.config import Config, to_dict
from echoseg.errors import EchosegError
from echoseg.paths import default_cache_dir

INT8_CALIBRATION_IMAGES = 16  # the bundled samples: 4 patients x 2 views x 2 phases
EXPORT_VERSION = 1  # bump when the exporter's output changes, so old cache entries are unused
CACHE_HINT = "set ECHOSEG_CACHE to a writable folder"


def export_dir() -> Path:
    """The folder of cached exports: ``default_cache_dir() / "exported"``."""
    return default_cache_dir() / "exported"


def export_key(model: torch.nn.Module, config: Config) -> tuple[str, str]:
    """(cache key, weights sha256 hex) of ``model`` with ``config``."""
    from echoseg.export.metadata import weights_digest

    digest = weights_digest(model)
    text = json.dumps([EXPORT_VERSION, to_dict(config)], sort_keys=True, default=str)
    return f"{digest[:32]}-{hashlib.sha256(text.encode()).hexdigest()[:12]}", digest


def cached_onnx(model: torch.nn.Module, config: Config, name: str) -> Path:
    """The cached ONNX export of ``model`` (exported now when missing); returns its path.
    ``name`` goes into the file's metadata. Raises EchosegError when the export fails or the
    cache cannot be written (saying how to choose another folder)."""
    from echoseg.export.metadata import build_metadata
    from echoseg.export.to_onnx import export_onnx

    key, digest = export_key(model, config)
    path = export_dir() / f"{key}.onnx"
    if path.is_file():
        return path
    metadata = build_metadata(config, name=name, weights_sha256=digest,
                              provenance={"exported_by": "echoseg.load_model (runtime cache)"})
    try:
        return export_onnx(model, config, path, metadata=metadata)
    except WriteError as exc:
        raise EchosegError(f"{exc}; {CACHE_HINT}") from exc


def cached_openvino(model: torch.nn.Module, config: Config, name: str) -> Path:
    """The ``model.xml`` of the cached OpenVINO IR of ``model`` (converted now, from the
    cached ONNX export, when missing); returns its path. Raises EchosegError as
    :func:`cached_onnx` does."""
    from echoseg.export.to_openvino import export_openvino

    key, _ = export_key(model, config)
    folder = export_dir() / f"{key}.openvino"
    xml = folder / "model.xml"
    if xml.is_file():
        return xml
    onnx_path = cached_onnx(model, config, name)
    return _write_ir_folder(folder, xml.name, lambda out: export_openvino(onnx_path, out))


def _write_ir_folder(folder: Path, name: str, write) -> Path:
    """``folder / name`` after ``write(staging / name)`` wrote an IR into a staging folder that
    then moved into place whole; raises EchosegError (with the cache hint) when it cannot."""
    try:
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.",
                                        suffix=TMP_SUFFIX))
    except OSError as exc:
        raise EchosegError(f"{folder}: cannot write ({failure_reason(exc)}); {CACHE_HINT}") \
            from exc
    try:
        write(staging / name)
        _move_into_place(staging, folder, name)
    except WriteError as exc:
        raise EchosegError(f"{exc}; {CACHE_HINT}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder / name


def _move_into_place(staging: Path, folder: Path, marker: str) -> None:
    """Rename the complete folder ``staging`` to ``folder``. When another process got there
    first its copy is kept; a ``folder`` without ``marker`` (left broken) is replaced."""
    for _ in range(2):
        try:
            os.rename(staging, folder)
            return
        except OSError as exc:
            if (folder / marker).is_file():
                return  # another process exported the same model meanwhile
            if not folder.exists():
                raise WriteError(folder, failure_reason(exc)) from exc
            with contextlib.suppress(OSError):
                shutil.rmtree(folder)
    raise WriteError(folder, "another process keeps writing this folder")


def cached_int8(model: torch.nn.Module, config: Config, name: str, runtime: str) -> Path:
    """The cached int8 copy of ``model`` for ``runtime`` (openvino: the ``model.xml`` of an IR
    folder; onnxruntime: an ``.onnx`` file), quantized now from the cached fp32 export when
    missing (calibrated on the bundled samples; a minute or so on 2 CPU cores, once per
    weights). Raises EchosegError as :func:`cached_onnx` does."""
    key, _ = export_key(model, config)
    if runtime == "openvino":
        folder = export_dir() / f"{key}.int8.openvino"
        xml = folder / "model.xml"
        if xml.is_file():
            return xml
        from echoseg.export.quantize_openvino import quantize_openvino

        fp32 = cached_openvino(model, config, name)
        return _write_ir_folder(folder, xml.name, lambda out: quantize_openvino(
            fp32, out, *_calibration(model, config)))
    path = export_dir() / f"{key}.int8.onnx"
    if path.is_file():
        return path
    from echoseg.export.metadata import stored_entries
    from echoseg.export.quantize_onnx import quantize_onnx

    fp32 = cached_onnx(model, config, name)
    try:
        return quantize_onnx(fp32, path, *_calibration(model, config), stored_entries(fp32))[0]
    except WriteError as exc:
        raise EchosegError(f"{exc}; {CACHE_HINT}") from exc


def _calibration(model: torch.nn.Module, config: Config):
    """(calibration grid images, probe images, the PyTorch model's labels of the probe)."""
    from echoseg.export.images import load_grid_images
    from echoseg.export.selection import probe_indices
    from echoseg.inference.files import bundled_samples
    from echoseg.inference.segmenter import Segmenter

    images = load_grid_images(bundled_samples(), config.data.size,
                              INT8_CALIBRATION_IMAGES).images
    probe = images[probe_indices(len(images))]
    with torch.no_grad():
        labels = Segmenter(model, config).logits(probe).argmax(1).numpy()
    return images, probe, labels
