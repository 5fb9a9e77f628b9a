"""Fixtures of the Python suite: namespaces of our own, real processes and a
private nats-server, all cleaned up pass or fail."""
import glob
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import queue
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("SAGESVC_BUILD", os.path.join(HERE, "..", "..", "build"))
SAGESVC = os.environ.get("SAGESVC_BIN", os.path.join(BUILD, "sagesvc"))
PYTHON = sys.executable
_counter = itertools.count()


def py_env(**extra):
    """The environment of a Python child: this suite's sagesvc and services."""
    env = dict(os.environ)
    paths = [p for p in sys.path if p and os.path.isdir(p) and "sagesvc" not in p]
    import sagesvc
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(sagesvc.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([pkg, os.path.join(HERE, "services")])
    env.update(extra)
    return env


@pytest.fixture
def ns():
    """A namespace no other test uses; its /dev/shm names are removed after."""
    name = f"pyt{os.getpid()}n{next(_counter)}"
    yield name
    for path in glob.glob(f"/dev/shm/sage.*.{name}.*") + glob.glob(f"/dev/shm/sage.*.{name}"):
        try:
            os.unlink(path)
        except OSError:
            pass


class Procs:
    """Child processes, killed (whole process group) at teardown. Their
    stdout is read by a thread into p.lines (a queue), for wait_line."""

    def __init__(self):
        self.procs = []

    def start(self, argv, **kw):
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("text", True)
        p = subprocess.Popen(argv, start_new_session=True, **kw)
        p.lines = queue.Queue()
        p.seen = []
        if p.stdout is not None:
            def pump(f=p.stdout, q=p.lines):
                for line in f:
                    q.put(line)
                q.put(None)
            threading.Thread(target=pump, daemon=True).start()
        self.procs.append(p)
        return p

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            if p.stderr:
                p.stderr.close()


@pytest.fixture
def procs():
    ps = Procs()
    yield ps
    ps.cleanup()


def wait_line(p, pattern, timeout=20):
    """Wait for a line of p's stdout containing pattern; the lines read so far."""
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        try:
            line = p.lines.get(timeout=max(0.01, left)) if left > 0 else None
        except queue.Empty:
            line = None
        if line is None:
            try:
                p.wait(timeout=0.5 if left > 0 else 0.1)
            except subprocess.TimeoutExpired:
                pass
            err = p.stderr.read() if p.poll() is not None and p.stderr else ""
            raise AssertionError(f"no line with {pattern!r} within {timeout}s; got {p.seen}; "
                                 f"exit {p.poll()}; stderr: {err}")
        p.seen.append(line)
        if pattern in line:
            return p.seen


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def nats_url():
    """A private nats-server with JetStream on 127.0.0.1 for the session."""
    exe = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.access(exe, os.X_OK):
        pytest.skip("nats-server is not installed (apt-get install nats-server)")
    port = free_port()
    store = tempfile.mkdtemp(prefix="sagesvc-pytest-js-")
    p = subprocess.Popen([exe, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("nats-server did not start")
        yield f"nats://127.0.0.1:{port}"
    finally:
        p.kill()
        p.wait()
        shutil.rmtree(store, ignore_errors=True)


def run_yaml(tmp_path, text, name="services.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def sagesvc(*args, timeout=30, **kw):
    """Run the sagesvc command; CompletedProcess."""
    return subprocess.run([SAGESVC, *args], capture_output=True, text=True, timeout=timeout,
                          **kw)
