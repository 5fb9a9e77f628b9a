"""Every value type both ways, with the edge cases, in process and across
processes (a Python service and a C service over shared memory)."""
import math
import os

import pytest

import sagesvc
from sagesvc import (Environment, LocalServiceTask, RuntimeContext, ServiceManager,
                     native_echo_task)

from conftest import PYTHON, Procs, py_env, wait_line

I64_MIN, I64_MAX, U64_MAX = -2**63, 2**63 - 1, 2**64 - 1


class Echo:
    def echo(self, x):
        return x

    def kw(self, **kwargs):
        return kwargs

    def make(self, what):
        return {"set": {1}, "obj": object(), "big": 2**64, "deep": _nest(70)}[what]


def _nest(n):
    v = "leaf"
    for _ in range(n):
        v = [v]
    return v


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    """(name, manager, service) for: in process, a Python service in another
    process over shm, a C service in another process over shm."""
    ns = f"pytv{os.getpid()}"
    env = Environment(ns)
    local = LocalServiceTask(Echo, RuntimeContext("echo", ns))
    env.register_service("echo", local)
    local.start_service()
    cfg = tmp_path_factory.mktemp("v") / "services.yaml"
    cfg.write_text(f"namespace: {ns}\nservices:\n  - name: pyecho\n    python: pysvc:Echo\n")
    ps = Procs()
    p = ps.start([PYTHON, "-m", "sagesvc", "run", str(cfg)], env=py_env())
    wait_line(p, "serving")
    cecho = native_echo_task("cecho", ns, transport="shm")
    # the C service must live in another process too: host it in a child
    c = ps.start([PYTHON, "-c", "import sagesvc, signal; "
                  f"t = sagesvc.native_echo_task('cecho', '{ns}', transport='shm'); "
                  "t.start_service(); print('ready', flush=True); "
                  "signal.sigwait({signal.SIGTERM}); t.stop_service()"], env=py_env())
    wait_line(c, "ready")
    cecho.close()
    m = ServiceManager(env, timeout=10)
    yield [("local", m, "echo"), ("py-shm", m, "pyecho"), ("c-shm", m, "cecho")]
    m.close()
    local.stop_service()
    ps.cleanup()
    for path in os.listdir("/dev/shm"):
        if f".{ns}." in path:
            try:
                os.unlink("/dev/shm/" + path)
            except OSError:
                pass


VALUES = [
    None, True, False, 0, 1, -1, I64_MIN, I64_MAX, I64_MAX + 1, U64_MAX,
    0.0, 1.5, -2.25, 1e308, 5e-324, math.inf, -math.inf,
    "", "hello", "ünïcödé ✓ 中文 🎉", "nul\x00inside", "x" * 100000,
    b"", b"\x00\x01\xff", b"\x00" * 1000, bytes(range(256)) * 400,
    [], {}, [1, "two", 3.0, None, True, b"b"], {"a": 1, "b": [1, 2], "c": {"d": None}},
    {1: "int key", "s": 2, b"k": 3, None: 4, 2.5: 5, False: 6},
    {"empty": [], "map": {}, "s": ""},
    _nest(30),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: repr(v)[:40])
def test_roundtrip(places, value):
    for where, m, svc in places:
        got = m.call_service_sync(svc, "echo", (value,))
        assert got == value, where
        assert type(got) is type(value), where


def test_special_floats(places):
    for where, m, svc in places:
        nan = m.call_service_sync(svc, "echo", (math.nan,))
        assert math.isnan(nan), where
        z = m.call_service_sync(svc, "echo", (-0.0,))
        assert z == 0.0 and math.copysign(1.0, z) == -1.0, where


def test_conversions(places):
    for where, m, svc in places:
        assert m.call_service_sync(svc, "echo", ((1, (2, 3)),)) == [1, [2, 3]], where
        assert m.call_service_sync(svc, "echo", (bytearray(b"ab\x00"),)) == b"ab\x00", where
        assert m.call_service_sync(svc, "echo", (memoryview(b"xyz")[1:],)) == b"yz", where
        # tuples as keys come back as tuples (lists cannot be keys)
        assert m.call_service_sync(svc, "echo", ({(1, 2): "t"},)) == {(1, 2): "t"}, where


def test_nesting_32_levels(places):
    # the wire carries 32 levels, its envelope and the args array included:
    # 30 inside an argument; in process nothing is encoded, 64 levels convert
    for where, m, svc in places:
        assert m.call_service_sync(svc, "echo", (_nest(30),)) == _nest(30), where
    for where, m, svc in places[1:]:
        with pytest.raises(sagesvc.ServiceError, match="nested deeper than 32") as e:
            m.call_service_sync(svc, "echo", (_nest(31),))
        assert e.value.name == "EINVAL"
    where, m, svc = places[0]
    assert m.call_service_sync(svc, "echo", (_nest(62),)) == _nest(62)


def test_kwargs_both_ways(places):
    where, m, svc = places[0]
    got = m.call_service_sync(svc, "kw", kwargs={"a": 1, "b": [None, "x"], "c": {"d": b"e"}})
    assert got == {"a": 1, "b": [None, "x"], "c": {"d": b"e"}}
    where, m, svc = places[1]
    assert m.call_service_sync(svc, "greet", ("bob",), {"punct": "?"}) == "bob?"


@pytest.mark.parametrize("value,exc,text", [
    (2**64, OverflowError, "args[0]: int 18446744073709551616 is out of range"),
    (I64_MIN - 1, OverflowError, "args[0]: int -9223372036854775809 is out of range"),
    ([1, {"k": {1, 2}}], TypeError, "args[0][1]['k']: set is not supported"),
    ({"a": object()}, TypeError, "args[0]['a']: object is not supported"),
    ({frozenset(): 1}, TypeError, "args[0] key frozenset(): frozenset is not supported"),
    ("\udc80", ValueError, "args[0]: str cannot be encoded as UTF-8"),
    (_nest(70), ValueError, "nested deeper than 64 levels"),
])
def test_bad_values_name_the_place(places, value, exc, text):
    where, m, svc = places[0]
    with pytest.raises(exc) as e:
        m.call_service_sync(svc, "echo", (value,))
    assert text in str(e.value)


def test_bad_second_argument_and_cycle(places):
    where, m, svc = places[0]
    with pytest.raises(TypeError, match=r"^args\[1\]\['k'\]: set is not supported$"):
        m.call_service_sync(svc, "echo", ("ok", {"k": set()}))
    cyc = []
    cyc.append(cyc)
    with pytest.raises(ValueError, match="does a container hold itself"):
        m.call_service_sync(svc, "echo", (cyc,))
    with pytest.raises(TypeError, match="kwargs: key 1 is not a str"):
        m.call_service_sync(svc, "kw", kwargs={1: 2})
    with pytest.raises(TypeError, match="args: expected a tuple or a list, got str"):
        m.call_service_sync(svc, "echo", "abc")


def test_bad_results_are_handler_errors(places):
    for where, m, svc in places[:1]:
        for what, text in (("set", "result: set is not supported"),
                           ("obj", "result: object is not supported"),
                           ("big", "result: int 18446744073709551616 is out of range"),
                           ("deep", "nested deeper than 64 levels")):
            with pytest.raises(sagesvc.HandlerError) as e:
                m.call_service_sync(svc, "make", (what,))
            assert text in e.value.detail
