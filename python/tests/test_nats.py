"""Across machines (NATS, a private nats-server on 127.0.0.1): Python
services called by the sagesvc command and by Python, a C service called
from Python, discovery ($SRV) and the replica command's contract."""
import json
import os
import signal

import pytest

import sagesvc
from sagesvc import RayServiceTask, RuntimeContext, ServiceManager

from conftest import PYTHON, SAGESVC, py_env, run_yaml, sagesvc as cli, wait_line


def test_python_service_over_nats(procs, ns, tmp_path, nats_url):
    path = run_yaml(tmp_path, f"namespace: {ns}\nnats:\n  servers: [{nats_url}]\nservices:\n"
                              f"  - name: npy\n    python: pysvc:Echo\n    transport: nats\n")
    p = procs.start([PYTHON, "-m", "sagesvc", "run", path], env=py_env())
    lines = wait_line(p, "serving")
    assert any(f"npy: nats sage.{ns}.svc.npy via {nats_url}" in l for l in lines)
    r = cli("call", "-n", ns, "--nats", nats_url, "npy", "add", "[20, 22]")
    assert (r.returncode, r.stdout.strip()) == (0, "42"), r.stderr
    r = cli("call", "-n", ns, "--nats", nats_url, "npy", "fail", '["remote"]')
    assert r.returncode == 6 and "ValueError: remote" in r.stderr
    with ServiceManager(namespace=ns, nats=nats_url, timeout=10) as m:
        assert m.call_service_sync("npy", "echo", ({"a": [1, None, b"x"]},)) == {"a": [1, None, b"x"]}
        fs = [m.call_service_async("npy", "add", (i, 1)) for i in range(100)]
        assert [f.result(timeout=10) for f in fs] == [i + 1 for i in range(100)]
        assert m.get_service_queue("npy").transport == "nats"
    r = cli("status", "--cluster", "--nats", nats_url, "-n", ns, "--json")
    assert r.returncode == 0, r.stderr
    assert any(s["name"] == "npy" and s["requests"] >= 102 for s in json.loads(r.stdout))
    p.send_signal(signal.SIGTERM)
    assert p.wait(20) == 0


def test_c_service_over_nats_from_python(procs, ns, tmp_path, nats_url):
    path = run_yaml(tmp_path, f"namespace: {ns}\nnats:\n  servers: [{nats_url}]\nservices:\n"
                              f"  - name: nkv\n    plugin: kv\n    transport: nats\n")
    p = procs.start([SAGESVC, "run", path])
    wait_line(p, "serving")
    with ServiceManager(namespace=ns, config=path, timeout=10) as m:
        assert m.call_service_sync("nkv", "put", ("k", [1, 2])) is True
        assert m.call_service_sync("nkv", "get", ("k",)) == [1, 2]
        with pytest.raises(sagesvc.NoSuchServiceError):
            m.call_service_sync("nosuch", "get", ("k",))
    p.send_signal(signal.SIGTERM)
    assert p.wait(20) == 0


def test_ray_service_task_in_process(ns, nats_url):
    class Svc:
        def where(self):
            return os.getpid()
    task = RayServiceTask(Svc, RuntimeContext("ray1", ns), nats=nats_url)
    task.start_service()
    try:
        with ServiceManager(namespace=ns, nats=nats_url) as m:
            assert m.call_service_sync("ray1", "where") == os.getpid()
        assert task.get_service_status()["transport"] == "nats"
    finally:
        task.stop_service()


def test_replica_contract(procs, ns, nats_url):
    def replica(*args):
        p = procs.start([PYTHON, "-m", "sagesvc", "replica", *args], env=py_env())
        return p.wait(30), p.stderr.read()
    assert replica("--ns", ns)[0] == 2
    assert replica("--service", "x")[0] == 2
    assert replica("--ns", ns, "--service", "x", "--ready-fd", "minus")[0] == 2
    rc, err = replica("--ns", ns, "--service", "x", "--nats-replicas", "9")
    assert rc == 2 and "--nats-replicas needs a count of copies, 1..5" in err
    c = cli("replica", "--ns", ns, "--service", "x", "--nats-replicas", "0")
    assert c.returncode == 2 and "--nats-replicas needs a count of copies, 1..5" in c.stderr
    rc, err = replica("--ns", ns, "--service", "x", "--host-pid", "1")
    assert rc == 1 and "host 1 is gone" in err
    rc, err = replica("--ns", ns, "--service", "notdeployed", "--nats", nats_url)
    assert rc == 3, err
    out = cli("replica", "--help").stdout
    for opt in ("--ns", "--service", "--nats", "--creds", "--tls-ca", "--tls-cert", "--tls-key",
                "--nats-replicas", "--ready-fd", "--host-pid"):
        assert opt in out
