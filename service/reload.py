"""Zero-downtime model reload: SIGHUP and `POST /admin/reload` (its route: `routes.admin`).

Why beside-and-swap: the new Engine is loaded and warmed while the old one keeps serving; only a model
that loaded and warmed up is swapped in (one reference assignment, see `deps.EngineHolder`), and
requests that already took the old engine finish on it. A model that fails is rejected and the old one
keeps serving. Reloads are serialised by a lock, so two triggers never race to swap. The model path is
the settings' (DEBLUR_MODEL_PATH): a re-export writes that file atomically, then a reload picks it up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel

from .engine import Engine

log = logging.getLogger("deblur.reload")


class ReloadRejected(Exception):
    """The new model could not be loaded or warmed up; the message says why and what still serves."""


class ReloadDone(BaseModel):
    status: str
    changed: bool
    previous: dict[str, str] | None
    model: dict[str, Any]


class Reloader:
    """Builds a new Engine from the settings and hands it to `install` (which swaps it in)."""

    def __init__(
        self,
        settings: Any,
        current: Callable[[], Engine | None],
        install: Callable[[Engine], None],
        registry: CollectorRegistry,
    ) -> None:
        self.settings, self._current, self._install = settings, current, install
        self._lock = threading.Lock()
        self.reloads = Counter("deblur_model_reloads", "model reloads by result", ["result"], registry=registry)

    def reload(self) -> ReloadDone:
        """Blocking (seconds on a GPU): call it from a worker thread, never on the event loop."""
        with self._lock:
            old = self._current()
            serving = f"still serving version {old.info.version}" if old else "no model is being served"
            try:
                new = Engine.from_settings(self.settings)
            except Exception as exc:  # ModelError (load, contract, warm-up) or anything ORT raises
                self.reloads.labels("rejected").inc()
                why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ReloadRejected(f"new model rejected ({serving}): {why}") from None
            self._install(new)
            self.reloads.labels("ok").inc()
        previous = {"version": old.info.version, "sha256": old.info.sha256} if old else None
        changed = previous is None or previous["sha256"] != new.info.sha256
        log.info(
            "model reloaded: version %s -> %s on %s%s",
            previous["version"] if previous else "-",
            new.info.version,
            new.provider,
            "" if changed else " (same file)",
        )
        return ReloadDone(status="reloaded", changed=changed, previous=previous, model=new.describe())

    def reload_logged(self, trigger: str) -> None:
        """For SIGHUP: reload and log the outcome in one line (there is nobody to answer)."""
        try:
            self.reload()
        except ReloadRejected as exc:
            log.error("%s: %s", trigger, exc)

    def trigger(self, trigger: str) -> None:
        """Start a reload in a background thread; safe to call from a signal handler."""
        threading.Thread(target=self.reload_logged, args=(trigger,), name="deblur-reload", daemon=True).start()
