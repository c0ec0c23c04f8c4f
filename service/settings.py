"""Every runtime knob of the service in one typed object.

Why one object: the API, the CLI and the tests read the same defaults, and pydantic validates the
environment once at start-up instead of failing deep inside a request.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = Path("models") / "deblur-generator.onnx"


def parse_providers(text: str) -> list[str]:
    """"cuda, CPU" -> ["cuda", "cpu"]: DEBLUR_PROVIDERS and `deblur --provider` read the same way."""
    return [p.strip().lower() for p in text.split(",") if p.strip()]


class Settings(BaseSettings):
    """Environment variables `DEBLUR_*` (plus `PORT`/`HOST`); see the README for each one."""

    model_config = SettingsConfigDict(env_prefix="DEBLUR_", extra="ignore", protected_namespaces=())

    model_path: Path | None = Field(None, description="ONNX file; default models/deblur-generator.onnx")
    providers: str = Field("cuda,cpu", description="comma list of cuda, cpu (order = preference)")
    tile_size: int = Field(256, ge=16, le=4096, description="tile edge; rounded up to the model's multiple")
    tile_overlap: int = Field(32, ge=0, le=2048, description="overlap between neighbouring tiles")
    tile_batch: int = Field(4, ge=1, le=64, description="tiles per ONNX Runtime call")
    max_upload_mb: float = Field(50.0, gt=0, description="largest request body, MiB")
    max_megapixels: float = Field(40.0, gt=0, description="largest image, millions of pixels")
    max_side: int = Field(20_000, ge=16, description="longest image side, px (a thin strip costs tiles, not pixels)")
    body_timeout_s: float = Field(120.0, gt=0, description="seconds to receive a whole request body; then 408")
    max_concurrency: int = Field(1, ge=1, le=64, description="inferences running at once")
    max_queue: int = Field(8, ge=0, le=10_000, description="requests waiting for a slot; more get 503")
    threads: int = Field(0, ge=0, le=1024, description="ONNX Runtime intra-op threads; 0 = ORT decides")
    cors_origins: str = Field("", description="comma list of allowed origins; empty = CORS off")
    admin_token: SecretStr | None = Field(None, description="bearer token for POST /admin/reload; unset = no route")
    api_keys: SecretStr | None = Field(None, description="comma list of API keys; unset (and no file) = open API")
    api_keys_file: Path | None = Field(None, description="file with one API key per line (# comments)")
    redis_url: str | None = Field(None, description="redis://host:port/db for jobs across replicas; unset = embedded")
    job_ttl_s: float = Field(3600.0, gt=0, description="seconds a finished job's result is kept")
    job_store_mb: float = Field(512.0, gt=0, description="MiB of stored job results; the oldest expire first")
    job_max_queued: int = Field(32, ge=1, le=100_000, description="jobs waiting to run; more get 503")
    job_lease_s: float = Field(30.0, ge=1, le=3600, description="Redis mode: a running job unseen this long is re-run")
    workers: int = Field(1, ge=1, le=64, description="server processes (deblur-serve --workers); >1 needs Redis")
    port: int = Field(8000, ge=1, le=65535, validation_alias=AliasChoices("PORT", "DEBLUR_PORT"))
    host: str = Field("0.0.0.0", validation_alias=AliasChoices("HOST", "DEBLUR_HOST"))

    @model_validator(mode="after")
    def _check_tiles(self) -> Settings:
        if 2 * self.tile_overlap > self.tile_size:
            raise ValueError("DEBLUR_TILE_OVERLAP must be at most half of DEBLUR_TILE_SIZE")
        names = self.provider_list
        bad = [p for p in names if p not in ("cuda", "cpu")]
        if bad or not names:
            raise ValueError(f"DEBLUR_PROVIDERS must list cuda and/or cpu, got {self.providers!r}")
        if self.redis_url is not None and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("DEBLUR_REDIS_URL must start with redis://, rediss:// or unix://")
        if self.workers > 1 and self.redis_url is None:
            raise ValueError("DEBLUR_WORKERS > 1 needs DEBLUR_REDIS_URL: embedded jobs live in one process")
        self.api_key_values()  # a missing or empty keys file stops the start, with its name
        return self

    def api_key_values(self) -> list[str]:
        """Every configured API key (DEBLUR_API_KEYS plus DEBLUR_API_KEYS_FILE); empty = auth off.

        Why here: a bad file is a settings error, reported in one line before anything starts."""
        keys = [k.strip() for k in (self.api_keys.get_secret_value() if self.api_keys else "").split(",")]
        if self.api_keys_file is not None:
            try:
                lines = self.api_keys_file.expanduser().read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeError) as exc:
                raise ValueError(f"DEBLUR_API_KEYS_FILE {self.api_keys_file}: {exc.__class__.__name__}") from None
            found = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
            if not found:
                raise ValueError(f"DEBLUR_API_KEYS_FILE {self.api_keys_file} holds no key")
            keys += found
        keys = [k for k in keys if k]
        if any(any(c.isspace() or not c.isprintable() for c in k) for k in keys):
            raise ValueError("API keys must be printable and contain no whitespace")
        return keys

    @property
    def provider_list(self) -> list[str]:
        return parse_providers(self.providers)

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def job_store_bytes(self) -> int:
        return int(self.job_store_mb * 1024 * 1024)

    def resolved_model_path(self) -> Path:
        """Why a search: `make serve` runs from the repo root, an installed package may not.

        Order: DEBLUR_MODEL_PATH as given, ./models/…, then models/… next to the package's parent dir.
        When nothing exists the first candidate is returned so the error names what was expected.
        """
        if self.model_path is not None:
            return self.model_path.expanduser()
        candidates = [Path.cwd() / DEFAULT_MODEL, Path(__file__).resolve().parent.parent / DEFAULT_MODEL]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        return candidates[0]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached: the environment is read once)."""
    return Settings()


def settings_or_explain(log: logging.Logger) -> Settings | None:
    """`get_settings()`, or None after logging the first invalid setting in one line (for console scripts,
    which then exit 2: the message says what to fix, no traceback)."""
    try:
        return get_settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        log.error("invalid settings: %s: %s", ".".join(map(str, first["loc"])) or "-", first["msg"])
        return None
