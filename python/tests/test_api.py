"""The reference document's API, by name: tasks, environments, managers,
futures, custom tasks, middleware, errors, configuration, threads."""
import asyncio
import builtins
import concurrent.futures
import logging
import threading
import time

import pytest

import sagesvc
from sagesvc import (BaseServiceTask, Environment, LocalServiceTask, RuntimeContext,
                     ServiceManager, ServiceMiddleware, ServiceRequest, ServiceResponse)


class Calc:
    def __init__(self, base=0):
        self.base = base
        self.lock = threading.Lock()
        self.n = 0

    def add(self, a, b=0):
        return self.base + a + b

    def process_data(self, data):
        return {"len": len(data), "data": data}

    def slow(self, seconds):
        time.sleep(seconds)
        return "slept"

    def fail(self):
        raise ValueError("bad value")

    def refuse(self):
        raise sagesvc.BadArgumentsError("no, thanks")

    def count(self):
        with self.lock:
            self.n += 1
            return self.n

    @property
    def not_a_method(self):
        raise AssertionError("properties are not methods and are never evaluated")

    def _private(self):
        return "hidden"


@pytest.fixture
def svc(ns):
    env = Environment(ns)
    task = LocalServiceTask(Calc, RuntimeContext("calc", ns))
    env.register_service("calc", task)
    task.start_service()
    m = ServiceManager(env, timeout=5)
    yield env, task, m
    m.close()
    task.stop_service()
    task.close()


def test_document_example(svc):
    env, task, m = svc
    assert env.get_service("calc") is task
    assert m.call_service_sync(service_name="calc", method="process_data", args=("abc",),
                               kwargs={"timeout": 30}) == {"len": 3, "data": "abc"}
    future = m.call_service_async(service_name="calc", method="process_data", args=([1, 2],))
    assert future.result() == {"len": 2, "data": [1, 2]}
    status = task.get_service_status()
    assert status["state"] == "running" and status["requests"] >= 2
    assert sorted(task.methods) == ["add", "count", "fail", "process_data", "refuse", "slow"]


def test_status_keys_match_the_command(svc):
    from conftest import sagesvc as run_cli
    env, task, m = svc
    ns = env.namespace
    shm = LocalServiceTask(Calc, RuntimeContext("calcshm", ns), transport="shm")
    shm.start_service()
    try:
        import json
        out = run_cli("status", "-n", ns, "calcshm", "--json")
        assert out.returncode == 0, out.stderr
        assert set(json.loads(out.stdout)) == set(shm.get_service_status())
    finally:
        shm.stop_service()
        shm.close()


def test_future_is_a_real_future(svc):
    env, task, m = svc
    f = m.call_service_async("calc", "slow", (0.2,))
    assert isinstance(f, concurrent.futures.Future)
    assert not f.done()
    seen = []
    f.add_done_callback(lambda fut: seen.append(("a", fut.result())))
    f.add_done_callback(lambda fut: seen.append(("b", fut.result())))
    assert f.result(timeout=5) == "slept"
    for _ in range(100):
        if len(seen) == 2:
            break
        time.sleep(0.01)
    assert seen == [("a", "slept"), ("b", "slept")]
    f.add_done_callback(lambda fut: seen.append("late"))  # done: runs at once
    assert seen[-1] == "late"
    assert concurrent.futures.wait([m.call_service_async("calc", "add", (1,))],
                                   timeout=5).done


def test_callback_that_raises(svc, caplog):
    env, task, m = svc
    got = threading.Event()

    def bad(fut):
        raise RuntimeError("callback failure")
    f = m.call_service_async("calc", "add", (1, 2))
    f.add_done_callback(bad)
    f.add_done_callback(lambda fut: got.set())
    assert f.result(timeout=5) == 3
    assert got.wait(5)  # the next callback still ran
    # and the manager still works
    assert m.call_service_sync("calc", "add", (2, 2)) == 4


def test_cancel(svc):
    env, task, m = svc
    f = m.call_service_async("calc", "slow", (1.0,))
    time.sleep(0.05)
    assert f.cancel()
    assert f.cancelled()
    with pytest.raises(concurrent.futures.CancelledError):
        f.result(timeout=1)
    done = m.call_service_async("calc", "add", (1,))
    assert done.result(timeout=5) == 1
    assert not done.cancel()


def test_asyncio(svc):
    env, task, m = svc

    async def main():
        a = await asyncio.wrap_future(m.call_service_async("calc", "add", (1, 2)))
        b = await m.call_service_async("calc", "add", (3,))
        c = await m.acall_service("calc", "add", (4, 5))
        d = await asyncio.gather(*[m.acall_service("calc", "add", (i,)) for i in range(20)])
        return a, b, c, d
    a, b, c, d = asyncio.run(main())
    assert (a, b, c, d) == (3, 3, 9, list(range(20)))


