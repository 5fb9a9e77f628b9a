"""python3 -m sagesvc replica: one replica of a deployed Python service,
started by `sagesvc host`. Takes exactly the arguments of `sagesvc replica`
(cli/cmd_replica.c) and keeps its contract: --ready-fd gets 'R' once
serving, --host-pid makes it exit at once when the host is not its parent
and stop (as on SIGTERM) when the host dies, exit statuses alike."""
import argparse
import os
import signal
import sys

from . import _core
from ._hosting import (CONFIG, ERR, NOSERVICE, OK, PLUGIN, USAGE, Refused, STOP_SIGNALS,
                       block_stop_signals, make_task)
from .errors import ServiceError

HELP = """\
NAME
    python3 -m sagesvc replica - serve one replica of a deployed Python service
    (started by a host)

SYNOPSIS
    python3 -m sagesvc replica --ns NS --service NAME [--nats URL[,URL...]]
                    [--creds FILE] [--tls-ca FILE] [--tls-cert FILE --tls-key FILE]
                    [--nats-replicas N] [--ready-fd FD] [--host-pid PID]

DESCRIPTION
    `sagesvc host` runs this command for every replica of a Python service
    (`python: package.module:factory`) placed on its node, as it runs
    `sagesvc replica` for C plugins; the arguments and the contract are the
    same. It reads the deployment of service NAME in namespace NS from the
    bucket sagesvc_deploy, parses the configuration stored in it, imports the
    factory (from sys.path, then the deploying file's directory) and serves the
    service over NATS: subject sage.NS.svc.NAME in queue group q (or its
    JetStream work queue when the service says delivery: durable), with the
    service's max_workers, queue_timeout, request_queue_size, middleware and
    config, until SIGTERM, SIGINT or SIGHUP.

OPTIONS
    --ns NS, --service NAME
        The deployed service to serve (both required).
    --nats URL[,URL...]
        The NATS servers, comma-separated. Default: the configuration's
        nats.servers, else nats://127.0.0.1:4222.
    --creds FILE, --tls-ca FILE, --tls-cert FILE, --tls-key FILE
        NATS credentials file and TLS files, overriding the configuration's.
        User, password and token come from the environment variables
        SAGESVC_NATS_USER, SAGESVC_NATS_PASSWORD, SAGESVC_NATS_TOKEN.
    --nats-replicas N
        Copies (1..5) of the JetStream buckets and streams it creates (the
        host passes its nats.replicas). Default: min(3, servers).
    --ready-fd FD
        Write 'R' to descriptor FD once serving, then close it.
    --host-pid PID
        The supervising host's pid: exit at once if it is not our parent,
        and stop (as on SIGTERM) when it dies.
    -h, --help
        Print this help and exit.

SIGNALS
    SIGTERM, SIGINT, SIGHUP
        Stop taking calls, answer those received, exit with status 0.

EXIT STATUS
    0   stopped by a signal
    1   cannot connect, serve or read the deployment; the host is gone
    2   usage
    3   the service is not deployed (ENOSERVICE)
    9   the stored configuration is invalid or lacks the service, an unknown
        middleware, or the factory refused its config: map
    10  the factory cannot be imported or used, or the service is a C plugin
"""


def _say(msg):
    print(f"sagesvc replica: {msg}", file=sys.stderr, flush=True)


def parse(argv):
    class Parser(argparse.ArgumentParser):
        def error(self, message):
            print(f"sagesvc replica: {message} (see python3 -m sagesvc replica --help)",
                  file=sys.stderr)
            sys.exit(USAGE)

    p = Parser(prog="python3 -m sagesvc replica", add_help=False, allow_abbrev=False)
    p.add_argument("--ns")
    p.add_argument("--service")
    p.add_argument("--nats")
    p.add_argument("--creds")
    p.add_argument("--tls-ca")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--nats-replicas")
    p.add_argument("--ready-fd")
    p.add_argument("--host-pid")
    p.add_argument("-h", "--help", action="store_true")
    a = p.parse_args(argv)
    if a.help:
        sys.stdout.write(HELP)
        sys.exit(OK)
    for opt, val, lo, hi, what in (("--ready-fd", a.ready_fd, 0, 1 << 20, "a descriptor number"),
                                   ("--host-pid", a.host_pid, 1, 1 << 30, "a pid"),
                                   ("--nats-replicas", a.nats_replicas, 1, 5,
                                    "a count of copies, 1..5")):
        if val is not None:
            if not val.isdigit() or not lo <= int(val) <= hi:
                p.error(f"{opt} needs {what}")
    if a.ns is None or a.service is None:
        p.error("--ns and --service are required")
    if not (0 < len(a.ns) <= 64 and all(c.isascii() and (c.isalnum() or c in "_-")
                                        for c in a.ns)):
        p.error(f"--ns: '{a.ns}' is not a namespace (1..64 of [A-Za-z0-9_-])")
    return a


