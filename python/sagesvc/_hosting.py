"""What `python3 -m sagesvc run` and `python3 -m sagesvc replica` share:
exit statuses, finding a service's factory, and making its task."""
import importlib
import os
import signal
import sys

from . import _core
from ._context import RuntimeContext
from ._tasks import BaseServiceTask
from .errors import ServiceError

# The exit statuses of the sagesvc command (cli/common.h), the same here.
OK, ERR, USAGE, NOSERVICE, CONFIG, PLUGIN = 0, 1, 2, 3, 9, 10

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


class Refused(Exception):
    """A step refused: message for stderr, exit status."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


def block_stop_signals():
    """Block the stop signals in this thread (before any thread starts, so that
    every thread, the library's included, inherits the mask); sigwait takes them."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def signame(sig):
    try:
        return signal.Signals(sig).name
    except ValueError:
        return "signal"


def import_factory(spec, where, config_path=None):
    """Find "package.module:callable" (the callable may be dotted: Class.create).
    The configuration file's directory is searched after sys.path's own entries.
    Refused(status PLUGIN) if it cannot be found or is not callable."""
    module_name, _, attr = spec.partition(":")
    if config_path:
        base = os.path.dirname(os.path.abspath(config_path))
        if base not in sys.path:
            sys.path.append(base)
    try:
        obj = importlib.import_module(module_name)
    except Exception as e:
        raise Refused(f"{where}: cannot import '{module_name}' for python: {spec}: "
                      f"{type(e).__name__}: {e}", PLUGIN) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise Refused(f"{where}: module '{module_name}' has no '{attr}' (python: {spec})",
                          PLUGIN) from None
    if not callable(obj):
        raise Refused(f"{where}: python: {spec} is a {type(obj).__name__}, not a callable "
                      f"factory", PLUGIN)
    return obj


def make_task(cfg, entry, ns, where, transport=None, nats=None):
    """The task of a configuration's Python service entry, not started.
    Refused(CONFIG) when its factory refuses its `config:` map or an option is
    invalid."""
    factory = import_factory(entry["python"], where, cfg.path)
    ctx = RuntimeContext(entry["name"], ns, cfg)
    try:
        return BaseServiceTask(factory, ctx, transport=transport or entry["transport"],
                               nats=nats)
    except ServiceError as e:
        raise Refused(f"{where}: service '{entry['name']}': {e.detail}",
                      CONFIG if e.code in (_core.ECONFIG, _core.EINVAL) else ERR) from None
    except Exception as e:
        raise Refused(f"{where}: service '{entry['name']}': its factory {entry['python']} "
                      f"refused its config: {type(e).__name__}: {e}", CONFIG) from None


def error(message):
    print(f"sagesvc: {message}", file=sys.stderr, flush=True)
