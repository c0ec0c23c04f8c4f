"""Decode/encode: modes, bit depth, alpha, EXIF orientation, ICC, limits, bad files."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms
from service_helpers import encoded, photo, png_bytes

from service.images import (
    EmptyImage,
    ImageTooLarge,
    UnsupportedImage,
    decode,
    encode,
    output_format,
    probe_size,
)


def roundtrip(data: bytes, fmt: str | None = None, **kw: object) -> tuple[Image.Image, object]:
    """decode → (identity model) → encode → open the answer."""
    d = decode(data)
    enc = encode(d.rgb, d, output_format(fmt, d), **kw)
    return Image.open(io.BytesIO(enc.data)), enc


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A tiny file whose header claims a huge canvas (decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def test_rgb_png_is_lossless_through_the_pipe():
    src = photo(37, 23)
    out, enc = roundtrip(png_bytes(src))
    assert (enc.format, enc.media_type, out.mode, out.size) == ("png", "image/png", "RGB", (37, 23))
    np.testing.assert_array_equal(np.asarray(out), np.asarray(src))


def test_png_answers_use_the_fast_zlib_level():
    """Level 1 (zlib FLEVEL 0, 'fastest') rather than Pillow's default 6: encode time is request latency."""
    _, enc = roundtrip(png_bytes(photo(64, 48)))
    data = enc.data
    idat = data.index(b"IDAT") + 4
    cmf, flg = data[idat], data[idat + 1]
    assert cmf & 0x0F == 8 and (cmf * 256 + flg) % 31 == 0  # a zlib stream
    assert flg >> 6 == 0
    default = io.BytesIO()
    Image.open(io.BytesIO(data)).save(default, "PNG")
    assert default.getvalue()[default.getvalue().index(b"IDAT") + 5] >> 6 == 2  # what Pillow writes by default


def test_grayscale_in_grayscale_out():
    src = photo(20, 10, "L")
    d = decode(png_bytes(src))
    assert d.grayscale and d.rgb.shape == (10, 20, 3)
    out, _ = roundtrip(png_bytes(src))
    assert out.mode == "L"
    np.testing.assert_array_equal(np.asarray(out), np.asarray(src))
    out, _ = roundtrip(encoded(photo(20, 10, "1"), "PNG"))
    assert out.mode == "L"


def test_sixteen_bit_gray_keeps_all_sixteen_bits():
    arr = (np.arange(40 * 30).reshape(30, 40) * 54 + 7).astype(np.uint16)
    src = Image.fromarray(arr)
    for data in (png_bytes(src), encoded(src, "TIFF")):
        d = decode(data)
        assert d.bit_depth == 16 and d.grayscale
        out, enc = roundtrip(data)
        assert enc.format == "png" and out.mode.startswith("I")
        np.testing.assert_array_equal(np.asarray(out).astype(np.int64), arr.astype(np.int64))
    jpeg, _ = roundtrip(png_bytes(src), "jpeg")  # 8-bit format: scaled, not clipped
    assert jpeg.mode == "L" and abs(int(np.asarray(jpeg)[-1, -1]) - int(arr[-1, -1]) // 257) <= 2


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_alpha_is_kept_untouched(mode):
    base = photo(16, 12)
    alpha = Image.fromarray((np.arange(16 * 12).reshape(12, 16) % 256).astype(np.uint8))
    if mode == "P":
        src = base.quantize(16)
        data = png_bytes(src, transparency=3)
        expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))[..., 3]
        assert 0 < (expected == 0).sum() < expected.size
    else:
        src = base.convert(mode[0] if mode == "LA" else "RGB")
        src.putalpha(alpha)
        data = png_bytes(src)
        expected = np.asarray(alpha)
    out, enc = roundtrip(data)
    assert out.mode == ("LA" if mode == "LA" else "RGBA") and enc.fallback is None
    np.testing.assert_array_equal(np.asarray(out)[..., -1], expected)
    webp, _ = roundtrip(data, "webp")
    assert webp.mode == "RGBA"