def test_timeouts(svc):
    env, task, m = svc
    t0 = time.monotonic()
    with pytest.raises(sagesvc.TimeoutError) as e:
        m.call_service_sync("calc", "slow", (2.0,), timeout=0.2)
    assert time.monotonic() - t0 < 1.5
    assert isinstance(e.value, builtins.TimeoutError) and e.value.name == "ETIMEDOUT"
    # a timeout key in kwargs is the call's timeout (the document's form)
    with pytest.raises(builtins.TimeoutError):
        m.call_service_sync("calc", "slow", (2.0,), kwargs={"timeout": 0.2})
    f = m.call_service_async("calc", "slow", (2.0,), timeout=0.2)
    with pytest.raises(sagesvc.TimeoutError):
        f.result(timeout=5)
    with pytest.raises(ValueError, match="timeout"):
        m.call_service_sync("calc", "add", (1,), timeout=-1)


def test_error_classes(svc, caplog):
    env, task, m = svc
    with pytest.raises(sagesvc.NoSuchServiceError) as e:
        m.call_service_sync("nosuch", "x")
    assert e.value.code == sagesvc._core.ENOSERVICE
    with pytest.raises(sagesvc.NoSuchMethodError, match="no method 'frob'"):
        m.call_service_sync("calc", "frob")
    with pytest.raises(sagesvc.NoSuchMethodError):
        m.call_service_sync("calc", "_private")
    with pytest.raises(sagesvc.BadArgumentsError, match="takes from 2 to 3 positional"):
        m.call_service_sync("calc", "add", (1, 2, 3))
    with pytest.raises(sagesvc.BadArgumentsError, match="^no, thanks$"):
        m.call_service_sync("calc", "refuse")
    with caplog.at_level(logging.ERROR, logger="sagesvc.service.calc"):
        with pytest.raises(sagesvc.HandlerError) as e:
            m.call_service_sync("calc", "fail")
    assert e.value.detail == "ValueError: bad value"
    assert any("Traceback" in (r.exc_text or "") or r.exc_info for r in caplog.records)
    f = m.call_service_async("calc", "fail")
    with pytest.raises(sagesvc.HandlerError, match="ValueError: bad value"):
        f.result(timeout=5)
    assert isinstance(f.exception(), sagesvc.ServiceError)
    task.stop_service()
    with pytest.raises(sagesvc.UnavailableError):
        m.call_service_sync("calc", "add", (1,))
    task.start_service()
    assert m.call_service_sync("calc", "add", (1,)) == 1


def test_closed_manager(svc):
    env, task, m = svc
    with ServiceManager(env) as m2:
        assert m2.call_service_sync("calc", "add", (1,)) == 1
        pending = m2.call_service_async("calc", "slow", (1.0,))
    assert m2.closed
    with pytest.raises(sagesvc.UnavailableError, match="closed"):
        pending.result(timeout=5)
    with pytest.raises(sagesvc.UnavailableError):
        m2.call_service_sync("calc", "add", (1,))


def test_get_service_queue(svc, ns):
    env, task, m = svc
    q = m.get_service_queue("calc")
    assert q.transport == "local" and q.service_name == "calc"
    shm = LocalServiceTask(Calc, RuntimeContext("calcq", ns), transport="shm")
    shm.start_service()
    try:
        q = m.get_service_queue("calcq")
        assert q.transport == "shm" and "calcq" in q.address
    finally:
        shm.stop_service()
    with pytest.raises(sagesvc.NoSuchServiceError):
        m.get_service_queue("nosuch")


def test_eight_threads(svc):
    env, task, m = svc
    errors = []

    def worker(k):
        try:
            for i in range(2000):
                assert m.call_service_sync("calc", "add", (k, i)) == k + i
            fs = [m.call_service_async("calc", "add", (k, i)) for i in range(500)]
            assert [f.result(timeout=10) for f in fs] == [k + i for i in range(500)]
        except BaseException as e:
            errors.append(e)
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert m.call_service_sync("calc", "count") == 1


class Custom(BaseServiceTask):
    def __init__(self, service_factory, ctx):
        super().__init__(service_factory, ctx)
        self.seen = []

    def custom_handle_request(self, request):
        assert isinstance(request, ServiceRequest)
        self.seen.append((request.service_name, request.method_name, request.args,
                          request.kwargs, bool(request.request_id)))
        if request.method_name == "process":
            return self.service.process_data(*request.args)
        if request.method_name == "respond":
            return ServiceResponse(False, error="custom failure")
        return super().custom_handle_request(request)


