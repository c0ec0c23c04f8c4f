"""What a job runs, on either back end, and the check an upload passes before it is queued.

Why the same `process_bytes` as /deblur: a job's result is byte-identical to what /deblur answers for the
same upload and settings, headers included (`http_contract.image_headers`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine import Engine
from ..http_contract import download_name, image_headers
from ..images import decode
from ..pipeline import process_bytes
from ..settings import Settings
from .model import JobRecord
from .progress import ProgressReporter


@dataclass(frozen=True)
class Shape:
    width: int
    height: int
    tiles: int


@dataclass(frozen=True)
class Finished:
    data: bytes
    media_type: str
    headers: dict[str, str]


def inspect_upload(engine: Engine, data: bytes, settings: Settings) -> Shape:
    """Decode once, as /deblur would, so a job is refused with /deblur's status and detail (ImageError)
    before it is queued; returns the EXIF-rotated size and the tile count its progress counts up to."""
    decoded = decode(data, settings.max_megapixels, settings.max_side)
    width, height = decoded.width, decoded.height
    del decoded
    return Shape(width, height, engine.tile_count(height, width))


def run_job(engine: Engine, data: bytes, record: JobRecord, settings: Settings, report: ProgressReporter) -> Finished:
    """Blocking (seconds): decode → tiles → encode. Raises JobCancelled, ImageError or an inference error."""
    done = process_bytes(
        engine,
        data,
        fmt=record.fmt,
        quality=record.quality,
        max_megapixels=settings.max_megapixels,
        max_side=settings.max_side,
        on_progress=report,
    )
    name = download_name(record.filename, done.encoded.format)
    fallback = done.encoded.fallback
    headers = image_headers(engine.info.version, engine.provider, done.seconds, done.tiles, name, fallback)
    return Finished(done.encoded.data, done.encoded.media_type, headers)
