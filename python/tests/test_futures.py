"""CallFuture behaves as concurrent.futures.Future in every documented way,
its state and callbacks living in C and its answers taken by the threads
that call or wait: timeouts, cancel, callbacks before and after the end,
callbacks that raise, concurrent.futures.wait and as_completed,
asyncio.wrap_future, eight threads, and futures nobody waits for."""
import asyncio
import builtins
import concurrent.futures as cf
import gc
import logging
import signal
import threading
import time
import weakref

import pytest

import sagesvc
from sagesvc import CallFuture, LocalServiceTask, RuntimeContext, ServiceManager


class Slow:
    def echo(self, x):
        return x

    def sleep(self, seconds):
        time.sleep(seconds)
        return seconds

    def fail(self, msg):
        raise ValueError(msg)


@pytest.fixture
def rig(ns):
    """A C echo service and a Python one, both over shm in this process,
    and a manager that reaches them through the shm queues."""
    echo = sagesvc.native_echo_task("echo", ns, transport="shm")
    echo.start_service()
    slow = LocalServiceTask(Slow, RuntimeContext("slow", ns), transport="shm", max_workers=16)
    slow.start_service()
    m = ServiceManager(namespace=ns, timeout=10)
    yield m
    m.close()
    slow.stop_service()
    slow.close()
    echo.stop_service()
    echo.close()


def until(cond, seconds=5.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.002)
    return cond()


# ------------------------------------------------- a Future, standalone


@pytest.mark.parametrize("cls", [cf.Future, CallFuture])
def test_same_as_a_plain_future(cls):
    """The same script gives the same answers on concurrent.futures.Future
    and on CallFuture (not bound to a call)."""
    seen = []
    f = cls()
    assert isinstance(f, cf.Future)
    assert (f.done(), f.running(), f.cancelled()) == (False, False, False)
    assert f._state == "PENDING"
    assert repr(f).startswith(f"<{cls.__name__} at 0x") and repr(f).endswith("state=pending>")
    with pytest.raises(cf.TimeoutError):
        f.result(timeout=0)
    with pytest.raises(builtins.TimeoutError):
        f.exception(timeout=0.01)
    f.add_done_callback(lambda x: seen.append(("a", x.result())))
    f.add_done_callback(lambda x: seen.append(("b", x.result())))
    assert f.set_running_or_notify_cancel() is True
    assert f.running() and not f.cancel()
    f.set_result(42)
    assert seen == [("a", 42), ("b", 42)]
    assert f.result() == 42 and f.result(timeout=0) == 42 and f.exception() is None
    assert f._state == "FINISHED" and "returned int" in repr(f)
    f.add_done_callback(lambda x: seen.append("late"))
    assert seen[-1] == "late"
    with pytest.raises(cf.InvalidStateError):
        f.set_result(1)
    with pytest.raises(cf.InvalidStateError):
        f.set_exception(ValueError())

    g = cls()
    g.set_exception(KeyError("k"))
    assert isinstance(g.exception(), KeyError) and "raised KeyError" in repr(g)
    with pytest.raises(KeyError):
        g.result()

    c = cls()
    c.add_done_callback(lambda x: seen.append(("c", x.cancelled())))
    assert c.cancel() and c.cancel() and c.cancelled() and c.done()
    assert seen[-1] == ("c", True)
    assert c._state == "CANCELLED"
    with pytest.raises(cf.CancelledError):
        c.result()
    with pytest.raises(cf.CancelledError):
        c.exception()
    assert c.set_running_or_notify_cancel() is False
    assert c._state == "CANCELLED_AND_NOTIFIED"
    with pytest.raises(cf.InvalidStateError):
        c.set_result(1)


