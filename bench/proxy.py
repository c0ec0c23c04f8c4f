"""Real nginx (Debian's) on 127.0.0.1 in front of loopback replicas, running deploy/nginx's templates.

Why render here instead of a config of our own: the official nginx image renders
/etc/nginx/templates/*.template with envsubst, replacing only the variables named by
NGINX_ENVSUBST_FILTER; doing the same with the same files and defaults (deploy/nginx/defaults.env)
means bench.scale and the tests run the config compose ships. Only the top-level nginx.conf (pid,
temp paths, `daemon off`) and the upstream block naming the loopback replicas are this harness's own.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.common import REPO

NGINX_DIR = REPO / "deploy" / "nginx"
TEMPLATES = NGINX_DIR / "templates"
TLS_TEMPLATE = NGINX_DIR / "tls" / "tls.conf.template"
UPSTREAM_NAME = "deblur_api"
MAIN_CONF = """daemon off;
worker_processes 1;
pid nginx.pid;
error_log stderr notice;
events {{ worker_connections 512; }}
http {{
    default_type application/octet-stream;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
{upstream}
    include conf.d/*.conf;
}}
"""


class ProxyError(RuntimeError):
    """nginx is missing, its config is rejected, or it did not start."""


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise ProxyError("nginx not found: install Debian's nginx-light (`make proxy-deps` does, as root)")
    return found


def defaults() -> dict[str, str]:
    """deploy/nginx/defaults.env as a dict (the compose file reads the same file with env_file)."""
    values = {}
    for line in (NGINX_DIR / "defaults.env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def render(text: str, values: Mapping[str, str]) -> str:
    """envsubst as the image runs it: `${NAME}` and `$NAME` for the variables the filter admits; any
    `${NAME}` left over is an error here (the image would hand nginx the literal text)."""
    admitted = re.compile(values.get("NGINX_ENVSUBST_FILTER", ".*"))
    names = sorted((n for n in values if admitted.search(n)), key=len, reverse=True)
    for name in names:
        pattern = r"\$(\{" + name + r"\}|" + name + r"(?![A-Za-z0-9_]))"
        text = re.sub(pattern, lambda _, n=name: values[n], text)
    missing = sorted(set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", text)))
    if missing:
        raise ProxyError(f"template variables without a value: {', '.join(missing)}")
    return text


def upstream_block(ports: Sequence[int]) -> str:
    """The loopback replicas as the group DEBLUR_UPSTREAM names (compose resolves `api` by DNS instead).

    max_fails=0, as for the addresses compose's DNS hands nginx (a fresh list per request, no failure
    memory): with http_503 in proxy_next_upstream a busy answer counts as a failure, and marking busy
    replicas down would turn a busy moment into "no live upstreams" for fail_timeout seconds.
    """
    servers = "".join(f"        server 127.0.0.1:{p} max_fails=0;\n" for p in ports)
    return f"    upstream {UPSTREAM_NAME} {{\n{servers}    }}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Nginx:
    """Context manager: render the templates into a private prefix, `nginx -t`, start, stop (SIGTERM).

    `settings` override defaults.env (e.g. NGINX_CLIENT_HEADER_TIMEOUT=1s); `tls_dir` holding
    tls.crt/tls.key adds the TLS server of docker-compose.tls.yml on `tls_port`.
    """

    def __init__(self, replica_ports: Sequence[int], max_upload_mb: int = 50, tls_dir: Path | None = None,
                 **settings: str) -> None:
        self.port, self.tls_port = free_port(), free_port() if tls_dir else None
        self.values = {**defaults(), "NGINX_LISTEN": f"127.0.0.1:{self.port}", "NGINX_RESOLVER": "127.0.0.1",
                       "DEBLUR_MAX_UPLOAD_MB": str(max_upload_mb), "DEBLUR_UPSTREAM": UPSTREAM_NAME, **settings}
        if tls_dir:
            self.values.update(NGINX_TLS_LISTEN=f"127.0.0.1:{self.tls_port}", NGINX_TLS_DIR=str(tls_dir))
        self.prefix = Path(tempfile.mkdtemp(prefix="deblur-nginx-"))
        self.prefix.chmod(0o755)  # started as root, nginx's workers run as nobody and write tmp/ here
        conf_d = self.prefix / "conf.d"
        conf_d.mkdir()
        templates = [*sorted(TEMPLATES.glob("*.template")), *([TLS_TEMPLATE] if tls_dir else [])]
        for template in templates:
            (conf_d / template.name.removesuffix(".template")).write_text(render(template.read_text(), self.values))
        (self.prefix / "tmp").mkdir()
        (self.prefix / "nginx.conf").write_text(MAIN_CONF.format(upstream=upstream_block(replica_ports)))
        self.access_log = self.prefix / "access.log"
        self.error_log = self.prefix / "error.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, *extra: str) -> list[str]:
        return [nginx_binary(), "-p", f"{self.prefix}/", "-c", "nginx.conf", "-e", "stderr", *extra]

    def test(self) -> subprocess.CompletedProcess:
        """`nginx -t` on the rendered config (what `make test` runs)."""
        return subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)

    def __enter__(self) -> Nginx:
        checked = self.test()
        if checked.returncode != 0:
            self.cleanup()
            raise ProxyError(f"nginx -t rejected the config:\n{checked.stderr}")
        with self.access_log.open("wb") as out, self.error_log.open("wb") as err:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=err)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.error_log.read_text()
                self.cleanup()
                raise ProxyError(f"nginx exited with {self.proc.returncode}:\n{log}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.__exit__()
        raise ProxyError("nginx did not listen within 10 s")

    def access_lines(self, at_least: int = 0, timeout: float = 5.0) -> list[str]:
        """The access log; waits for `at_least` lines (nginx logs a request once its connection is done)."""
        deadline = time.monotonic() + timeout
        while len(lines := self.access_log.read_text(errors="replace").splitlines()) < at_least:
            if time.monotonic() > deadline:
                raise ProxyError(f"{len(lines)} access log lines after {timeout:g} s, expected {at_least}")
            time.sleep(0.05)
        return lines

    def __exit__(self, *_: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # master stops its workers, then exits
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.cleanup()

    def cleanup(self) -> None:
        shutil.rmtree(self.prefix, ignore_errors=True)


def parse_access(line: str) -> dict[str, str]:
    """The key=value fields of the `deblur` log_format (upstream, upstream_status, rid, ...) and the status."""
    fields = dict(re.findall(r"(\w+)=([^\s,]+(?:, [^\s,]+)*)", line))
    status = re.search(r'" (\d{3}) ', line)
    fields["status"] = status.group(1) if status else "?"
    return fields

