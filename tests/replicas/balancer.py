"""A local nginx in front of every service's replicas: one upstream block and one port each.

Debian's nginx, run as a child process (never the system daemon) with its config,
logs and temp files in one directory. Each upstream lists both replicas; a
replica that refuses the connection, times out, or answers 502/503 is skipped
for the next one (``proxy_next_upstream``), also for POSTs (``non_idempotent``).
Retrying a POST on the other replica is only safe because every client of this
platform sends an ``Idempotency-Key`` with its orders: the replica that first
got the request may have committed it before its answer was lost, and the
retry is then answered with the stored result instead of making a second
order. WebSocket upgrades are proxied (HTTP/1.1, ``Upgrade``/``Connection``).

The access log records the replica(s) each request went to (``$upstream_addr``
holds two addresses when nginx retried), which the suite counts (`Nginx.log`).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from chassis.testing.processes import stop_process_group

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
#: How long a replica that failed is left out before nginx tries it again.
FAIL_TIMEOUT_SECONDS = 2
#: Connect timeout to a replica: a stopped one refuses at once, this bounds a hung one.
CONNECT_TIMEOUT_SECONDS = 2


@dataclass(frozen=True)
class Upstream:
    """One service: the port nginx listens on and its replicas' ports."""

    name: str
    listen: int
    replicas: Sequence[int]


def nginx_available() -> bool:
    return os.access(NGINX, os.X_OK)


def render_config(directory: Path, upstreams: Sequence[Upstream]) -> str:
    """nginx.conf for `upstreams`, everything it writes kept under `directory`."""
    d = directory
    # As root, nginx's workers switch to `nobody`, who cannot enter a pytest tmp dir.
    user = "user root;\n" if os.geteuid() == 0 else ""
    blocks = []
    for upstream in upstreams:
        servers = "".join(
            f"        server 127.0.0.1:{port} max_fails=1 fail_timeout={FAIL_TIMEOUT_SECONDS}s;\n"
            for port in upstream.replicas
        )
        blocks.append(
            f"    upstream {upstream.name} {{\n{servers}    }}\n"
            f"    server {{\n"
            f"        listen 127.0.0.1:{upstream.listen};\n"
            f"        location / {{\n"
            f"            proxy_pass http://{upstream.name};\n"
            f"            proxy_set_header Host $http_host;\n"
            f"            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
            f"            proxy_set_header Upgrade $http_upgrade;\n"
            f"            proxy_set_header Connection $connection_upgrade;\n"
            f"        }}\n"
            f"    }}\n"
        )
    return (
        f"{user}worker_processes 1;\n"
        f"error_log {d}/error.log warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        "    log_format replicas '$server_port $request_method $uri $status "
        "[$upstream_addr] [$upstream_status]';\n"
        f"    access_log {d}/access.log replicas;\n"
        f"    client_body_temp_path {d / 'temp' / 'body'};\n"
        f"    proxy_temp_path {d / 'temp' / 'proxy'};\n"
        f"    fastcgi_temp_path {d / 'temp' / 'fastcgi'};\n"
        f"    uwsgi_temp_path {d / 'temp' / 'uwsgi'};\n"
        f"    scgi_temp_path {d / 'temp' / 'scgi'};\n"
        "    map $http_upgrade $connection_upgrade { default upgrade; '' close; }\n"
        "    proxy_http_version 1.1;\n"
        f"    proxy_connect_timeout {CONNECT_TIMEOUT_SECONDS}s;\n"
        # Long enough for a WebSocket between heartbeats and a slow answer on a busy machine.
        "    proxy_read_timeout 300s;\n"
        "    proxy_send_timeout 300s;\n"
        "    proxy_buffering off;\n"
        # POSTs too (non_idempotent): safe only because orders are sent with an
        # Idempotency-Key; see the module docstring.
        "    proxy_next_upstream error timeout http_502 http_503 non_idempotent;\n"
        "    proxy_next_upstream_tries 2;\n"
        f"{''.join(blocks)}"
        "}\n"
    )


class Nginx:
    """nginx over `upstreams`, started and stopped by PID (its own process group)."""

    def __init__(self, directory: Path, upstreams: Sequence[Upstream]) -> None:
        self.directory = directory
        self.upstreams = {upstream.name: upstream for upstream in upstreams}
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.upstreams[name].listen}"

    @property
    def config_path(self) -> Path:
        return self.directory / "nginx.conf"

    @property
    def access_log(self) -> Path:
        return self.directory / "access.log"

    def start(self, *, timeout: float = 10.0) -> None:
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.directory / "temp" / sub).mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(render_config(self.directory, list(self.upstreams.values())))
        d = self.directory
        output = (d / "nginx.out").open("ab")
        self._process = subprocess.Popen(
            [
                NGINX, "-e", str(d / "error.log"), "-p", str(d), "-c", str(self.config_path),
                "-g", f"daemon off; pid {d / 'nginx.pid'};",
            ],
            start_new_session=True,
            stdout=output,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        output.close()
        deadline = time.monotonic() + timeout
        for upstream in self.upstreams.values():
            while not _accepts(upstream.listen):
                if self._process.poll() is not None:
                    raise RuntimeError(f"nginx exited: {(d / 'nginx.out').read_text()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"nginx not listening on {upstream.listen}")
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None:
            stop_process_group(self._process, timeout=10)
            self._process = None

    def log(self) -> list[Proxied]:
        """Every request nginx has logged so far (a WebSocket when it closes)."""
        names = {str(upstream.listen): name for name, upstream in self.upstreams.items()}
        entries = []
        for line in self.access_log.read_text().splitlines():
            match = _LOG_LINE.fullmatch(line)
            if match is None:
                continue
            entries.append(
                Proxied(
                    service=names.get(match["port"], match["port"]),
                    method=match["method"],
                    path=match["path"],
                    status=int(match["status"]),
                    replicas=tuple(a.strip() for a in match["addrs"].split(",") if a.strip()),
                    replica_statuses=tuple(
                        s.strip() for s in match["statuses"].split(",") if s.strip()
                    ),
                )
            )
        return entries


@dataclass(frozen=True)
class Proxied:
    """One access-log line: which replicas nginx tried, and what each answered."""

    service: str
    method: str
    path: str
    status: int
    replicas: tuple[str, ...]
    replica_statuses: tuple[str, ...]

    @property
    def retried(self) -> bool:
        return len(self.replicas) > 1


_LOG_LINE = re.compile(
    r"(?P<port>\d+) (?P<method>\S+) (?P<path>\S+) (?P<status>\d+) "
    r"\[(?P<addrs>[^\]]*)\] \[(?P<statuses>[^\]]*)\]"
)


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
