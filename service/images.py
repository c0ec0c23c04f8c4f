"""Decode uploads into float RGB and encode results back (pure Pillow/numpy).

What a user gets back, and why:
* Same width/height/orientation as the EXIF-corrected input: orientation is applied on decode and the
  Orientation tag is removed from the EXIF written back (viewers would rotate twice otherwise).
* Grayscale in, grayscale out (the model sees the gray replicated to RGB). 16-bit grayscale PNG/TIFF is
  processed in float and returned as a 16-bit PNG when the answer is PNG (JPEG/WebP are 8-bit formats, so
  there it is scaled to 8 bits, never clipped). Pillow decodes 16-bit *colour* PNG/TIFF as 8 bits per
  channel (it keeps the high byte: scaled, not saturated); that is what is processed and returned.
* Transparency (RGBA, LA, palette or single-colour tRNS): the colour is deblurred, the alpha channel is
  returned byte-for-byte. JPEG cannot carry alpha, so such a request is answered in PNG and the response
  says so (`EncodedImage.fallback` → header `X-Format-Fallback`). The same fallback covers images a
  format cannot hold (e.g. WebP beyond 16383 px).
* ICC profile kept when it matches the output colour space (a CMYK profile is dropped: output is RGB).
* Only PNG, JPEG (incl. the primary picture of MPO camera files), WebP, BMP and TIFF are decoded; the
  pixel count is checked from the header before any pixel is decoded; animated/multi-page → 415.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated upload is an error, not a grey stripe

INPUT_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF")
OUTPUT_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
DEFAULT_QUALITY = {"jpeg": 92, "webp": 90}
# zlib level 1 (OpenCV's default too): on a 720p answer Pillow's default 6 took 0.32 s, 30 % of the
# request, for a file 8 % smaller (1411 vs 1538 KB, bench.http); PNG stays lossless either way.
PNG_COMPRESS_LEVEL = 1
SUPPORTED_TEXT = "PNG, JPEG, WebP, BMP, TIFF"
# the file names of those formats: what `deblur` picks from folders and training reads as photos
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".webp", ".bmp", ".tif", ".tiff"})
_ORIENTATION = ExifTags.Base.Orientation


class ImageError(Exception):
    """A problem with the client's image; `status_code` is the HTTP answer."""

    status_code = 400


class EmptyImage(ImageError):
    status_code = 400


class ImageTooLarge(ImageError):
    status_code = 413


class UnsupportedImage(ImageError):
    status_code = 415


@dataclass
class DecodedImage:
    """An upload ready for the model: float RGB in [0, 1] plus what is needed to write it back."""

    rgb: np.ndarray  # H×W×3 float32 in [0, 1]
    alpha: np.ndarray | None  # H×W uint8, returned untouched
    grayscale: bool
    bit_depth: int  # 8 or 16 (16 only for grayscale, see module docstring)
    source_format: str  # png, jpeg, webp, bmp, tiff
    icc_profile: bytes | None = None
    exif: bytes | None = None

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


@dataclass
class EncodedImage:
    data: bytes
    format: str  # png, jpeg, webp
    media_type: str
    fallback: str | None = None  # why the requested format was not used, if it was not


def normalise_format(name: str | None) -> str | None:
    if name is None:
        return None
    name = name.strip().lower()
    name = "jpeg" if name == "jpg" else name
    if name not in OUTPUT_FORMATS:
        raise ValueError(f"format must be one of png, jpeg, webp (got {name!r})")
    return name


def output_format(requested: str | None, decoded: DecodedImage) -> str:
    """The requested format, else the input's when it is one we write, else PNG."""
    fmt = normalise_format(requested)
    if fmt is not None:
        return fmt
    return decoded.source_format if decoded.source_format in OUTPUT_FORMATS else "png"


