"""The environment, the service manager and its futures."""
import asyncio
import concurrent.futures
import logging
import threading
import weakref
from dataclasses import dataclass

from . import _core
from ._context import load_config

__all__ = ["Environment", "ServiceManager", "CallFuture", "ServiceQueue"]

_managers = weakref.WeakSet()
_lock = threading.Lock()


class CallFuture(_core.FutureCore, concurrent.futures.Future):
    """The future of an asynchronous call: a concurrent.futures.Future
    (result(timeout), done(), cancel(), any number of add_done_callback;
    concurrent.futures.wait and as_completed work), also awaitable from
    asyncio code. cancel() cancels the call itself: its answer, if it
    comes, is dropped. Its methods are implemented in C (sagesvc._core):
    done-callbacks run on the thread that resolves the future (one that
    calls or waits, else the manager's resolver thread) or on the thread
    that cancels it."""

    def __await__(self):
        return asyncio.wrap_future(self).__await__()


class Environment(_core.Env):
    """The in-process registry of services: register_service(name, task)
    makes a task reachable by name for managers built on this environment."""

    def __init__(self, namespace=None):
        super().__init__(namespace)
        self._services = {}

    def register_service(self, service_name, task):
        """Map service_name to task (a service task of this process)."""
        core = getattr(task, "_core", task)
        self.register(service_name, core)
        self._services[service_name] = task

    def unregister_service(self, service_name):
        self.unregister(service_name)
        self._services.pop(service_name, None)

    def get_service(self, service_name):
        """The task registered as service_name, or None."""
        return self._services.get(service_name)

    def list_services(self):
        return sorted(self._services)


@dataclass(frozen=True)
class ServiceQueue:
    """Where a service is reached: its transport ("local", "shm", "nats"), the
    address of its request queue (a /dev/shm name, a NATS subject) and the
    serving process (0 if unknown)."""
    service_name: str
    transport: str
    address: str
    pid: int


def _nats_for(nats, cfg):
    if nats is None or nats is False:
        if cfg is None:
            return None
        uses = cfg.transport == "nats" or any(s["transport"] == "nats" for s in cfg.services())
        return _core.Nats(config=cfg) if uses else None
    if nats is True:
        return _core.Nats(config=cfg)
    if isinstance(nats, _core.Nats):
        return nats
    return _core.Nats(config=cfg, servers=nats)


class ServiceManager(_core.Manager):
    """Calls services by name, synchronously or asynchronously: those of its
    environment (this process), those of this host (shm), and with nats= (or
    a configuration whose services use NATS) those of the cluster.

    timeout is the default call timeout in seconds (None: the configuration's
    service.call.timeout, else 30; math.inf: none). Thread-safe; a context
    manager (close() on exit). Calls release the GIL while they wait.
    """

    def __init__(self, environment=None, namespace=None, timeout=30.0, *, config=None,
                 nats=None, retries=None):
        cfg = load_config(config)
        super().__init__(env=environment, namespace=namespace, timeout=timeout, config=cfg,
                         nats=_nats_for(nats, cfg), retries=-1 if retries is None else retries)
        self.environment = environment
        _managers.add(self)

    def get_service_queue(self, service_name):
        """Find service_name and tell where it is reached (a ServiceQueue);
        NoSuchServiceError if it is not found."""
        where = self.lookup(service_name)
        return ServiceQueue(service_name, where["transport"], where["address"], where["pid"])

    async def acall_service(self, service_name, method, args=(), kwargs=None, timeout=None, **kw):
        """call_service_async for asyncio code: await it for the result."""
        return await asyncio.wrap_future(
            self.call_service_async(service_name, method, args, kwargs, timeout, **kw))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self.closed else f"namespace={self.namespace!r}"
        return f"<ServiceManager {state}>"


def shutdown_managers():
    for m in list(_managers):
        try:
            m.close()
        except Exception:
            pass


def log_exception(service, method, exc):
    """Where a Python service's failures go: the logger sagesvc.service.NAME,
    traceback included."""
    logging.getLogger(f"sagesvc.service.{service}").error(
        "%s.%s raised %s", service, method, type(exc).__name__, exc_info=exc)
