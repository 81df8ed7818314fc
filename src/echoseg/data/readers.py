"""Read and write 2D images, 2D+t sequences and label maps (PNG/JPEG/TIFF, NIfTI, MetaImage).

Arrays are (H, W) for a 2D image and (T, H, W) for a sequence; spacing is the pixel size in mm in
(row, column) order, or None when the format does not record it. Every failure to read raises
DataError with one line naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from echoseg.data.integrity import gzip_problem, metaimage_problem, nifti_problem
from echoseg.data.names import IMAGE_EXTENSIONS, PIL_EXTENSIONS, SITK_EXTENSIONS, split_extension
from echoseg.errors import DataError
from echoseg.labels import NUM_CLASSES

Spacing = tuple[float, float] | None
# ITU-R 601-2 luma, the weights PIL's convert("L") uses
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_PIL_RAW_MODES = {"L", "P", "I", "F", "I;16", "I;16B", "I;16L"}


def read_image(path: Path | str) -> tuple[np.ndarray, Spacing]:
    """Decode an image file.

    Takes a PNG/JPEG/TIFF/BMP (read with pillow; colour converted to grayscale, palette images
    returned as their indices) or a NIfTI/MetaImage file (read with SimpleITK). Returns the pixel
    array, (H, W) or (T, H, W) for a 2D+t sequence, in the file's dtype, and the spacing in mm
    (row, column) or None. Raises DataError naming the file when it is missing or unreadable.
    """
    path = Path(path)
    ext = _check_file(path)
    try:
        if ext in PIL_EXTENSIONS:
            return _read_pil(path), None
        return _read_sitk(path)
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, RuntimeError, EOFError) as exc:
        raise DataError(f"{path}: cannot read image ({_reason(exc, path)})") from None


def read_header(path: Path | str) -> tuple[tuple[int, ...], Spacing]:
    """Read an image's shape and spacing without decoding its pixels.

    Returns the shape ``read_image`` would return ((H, W), or (T, H, W) for a sequence) and the
    spacing in mm (row, column) or None. Raises DataError naming the file when it is unreadable.
    """
    path = Path(path)
    ext = _check_file(path)
    try:
        if ext in PIL_EXTENSIONS:
            with Image.open(path) as im:
                width, height = im.size
                frames = getattr(im, "n_frames", 1)
            return ((frames, height, width) if frames > 1 else (height, width)), None
        if problem := _cheap_problem(path, ext):
            raise DataError(f"{path}: cannot read image ({problem})")
        reader = _sitk().ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        return _shape_and_spacing(path, reader.GetSize(), reader.GetSpacing())
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, RuntimeError, EOFError) as exc:
        raise DataError(f"{path}: cannot read image ({_reason(exc, path)})") from None


def write_image(path: Path | str, array: np.ndarray, spacing: Spacing = None) -> None:
    """Write a (H, W) array, or (T, H, W) for NIfTI/MetaImage, creating parent folders.

    PNG/TIFF take uint8 or uint16 and cannot store ``spacing`` (mm, row/column); NIfTI and
    MetaImage keep any numeric dtype and the spacing.
    """
    path = Path(path)
    ext = split_extension(path)[1]
    array = np.asarray(array)
    if ext not in IMAGE_EXTENSIONS:
        raise ValueError(f"{path}: unsupported image extension '{ext}'")
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
    sitk.WriteImage(image, str(path), useCompression=ext == ".nii.gz")


def write_label_map(path: Path | str, array: np.ndarray, spacing: Spacing = None) -> None:
    """Write a label map (values 0..3, (H, W) or (T, H, W)) as uint8; see :func:`write_image`."""
    array = np.asarray(array)
    if array.size and (array.min() < 0 or array.max() >= NUM_CLASSES):
        raise ValueError(f"{path}: label values must be in 0..{NUM_CLASSES - 1}")
    write_image(path, array.astype(np.uint8), spacing)


def _check_file(path: Path) -> str:
    ext = split_extension(path)[1]
    if not path.exists():
        raise DataError(f"{path}: cannot read image (file not found)")
    if not path.is_file():
        raise DataError(f"{path}: cannot read image (not a file)")
    if ext not in PIL_EXTENSIONS + SITK_EXTENSIONS:
        raise DataError(f"{path}: cannot read image (unsupported extension '{ext}')")
    return ext


def _read_pil(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        frames = []
        for index in range(getattr(im, "n_frames", 1)):
            im.seek(index)
            im.load()  # decodes now, so a truncated file fails here
            if im.mode == "1":
                frames.append(np.asarray(im, dtype=np.uint8))
            elif im.mode in _PIL_RAW_MODES:
                frames.append(np.asarray(im))
            else:
                frames.append(np.asarray(im.convert("L")))
    return frames[0] if len(frames) == 1 else np.stack(frames)


def _read_sitk(path: Path) -> tuple[np.ndarray, Spacing]:
    ext = split_extension(path)[1]
    problem = gzip_problem(path) if ext == ".nii.gz" else _cheap_problem(path, ext)
    if problem:
        raise DataError(f"{path}: cannot read image ({problem})")
    sitk = _sitk()
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    channels = image.GetNumberOfComponentsPerPixel()
    if channels >= 3:
        array = array[..., :3].astype(np.float32) @ _LUMA
    elif channels == 2:
        array = array[..., 0]  # gray + alpha
    shape, spacing = _shape_and_spacing(path, image.GetSize(), image.GetSpacing())
    return array.reshape(shape), spacing


def _sitk():
    """SimpleITK, imported on first use: PNG-only work (training on a PNG copy) never needs it."""
    import SimpleITK

    return SimpleITK


def _cheap_problem(path: Path, ext: str) -> str | None:
    """Damage found from the header and file sizes alone (no decompression)."""
    if ext in (".mhd", ".mha"):
        return metaimage_problem(path)
    if ext == ".nii":
        return nifti_problem(path)
    return None


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
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[-1] if lines else type(exc).__name__
    for prefix in ("sitk::ERROR:", "ITK ERROR:"):
        if text.startswith(prefix):
            text = text[len(prefix):].strip()
    if "Unable to determine ImageIO reader" in text:
        return "not a readable NIfTI/MetaImage file"
    return text.replace(f'"{path}"', path.name).replace(str(path), path.name)