def _open(data: bytes, max_megapixels: float, max_side: int | None) -> Image.Image:
    """Open (header only) and enforce the pixel and side limits before any pixel data is decoded.

    Why a side limit as well: the model runs on tiles of at most 256 px, so a 1x200000 strip (0.2 MP)
    costs about as many model calls as a 40 MP photo."""
    if not data:
        raise EmptyImage("the uploaded file is empty")
    try:
        img = Image.open(io.BytesIO(data), formats=INPUT_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"image dimensions are far too large ({exc.__class__.__name__})") from None
    except Exception:
        raise UnsupportedImage(f"not a decodable image; supported formats: {SUPPORTED_TEXT}") from None
    w, h = img.size
    if w < 1 or h < 1:
        raise UnsupportedImage("the image has no pixels")
    if w * h > max_megapixels * 1_000_000:
        raise ImageTooLarge(
            f"image is {w}x{h} = {w * h / 1e6:.1f} megapixels; the limit is {max_megapixels:g} megapixels"
        )
    if max_side is not None and max(w, h) > max_side:
        raise ImageTooLarge(f"image is {w}x{h}; the longest side allowed is {max_side} px")
    frames = getattr(img, "n_frames", 1)
    if frames > 1 and img.format != "MPO":  # MPO: a camera JPEG with previews; frame 0 is the photo
        raise UnsupportedImage(
            f"animated or multi-frame images are not supported ({frames} frames); upload a single image"
        )
    return img


def _orient(img: Image.Image) -> tuple[Image.Image, bytes | None]:
    """Apply EXIF orientation; return the image and its EXIF without the Orientation tag."""
    try:
        exif = img.getexif()
        if exif.get(_ORIENTATION) in range(2, 9):
            img = ImageOps.exif_transpose(img)
            exif = img.getexif()
        exif.pop(_ORIENTATION, None)
        return img, (exif.tobytes() if len(exif) else None)
    except Exception:  # unreadable EXIF: keep the pixels as stored, drop the metadata
        return img, None


def _icc_for(icc: bytes | None, grayscale: bool) -> bytes | None:
    """Keep the ICC profile only if its colour space is the one we write (GRAY or RGB)."""
    if not icc or len(icc) < 20:
        return None
    wanted = b"GRAY" if grayscale else b"RGB "
    return icc if icc[16:20] == wanted else None


def _to_float(arr: np.ndarray, scale: float) -> np.ndarray:
    out = arr.astype(np.float32)
    out *= np.float32(1.0 / scale)
    return out


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def decode(data: bytes, max_megapixels: float = 40.0, max_side: int | None = None) -> DecodedImage:
    """Bytes → DecodedImage. Raises EmptyImage (400), ImageTooLarge (413), UnsupportedImage (415)."""
    img = _open(data, max_megapixels, max_side)
    fmt = "jpeg" if img.format == "MPO" else str(img.format).lower()
    icc = img.info.get("icc_profile")
    try:
        img.load()
    except Image.DecompressionBombError:
        raise ImageTooLarge("image dimensions are far too large") from None
    except Exception:
        raise UnsupportedImage("the image data is truncated or corrupt") from None
    img, exif = _orient(img)
    mode = img.mode
    alpha = None
    depth = 8
    try:
        has_trns = "transparency" in img.info and mode in ("1", "L", "P", "RGB")
        if mode in ("LA", "La", "PA", "RGBA", "RGBa") or has_trns:
            gray = mode in ("LA", "La", "L", "1")
            img = img.convert("LA" if gray else "RGBA")
            arr = np.asarray(img)
            alpha = arr[..., -1].copy()
            rgb = _gray_to_rgb(_to_float(arr[..., 0], 255)) if gray else _to_float(arr[..., :3], 255)
        elif mode in ("1", "L"):
            gray = True
            rgb = _gray_to_rgb(_to_float(np.asarray(img.convert("L")), 255))
        elif mode.startswith("I;16") or mode == "I":
            arr = np.asarray(img)
            if arr.size and (arr.min() < 0 or arr.max() > 65535):
                raise UnsupportedImage("32-bit integer images are not supported; use 8 or 16 bits per sample")
            gray, depth = True, 16
            rgb = _gray_to_rgb(_to_float(arr, 65535))
        elif mode == "F":
            raise UnsupportedImage("32-bit floating-point images are not supported; use 8 or 16 bits")
        else:  # RGB, CMYK, YCbCr, LAB, P without transparency, ...
            gray = False
            rgb = _to_float(np.asarray(img if mode == "RGB" else img.convert("RGB")), 255)
    except ImageError:
        raise
    except Exception:
        raise UnsupportedImage(f"unsupported pixel mode {mode!r}") from None
    finally:
        img.close()
    return DecodedImage(
        rgb=np.ascontiguousarray(rgb),
        alpha=alpha,
        grayscale=gray,
        bit_depth=depth,
        source_format=fmt,
        icc_profile=_icc_for(icc, gray),
        exif=exif,
    )


