"""The metrics an autoscaler reads and the per-stage histograms, against the real server (127.0.0.1).

Three uploads at once with DEBLUR_MAX_CONCURRENCY=1: while they run, /metrics must show one inference
running and the others waiting; afterwards both gauges are 0 and the stage histograms add up to the
X-Process-Time-Ms the clients were told."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from service_helpers import photo, png_bytes
from service_server import running


def scrape(base: str) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as {(name, sorted labels): value}, read with prometheus_client's parser."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def stage(samples: dict, suffix: str, name: str) -> float:
    return samples[(f"deblur_stage_duration_seconds_{suffix}", (("stage", name),))]


def test_queue_gauges_and_stage_histograms_explain_the_process_time(small_model: Path, tmp_path: Path) -> None:
    image = png_bytes(photo(1400, 1000))
    settings = {"DEBLUR_MAX_CONCURRENCY": "1", "DEBLUR_MAX_QUEUE": "4", "DEBLUR_MAX_UPLOAD_MB": "20"}
    with running(small_model, tmp_path / "srv", **settings) as server:
        idle = scrape(server.base)
        assert idle[("deblur_queue_waiting", ())] == 0 and idle[("deblur_inference_running", ())] == 0
        answers: list[httpx.Response] = []
        seen: list[tuple[float, float]] = []
        done = threading.Event()

        def upload() -> None:
            answers.append(httpx.post(f"{server.base}/deblur", files={"file": ("a.png", image, "image/png")},
                                      timeout=120))

        def watch() -> None:
            while not done.is_set():
                s = scrape(server.base)
                seen.append((s[("deblur_queue_waiting", ())], s[("deblur_inference_running", ())]))
                time.sleep(0.02)

        clients = [threading.Thread(target=upload) for _ in range(3)]
        watcher = threading.Thread(target=watch)
        watcher.start()
        for t in clients:
            t.start()
        for t in clients:
            t.join()
        done.set()
        watcher.join()
        after = scrape(server.base)

    assert [r.status_code for r in answers] == [200, 200, 200]
    assert max(w for w, _ in seen) >= 1, seen  # someone waited while another ran
    assert max(r for _, r in seen) == 1 and max(w + r for w, r in seen) <= 3, seen
    assert after[("deblur_queue_waiting", ())] == 0 and after[("deblur_inference_running", ())] == 0
    for name in ("queue_wait", "decode", "inference", "encode"):
        assert stage(after, "count", name) == 3, name
    told = sum(float(r.headers["x-process-time-ms"]) for r in answers) / 1000
    stages = sum(stage(after, "sum", name) for name in ("decode", "inference", "encode"))
    assert abs(stages - told) < 0.01 * told + 0.001, (stages, told)  # headers are rounded to 0.1 ms
    # the second and third request waited for at least one whole inference before theirs
    shortest = min(float(r.headers["x-process-time-ms"]) for r in answers) / 1000
    assert stage(after, "sum", "queue_wait") >= shortest, (stage(after, "sum", "queue_wait"), shortest)
