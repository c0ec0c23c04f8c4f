"""Scale-out, short form (the long one is `python -m bench.scale`): Debian's nginx with deploy/nginx's
config in front of three real replicas on 127.0.0.1, 16 clients for 8 s, one replica SIGKILLed
mid-load. Runs the bench script itself, so the script users run is the one that is tested."""

from __future__ import annotations

import json
import subprocess
import sys

from service_server import REPO
from test_service_proxy import require_nginx


def test_a_replica_killed_mid_load_loses_no_request(small_model):
    require_nginx()
    cmd = [sys.executable, "-m", "bench.scale", "--model", str(small_model), "--seconds", "8", "--replicas", "3",
           "--clients", "16", "--tile-size", "64", "--header-timeout", "1", "--json"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["lost"] == 0 and result["outcomes"].get("200", 0) > 100, result
    assert result["exit"] == -9 and result["in_flight_when_killed"] >= 1 and result["moved_off_killed"] >= 1, result
    survivors = [n for address, n in result["served_by"].items() if address != result["killed"]]
    assert len(survivors) == 2 and min(survivors) > 0, result
    assert 0.9 < result["slow_header_cut_s"] < 2.5 and result["ready_after"] == 200, result
    assert result["failures"] == [] and done.returncode == 0, (result, done.stderr[-2000:])
