"""Load, short form (the long one is `python -m bench.soak`): 16 clients for 8 s against the real server
with DEBLUR_MAX_CONCURRENCY=2 and the tiny model. Runs the bench script itself, so the script users run
is the one that is tested."""

from __future__ import annotations

import json
import subprocess
import sys

from service_server import REPO


def test_sixteen_clients_get_200_or_503_and_nothing_leaks(small_model):
    cmd = [sys.executable, "-m", "bench.soak", "--model", str(small_model), "--seconds", "8", "--warmup", "2",
           "--clients", "16", "--max-concurrency", "2", "--tile-size", "64", "--min-requests", "100", "--json"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(result["statuses"]) <= {"200", "503"}, result
    assert result["statuses"].get("200", 0) > 0 and result["busy_without_retry_after"] == 0
    assert result["rss_growth_pct"] < 10 and result["fds_after"] <= result["fds_before"], result
    assert result["failures"] == [] and done.returncode == 0, (result, done.stderr[-2000:])
