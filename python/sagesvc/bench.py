"""python3 -m sagesvc.bench [--json] [--quick]: a Python caller's calls,
sagesvc against what a Python user has otherwise, measured in the same run.

Every impl calls the same method with the same payload: echo of a 64-byte
string. The caller runs on one CPU, each server process on another
(os.sched_setaffinity). Figures per impl and case (sync: one call at a
time; async: 100 calls outstanding from one thread):

  sage-py-c      Python caller -> C echo service in another process, shm
  sage-py-py     Python caller -> Python echo service in another process, shm
  sage-py-local  Python caller -> Python service in this process
  mp-manager     multiprocessing.managers proxy call (sync only)
  pyzmq-reqrep   pyzmq REQ/REP with msgpack (sync)
  pyzmq-dealer   pyzmq DEALER/ROUTER with msgpack, 100 outstanding (async)

Nothing here asserts a timing: it prints figures.
"""
import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import time

PAYLOAD = "<sagesvc python bench payload: 64 bytes of text, echoed back!>"[:64].ljust(64, "!")
assert len(PAYLOAD) == 64
WINDOW = 100


def cpus():
    mine = sorted(os.sched_getaffinity(0))
    if len(mine) >= 2:
        return {mine[0]}, {mine[1]}
    return set(mine), set(mine)


# ------------------------------------------------------------------ servers

def serve(kind, ns, cpu):
    os.sched_setaffinity(0, {cpu})
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    if kind in ("c", "py"):
        import sagesvc
        if kind == "c":
            task = sagesvc.native_echo_task("echo", ns, transport="shm")
        else:
            class Echo:
                def echo(self, text):
                    return text
            task = sagesvc.LocalServiceTask(Echo, sagesvc.RuntimeContext("echo", ns),
                                            transport="shm")
        task.start_service()
        print("ready", flush=True)
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
        task.stop_service()
        return
    if kind == "mp":
        from multiprocessing.managers import BaseManager

        class Echo:
            def echo(self, text):
                return text

        class M(BaseManager):
            pass
        M.register("Echo", Echo)
        m = M(address=("127.0.0.1", 0), authkey=b"bench")
        server = m.get_server()
        print("ready", server.address[1], flush=True)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
        server.serve_forever()
        return
    import msgpack
    import zmq
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP if kind == "zrep" else zmq.ROUTER)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    print("ready", port, flush=True)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    packb, unpackb = msgpack.packb, msgpack.unpackb
    if kind == "zrep":
        while True:
            method, args = unpackb(sock.recv())
            sock.send(packb(args[0]))
    while True:
        ident, body = sock.recv_multipart()
        method, args = unpackb(body)
        sock.send_multipart([ident, packb(args[0])])


