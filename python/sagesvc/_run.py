"""python3 -m sagesvc run: host the Python services of a configuration.

The same contract as `sagesvc run` (cli/cmd_run.c): the stop signals are
blocked before any thread starts and taken by one stopper thread with
sigwait; a signal while starting stops what was started (exit 1), a start
step still busy a second later is abandoned; a signal while serving drains
every service (exit 0); a second signal during the drain exits at once
(exit 1).
"""
import argparse
import os
import signal
import sys
import threading

from . import _core, _tasks
from ._context import load_config
from ._hosting import (CONFIG, ERR, OK, USAGE, Refused, STOP_SIGNALS, block_stop_signals,
                       error, make_task, signame)
from .errors import ServiceError

HELP = """\
NAME
    python3 -m sagesvc run - host the Python services of a configuration

SYNOPSIS
    python3 -m sagesvc run [CONFIG.yaml] [-c CONFIG] [-n NS] [--metrics ADDR:PORT]
    python3 -m sagesvc run -h

DESCRIPTION
    Loads the configuration and hosts every service it lists, each named by
    `python: package.module:factory`, in this process, over its transport (shm,
    the default, or nats), until SIGINT, SIGTERM or SIGHUP: exactly as
    `sagesvc run` hosts C plugins. Every process of the same user on this
    machine (and, for transport nats, of the cluster) can then call them by name:
    `sagesvc call`, `sagesvc ls` and `sagesvc status` see them like C services.

    The module is imported from sys.path, then from the configuration file's
    directory. The factory is called with the entry's `config:` map as keyword
    arguments (or with none) and returns the service object; its public methods
    are the service's methods. A file that also lists C plugins is refused:
    `sagesvc run` hosts those.

    Each service gets max_workers, queue_timeout and request_queue_size from
    service.local merged with its own entry, and the middleware named by
    `middleware` (logging, deadline). Transport local is refused (no other
    process could call it).

    Once every service runs, one line each says where it listens:
        echo: shm /dev/shm/sage.q.1000.demo.echo.req (pid 4242, 10 workers, python app:Echo)

OPTIONS
    CONFIG.yaml, -c FILE, --config FILE
        The configuration file. Without it, the first that exists of
        ./services.yaml, $XDG_CONFIG_HOME/sagesvc/services.yaml (default
        ~/.config/sagesvc/services.yaml), /etc/sagesvc/services.yaml.
    -n NS, --namespace NS
        Host the services in namespace NS instead of the configuration's.
    --metrics ADDR:PORT
        Serve Prometheus metrics on GET /metrics (as `sagesvc run --metrics`).
    -h, --help
        Print this help and exit.

SIGNALS
    SIGINT, SIGTERM, SIGHUP
        Stop: each service stops taking calls, answers every call already
        queued, waits for calls in flight, and leaves the host registry; then
        exit with status 0. A second signal during that drain exits at once,
        with status 1. A signal before every service runs stops those started
        and exits with status 1.

EXIT STATUS
    0   stopped by a signal, every service drained
    1   a service is already served on this host, or failed to start; the
        metrics address cannot be bound; a signal came before every service
        ran; a second signal cut the drain short
    2   usage
    9   configuration: none found, unreadable or invalid, no services, a C
        plugin entry, transport local, an unknown middleware, or a factory
        that refused its config: map
    10  a factory that cannot be imported, or is not callable
"""

GRACE_S = 1.0


