"""Across processes on this host (shm): a Python service hosted by
python3 -m sagesvc run, called by the sagesvc command and by Python; a C
service called from Python; drains, kills and refusals."""
import json
import signal
import time
import urllib.request

import pytest

import sagesvc
from sagesvc import ServiceManager

from conftest import PYTHON, py_env, run_yaml, sagesvc as cli, wait_line


def host(procs, path, *extra):
    p = procs.start([PYTHON, "-m", "sagesvc", "run", path, *extra], env=py_env())
    lines = wait_line(p, "serving")
    return p, lines


def test_python_service_seen_like_a_c_one(procs, ns, tmp_path):
    path = run_yaml(tmp_path, f"namespace: {ns}\nservices:\n  - name: pyecho\n"
                              f"    python: pysvc:Echo\n    config: {{prefix: 'hi '}}\n")
    p, lines = host(procs, path, "--metrics", "127.0.0.1:0")
    assert any(f"pyecho: shm /dev/shm/sage.q." in l and "python pysvc:Echo" in l for l in lines)
    url = next(l.split()[1] for l in lines if l.startswith("metrics:"))
    r = cli("call", "-n", ns, "pyecho", "greet", '["bob"]')
    assert (r.returncode, r.stdout.strip()) == (0, '"hi bob!"'), r.stderr
    r = cli("call", "-n", ns, "pyecho", "greet", '["ann"]', "--kwargs", '{"punct": "?"}')
    assert r.stdout.strip() == '"hi ann?"'
    r = cli("call", "-n", ns, "pyecho", "echo", '[[1, 2.5, null, {"a": "b"}]]', "--async", "3")
    assert r.returncode == 0 and '[1,2.5,null,{"a":"b"}]' in r.stdout.replace(" ", "")
    r = cli("call", "-n", ns, "pyecho", "fail", '["oops"]')
    assert r.returncode == 6 and "ValueError: oops" in r.stderr
    assert cli("call", "-n", ns, "pyecho", "nosuch").returncode == 4
    assert cli("call", "-n", ns, "pyecho", "add", "[1]").returncode == 5
    r = cli("ls", "-n", ns)
    assert "pyecho" in r.stdout and "running" in r.stdout
    st = json.loads(cli("status", "-n", ns, "pyecho", "--json").stdout)
    assert st["state"] == "running" and st["requests"] >= 5 and st["errors"] >= 3
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    assert f'sagesvc_requests_total{{namespace="{ns}",service="pyecho",method="greet"}}' in text
    with ServiceManager(namespace=ns) as m:
        assert m.call_service_sync("pyecho", "add", (2, 3)) == 5
        assert m.get_service_queue("pyecho").pid == p.pid
    p.send_signal(signal.SIGTERM)
    assert p.wait(20) == 0
    assert cli("call", "-n", ns, "pyecho", "echo", "[1]").returncode == 3


def test_c_service_from_python(procs, ns, tmp_path):
    path = run_yaml(tmp_path, f"namespace: {ns}\nservices:\n  - name: kv\n    plugin: kv\n")
    p = procs.start([cli.__globals__["SAGESVC"], "run", path])
    wait_line(p, "serving")
    with ServiceManager(namespace=ns) as m:
        assert m.call_service_sync("kv", "put", ("k", {"v": [1, b"\x00"]})) is True
        assert m.call_service_sync("kv", "get", ("k",)) == {"v": [1, b"\x00"]}
        fs = [m.call_service_async("kv", "put", (f"k{i}", i)) for i in range(200)]
        assert all(f.result(timeout=10) for f in fs)
        assert m.call_service_sync("kv", "size") == 201
        with pytest.raises(sagesvc.NoSuchMethodError):
            m.call_service_sync("kv", "frob")
    p.send_signal(signal.SIGTERM)
    assert p.wait(20) == 0


def test_drain_on_sigterm(procs, ns, tmp_path):
    path = run_yaml(tmp_path, f"namespace: {ns}\nservices:\n  - name: slowpoke\n"
                              f"    python: pysvc:Echo\n")
    p, _ = host(procs, path)
    with ServiceManager(namespace=ns, timeout=20) as m:
        f = m.call_service_async("slowpoke", "slow", (1.0,))
        time.sleep(0.3)
        p.send_signal(signal.SIGTERM)
        assert f.result(timeout=10) == "done"  # answered before it stopped
    assert p.wait(20) == 0
    out = "".join(p.seen) + p.stdout.read() if p.stdout.readable() else ""


def test_killed_mid_call(procs, ns, tmp_path):
    path = run_yaml(tmp_path, f"namespace: {ns}\nservices:\n  - name: victim\n"
                              f"    python: pysvc:Echo\n")
    p, _ = host(procs, path)
    with ServiceManager(namespace=ns, timeout=30) as m:
        f = m.call_service_async("victim", "slow", (20.0,))
        time.sleep(0.3)
        t0 = time.monotonic()
        p.kill()
        with pytest.raises(sagesvc.UnavailableError):
            f.result(timeout=15)
        assert time.monotonic() - t0 < 10
        with pytest.raises((sagesvc.UnavailableError, sagesvc.NoSuchServiceError)):
            m.call_service_sync("victim", "echo", (1,))


@pytest.mark.parametrize("entry,status,text", [
    ("    plugin: kv\n", 9, "is a C plugin"),
    ("    python: nosuchmodule:Thing\n", 10, "cannot import 'nosuchmodule'"),
    ("    python: pysvc:Missing\n", 10, "has no 'Missing'"),
    ("    python: pysvc:not_callable\n", 10, "not a callable"),
    ("    python: pysvc:make_refusing\n", 9, "refused its config: ValueError: limit is required"),
    ("    python: pysvc:Echo\n    transport: local\n", 9, "transport local"),
    ("    python: pysvc:Echo\n    middleware: [nosuch]\n", 9, "nosuch"),
])
def test_refusals(procs, ns, tmp_path, entry, status, text):
    path = run_yaml(tmp_path, f"namespace: {ns}\nservices:\n  - name: bad\n{entry}")
    p = procs.start([PYTHON, "-m", "sagesvc", "run", path], env=py_env())
    assert p.wait(30) == status
    assert text in p.stderr.read()


def test_usage_and_taken_name(procs, ns, tmp_path):
    p = procs.start([PYTHON, "-m", "sagesvc", "run", "--frob"], env=py_env())
    assert p.wait(30) == 2
    path = run_yaml(tmp_path, f"namespace: {ns}\nservices:\n  - name: once\n"
                              f"    python: pysvc:Echo\n")
    first, _ = host(procs, path)
    second = procs.start([PYTHON, "-m", "sagesvc", "run", path], env=py_env())
    assert second.wait(30) == 1
    assert f"already served on this host by pid {first.pid}" in second.stderr.read()
    first.send_signal(signal.SIGINT)
    assert first.wait(20) == 0