@pytest.mark.parametrize("cls", [cf.Future, CallFuture])
def test_standalone_waits_across_threads(cls):
    f = cls()
    threading.Timer(0.05, f.set_result, ("later",)).start()
    assert f.result(timeout=5) == "later"
    g = cls()
    threading.Timer(0.05, g.cancel).start()
    with pytest.raises(cf.CancelledError):
        g.result(timeout=5)
    fs = [cls() for _ in range(3)]
    threading.Timer(0.05, fs[1].set_result, (1,)).start()
    done, not_done = cf.wait(fs, timeout=5, return_when=cf.FIRST_COMPLETED)
    assert done == {fs[1]} and len(not_done) == 2


@pytest.mark.parametrize("cls", [cf.Future, CallFuture])
def test_callback_exceptions(cls, caplog):
    ran = []
    f = cls()
    f.add_done_callback(lambda x: 1 / 0)
    f.add_done_callback(lambda x: ran.append(1))
    with caplog.at_level(logging.ERROR, logger="concurrent.futures"):
        f.set_result(None)
    assert ran == [1]
    assert any("exception calling callback" in r.getMessage() and r.exc_info
               and r.exc_info[0] is ZeroDivisionError for r in caplog.records)
    # what is not an Exception goes through, as with the base class

    def interrupt(x):
        raise KeyboardInterrupt

    g = cls()
    g.add_done_callback(interrupt)
    with pytest.raises(KeyboardInterrupt):
        g.set_result(None)
    assert g.done()


def test_no_instance_state_until_asked():
    f = CallFuture()
    assert f.__dict__ == {}  # no Condition, no lists: made when asked for
    cond = f._condition
    assert f._condition is cond and isinstance(f._waiters, list)
    f.extra = 1  # still an ordinary object
    assert f.extra == 1 and weakref.ref(f)() is f


# ------------------------------------------------------- futures of calls


def test_results_and_errors(rig):
    m = rig
    fs = [m.call_service_async("echo", "echo", (i,)) for i in range(500)]
    assert [f.result(timeout=10) for f in fs] == list(range(500))
    f = m.call_service_async("slow", "fail", ("nope",))
    e = f.exception(timeout=10)
    assert isinstance(e, sagesvc.HandlerError) and "nope" in str(e)
    with pytest.raises(sagesvc.HandlerError):
        f.result()
    with pytest.raises(sagesvc.NoSuchMethodError):
        m.call_service_async("echo", "nope").result(timeout=10)


def test_timeouts(rig):
    m = rig
    f = m.call_service_async("slow", "sleep", (0.5,))
    t0 = time.monotonic()
    with pytest.raises(cf.TimeoutError):
        f.result(timeout=0.05)
    assert time.monotonic() - t0 < 0.4
    with pytest.raises(builtins.TimeoutError):
        f.exception(timeout=0)
    assert not f.done()
    assert f.result(timeout=10) == 0.5
    # the call's own timeout: a sagesvc.TimeoutError as the outcome
    g = m.call_service_async("slow", "sleep", (0.5,), timeout=0.1)
    with pytest.raises(sagesvc.TimeoutError):
        g.result(timeout=10)


def test_done_turns_true_by_looking(rig):
    m = rig
    f = m.call_service_async("echo", "echo", ("x",))
    assert until(f.done)
    assert f.result(timeout=0) == "x"
    g = m.call_service_async("echo", "echo", ("y",))
    assert until(lambda: g._state == "FINISHED")


def test_callbacks_before_and_after(rig):
    m = rig
    seen = []
    got = threading.Event()
    f = m.call_service_async("slow", "sleep", (0.1,))
    for k in range(5):
        f.add_done_callback(lambda x, k=k: seen.append((k, x.result())))
    f.add_done_callback(lambda x: got.set())
    # nobody calls or waits: the resolver thread resolves a watched future
    assert got.wait(5)
    assert seen == [(k, 0.1) for k in range(5)]
    f.add_done_callback(lambda x: seen.append("after"))
    assert seen[-1] == "after"
    # a callback added while the answer is queued but not yet resolved
    g = m.call_service_async("echo", "echo", (1,))
    time.sleep(0.05)
    done = threading.Event()
    g.add_done_callback(lambda x: done.set())
    assert done.wait(5) and g.result() == 1


