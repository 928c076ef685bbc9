"""Starts one tuisong server for the session and points wechatpy clients at it.

The server binary comes from $TUISONG_BIN (tests/compat/run.sh sets it; the default
is <repo>/target/release/tuisong). Each session gets a fresh data directory and a
free port on 127.0.0.1, so the first-start banner (demo app, secret, templates) is
always printed and parsed here.
"""

import dataclasses
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from wechatpy.client import WeChatClient

REPO_ROOT = Path(__file__).resolve().parents[2]
WECHAT_HOSTS = ("https://api.weixin.qq.com", "http://api.weixin.qq.com")
START_TIMEOUT = 30.0


@dataclasses.dataclass
class DemoTemplate:
    id: str
    title: str
    type: int


@dataclasses.dataclass
class Server:
    base_url: str
    data_dir: Path
    appid: str
    secret: str
    original_id: str
    app_name: str
    templates: list
    admin_token: str
    banner: list

    def template(self, type_):
        """The first demo template of the given type (2 one-time, 3 long-term)."""
        for t in self.templates:
            if t.type == type_:
                return t
        raise LookupError(f"no demo template of type {type_} in the banner: {self.templates}")


class _StdoutReader(threading.Thread):
    """Reads the server's stdout line by line for the whole session (so the pipe
    never fills up) and remembers every line."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream = stream
        self.lines = []
        self.cond = threading.Condition()
        self.closed = False

    def run(self):
        try:
            for line in self.stream:
                with self.cond:
                    self.lines.append(line.rstrip("\r\n"))
                    self.cond.notify_all()
        finally:
            with self.cond:
                self.closed = True
                self.cond.notify_all()

    def wait_for(self, pred, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not any(pred(l) for l in self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return False
                self.cond.wait(left)
            return True


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_TEMPLATE_LINE = re.compile(r"^\s*template:\s+(\S+)\s+(.*?)\s+\(type (\d+)\)\s*$")


def _field(lines, label):
    for l in lines:
        m = re.match(rf"^\s*{re.escape(label)}:\s+(\S+)\s*$", l)
        if m:
            return m.group(1)
    raise LookupError(f"banner has no {label!r} line:\n" + "\n".join(lines))


def parse_banner(lines):
    name = None
    for l in lines:
        m = re.match(r'^First start: created the demo app "(.*)"\s*$', l)
        if m:
            name = m.group(1)
    if name is None:
        raise LookupError("banner has no 'First start' line:\n" + "\n".join(lines))
    templates = []
    for l in lines:
        m = _TEMPLATE_LINE.match(l)
        if m:
            templates.append(DemoTemplate(m.group(1), m.group(2), int(m.group(3))))
    return {
        "app_name": name,
        "appid": _field(lines, "appid"),
        "secret": _field(lines, "secret"),
        "original_id": _field(lines, "original id"),
        "templates": templates,
    }


def _tail(path, n=40):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


@pytest.fixture(scope="session")
def server():
    bin_path = os.environ.get("TUISONG_BIN") or str(REPO_ROOT / "target" / "release" / "tuisong")
    if not os.access(bin_path, os.X_OK):
        pytest.fail(f"tuisong binary not found or not executable: {bin_path} (set TUISONG_BIN)", pytrace=False)

    tmp = Path(tempfile.mkdtemp(prefix="tuisong-compat-"))
    data_dir = tmp / "data"
    stderr_path = tmp / "server.stderr"
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    # Only our flags configure the server: no TUISONG_* from the caller's environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUISONG_")}
    # The message-push receiver of test_push_wechatpy listens on 127.0.0.1.
    env["TUISONG_PUSH_ALLOW_PRIVATE"] = "true"
    # Every test's users come from 127.0.0.1; the per-address limits are tested in Rust.
    env["TUISONG_CLIENT_USERS_PER_MINUTE"] = "0"
    env["TUISONG_CLIENT_LOGINS_PER_MINUTE"] = "0"
    stderr_file = open(stderr_path, "wb")
    proc = subprocess.Popen(
        [bin_path, "serve", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr_file,
        env=env,
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
    )
    reader = _StdoutReader(proc.stdout)
    reader.start()

    def stop():
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        stderr_file.close()

    try:
        deadline = time.monotonic() + START_TIMEOUT
        healthy = False
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                r = requests.get(f"{base_url}/healthz", timeout=1)
                if r.status_code == 200 and r.text.strip() == "ok":
                    healthy = True
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        if not healthy:
            raise RuntimeError(
                f"tuisong did not answer /healthz with 'ok' within {START_TIMEOUT:.0f} s "
                f"(exit status {proc.poll()})\nstdout:\n" + "\n".join(reader.lines)
                + "\nstderr:\n" + _tail(stderr_path)
            )
        # The banner is printed before the server starts serving; wait for its last line.
        left = max(1.0, deadline - time.monotonic())
        if not reader.wait_for(lambda l: l.startswith("Try:"), left):
            raise RuntimeError("tuisong's first-start banner never reached the 'Try:' line:\n"
                               + "\n".join(reader.lines))
        with reader.cond:
            banner = list(reader.lines)
        info = parse_banner(banner)
        token_file = data_dir / "admin-token"
        admin_token = token_file.read_text().strip() if token_file.exists() else ""
        srv = Server(
            base_url=base_url,
            data_dir=data_dir,
            admin_token=admin_token,
            banner=banner,
            **info,
        )
    except Exception as e:
        stop()
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.fail(str(e), pytrace=False)

    yield srv

    stop()
    shutil.rmtree(tmp, ignore_errors=True)


class RewriteAdapter(HTTPAdapter):
    """Sends requests meant for api.weixin.qq.com to the local server instead."""

    def __init__(self, base_url):
        super().__init__()
        target = urlsplit(base_url)
        self._scheme, self._netloc = target.scheme, target.netloc

    def send(self, request, **kwargs):
        u = urlsplit(request.url)
        request.url = urlunsplit((self._scheme, self._netloc, u.path, u.query, u.fragment))
        return super().send(request, **kwargs)


class RefuseAdapter(BaseAdapter):
    """Any other host: the tests never talk to anything but the local server."""

    def send(self, request, **kwargs):
        raise requests.ConnectionError(f"compat tests refuse to reach {request.url}")

    def close(self):
        pass


def point_at(session, base_url):
    session.mount("https://", RefuseAdapter())
    session.mount("http://", RefuseAdapter())
    adapter = RewriteAdapter(base_url)
    for host in WECHAT_HOSTS:
        session.mount(host, adapter)
    return session


@pytest.fixture
def make_client(server):
    """make_client(appid=None, secret=None, **kwargs) -> a WeChatClient wired to the server."""
    made = []

    def make(appid=None, secret=None, **kwargs):
        c = WeChatClient(appid or server.appid, secret or server.secret, **kwargs)
        point_at(c._http, server.base_url)
        made.append(c)
        return c

    yield make
    for c in made:
        c._http.close()


@pytest.fixture
def client(make_client):
    return make_client()