def _quantise(x: np.ndarray, peak: int, dtype: type) -> np.ndarray:
    """Round to integers in blocks of rows, so a 24 MP image needs no full-size float temporaries."""
    out = np.empty(x.shape, dtype)
    for i in range(0, x.shape[0], 256):
        block = np.clip(x[i : i + 256], 0.0, 1.0)
        block *= peak
        block += 0.5
        out[i : i + 256] = block  # truncating cast of the rounded values
    return out


def to_pil(result: np.ndarray, decoded: DecodedImage, fmt: str) -> Image.Image:
    """The model output (H×W×3 float in [0, 1]) as a Pillow image in the input's kind of mode."""
    if decoded.grayscale:
        lum = result @ np.array([0.299, 0.587, 0.114], np.float32)
        if decoded.bit_depth == 16 and fmt == "png" and decoded.alpha is None:
            return Image.fromarray(_quantise(lum, 65535, np.uint16))  # mode I;16
        gray = Image.fromarray(_quantise(lum, 255, np.uint8))
        return gray if decoded.alpha is None else Image.merge("LA", (gray, Image.fromarray(decoded.alpha)))
    rgb = Image.fromarray(_quantise(result, 255, np.uint8))
    if decoded.alpha is None:
        return rgb
    return Image.merge("RGBA", (*rgb.split(), Image.fromarray(decoded.alpha)))


def _save(img: Image.Image, fmt: str, quality: int | None, icc: bytes | None, exif: bytes | None) -> bytes:
    opts: dict[str, object] = {}
    if fmt == "jpeg":
        q = quality or DEFAULT_QUALITY["jpeg"]
        opts = {"quality": q, "subsampling": 0 if q >= 90 else 2}
    elif fmt == "webp":
        opts = {"quality": quality or DEFAULT_QUALITY["webp"], "method": 4}
    elif fmt == "png":
        opts = {"compress_level": PNG_COMPRESS_LEVEL}
    if icc:
        opts["icc_profile"] = icc
    if exif:
        opts["exif"] = exif
    buf = io.BytesIO()
    img.save(buf, OUTPUT_FORMATS[fmt], **opts)
    return buf.getvalue()


def encode(result: np.ndarray, decoded: DecodedImage, fmt: str, quality: int | None = None) -> EncodedImage:
    """Write the result; falls back to PNG (and says why) when the format cannot hold the image."""
    fmt = normalise_format(fmt) or "png"
    fallback = None
    if fmt == "jpeg" and decoded.alpha is not None:
        fmt, fallback = "png", "jpeg cannot store transparency; answered png"
    # Try with metadata, then without (e.g. EXIF over JPEG's 64 kB segment), then PNG, which holds anything.
    attempts = [(fmt, True), (fmt, False)] + ([("png", True), ("png", False)] if fmt != "png" else [])
    last_error: Exception | None = None
    for name, with_meta in attempts:
        img = to_pil(result, decoded, name)
        meta = (decoded.icc_profile, decoded.exif) if with_meta else (None, None)
        try:
            data = _save(img, name, quality, *meta)
        except (OSError, ValueError) as exc:
            last_error = exc
            continue
        if name != fmt:
            fallback = f"{fmt} cannot store a {decoded.width}x{decoded.height} image; answered png"
        return EncodedImage(data, name, MEDIA_TYPES[name], fallback)
    raise RuntimeError("could not encode the result") from last_error


def probe_size(source: bytes | str | Path) -> tuple[int, int] | None:
    """(width, height) from the header only, or None if it is not a supported image (for progress bars)."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source, formats=INPUT_FORMATS) as img:
            return img.size
    except Exception:
        return None
