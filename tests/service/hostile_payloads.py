"""Hostile and odd uploads, built at test time with Pillow/numpy/zlib (nothing is stored in the repo).

Each function returns the bytes a client would send as the `file` part; the table of what the service
must answer for each lives in test_service_hostile.py."""

from __future__ import annotations

import functools
import io
import struct
import zipfile
import zlib

import numpy as np
import tifffile
from PIL import Image, ImageCms
from service_helpers import encoded, photo, png_bytes
from test_service_images import png_chunk


def animated(fmt: str, frames: int = 3) -> bytes:
    buf = io.BytesIO()
    pics = [photo(16, 16, seed=i) for i in range(frames)]
    pics[0].save(buf, fmt, save_all=True, append_images=pics[1:])
    return buf.getvalue()


def zip_of_png() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("photo.png", png_bytes(photo(16, 16)))
    return buf.getvalue()


def png_bad_ihdr_crc() -> bytes:
    data = bytearray(png_bytes(photo(32, 32)))
    data[29] ^= 0xFF  # last byte of the IHDR CRC
    return bytes(data)


def jpeg_with_sof(height: int, width: int) -> bytes:
    """A real JPEG whose frame header is patched to claim another size."""
    data = bytearray(encoded(photo(32, 32), "JPEG"))
    at = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, at + 5, height, width)
    return bytes(data)


def bmp_with_size(width: int, height: int) -> bytes:
    data = bytearray(encoded(photo(8, 8), "BMP"))
    struct.pack_into("<ii", data, 18, width, height)
    return bytes(data)


def cut(data: bytes, fraction: float) -> bytes:
    return data[: int(len(data) * fraction)]


def png16_rgb(width: int = 24, height: int = 16) -> bytes:
    """16 bits per channel colour PNG, written by hand (Pillow cannot write it)."""
    arr = np.random.default_rng(0).integers(0, 65536, (height, width, 3)).astype(">u2")
    raw = b"".join(b"\x00" + arr[r].tobytes() for r in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    chunks = png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def png16_gray(width: int = 24, height: int = 16) -> bytes:
    return png_bytes(Image.fromarray((np.arange(width * height).reshape(height, width) * 150).astype(np.uint16)))


def tiff16_rgb(width: int = 24, height: int = 16) -> bytes:
    buf = io.BytesIO()
    pixels = np.random.default_rng(1).integers(0, 65536, (height, width, 3)).astype(np.uint16)
    tifffile.imwrite(buf, pixels, photometric="rgb")
    return buf.getvalue()


def with_alpha(mode: str) -> bytes:
    base = photo(24, 16)
    alpha = Image.fromarray((np.arange(24 * 16).reshape(16, 24) % 256).astype(np.uint8))
    img = base.convert("L") if mode == "LA" else base
    img.putalpha(alpha)
    return png_bytes(img)


def palette_with_transparency() -> bytes:
    return png_bytes(photo(24, 16).quantize(8), transparency=2)


def exif_rotated(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(photo(24, 10), "JPEG", quality=95, exif=exif.tobytes())


@functools.cache
def srgb_profile() -> bytes:
    """One profile per test run: LittleCMS stamps each new profile with its creation time (to the second),
    so a profile made again after a slow job would differ from the uploaded one in its header."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def huge_exif(fmt: str) -> bytes:
    """A 500 kB EXIF block in PNG (eXIf holds any size), 64 kB in JPEG (one APP1 segment's maximum)."""
    exif = Image.Exif()
    exif[0x010E] = "x" * (500_000 if fmt == "PNG" else 65_000)  # ImageDescription
    return encoded(photo(16, 16), fmt, exif=exif.tobytes())


def png_with_text(size: int, compressed: bool) -> bytes:
    """A valid PNG carrying a text chunk: plain (big) or zTXt that inflates to `size` (a metadata bomb)."""
    data = png_bytes(photo(16, 16))
    payload = b"a" * size
    chunk = png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(payload, 9)) if compressed else png_chunk(
        b"tEXt", b"Comment\x00" + payload
    )
    return data[:-12] + chunk + data[-12:]  # before IEND


def zeros_png(width: int, height: int) -> bytes:
    """A real compression bomb: every pixel present, all zero, so the file is tiny."""
    return png_bytes(Image.new("L", (width, height)), optimize=True)


def noise_png(width: int, height: int) -> bytes:
    """Incompressible, so the upload is big (the multipart parser spools parts over 1 MiB to disk)."""
    pixels = np.random.default_rng(2).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return png_bytes(Image.fromarray(pixels))


def multipart_by_hand(parts: list[tuple[str, bytes]], boundary: str = "B") -> bytes:
    """Multipart body from raw part headers, so a test can send what a library would not."""
    out = b""
    for head, data in parts:
        out += f"--{boundary}\r\n{head}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()