def start_server(kind, ns, cpu):
    p = subprocess.Popen([sys.executable, "-m", "sagesvc.bench", "--serve", kind, "--ns", ns,
                          "--cpu", str(cpu)], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().split()
    if not line or line[0] != "ready":
        p.kill()
        raise RuntimeError(f"bench server {kind} did not start")
    return p, (int(line[1]) if len(line) > 1 else None)


def stop_server(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


# -------------------------------------------------------------- measuring

def measure_sync(call, n):
    for _ in range(min(n // 10, 20000)):
        call()
    lat = [0] * n
    pc = time.perf_counter_ns
    t0 = pc()
    for i in range(n):
        s = pc()
        call()
        lat[i] = pc() - s
    total = pc() - t0
    lat.sort()
    return lat[n // 2] / 1e3, lat[n * 99 // 100] / 1e3, n / (total / 1e9)


def measure_window(send, wait, n):
    """send() -> token; wait(token) -> result; WINDOW outstanding."""
    pc = time.perf_counter_ns
    q = collections.deque()
    lat = []
    t0 = pc()
    for _ in range(n):
        if len(q) >= WINDOW:
            tok, s = q.popleft()
            wait(tok)
            lat.append(pc() - s)
        q.append((send(), pc()))
    while q:
        tok, s = q.popleft()
        wait(tok)
        lat.append(pc() - s)
    total = pc() - t0
    lat.sort()
    return lat[len(lat) // 2] / 1e3, lat[len(lat) * 99 // 100] / 1e3, n / (total / 1e9)


def bench_sage(impl, m, svc, n_sync, n_async):
    args = (PAYLOAD,)
    sync = m.call_service_sync
    res = [("sync",) + measure_sync(lambda: sync(svc, "echo", args), n_sync)]
    ca = m.call_service_async
    measure_window(lambda: ca(svc, "echo", args), lambda f: f.result(), n_async // 10)
    res.append(("async",) + measure_window(lambda: ca(svc, "echo", args),
                                           lambda f: f.result(), n_async))
    return [(impl,) + r for r in res]


def run(quick):
    import sagesvc
    caller_cpu, server_cpu = cpus()
    scpu = min(server_cpu)
    os.sched_setaffinity(0, caller_cpu)
    n_sync = 20000 if quick else 200000
    n_async = 20000 if quick else 300000
    ns = f"bench{os.getpid()}"
    out = []
    m = sagesvc.ServiceManager(namespace=ns, timeout=30)
    for impl, kind in (("sage-py-c", "c"), ("sage-py-py", "py")):
        p, _ = start_server(kind, ns, scpu)
        try:
            out += bench_sage(impl, m, "echo", n_sync, n_async)
        finally:
            stop_server(p)
    env = sagesvc.Environment(ns)

    class Echo:
        def echo(self, text):
            return text
    local = sagesvc.LocalServiceTask(Echo, sagesvc.RuntimeContext("local_echo", ns))
    env.register_service("local_echo", local)
    local.start_service()
    with sagesvc.ServiceManager(env) as lm:
        out += bench_sage("sage-py-local", lm, "local_echo", n_sync, n_async)
    local.stop_service()
    m.close()

    # multiprocessing.managers
    p, port = start_server("mp", ns, scpu)
    try:
        from multiprocessing.managers import BaseManager

        class M(BaseManager):
            pass
        M.register("Echo")
        mm = M(address=("127.0.0.1", port), authkey=b"bench")
        mm.connect()
        proxy = mm.Echo()
        out.append(("mp-manager", "sync") + measure_sync(lambda: proxy.echo(PAYLOAD),
                                                         max(2000, n_sync // 20)))
    finally:
        stop_server(p)

    try:
        import msgpack
        import zmq
    except ImportError as e:
        print(f"bench: pyzmq or msgpack missing ({e}): apt-get install python3-zmq "
              f"python3-msgpack", file=sys.stderr)
        return out
    packb, unpackb = msgpack.packb, msgpack.unpackb
    zctx = zmq.Context()
    p, port = start_server("zrep", ns, scpu)
    try:
        s = zctx.socket(zmq.REQ)
        s.connect(f"tcp://127.0.0.1:{port}")

        def zcall():
            s.send(packb(["echo", [PAYLOAD]]))
            return unpackb(s.recv())
        out.append(("pyzmq-reqrep", "sync") + measure_sync(zcall, max(2000, n_sync // 10)))
        s.close(0)
    finally:
        stop_server(p)
    p, port = start_server("zrouter", ns, scpu)
    try:
        d = zctx.socket(zmq.DEALER)
        d.connect(f"tcp://127.0.0.1:{port}")
        body = packb(["echo", [PAYLOAD]])
        out.append(("pyzmq-dealer", "async") + measure_window(
            lambda: d.send(body), lambda tok: unpackb(d.recv()), max(20000, n_async // 5)))
        d.close(0)
    finally:
        stop_server(p)
    zctx.term()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m sagesvc.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="one JSON object per figure")
    ap.add_argument("--quick", action="store_true", help="a short smoke run")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--ns", help=argparse.SUPPRESS)
    ap.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.serve:
        serve(a.serve, a.ns, a.cpu)
        return 0
    rows = run(a.quick)
    if a.json:
        for impl, case, p50, p99, rate in rows:
            print(json.dumps({"bench": "python", "impl": impl, "case": case,
                              "p50_us": round(p50, 3), "p99_us": round(p99, 3),
                              "calls_per_s": round(rate)}))
    else:
        print(f"{'impl':<15} {'case':<6} {'p50 us':>9} {'p99 us':>9} {'calls/s':>12}")
        for impl, case, p50, p99, rate in rows:
            print(f"{impl:<15} {case:<6} {p50:>9.2f} {p99:>9.2f} {rate:>12,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