def test_custom_service_task(ns):
    env = Environment(ns)
    task = Custom(Calc, RuntimeContext("custom", ns))
    env.register_service("custom", task)
    task.start_service()
    with ServiceManager(env) as m:
        assert m.call_service_sync("custom", "process", ("xy",)) == {"len": 2, "data": "xy"}
        assert m.call_service_sync("custom", "add", (1,), {"b": 2}) == 3
        with pytest.raises(sagesvc.HandlerError, match="^custom failure$"):
            m.call_service_sync("custom", "respond")
        with pytest.raises(sagesvc.HandlerError, match="ValueError"):
            m.call_service_sync("custom", "fail")
    task.stop_service()
    assert ("custom", "add", (1,), {"b": 2}, True) in task.seen


class Auth(ServiceMiddleware):
    def __init__(self):
        self.after = []

    def before_call(self, request):
        if request.kwargs.get("token") != "s3cret" and request.method_name == "add":
            raise PermissionError("token missing or wrong")

    def after_call(self, response):
        self.after.append(response.success)
        if response.success and response.result == 42:
            return ServiceResponse(True, result="forty-two")


class Doubler(ServiceMiddleware):
    def after_call(self, response):
        if response.success and isinstance(response.result, int):
            response.result *= 2


def test_middleware(ns):
    env = Environment(ns)
    auth = Auth()
    task = LocalServiceTask(Calc, RuntimeContext("mw", ns), middleware=[auth, Doubler(), "deadline"])
    env.register_service("mw", task)
    task.start_service()
    with ServiceManager(env) as m:
        with pytest.raises(sagesvc.RejectedError, match="^token missing or wrong$"):
            m.call_service_sync("mw", "add", (1,))
        # Doubler runs after_call first (reverse order), then Auth sees 42
        assert m.call_service_sync("mw", "count") == 2
        assert task.get_service_status()["rejected"] == 1
    task.stop_service()
    assert auth.after


def test_config_dict_and_file(ns, tmp_path):
    conf = {"namespace": ns, "service": {"local": {"max_workers": 3, "queue_timeout": 5,
                                                   "request_queue_size": 100}},
            "services": [{"name": "cfgd", "python": "x.y:Z", "config": {"base": 100}}]}
    task = LocalServiceTask(Calc, RuntimeContext("cfgd", config=conf))
    st = task.get_service_status()
    assert (st["max_workers"], st["request_queue_size"], st["queue_timeout_s"]) == (3, 100, 5.0)
    env = Environment(ns)
    env.register_service("cfgd", task)
    task.start_service()
    with ServiceManager(env) as m:
        assert m.call_service_sync("cfgd", "add", (1,)) == 101  # factory got config: base
    task.stop_service()
    path = tmp_path / "c.yaml"
    path.write_text(f"namespace: {ns}\nservice:\n  ray:\n    resources: {{CPU: 2}}\n"
                    f"    max_restarts: 3\n  local:\n    max_workers: 7\n")
    ctx = RuntimeContext("fromfile", config=str(path))
    assert ctx.namespace == ns and ctx.config.cluster["cpus"] == 2.0
    assert LocalServiceTask(Calc, ctx).get_service_status()["max_workers"] == 7
    with pytest.raises(sagesvc.ConfigError, match="service.local.max_workers"):
        RuntimeContext("bad", config={"service": {"local": {"max_workers": "ten"}}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("service:\n  local:\n    max_workers: 0\n")
    with pytest.raises(sagesvc.ConfigError, match="bad.yaml:3"):
        RuntimeContext("bad", config=str(bad))
    with pytest.raises(sagesvc.ConfigError):
        RuntimeContext("bad", config=str(tmp_path / "missing.yaml"))
    with pytest.raises(sagesvc.ConfigError, match="transport"):
        LocalServiceTask(Calc, RuntimeContext("t", ns), transport="pigeon")


def test_task_lifecycle_and_names(ns):
    env = Environment(ns)
    task = LocalServiceTask(Calc, RuntimeContext("life", ns))
    assert task.get_service_status()["state"] == "created"
    with task:
        assert task.get_service_status()["state"] == "running"
        task.start_service()  # starting a running task does nothing
    assert task.get_service_status()["state"] == "stopped"
    with pytest.raises(sagesvc.ConfigError):
        LocalServiceTask(Calc, RuntimeContext("bad name!", ns))
    with pytest.raises(TypeError, match="callable"):
        LocalServiceTask(42, RuntimeContext("x", ns))
    with pytest.raises(TypeError):
        env.register_service("x", object())
    env.register_service("life", task)
    with pytest.raises(sagesvc.ServiceError, match="life"):
        env.register_service("life", task)