def test_callback_raising_is_logged(rig, caplog):
    m = rig
    ran = threading.Event()
    with caplog.at_level(logging.ERROR, logger="concurrent.futures"):
        f = m.call_service_async("echo", "echo", (1,))
        f.add_done_callback(lambda x: 1 / 0)
        f.add_done_callback(lambda x: ran.set())
        assert ran.wait(5)
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)
    assert m.call_service_sync("echo", "echo", (2,)) == 2


def test_callback_waits_for_another_and_calls_again(rig):
    """A done-callback that waits for another future of the same manager,
    or makes a new call, neither blocks nor hangs its thread."""
    m = rig
    out = []
    ready = threading.Event()
    a = m.call_service_async("slow", "sleep", (0.05,))
    b = m.call_service_async("slow", "sleep", (0.1,))
    a.add_done_callback(lambda x: out.append(("b", b.result(timeout=5))))
    chain = []

    def again(x):
        chain.append(x.result())
        if len(chain) < 20:
            m.call_service_async("echo", "echo", (len(chain),)).add_done_callback(again)
        else:
            ready.set()
    m.call_service_async("echo", "echo", (0,)).add_done_callback(again)
    assert ready.wait(10)
    assert chain == list(range(20))
    assert until(lambda: out == [("b", 0.1)])


def test_cancel(rig):
    m = rig
    seen = []
    f = m.call_service_async("slow", "sleep", (0.3,))
    f.add_done_callback(lambda x: seen.append(x.cancelled()))
    assert f.cancel() and f.cancelled() and f.done()
    assert seen == [True]
    with pytest.raises(cf.CancelledError):
        f.result(timeout=1)
    time.sleep(0.4)  # its answer, when it comes, is dropped
    assert f.cancelled() and seen == [True]
    g = m.call_service_async("echo", "echo", (1,))
    assert g.result(timeout=5) == 1 and not g.cancel()
    # a wait in another thread ends when the future is cancelled
    h = m.call_service_async("slow", "sleep", (1.0,))
    threading.Timer(0.1, h.cancel).start()
    t0 = time.monotonic()
    with pytest.raises(cf.CancelledError):
        h.result(timeout=10)
    assert time.monotonic() - t0 < 0.8


def test_set_result_from_another_thread_ends_a_wait(rig):
    m = rig
    f = m.call_service_async("slow", "sleep", (1.0,))
    threading.Timer(0.1, f.set_result, ("mine",)).start()
    t0 = time.monotonic()
    assert f.result(timeout=10) == "mine"
    assert time.monotonic() - t0 < 0.8


def test_concurrent_futures_wait_and_as_completed(rig):
    m = rig
    slow = m.call_service_async("slow", "sleep", (0.5,))
    fast = [m.call_service_async("echo", "echo", (i,)) for i in range(10)]
    done, not_done = cf.wait(fast + [slow], timeout=5, return_when=cf.FIRST_COMPLETED)
    assert done and set(done) <= set(fast)
    done, not_done = cf.wait(fast, timeout=5)
    assert done == set(fast) and not not_done
    order = list(cf.as_completed([slow] + [m.call_service_async("echo", "echo", (1,))],
                                 timeout=5))
    assert order[-1] is slow
    # answers coming while wait and as_completed read the states (all the
    # conditions held: reading one future must not resolve another)
    for _ in range(3):
        fs = [m.call_service_async("echo", "echo", (i,)) for i in range(2000)]
        assert len(list(cf.as_completed(fs, timeout=5))) == 2000
        fs = [m.call_service_async("echo", "echo", (i,)) for i in range(2000)]
        assert cf.wait(fs, timeout=5).not_done == set()
    # answers that came while nobody looked (queued, not yet resolved)
    for _ in range(5):
        fs = [m.call_service_async("echo", "echo", (i,)) for i in range(50)]
        time.sleep(0.02)
        assert sorted(f.result() for f in cf.as_completed(fs, timeout=5)) == list(range(50))
        fs = [m.call_service_async("echo", "echo", (i,)) for i in range(50)]
        time.sleep(0.02)
        assert cf.wait(fs, timeout=5).not_done == set()
    late = m.call_service_async("slow", "sleep", (0.5,))
    with pytest.raises(cf.TimeoutError):
        list(cf.as_completed([late], timeout=0.05))
    done, not_done = cf.wait([late], timeout=0.05)
    assert not done and not_done == {late}


