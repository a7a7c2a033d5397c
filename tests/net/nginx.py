"""A private nginx (the Debian package's binary) on loopback for the streaming tests.

The system service is never touched: :class:`NginxServer` writes its own configuration into a
temporary folder, runs a master process in the foreground as the current user
(``nginx -p PREFIX -c CONF -g 'daemon off; ...'``) with every log, pid, lock and temp path inside
that folder, waits until it answers and stops it (master and workers) on :meth:`stop`.

URL layout (``server.url(path)``), every root also under ``/rate/<bytes_per_s>/``:

- ``/samples/...``: the shared sample folder; ``/streams/...``: a folder the tests write into.
- ``/rate/<bps>/samples/...``, ``/rate/<bps>/streams/...``: the same files sent at ``bps`` bytes/s
  per connection (nginx's ``limit_rate``; it lets a burst through at the start of a response,
  so time a whole download rather than dividing by the rate; the fault proxy's limit is exact).
- ``/hop/<n>/<rest>``: a chain of n redirects (302) ending at ``/<rest>``, n up to ``MAX_HOPS``.
- ``/loop/<rest>``: redirects to itself forever.
- ``/offhost/<rest>``: redirects to ``http://localhost:<port>/<rest>`` (another host name).
- ``/toscheme/<rest>``: redirects to ``https://127.0.0.1:<tls port>/<rest>`` (another scheme).
- ``/health``: 200 "ok" (what the start-up waits for).

With ``tls=True`` (needs the ``openssl`` tool) a second server listens with a self-signed
certificate (``server.ca_file``; a client trusts it through ``SSL_CERT_FILE``) on
``server.https_url(path)``, serving the same roots plus ``/downgrade/<rest>`` redirecting to
``http://127.0.0.1:<port>/<rest>``.

ETag, Last-Modified and byte ranges are nginx's defaults for static files. The ETag is built from
the modification time in whole seconds and the size: a test that rewrites a file and expects a
new ETag must change its size or move its mtime (``os.utime``).
"""

from __future__ import annotations

import atexit
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

