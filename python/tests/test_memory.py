"""Reference counts: a million calls leave the process's memory flat."""
import gc
import time

from sagesvc import Environment, LocalServiceTask, RuntimeContext, ServiceManager


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Echo:
    def echo(self, x, y=None):
        return [x, {"y": y}]


def test_a_million_calls_leave_memory_flat(ns):
    env = Environment(ns)
    task = LocalServiceTask(Echo, RuntimeContext("mem", ns))
    env.register_service("mem", task)
    task.start_service()
    payload = ("x" * 64,)
    with ServiceManager(env) as m:
        call = m.call_service_sync
        # warm up: the library's pools of calls and futures grow to the
        # most outstanding at once (5000 here), then stay
        for _ in range(50000):
            call("mem", "echo", payload)
        for _ in range(3):
            fs = [m.call_service_async("mem", "echo", payload) for _ in range(5000)]
            for f in fs:
                f.result(timeout=30)
        gc.collect()
        before = rss_kib()
        t0 = time.monotonic()
        for _ in range(1000000):
            call("mem", "echo", payload, {"y": {"k": [1, 2.5, b"b", None]}})
            if time.monotonic() - t0 > 240:
                break
        gc.collect()
        after_sync = rss_kib()

        def async_rounds(n):
            for _ in range(n):
                fs = [m.call_service_async("mem", "echo", payload) for _ in range(5000)]
                for f in fs:
                    f.result(timeout=30)
            gc.collect()
            return rss_kib()

        # what grows once with many outstanding (an allocator's arena for a
        # thread that came late) grows in the first rounds; a leak keeps
        # growing after them
        settled = async_rounds(20)
        after_async = async_rounds(200)
    task.stop_service()
    # a leak of one object per call would be tens of megabytes (sync: a
    # million calls; async: a million after the first 100,000)
    assert after_sync - before < 8 * 1024, \
        f"RSS grew by {after_sync - before} KiB over a million sync calls"
    assert after_async - settled < 16 * 1024, \
        f"RSS grew by {after_async - settled} KiB over a million async calls"