def test_jpeg_requested_for_alpha_falls_back_to_png():
    src = photo(8, 8).convert("RGBA")
    out, enc = roundtrip(png_bytes(src), "jpeg")
    assert enc.format == "png" and out.format == "PNG" and "transparency" in enc.fallback


def test_webp_too_wide_falls_back_to_png():
    out, enc = roundtrip(png_bytes(photo(16400, 1)), "webp")
    assert enc.format == "png" and out.size == (16400, 1) and enc.fallback


def test_cmyk_becomes_rgb_and_drops_the_cmyk_profile():
    out, enc = roundtrip(encoded(photo(10, 6).convert("CMYK"), "JPEG", quality=95))
    assert out.mode == "RGB" and enc.format == "jpeg" and "icc_profile" not in out.info


def test_icc_profile_is_kept():
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for fmt in ("png", "jpeg", "webp"):
        out, _ = roundtrip(png_bytes(photo(10, 6), icc_profile=icc), fmt)
        assert out.info.get("icc_profile") == icc


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_and_removed(orientation):
    src = photo(24, 10)
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"
    data = encoded(src, "JPEG", quality=95, exif=exif.tobytes())
    upright = (10, 24) if orientation >= 5 else (24, 10)
    d = decode(data)
    assert (d.width, d.height) == upright
    out, _ = roundtrip(data)
    assert out.size == upright
    written = out.getexif()
    assert 0x0112 not in written and written.get(0x010F) == "TestCam"


def test_default_format_follows_the_input():
    assert roundtrip(encoded(photo(8, 8), "JPEG"))[1].format == "jpeg"
    assert roundtrip(encoded(photo(8, 8), "WEBP"))[1].format == "webp"
    assert roundtrip(encoded(photo(8, 8), "BMP"))[1].format == "png"
    assert roundtrip(encoded(photo(8, 8), "TIFF"))[1].format == "png"
    assert roundtrip(png_bytes(photo(8, 8)), "jpg")[1].format == "jpeg"


def test_camera_mpo_uses_the_primary_picture():
    buf = io.BytesIO()
    photo(12, 8).save(buf, "MPO", save_all=True, append_images=[photo(12, 8, seed=3)])
    d = decode(buf.getvalue())
    assert d.source_format == "jpeg" and (d.width, d.height) == (12, 8)


def test_pixel_limits_are_checked_before_decoding():
    with pytest.raises(ImageTooLarge, match="megapixels"):
        decode(png_header_only(10_000, 5_000), max_megapixels=40)  # 50 MP, header only
    with pytest.raises(ImageTooLarge):
        decode(png_header_only(100_000, 100_000))  # Pillow's own bomb guard
    with pytest.raises(ImageTooLarge):
        decode(png_bytes(photo(100, 100)), max_megapixels=0.005)


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (b"", EmptyImage, "empty"),
        (b"hello, I am a text file\n", UnsupportedImage, "not a decodable image"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", UnsupportedImage, "not a decodable image"),
        (encoded(photo(8, 8), "GIF"), UnsupportedImage, "not a decodable image"),
        (png_bytes(photo(64, 64))[:300], UnsupportedImage, "truncated"),
        (encoded(photo(64, 64), "JPEG")[:1500], UnsupportedImage, "truncated"),
        (encoded(Image.new("F", (4, 4)), "TIFF"), UnsupportedImage, "floating-point"),
    ],
)
def test_bad_files_raise_typed_errors(data, error, match):
    with pytest.raises(error, match=match):
        decode(data)


def test_animated_images_are_refused():
    frames = [photo(8, 8, seed=i) for i in range(3)]
    for fmt in ("PNG", "WEBP"):
        buf = io.BytesIO()
        frames[0].save(buf, fmt, save_all=True, append_images=frames[1:])
        with pytest.raises(UnsupportedImage, match="3 frames"):
            decode(buf.getvalue())


def test_probe_size_reads_the_header():
    assert probe_size(png_header_only(123, 45)) == (123, 45)
    assert probe_size(b"nope") is None