MAX_HOPS = 12


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM the nginx master when the test process dies, even by
    SIGKILL (Linux ``PR_SET_PDEATHSIG``), so no nginx outlives a killed test run."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def nginx_binary() -> str | None:
    """The nginx executable, also where /usr/sbin is not on PATH (a non-root user's shell)."""
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in ("/usr/sbin/nginx", "/usr/local/sbin/nginx"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    """A port no one listens on right now (nginx binds it a moment later; start retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _quote(text: str) -> str:
    """A string as an nginx config token (paths in tmp folders have no quotes of their own)."""
    if '"' in text or "\n" in text:
        raise ValueError(f"cannot put {text!r} into an nginx configuration")
    return '"' + text + '"'


class NginxServer:
    """One nginx master process serving ``roots`` (URL prefix -> folder) on 127.0.0.1."""

    def __init__(self, workdir: Path, roots: dict[str, Path], *, tls: bool = False) -> None:
        for prefix in roots:
            if not prefix.isidentifier():
                raise ValueError(f"root prefix {prefix!r} must be a plain name")
        self.workdir = Path(workdir)
        self.roots = {prefix: Path(folder).resolve() for prefix, folder in roots.items()}
        self.tls = tls
        self.port = 0
        self.tls_port = 0
        self.ca_file: Path | None = None
        self.process: subprocess.Popen | None = None
        self.binary = nginx_binary()
        if self.binary is None:
            raise FileNotFoundError("nginx is not installed")

    # -- URLs -----------------------------------------------------------------------------
    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + "/" + path.lstrip("/")

    def https_url(self, path: str) -> str:
        if not self.tls_port:
            raise RuntimeError("this server was started without TLS")
        return f"https://127.0.0.1:{self.tls_port}/" + path.lstrip("/")

    # -- configuration --------------------------------------------------------------------
    def _locations(self) -> list[str]:
        lines = ['location = /health { default_type text/plain; return 200 "ok\\n"; }']
        for prefix, folder in self.roots.items():
            root = _quote(str(folder) + "/")
            lines.append(f"location /{prefix}/ {{ alias {root}; }}")
            # limit_rate takes a variable (nginx >= 1.17): the rate comes from the URL
            lines.append(
                f"location ~ ^/rate/(?<bps>[0-9]+)/{prefix}/(?<rest>.*)$ "
                f"{{ limit_rate $bps; alias {_quote(str(folder) + '/$rest')}; }}"
            )
        lines.append("location ~ ^/hop/1/(?<rest>.*)$ { return 302 /$rest$is_args$args; }")
        for n in range(2, MAX_HOPS + 1):
            lines.append(
                f"location ~ ^/hop/{n}/(?<rest>.*)$ {{ return 302 /hop/{n - 1}/$rest$is_args$args; }}"
            )
        lines.append("location ~ ^/loop/(?<rest>.*)$ { return 302 /loop/$rest; }")
        lines.append(f"location ~ ^/offhost/(?<rest>.*)$ {{ return 302 http://localhost:{self.port}/$rest; }}")
        target = self.tls_port or self.port
        lines.append(f"location ~ ^/toscheme/(?<rest>.*)$ {{ return 302 https://127.0.0.1:{target}/$rest; }}")
        return lines

    def _config(self) -> str:
        w = self.workdir
        main = [
            f"pid {_quote(str(w / 'nginx.pid'))};",
            f"error_log {_quote(str(w / 'error.log'))} info;",
            f"lock_file {_quote(str(w / 'nginx.lock'))};",
            "worker_processes 2;",
        ]
        if os.geteuid() == 0:  # workers would drop to 'nobody' and could not read the tmp folders
            main.append("user root;")
        locations = "\n        ".join(self._locations())
        http = [
            f"access_log {_quote(str(w / 'access.log'))};",
            *(
                f"{kind}_temp_path {_quote(str(w / ('tmp-' + kind)))};"
                for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            ),
            "default_type application/octet-stream;",
            "sendfile on;",
            "keepalive_timeout 30s;",
            # relative Location headers: a client behind the fault proxy stays behind it
            "absolute_redirect off;",
        ]
        mime = Path("/etc/nginx/mime.types")
        if mime.is_file():
            http.append(f"include {_quote(str(mime))};")
        servers = [
            f"server {{\n        listen 127.0.0.1:{self.port};\n        server_name 127.0.0.1;\n"
            f"        {locations}\n    }}"
        ]
        if self.tls_port:
            extra = f"location ~ ^/downgrade/(?<rest>.*)$ {{ return 302 http://127.0.0.1:{self.port}/$rest; }}"
            servers.append(
                f"server {{\n        listen 127.0.0.1:{self.tls_port} ssl;\n        server_name 127.0.0.1;\n"
                f"        ssl_certificate {_quote(str(w / 'cert.pem'))};\n"
                f"        ssl_certificate_key {_quote(str(w / 'key.pem'))};\n"
                f"        {extra}\n        {locations}\n    }}"
            )
        return (
            "\n".join(main)
            + "\nevents { worker_connections 256; }\nhttp {\n    "
            + "\n    ".join(http)
            + "\n    "
            + "\n    ".join(servers)
            + "\n}\n"
        )

    def _make_certificate(self) -> None:
        """A self-signed certificate for 127.0.0.1 (it is its own CA: ``ca_file``)."""
        openssl = shutil.which("openssl")
        if openssl is None:
            raise FileNotFoundError("openssl is not installed (needed for the TLS server)")
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", str(self.workdir / "key.pem"), "-out", str(self.workdir / "cert.pem"),
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True, timeout=60,
        )
        self.ca_file = self.workdir / "cert.pem"

    # -- life cycle -----------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> NginxServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.tls and self.ca_file is None:
            self._make_certificate()
        last_error = ""
        for _attempt in range(5):  # a free port may be taken between the probe and nginx's bind
            self.port = free_port()
            self.tls_port = free_port() if self.tls else 0
            conf = self.workdir / "nginx.conf"
            conf.write_text(self._config())
            log = open(self.workdir / "stderr.log", "wb")
            try:
                self.process = subprocess.Popen(
                    [self.binary, "-p", str(self.workdir) + "/", "-c", str(conf),
                     "-e", str(self.workdir / "error.log"), "-g", "daemon off;"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
                )
            finally:
                log.close()
            atexit.register(self.stop)
            if self._wait_ready(timeout):
                return self
            last_error = self._log_tail()
            self.stop()
            if "Address already in use" not in last_error:
                break
        raise RuntimeError(f"nginx did not start: {last_error}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/health")
                ok = conn.getresponse().status == 200
                conn.close()
                if ok:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def _log_tail(self) -> str:
        texts = []
        for name in ("stderr.log", "error.log"):
            path = self.workdir / name
            if path.is_file():
                texts.append(path.read_text(errors="replace")[-2000:])
        return "\n".join(texts).strip()

    def worker_pids(self) -> list[int]:
        """The pids whose parent is the master (its workers), read from /proc."""
        if self.process is None:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # the ppid is the 2nd field after the parenthesised command name
            fields = stat.rsplit(")", 1)[-1].split()
            if len(fields) > 1 and int(fields[1]) == self.process.pid:
                found.append(int(entry.name))
        return found

    def stop(self) -> None:
        """Fast shutdown (SIGTERM: the master stops its workers), then SIGKILL if it hangs."""
        process, self.process = self.process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        if process.poll() is None:
            self.process = process
            workers = self.worker_pids()
            self.process = None
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
                for pid in workers:  # a killed master leaves its workers behind
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass

    def __enter__(self) -> NginxServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
