"""Read and write 2D images, 2D+t sequences and label maps (PNG/JPEG/TIFF, NIfTI, MetaImage);
read DICOM (``.dcm``, ``.dicom`` or no extension, see ``echoseg.io.dicom``).

Arrays are (H, W) for a 2D image and (T, H, W) for a sequence; spacing is the pixel size in mm in
(row, column) order, or None when the format does not record it. Sizes declared by a header are
checked against ``echoseg.data.limits`` before any pixel is decoded. Every failure to read raises
DataError with one line naming the file.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from echoseg.data.integrity import (
    Layout,
    gzip_problem,
    metaimage_header,
    metaimage_problem,
    metaimage_size,
    nifti_head,
    nifti_layout,
    nifti_problem,
)
from echoseg.data.limits import check_size
from echoseg.data.names import (
    DICOM_EXTENSIONS,
    IMAGE_EXTENSIONS,
    PIL_EXTENSIONS,
    VIDEO_EXTENSIONS,
    WRITABLE_EXTENSIONS,
    split_extension,
)
from echoseg.data.regular import require_regular_file
from echoseg.errors import DataError
from echoseg.labels import NUM_CLASSES

Spacing = tuple[float, float] | None
# ITU-R 601-2 luma, the weights PIL's convert("L") uses
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_PIL_RAW_MODES = {"L", "I", "F", "I;16", "I;16B", "I;16L"}
_MAX_COMPONENTS = 4  # gray, gray + alpha, RGB, RGBA
_READ_ERRORS = (OSError, ValueError, SyntaxError, RuntimeError, EOFError, MemoryError,
                zlib.error, Image.DecompressionBombError)
# echoseg checks sizes itself, from the header, before decoding (echoseg.data.limits). PIL's
# process-wide check would refuse sizes those limits allow, or print a warning, before ours ran.
Image.MAX_IMAGE_PIXELS = None


def read_image(path: Path | str) -> tuple[np.ndarray, Spacing]:
    """Decode an image file.

    Takes a PNG/JPEG/TIFF/BMP (read with pillow; colour and palette images converted to the
    grayscale they display), a NIfTI/MetaImage file (read with SimpleITK) or a DICOM file
    (``echoseg.io.dicom.read_dicom``: colour as luma, MONOCHROME1 inverted, spacing from the
    ultrasound regions; ``echoseg.io.read_scan`` also gives its imaging region). Returns the pixel
    array, (H, W) or (T, H, W) for a 2D+t sequence, in the file's dtype, and the spacing in mm
    (row, column) or None. Non-finite pixels are kept (see
    ``echoseg.data.preprocess.fill_non_finite``). Raises DataError naming the file when it is
    missing, unreadable, too large, empty, or has no finite pixel.
    """
    path = Path(path)
    array, spacing = _read(path, labels=False)
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).any():
        raise DataError(f"{path}: cannot read image (no finite pixel values)")
    return array, spacing


def read_label_map(path: Path | str) -> tuple[np.ndarray, Spacing]:
    """Decode a label map file: as :func:`read_image`, except that a palette PNG/TIFF/BMP gives
    its palette indices (the labels), not the colours they display. Values are not checked.
    Returns the array ((H, W) or (T, H, W), the file's dtype) and the spacing in mm or None."""
    return _read(Path(path), labels=True)


def read_header(path: Path | str) -> tuple[tuple[int, ...], Spacing]:
    """Read an image's shape and spacing without decoding its pixels.

    Returns the shape ``read_image`` would return ((H, W), or (T, H, W) for a sequence) and the
    spacing in mm (row, column) or None. Raises DataError naming the file when it is unreadable,
    too large or empty.
    """
    path = Path(path)
    ext = check_file(path)
    if ext in DICOM_EXTENSIONS:
        from echoseg.io.dicom import read_dicom_header

        header = read_dicom_header(path)
        return header.shape, header.spacing
    if ext in VIDEO_EXTENSIONS:
        from echoseg.io.video import read_video_header

        return read_video_header(path)[0], None
    try:
        if ext in PIL_EXTENSIONS:
            with Image.open(path) as im:
                width, height = im.size
                frames = getattr(im, "n_frames", 1)
            check_size(path, height, width, frames)
            return ((frames, height, width) if frames > 1 else (height, width)), None
        reader = _sitk_reader(path, ext, decode=False)
        return _shape_and_spacing(path, reader.GetSize(), reader.GetSpacing())
    except DataError:
        raise
    except _READ_ERRORS as exc:
        raise DataError(f"{path}: cannot read image ({_reason(exc, path)})") from None


def write_image(path: Path | str, array: np.ndarray, spacing: Spacing = None) -> None:
    """Write a (H, W) array, or (T, H, W) for NIfTI/MetaImage, creating parent folders.

    PNG/TIFF take uint8 or uint16 and cannot store ``spacing`` (mm, row/column); NIfTI and
    MetaImage keep any numeric dtype and the spacing.
    """
    path = Path(path)
    ext = split_extension(path)[1]
    array = np.asarray(array)
    if ext not in WRITABLE_EXTENSIONS:
        raise ValueError(f"{path}: unsupported image extension '{ext}' for writing")
    path.parent.mkdir(parents=True, exist_ok=True)
    if ext in PIL_EXTENSIONS:
        if array.ndim != 2 or array.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"{path}: expected a 2D uint8/uint16 array, got {array.dtype} "
                             f"{array.shape}")
        Image.fromarray(array).save(path)
        return
    sitk = _sitk()
    image = sitk.GetImageFromArray(array)
    if spacing is not None:
        row, col = spacing
        image.SetSpacing((float(col), float(row)) + (1.0,) * (array.ndim - 2))
    sitk.WriteImage(image, _sitk_name(path, ValueError), useCompression=ext == ".nii.gz")


