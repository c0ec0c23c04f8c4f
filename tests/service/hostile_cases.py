"""The hostile-input table: each case is a request (built when the case runs) and exactly what the
service must answer: a status plus a stable substring of the JSON detail, or, for a 200, what the image
must be. Used by test_service_hostile.py; docs/hardening.md lists it."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from hostile_payloads import (
    animated,
    bmp_with_size,
    cut,
    exif_rotated,
    huge_exif,
    jpeg_with_sof,
    multipart_by_hand,
    noise_png,
    palette_with_transparency,
    png16_gray,
    png16_rgb,
    png_bad_ihdr_crc,
    png_with_text,
    srgb_profile,
    tiff16_rgb,
    with_alpha,
    zeros_png,
    zip_of_png,
)
from PIL import Image
from service_helpers import encoded, photo, png_bytes
from test_service_images import png_header_only

Check = Callable[[httpx.Response], None]


@dataclass(frozen=True)
class Case:
    id: str
    request: Callable[[], dict[str, Any]]  # httpx.Client.request kwargs, built when the case runs
    status: int
    detail: str = ""  # substring of the JSON detail (errors)
    check: Check | None = None  # what a 200 must be


def up(data: Callable[[], bytes], name: str = "photo.png", ctype: str = "image/png", query: str = "") -> Callable:
    return lambda: {"method": "POST", "url": f"/deblur{query}", "files": {"file": (name, data(), ctype)}}


def req(**kwargs: Any) -> Callable:
    return lambda: {"method": "POST", "url": "/deblur", **kwargs}


def image(fmt: str, size: tuple[int, int], mode: str | None = None, extra: Check | None = None) -> Check:
    def check(r: httpx.Response) -> None:
        out = Image.open(io.BytesIO(r.content))
        assert r.headers["content-type"] == f"image/{fmt}"
        assert (out.format.lower(), out.size) == (fmt, size)
        assert mode is None or out.mode == mode, out.mode
        if extra:
            extra(r)

    return check


def holds(test: Callable[[httpx.Response], bool], what: str) -> Check:
    def check(r: httpx.Response) -> None:
        assert test(r), what

    return check


def attachment_name(name: str) -> Check:
    return holds(lambda r: r.headers["content-disposition"] == f'inline; filename="{name}"', f"filename {name}")


def icc(r: httpx.Response) -> bytes | None:
    return Image.open(io.BytesIO(r.content)).info.get("icc_profile")


def png(w: int = 40, h: int = 30) -> Callable[[], bytes]:
    return lambda: png_bytes(photo(w, h))


MP = "multipart/form-data; boundary=B"
FILE_HEAD = 'Content-Disposition: form-data; name="file"; filename="a.png"'
NOT_IMAGE = "not a decodable image; supported formats: PNG, JPEG, WebP, BMP, TIFF"
CORRUPT = "the image data is truncated or corrupt"
OK_PNG = image("png", (40, 30), "RGB")

CASES = [
    # request shape
    Case("empty-body", req(content=b"", headers={"content-type": MP}), 422, "file: Field required"),
    Case("no-body-no-type", req(), 422, "file: Field required"),
    Case("missing-field", req(data={"other": "x"}), 422, "file: Field required"),
    Case("wrong-field-name", req(files={"image": ("a.png", png_bytes(photo(8, 8)), "image/png")}), 422, "file: Field"),
    Case(
        "two-files",
        lambda: {"method": "POST", "url": "/deblur", "files": [("file", ("a.png", png()(), "image/png"))] * 2},
        422,
        "file: send exactly one image",
    ),
    Case("file-as-text-field", req(data={"file": "abc"}), 422, "file: Value error, Expected UploadFile"),
    Case("empty-filename", up(png(), name=""), 422, "Expected UploadFile"),
    Case("json-body", req(json={"file": "aGVsbG8="}), 422, "file: Field required"),
    Case("raw-png-body", req(content=png_bytes(photo(8, 8)), headers={"content-type": "image/png"}), 422, "file"),
    Case("multipart-no-boundary", req(content=b"x", headers={"content-type": "multipart/form-data"}), 400, "boundary"),
    Case("multipart-garbage", req(content=b"garbage", headers={"content-type": MP}), 400, "Invalid multipart data."),
    Case(
        "multipart-no-closing-boundary",
        req(content=f"--B\r\n{FILE_HEAD}\r\n\r\n".encode() + png_bytes(photo(8, 8)), headers={"content-type": MP}),
        422,
        "file: Field required",
    ),
    Case(
        "part-without-name",
        req(content=multipart_by_hand([('Content-Disposition: form-data; filename="a.png"', b"x")]),
            headers={"content-type": MP}),
        400,
        '"name" must be provided',
    ),
    Case(
        "nine-part-headers",
        req(content=multipart_by_hand([(FILE_HEAD + "".join(f"\r\nX-H{i}: v" for i in range(9)), b"x")]),
            headers={"content-type": MP}),
        400,
        "Invalid multipart data.",
    ),
    Case("1001-fields", req(data={f"f{i}": "x" for i in range(1001)}), 400, "Too many fields"),
    Case(
        "1001-files",
        lambda: {"method": "POST", "url": "/deblur", "files": [("x", ("a", b"1", "image/png"))] * 1001},
        400,
        "Too many files",
    ),
    Case("extra-fields-ignored", lambda: {**up(png())(), "data": {"note": "x"}}, 200, check=OK_PNG),
    # file names
    Case("filename-10kB", up(png(), name="a" * 10_000 + ".png"), 400, "Invalid multipart data."),
    Case("filename-traversal", up(png(), name="../../etc/passwd"), 200, check=attachment_name("passwd-deblurred.png")),
    Case("filename-windows-traversal", up(png(), name="..\\..\\boot.ini"), 200,
         check=attachment_name("boot-deblurred.png")),
    Case("filename-quotes", up(png(), name='a";x=".png'), 200, check=attachment_name("a_22_x_22-deblurred.png")),
    Case("filename-unicode", up(png(), name="фото.png"), 200, check=attachment_name("image-deblurred.png")),
    Case(
        "filename-crlf-injection",
        req(content=multipart_by_hand([(FILE_HEAD[:-1] + '\r\nX-Injected: 1"', png_bytes(photo(8, 8)))]),
            headers={"content-type": MP}),
        200,
        check=holds(lambda r: "x-injected" not in r.headers, "no header injected through the filename"),
    ),
    # bodies that are not images, whatever their content type says
    Case("empty-file", up(lambda: b""), 400, "the uploaded file is empty"),
    Case("text-as-png", up(lambda: b"hello, I am text\n"), 415, NOT_IMAGE),
    Case("pdf-as-jpeg", up(lambda: b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF", "a.jpg", "image/jpeg"), 415, NOT_IMAGE),
    Case("zip-as-png", up(zip_of_png), 415, NOT_IMAGE),
    Case("html-as-png", up(lambda: b"<!doctype html><html><script>alert(1)</script></html>"), 415, NOT_IMAGE),
    Case("svg", up(lambda: b'<svg xmlns="http://www.w3.org/2000/svg"/>', "a.svg", "image/svg+xml"), 415, NOT_IMAGE),
    Case("gif", up(lambda: encoded(photo(8, 8), "GIF"), "a.gif", "image/gif"), 415, NOT_IMAGE),
    Case("ico", up(lambda: encoded(photo(16, 16), "ICO"), "a.ico", "image/x-icon"), 415, NOT_IMAGE),
    Case("png-sent-as-text-plain", up(png(), "a.txt", "text/plain"), 200, check=OK_PNG),
    Case("jpeg-named-png", up(lambda: encoded(photo(40, 30), "JPEG")), 200, check=image("jpeg", (40, 30))),
    # animated / multi-frame
    Case("animated-gif", up(lambda: animated("GIF"), "a.gif", "image/gif"), 415, NOT_IMAGE),
    Case("apng", up(lambda: animated("PNG")), 415, "animated or multi-frame images are not supported (3 frames)"),
    Case("animated-webp", up(lambda: animated("WEBP"), "a.webp", "image/webp"), 415, "(3 frames)"),
    Case("multipage-tiff", up(lambda: animated("TIFF"), "a.tif", "image/tiff"), 415, "(3 frames)"),
    # truncated and corrupt
    Case("truncated-png", up(lambda: cut(png_bytes(photo(64, 64)), 0.5)), 415, CORRUPT),
    Case("png-signature-only", up(lambda: png_bytes(photo(8, 8))[:8]), 415, NOT_IMAGE),
    Case("truncated-jpeg", up(lambda: cut(encoded(photo(128, 128), "JPEG"), 0.7), "a.jpg", "image/jpeg"), 415, CORRUPT),
    Case("truncated-webp", up(lambda: cut(encoded(photo(64, 64), "WEBP"), 0.5), "a.webp", "image/webp"), 415,
         NOT_IMAGE),
    Case("png-bad-ihdr-crc", up(png_bad_ihdr_crc), 415, NOT_IMAGE),
    Case("jpeg-zero-height", up(lambda: jpeg_with_sof(0, 32), "a.jpg", "image/jpeg"), 415, NOT_IMAGE),
    Case("png-0x0", up(lambda: png_header_only(0, 0)), 415, NOT_IMAGE),
    Case("bmp-negative-width", up(lambda: bmp_with_size(-8, 8), "a.bmp", "image/bmp"), 413, "far too large"),
    Case("int32-tiff", up(lambda: encoded(Image.new("I", (4, 4), 100_000), "TIFF"), "a.tif"), 415, "32-bit integer"),
    Case("float-tiff", up(lambda: encoded(Image.new("F", (4, 4)), "TIFF"), "a.tif"), 415, "floating-point"),
    Case("ztxt-metadata-bomb", up(lambda: png_with_text(50 << 20, compressed=True)), 415, CORRUPT),
    # size limits
    Case("header-100000x100000", up(lambda: png_header_only(100_000, 100_000)), 413, "far too large"),
    Case("jpeg-claims-65500x65500", up(lambda: jpeg_with_sof(65_500, 65_500), "a.jpg"), 413, "far too large"),
    Case("bmp-claims-60000x60000", up(lambda: bmp_with_size(60_000, 60_000), "a.bmp"), 413, "far too large"),
    Case("header-10000x5000", up(lambda: png_header_only(10_000, 5_000)), 413, "the limit is 4 megapixels"),
    Case("zeros-6000x6000-bomb", up(lambda: zeros_png(6000, 6000)), 413, "36.0 megapixels; the limit is 4"),
    Case("strip-1x200000", up(lambda: png_bytes(Image.new("RGB", (200_000, 1)))), 413,
         "image is 200000x1; the longest side allowed is 20000 px"),
    Case("strip-200000x1", up(lambda: png_bytes(Image.new("RGB", (1, 200_000)))), 413, "longest side allowed is 20000"),
    Case("strip-1x20000-served", up(lambda: png_bytes(Image.new("RGB", (20_000, 1)))), 200,
         check=image("png", (20_000, 1))),
    Case("body-over-3MiB", up(lambda: b"\0" * (3 * 1024 * 1024 + 1)), 413, "larger than the 3 MiB limit"),
    Case("spooled-2MB-upload", up(lambda: noise_png(900, 900)), 200, check=image("png", (900, 900), "RGB")),
    # small images
    Case("1x1", up(png(1, 1)), 200, check=image("png", (1, 1))),
    Case("7x5-below-size-multiple", up(png(7, 5)), 200, check=image("png", (7, 5))),
    Case("1x9", up(png(1, 9)), 200, check=image("png", (1, 9))),
    # pixel modes
    Case("cmyk-jpeg", up(lambda: encoded(photo(40, 30).convert("CMYK"), "JPEG"), "a.jpg"), 200,
         check=image("jpeg", (40, 30), "RGB")),
    Case("png-16bit-rgb", up(png16_rgb), 200, check=image("png", (24, 16), "RGB")),
    Case("png-16bit-gray", up(png16_gray), 200, check=image("png", (24, 16), "I;16")),
    Case("tiff-16bit-rgb", up(tiff16_rgb, "a.tif", "image/tiff"), 200, check=image("png", (24, 16), "RGB")),
    Case("palette-transparency", up(palette_with_transparency), 200, check=image("png", (24, 16), "RGBA")),
    Case("LA", up(lambda: with_alpha("LA")), 200, check=image("png", (24, 16), "LA")),
    Case("RGBA", up(lambda: with_alpha("RGBA")), 200, check=image("png", (24, 16), "RGBA")),
    Case("1-bit-bmp", up(lambda: encoded(photo(24, 16).convert("1"), "BMP"), "a.bmp"), 200,
         check=image("png", (24, 16), "L")),
    Case("lab-tiff", up(lambda: encoded(photo(24, 16).convert("LAB"), "TIFF"), "a.tif"), 200,
         check=image("png", (24, 16), "RGB")),
    *[
        Case(f"exif-orientation-{o}", up(lambda o=o: exif_rotated(o), "r.jpg", "image/jpeg"), 200,
             check=image("jpeg", (10, 24) if o >= 5 else (24, 10)))
        for o in range(1, 9)
    ],
    Case("icc-srgb-kept", up(lambda: png_bytes(photo(16, 16), icc_profile=srgb_profile())), 200,
         check=holds(lambda r: icc(r) == srgb_profile(), "sRGB profile kept")),
    Case("icc-garbage-dropped", up(lambda: png_bytes(photo(16, 16), icc_profile=b"garbage" * 10)), 200,
         check=holds(lambda r: icc(r) is None, "unparsable profile dropped")),
    Case("exif-500kB-png", up(lambda: huge_exif("PNG")), 200, check=image("png", (16, 16))),
    Case("exif-64kB-jpeg", up(lambda: huge_exif("JPEG"), "a.jpg"), 200, check=image("jpeg", (16, 16))),
    Case("exif-garbage", up(lambda: encoded(photo(16, 16), "JPEG", exif=b"Exif\0\0" + b"\xff" * 200), "a.jpg"), 200,
         check=image("jpeg", (16, 16))),
    Case("text-chunk-900kB", up(lambda: png_with_text(900_000, compressed=False)), 200, check=image("png", (16, 16))),
    # parameters
    *[
        Case(f"query-{q}", up(png(8, 8), query=f"?{q}"), 422, f"query.{q.split('=')[0]}")
        for q in ["format=gif", "format=PNG", "format=", "format=png&format=gif", "quality=0", "quality=101",
                  "quality=abc", "quality=50.5", "quality=-1", "quality=1e100", "quality="]
    ],
    Case("jpeg-quality-1", up(png(), query="?format=jpeg&quality=1"), 200, check=image("jpeg", (40, 30))),
    Case("rgba-as-webp", up(lambda: with_alpha("RGBA"), query="?format=webp"), 200,
         check=image("webp", (24, 16), "RGBA")),
    Case("rgba-as-jpeg-falls-back", up(lambda: with_alpha("RGBA"), query="?format=jpeg"), 200,
         check=image("png", (24, 16), "RGBA", holds(lambda r: "transparency" in r.headers["x-format-fallback"], "?"))),
    Case("unknown-query-ignored", up(png(), query="?foo=bar"), 200, check=OK_PNG),
    Case("request-id-10kB-replaced", lambda: {**up(png())(), "headers": {"x-request-id": "r" * 10_000}}, 200,
         check=holds(lambda r: len(r.headers["x-request-id"]) == 32, "a fresh request id")),
    # methods and paths
    Case("get-deblur", lambda: {"method": "GET", "url": "/deblur"}, 405, "Method Not Allowed"),
    Case("put-deblur", lambda: {"method": "PUT", "url": "/deblur"}, 405, "Method Not Allowed"),
    Case("unknown-path", lambda: {"method": "GET", "url": "/../../etc/passwd"}, 404, "Not Found"),
]