def _nats(a, cfg=None):
    kw = {"reconnect_max": -1, "reconnect_wait_ms": 1000}
    if a.nats_replicas is not None:
        kw["replicas"] = int(a.nats_replicas)
    if a.nats is not None:
        if not [u for u in a.nats.split(",") if u]:
            raise Refused(f"--nats: no server URL in '{a.nats}'", USAGE)
        kw["servers"] = a.nats
    for key, val in (("creds", a.creds), ("tls_ca", a.tls_ca)):
        if val:
            kw[key] = val
    if a.tls_cert:
        kw["tls_cert"] = a.tls_cert
        kw["tls_key"] = a.tls_key or ""
    user = os.environ.get("SAGESVC_NATS_USER")
    if user:
        kw["user"] = user
        kw["password"] = os.environ.get("SAGESVC_NATS_PASSWORD", "")
        kw["token"] = None
    token = os.environ.get("SAGESVC_NATS_TOKEN")
    if token:
        kw["token"] = token
        kw["user"] = kw["password"] = None
    return _core.Nats(config=cfg, **kw)


def main(argv):
    a = parse(argv)
    block_stop_signals()  # before any thread: all inherit it
    if a.host_pid is not None:
        _core.set_pdeathsig(signal.SIGTERM)
        if os.getppid() != int(a.host_pid):
            _say(f"host {a.host_pid} is gone: not starting")
            return ERR
    try:
        nats = _nats(a)
    except Refused as r:
        _say(str(r))
        return r.status
    try:
        dep = _core.deployment(nats, a.ns, a.service)
    except ServiceError as e:
        _say(f"replica of {a.ns}.{a.service}: reading its deployment: {e.name} ({e.detail})")
        return NOSERVICE if e.code == _core.ENOSERVICE else ERR
    try:
        cfg = _core.Config.parse(dep["config_yaml"], dep["config_path"] or None)
    except ServiceError as e:
        _say(f"replica of {a.ns}.{a.service}: the deployed configuration: {e.detail}")
        return CONFIG
    entry = next((e for e in cfg.services() if e["name"] == a.service), None)
    if entry is None:
        _say(f"the deployed configuration has no service '{a.service}'")
        return CONFIG
    if entry["python"] is None:
        _say(f"service '{a.service}' is a C plugin ({entry['plugin']}): `sagesvc replica` "
             f"serves it")
        return PLUGIN
    try:
        task = make_task(cfg, entry, a.ns, f"replica of {a.ns}.{a.service}", transport="nats",
                         nats=_nats(a, cfg))
    except Refused as r:
        _say(str(r))
        return r.status
    try:
        task.start_service()
    except ServiceError as e:
        _say(f"replica of {a.ns}.{a.service} cannot serve: {e.name} ({e.detail})")
        return CONFIG if e.code in (_core.ECONFIG, _core.EINVAL) else ERR
    if a.ready_fd is not None and int(a.ready_fd) > 0:
        try:
            os.write(int(a.ready_fd), b"R")
            os.close(int(a.ready_fd))
        except OSError as e:
            _say(f"cannot tell the host: {e.strerror}")
    signal.sigwait(STOP_SIGNALS)
    try:
        task.stop_service()
    except ServiceError as e:
        _say(f"replica of {a.ns}.{a.service}: stopping: {e.name} ({e.detail})")
    task.close()
    return OK