class Stopper:
    """The stopper thread and what it shares with the main thread."""

    def __init__(self, run):
        self.lock = threading.Condition()
        self.sig = 0
        self.phase = "starting"  # starting, serving, stopping, abandoned
        self.started = []        # tasks started (done steps)
        self.current = None
        self.run = run

    def start(self):
        threading.Thread(target=self._main, name="sagesvc-stopper", daemon=True).start()

    def _main(self):
        while True:
            sig = signal.sigwait(STOP_SIGNALS)
            with self.lock:
                first = self.sig == 0
                if first:
                    self.sig = sig
                starting = self.phase == "starting"
                self.lock.notify_all()
            if not first:
                error(f"{signame(sig)} again: exiting without draining")
                os._exit(ERR)
            if not starting:
                continue
            error(f"{signame(sig)} while starting: stopping what was started")
            self._grace()
            with self.lock:
                abandon = self.phase == "starting"
                if abandon:
                    self.phase = "abandoned"
                started = list(self.started)
                current = self.current
            if abandon:
                if current:
                    error(f"service '{current}' is still starting 1 s after {signame(sig)}: "
                          f"stopping the {len(started)} started before it and exiting")
                else:
                    error(f"still starting 1 s after {signame(sig)}: stopping the "
                          f"{len(started)} started and exiting")
                for t in reversed(started):
                    try:
                        t._core.stop()
                    except Exception:
                        pass
                os._exit(ERR)

    def _grace(self):
        got = signal.sigtimedwait(STOP_SIGNALS, GRACE_S)
        if got is not None:
            error(f"{signame(got.si_signo)} again: exiting at once")
            os._exit(ERR)

    def _park(self):
        while self.phase == "abandoned":
            self.lock.wait()

    def step(self, current, started_task=None):
        """Between two steps of the start: the signal if one came, else 0."""
        with self.lock:
            self._park()
            if started_task is not None:
                self.started.append(started_task)
            self.current = current
            if self.sig:
                self.phase = "stopping"
            return self.sig

    def serving(self):
        with self.lock:
            self._park()
            self.phase = "stopping" if self.sig else "serving"
            return self.sig

    def wait(self):
        with self.lock:
            while self.sig == 0:
                self.lock.wait()
            self.phase = "stopping"
            return self.sig

    def leave_start(self):
        with self.lock:
            self._park()
            if self.phase == "starting":
                self.phase = "stopping"


def find_config(explicit):
    if explicit:
        return explicit
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    for path in ("services.yaml", os.path.join(xdg, "sagesvc", "services.yaml"),
                 "/etc/sagesvc/services.yaml"):
        if os.path.exists(path):
            return path
    return None


def parse(argv):
    class Parser(argparse.ArgumentParser):
        def error(self, message):
            print(f"python3 -m sagesvc run: {message} (see python3 -m sagesvc run --help)",
                  file=sys.stderr)
            sys.exit(USAGE)

    p = Parser(prog="python3 -m sagesvc run", add_help=False)
    p.add_argument("file", nargs="?")
    p.add_argument("-c", "--config")
    p.add_argument("-n", "--namespace")
    p.add_argument("--metrics")
    p.add_argument("-h", "--help", action="store_true")
    a = p.parse_args(argv)
    if a.help:
        sys.stdout.write(HELP)
        sys.exit(OK)
    if a.file and a.config:
        p.error(f"two configuration files: '{a.file}' and -c '{a.config}'")
    if a.namespace is not None and not _valid_name(a.namespace):
        p.error(f"-n/--namespace: '{a.namespace}' is not a namespace (1..64 of [A-Za-z0-9_-])")
    return a


def _valid_name(s):
    return 0 < len(s) <= 64 and all(c.isascii() and (c.isalnum() or c in "_-") for c in s)


def listening_line(task, entry, ns, cfg):
    t = task._core
    workers = entry["local"]["max_workers"]
    if task.transport == "nats":
        servers = cfg.nats_servers
        return (f"{t.name}: nats sage.{ns}.svc.{t.name} via {servers[0]} (pid {os.getpid()}, "
                f"{workers} workers, {'durable' if entry['cluster']['durable'] else 'at most once'}"
                f", python {entry['python']})")
    queue = "?"
    for e in _core.host_list(ns):
        if e["name"] == t.name and e["pid"] == os.getpid():
            queue = e["queue"]
    return (f"{t.name}: shm /dev/shm/sage.q.{queue} (pid {os.getpid()}, {workers} workers, "
            f"python {entry['python']})")


def prepare(cfg, ns):
    """Everything that can be refused, before anything starts."""
    entries = cfg.services()
    if not entries:
        raise Refused(f"{cfg.path} lists no services: nothing to run", CONFIG)
    for e in entries:
        where = f"{cfg.path}:{e['line']}"
        if e["python"] is None:
            raise Refused(f"{where}: service '{e['name']}' is a C plugin ({e['plugin']}): host it "
                          f"with `sagesvc run` (keep Python and C services in separate files)",
                          CONFIG)
        if e["transport"] == "local":
            raise Refused(f"{where}: service '{e['name']}': transport local is in-process only, "
                          f"so no other process could call it; use transport shm", CONFIG)
        if e["transport"] not in ("shm", "nats"):
            raise Refused(f"{where}: service '{e['name']}': unknown transport "
                          f"'{e['transport']}'", CONFIG)
    hosted = []
    for e in entries:
        hosted.append((e, make_task(cfg, e, ns, f"{cfg.path}:{e['line']}")))
    return hosted