def test_asyncio(rig):
    m = rig

    async def main():
        a = await asyncio.wrap_future(m.call_service_async("echo", "echo", (1,)))
        b = await m.call_service_async("echo", "echo", (2,))
        c = await m.acall_service("slow", "sleep", (0.05,))
        d = await asyncio.gather(*[m.acall_service("echo", "echo", (i,)) for i in range(200)])
        t0 = time.monotonic()
        for i in range(50):  # one at a time: each is resolved promptly
            assert await m.acall_service("echo", "echo", (i,)) == i
        each = (time.monotonic() - t0) / 50
        # an asyncio cancel cancels the call
        fut = m.call_service_async("slow", "sleep", (1.0,))
        task = asyncio.ensure_future(asyncio.wrap_future(fut))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return a, b, c, d, each, fut
    a, b, c, d, each, fut = asyncio.run(main())
    assert (a, b, c, d) == (1, 2, 0.05, list(range(200)))
    assert each < 0.05
    assert until(fut.cancelled)


def test_eight_threads(rig):
    """Eight threads call, wait, add callbacks and cancel at once, some of
    them waiting for futures another thread made."""
    m = rig
    errors = []
    shared = []
    lock = threading.Lock()
    counted = [0]

    def count(f):
        with lock:
            counted[0] += 1

    def worker(k):
        try:
            mine = []
            for i in range(300):
                f = m.call_service_async("echo", "echo", ((k, i),))
                f.add_done_callback(count)
                mine.append(f)
                if i % 10 == 0:
                    with lock:
                        shared.append((f, [k, i]))
                if i % 50 == 7:
                    s = m.call_service_async("slow", "sleep", (0.2,))
                    s.add_done_callback(count)
                    s.cancel()
            for i, f in enumerate(mine):
                assert f.result(timeout=10) == [k, i]
            with lock:
                others = list(shared)
            for f, want in others:
                assert f.result(timeout=10) == want
            assert cf.wait(mine, timeout=10).not_done == set()
        except BaseException as e:  # noqa: B902 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert until(lambda: counted[0] == 8 * (300 + 6))


def test_futures_nobody_waits_for(rig):
    """Futures dropped unresolved are freed once their answers come."""
    m = rig
    refs = [weakref.ref(m.call_service_async("echo", "echo", (i,))) for i in range(200)]
    m.call_service_sync("echo", "echo", (0,))
    assert until(lambda: (m._drain(), gc.collect(), all(r() is None for r in refs))[2])


def test_close_with_pending_futures(rig, ns):
    m2 = ServiceManager(namespace=ns, timeout=10)
    f = m2.call_service_async("slow", "sleep", (1.5,))
    seen = threading.Event()
    f.add_done_callback(lambda x: seen.set())
    waiter_got = []

    def waiter():
        try:
            f.result(timeout=10)
        except BaseException as e:  # noqa: B902
            waiter_got.append(e)
    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.1)
    t0 = time.monotonic()
    m2.close()
    t.join(10)
    assert time.monotonic() - t0 < 1.2
    assert seen.wait(5)
    assert len(waiter_got) == 1 and isinstance(waiter_got[0], sagesvc.UnavailableError)
    with pytest.raises(sagesvc.UnavailableError):
        f.result()


def test_a_signal_interrupts_a_wait(rig):
    m = rig
    f = m.call_service_async("slow", "sleep", (1.0,))

    def handler(signum, frame):
        raise RuntimeError("interrupted")
    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match="interrupted"):
            f.result()
        assert time.monotonic() - t0 < 0.8
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert f.result(timeout=10) == 1.0