def write_label_map(path: Path | str, array: np.ndarray, spacing: Spacing = None) -> None:
    """Write a label map (values 0..3, (H, W) or (T, H, W)) as uint8; see :func:`write_image`."""
    array = np.asarray(array)
    if array.size and (array.min() < 0 or array.max() >= NUM_CLASSES):
        raise ValueError(f"{path}: label values must be in 0..{NUM_CLASSES - 1}")
    write_image(path, array.astype(np.uint8), spacing)


def _read(path: Path, labels: bool) -> tuple[np.ndarray, Spacing]:
    ext = check_file(path)
    if ext in DICOM_EXTENSIONS:
        from echoseg.io.dicom import read_dicom

        scan = read_dicom(path)
        return scan.array, scan.spacing
    if ext in VIDEO_EXTENSIONS:
        from echoseg.io.video import read_video

        return read_video(path).frames, None
    try:
        if ext in PIL_EXTENSIONS:
            return _read_pil(path, labels), None
        return _read_sitk(path, ext)
    except DataError:
        raise
    except _READ_ERRORS as exc:
        raise DataError(f"{path}: cannot read image ({_reason(exc, path)})") from None


def check_file(path: Path) -> str:
    """The extension of ``path`` (``.dcm`` for a DICOM file without one) once it is known to be
    a regular file of a readable format; raises DataError naming the file otherwise. Only a
    regular file without extension is opened (for its DICOM marker), so a FIFO never blocks."""
    ext = split_extension(path)[1]
    require_regular_file(path, "image")
    if ext == "":
        from echoseg.io.dicom import has_dicom_preamble

        if has_dicom_preamble(path):
            return DICOM_EXTENSIONS[0]
        raise DataError(f"{path}: cannot read image (no extension, and not a DICOM file)")
    if ext not in IMAGE_EXTENSIONS:
        raise DataError(f"{path}: cannot read image (unsupported extension '{ext}')")
    return ext


def _read_pil(path: Path, labels: bool) -> np.ndarray:
    """Pixels of every frame; palette images through their palette unless ``labels``."""
    raw_modes = _PIL_RAW_MODES | {"P"} if labels else _PIL_RAW_MODES
    with Image.open(path) as im:
        n_frames = getattr(im, "n_frames", 1)
        check_size(path, im.size[1], im.size[0], n_frames)
        frames = []
        for index in range(n_frames):
            im.seek(index)
            check_size(path, im.size[1], im.size[0], n_frames)  # frames may differ in size
            im.load()  # decodes now, so a truncated file fails here
            if im.mode == "1":
                frames.append(np.asarray(im, dtype=np.uint8))
            elif im.mode in raw_modes:
                frames.append(np.asarray(im))
            else:
                frames.append(np.asarray(im.convert("L")))
    return frames[0] if len(frames) == 1 else np.stack(frames)


def _read_sitk(path: Path, ext: str) -> tuple[np.ndarray, Spacing]:
    reader = _sitk_reader(path, ext, decode=True)
    image = reader.Execute()
    array = _sitk().GetArrayFromImage(image)
    channels = image.GetNumberOfComponentsPerPixel()
    if channels >= 3:
        array = array[..., :3].astype(np.float32) @ _LUMA
    elif channels == 2:
        array = array[..., 0]  # gray + alpha
    shape, spacing = _shape_and_spacing(path, image.GetSize(), image.GetSpacing())
    return array.reshape(shape), spacing