def main(argv):
    args = parse(argv)
    block_stop_signals()
    run = {"metrics": None}
    stopper = Stopper(run)
    stopper.start()
    path = find_config(args.config or args.file)
    if path is None:
        error("run: no configuration: give a file, or create ./services.yaml, "
              "$XDG_CONFIG_HOME/sagesvc/services.yaml or /etc/sagesvc/services.yaml")
        return CONFIG
    try:
        cfg = load_config(path)
    except ServiceError as e:
        error(f"cannot load the configuration {path}: {e.name} ({e.detail})")
        return CONFIG
    ns = args.namespace or cfg.namespace
    try:
        hosted = prepare(cfg, ns)
    except Refused as r:
        error(str(r))
        return r.status
    rc = serve(hosted, ns, cfg, args, stopper, run)
    stopper.leave_start()
    if run["metrics"] is not None:
        run["metrics"].close()
    for _, t in reversed(hosted):
        try:
            t.close()
        except Exception:
            pass
    return rc


def stop_all(hosted, verbose):
    for entry, t in reversed(hosted):
        if t not in _tasks._running:
            continue
        try:
            t.stop_service()
        except ServiceError as e:
            error(f"service '{t.name}': stopping: {e.name} ({e.detail})")
            continue
        if verbose:
            st = t.get_service_status()
            n, k = st["requests"], st["errors"]
            print(f"{t.name}: stopped after {n} request{'' if n == 1 else 's'}, "
                  f"{k} error{'' if k == 1 else 's'}", flush=True)


def stopped_starting(hosted, sig, run):
    started = sum(1 for _, t in hosted if t in _tasks._running)
    if run["metrics"] is not None:
        run["metrics"].close()
        run["metrics"] = None
    stop_all(hosted, False)
    error(f"{signame(sig)} before every service ran: stopped the {started} started")
    return ERR


def serve(hosted, ns, cfg, args, stopper, run):
    for i, (entry, t) in enumerate(hosted):
        prev = hosted[i - 1][1] if i else None
        if stopper.step(entry["name"], prev) != 0:
            return stopped_starting(hosted, stopper.sig, run)
        try:
            t.start_service()
        except ServiceError as e:
            if e.code == _core.EEXIST:
                try:
                    pid = _core.host_status(ns, t.name)["pid"]
                    error(f"service '{t.name}' is already served on this host by pid {pid}: "
                          f"stop it first")
                except ServiceError:
                    error(f"service '{t.name}' is already served on this host: stop it first")
                stop_all(hosted, False)
                return ERR
            error(f"{cfg.path}:{entry['line']}: service '{t.name}': {e.name} ({e.detail})")
            stop_all(hosted, False)
            return CONFIG if e.code in (_core.ECONFIG, _core.EINVAL) else ERR
        print(listening_line(t, entry, ns, cfg), flush=True)
    if stopper.step(None, hosted[-1][1]) != 0:
        return stopped_starting(hosted, stopper.sig, run)
    if args.metrics:
        try:
            run["metrics"] = _core.Metrics(args.metrics, [t._core for _, t in hosted])
        except ValueError as e:
            error(f"--metrics: {e}")
            stop_all(hosted, False)
            return USAGE
        except OSError as e:
            error(f"--metrics {args.metrics}: {e}")
            stop_all(hosted, False)
            return ERR
        print(f"metrics: {run['metrics'].url}", flush=True)
    if stopper.serving() != 0:
        return stopped_starting(hosted, stopper.sig, run)
    n = len(hosted)
    print(f"sagesvc: serving {n} service{'' if n == 1 else 's'} in namespace '{ns}' "
          f"(pid {os.getpid()}); stop with Ctrl-C or SIGTERM", flush=True)
    sig = stopper.wait()
    print(f"sagesvc: {signame(sig)}: stopping {n} service{'' if n == 1 else 's'} "
          f"(answering queued calls first)", flush=True)
    if run["metrics"] is not None:
        run["metrics"].close()
        run["metrics"] = None
    stop_all(hosted, True)
    print("sagesvc: stopped", flush=True)
    return OK
