"""Exported copies of PyTorch models, made once and kept in a cache for the ONNX Runtime and
OpenVINO backends.

The cache is the folder ``exported/`` of :func:`echoseg.data.cache.default_cache_dir`
(``$ECHOSEG_CACHE/exported/``, else ``~/.cache/echoseg/exported/``). An entry is keyed by the
weights' sha256 (``weights_digest``) and a digest of the config, so new weights or a changed
architecture get a new export. ``<key>.onnx`` is one file written atomically; the OpenVINO IR
is a folder ``<key>.openvino/`` (``model.xml`` + ``model.bin``) renamed into place whole, so
that a reader, in this process or another, sees a complete export or none.
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
    try:
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.",
                                        suffix=TMP_SUFFIX))
    except OSError as exc:
        raise EchosegError(f"{folder}: cannot write ({failure_reason(exc)}); {CACHE_HINT}") \
            from exc
    try:
        export_openvino(onnx_path, staging / xml.name)
        _move_into_place(staging, folder, xml.name)
    except WriteError as exc:
        raise EchosegError(f"{exc}; {CACHE_HINT}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return xml


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