def _sitk_reader(path: Path, ext: str, decode: bool):
    """A SimpleITK reader of ``path`` with its header read, after every check that can be made
    without decoding: size limits, empty images, missing or short data (for ``decode``, also
    the length of compressed data, which costs one pass of decompression)."""
    layout = _declared_layout(path, ext)
    if layout is not None:
        _check_itk_size(path, layout.size)
    if problem := _data_problem(path, ext, layout, decode):
        raise DataError(f"{path}: cannot read image ({problem})")
    reader = _sitk().ImageFileReader()
    reader.SetFileName(_sitk_name(path, DataError))
    reader.ReadImageInformation()
    _check_itk_size(path, reader.GetSize())
    components = reader.GetNumberOfComponents()
    if components > _MAX_COMPONENTS:
        raise DataError(f"{path}: cannot read image ({components} components per pixel, "
                        f"expected 1 to {_MAX_COMPONENTS})")
    return reader


def _sitk_name(path: Path, error: type[Exception]) -> str:
    """``path`` as the UTF-8 string SimpleITK takes; raises ``error`` naming the file when the
    name is not valid UTF-8 (SimpleITK would abort the whole process on it)."""
    name = str(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise error(f"{path}: cannot read or write NIfTI/MetaImage under a file name that is "
                    "not UTF-8; rename the file") from None
    return name


def _sitk():
    """SimpleITK, imported on first use: PNG-only work (training on a PNG copy) never needs it."""
    import SimpleITK

    return SimpleITK


def _declared_layout(path: Path, ext: str) -> Layout | None:
    """Size (and end of pixel data) declared by a NIfTI or MetaImage header, parsed here because
    SimpleITK reads a zero dimension as 1; None when the header is not recognised."""
    if ext in (".mhd", ".mha"):
        size = metaimage_size(metaimage_header(path)[0])
        return Layout(size, None) if size else None
    try:
        layout = nifti_layout(nifti_head(path, compressed=ext == ".nii.gz"))
    except (OSError, EOFError, zlib.error):
        return None  # a damaged gzip stream: reported by gzip_problem or SimpleITK
    if isinstance(layout, str):
        raise DataError(f"{path}: cannot read image ({layout})")
    return layout


def _data_problem(path: Path, ext: str, layout: Layout | None, decode: bool) -> str | None:
    """Damage found from the header, file sizes and (for ``decode``) decompressed lengths."""
    if ext in (".mhd", ".mha"):
        return metaimage_problem(path, decompress=decode)
    if ext == ".nii":
        return nifti_problem(path)
    return gzip_problem(path, layout.end if layout else None) if decode else None


def _check_itk_size(path: Path, size: tuple[int, ...]) -> None:
    """Apply the size limits to an ITK-order size (x, y, then frames)."""
    width, height = size[0], (size[1] if len(size) > 1 else 1)
    check_size(path, height, width, math.prod(size[2:]))


def _shape_and_spacing(path: Path, size: tuple[int, ...], spacing: tuple[float, ...]):
    """Map ITK (x, y[, t]) size and spacing to a (H, W) or (T, H, W) shape and (row, col) mm."""
    if len(size) == 3 and size[2] == 1:
        size = size[:2]  # 2D image stored as a one-slice volume (CAMUS 2019 .mhd)
    if len(size) not in (2, 3):
        raise DataError(f"{path}: cannot read image ({len(size)}D image, expected 2D or 2D+t)")
    # rounded to 1 nm: NIfTI stores float32, so 0.154 would read back as 0.15399999916...
    return tuple(reversed(size)), (round(spacing[1], 6), round(spacing[0], 6))


def _reason(exc: BaseException, path: Path) -> str:
    """A short one-line reason from an exception (SimpleITK messages span several lines)."""
    if isinstance(exc, MemoryError):
        return "not enough memory"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[-1] if lines else type(exc).__name__
    for prefix in ("sitk::ERROR:", "ITK ERROR:"):
        if text.startswith(prefix):
            text = text[len(prefix):].strip()
    if "Unable to determine ImageIO reader" in text:
        return "not a readable NIfTI/MetaImage file"
    return text.replace(f'"{path}"', path.name).replace(str(path), path.name)
