"""Service tasks: a Python object served as a sagesvc service."""
import inspect
import threading
import weakref

from . import _core
from ._context import RuntimeContext
from .errors import ConfigError

__all__ = ["BaseServiceTask", "LocalServiceTask", "RayServiceTask", "native_echo_task"]

_TRANSPORTS = ("local", "shm", "nats")

# Running tasks stay alive until stopped; every task is stopped at exit.
_lock = threading.Lock()
_running = set()
_all = weakref.WeakSet()


def public_methods(obj):
    """The names of obj's public methods: callables whose name does not start
    with '_' (properties and other data attributes are left alone)."""
    names = []
    for name in dir(obj):
        if name.startswith("_"):
            continue
        try:
            static = inspect.getattr_static(obj, name)
        except AttributeError:
            continue
        if isinstance(static, (property, type)) or inspect.isdatadescriptor(static):
            continue
        try:
            value = getattr(obj, name)
        except Exception:
            continue
        if callable(value) and not isinstance(value, type):
            names.append(name)
    return names


def make_service(factory, params):
    """Call the service factory: with the `config:` map as keyword arguments,
    or with none."""
    if not callable(factory):
        raise TypeError(f"service_factory must be callable (a class works), "
                        f"got {type(factory).__name__}")
    if params is None:
        return factory()
    if isinstance(params, dict):
        return factory(**params)
    return factory(params)


def _seconds_ms(seconds):
    return None if seconds is None else int(round(float(seconds) * 1000))


class BaseServiceTask:
    """One running instance of a service: the object service_factory returns,
    its public methods served on a transport.

    Subclass it and override custom_handle_request(request) to handle requests
    your own way (super().custom_handle_request(request) is the default:
    middleware, then the method). Keyword options override the context's
    configuration: transport ("local", "shm" or "nats"), middleware (a list of
    ServiceMiddleware objects and built-in names "logging", "deadline"),
    max_workers, queue_timeout (seconds), request_queue_size, nats (server
    URLs, for transport nats), durable, idempotent (method names).
    """

    default_transport = "local"

    def __init__(self, service_factory, ctx, *, transport=None, middleware=None,
                 max_workers=None, queue_timeout=None, request_queue_size=None,
                 nats=None, durable=None, idempotent=()):
        if isinstance(ctx, str):
            ctx = RuntimeContext(ctx)
        if not isinstance(ctx, RuntimeContext):
            raise TypeError(f"ctx: expected a RuntimeContext, got {type(ctx).__name__}")
        self.ctx = ctx
        self.name = ctx.name
        entry = ctx.service_entry()
        cfg = ctx.config
        params = cfg.service_params(entry["index"]) if entry is not None else None
        self.service = make_service(service_factory, params)
        local = entry["local"] if entry is not None else (cfg.local if cfg is not None else {})
        if transport is None:
            transport = entry["transport"] if entry is not None else self.default_transport
        if transport not in _TRANSPORTS:
            raise ConfigError(f"service '{self.name}': unknown transport {transport!r} "
                              f"(local, shm or nats)")
        self.transport = transport
        chain = list(entry["middleware"]) if entry is not None else []
        chain += list(middleware or ())
        if durable is None:
            durable = bool(entry["cluster"]["durable"]) if entry is not None else False
        natsobj = None
        if transport == "nats":
            if isinstance(nats, _core.Nats):
                natsobj = nats
            else:
                natsobj = _core.Nats(config=cfg, servers=nats)
        handler = None
        if type(self).custom_handle_request is not BaseServiceTask.custom_handle_request:
            handler = self.custom_handle_request
        methods = public_methods(self.service)
        self._core = _core.Task(
            self.service, self.name, namespace=ctx.namespace, transport=transport,
            methods=methods,
            max_workers=int(max_workers if max_workers is not None else local.get("max_workers", 0)),
            queue_timeout_ms=_seconds_ms(queue_timeout) if queue_timeout is not None
            else local.get("queue_timeout_ms", -1),
            request_queue_size=int(request_queue_size if request_queue_size is not None
                                   else local.get("request_queue_size", 0)),
            middleware=chain, handler=handler, idempotent=list(idempotent), nats=natsobj,
            durable=bool(durable))
        _all.add(self)

    # -- the document's API -------------------------------------------------

    def start_service(self):
        """Start serving: create the queue, register the name, start the threads."""
        with _lock:
            _running.add(self)
        try:
            self._core.start()
        except BaseException:
            with _lock:
                _running.discard(self)
            raise

    def stop_service(self):
        """Stop: refuse new calls, answer every call already taken, stop the threads."""
        try:
            self._core.stop()
        finally:
            with _lock:
                _running.discard(self)

    def get_service_status(self):
        """The task's figures: a dict with the keys of `sagesvc status --json`."""
        return self._core.status()

    def custom_handle_request(self, request):
        """Handle one request (a ServiceRequest); return the result (or a
        ServiceResponse), raise to fail. The default runs the middleware, then
        the method named by the request, as the request arrived."""
        return self._core.default_handle()

    # -- extras -------------------------------------------------------------

    @property
    def methods(self):
        """The names of the methods served."""
        return self._core.methods

    def close(self):
        """Stop if needed and free the task."""
        with _lock:
            _running.discard(self)
        self._core.close()

    def __enter__(self):
        self.start_service()
        return self

    def __exit__(self, *exc):
        self.stop_service()

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r} transport={self.transport}>"


class LocalServiceTask(BaseServiceTask):
    """A service task in this process (transport "local" by default: callers
    in this process reach it through an Environment). transport="shm" serves
    the same service to every process of this user on this machine, and
    transport="nats" to other machines."""
    default_transport = "local"


class RayServiceTask(BaseServiceTask):
    """The distributed service task: one replica served over NATS (the
    document's Ray actor); replicas of the same name share a queue group."""
    default_transport = "nats"


class _NativeEcho:
    pass


def native_echo_task(name, namespace=None, transport="shm", nats=None, max_workers=None):
    """A task serving a C echo service (method "echo" answers its first argument,
    no Python code runs): a C peer for benchmarks and tests."""
    natsobj = _core.Nats(servers=nats) if transport == "nats" else None
    task = BaseServiceTask.__new__(BaseServiceTask)
    task.ctx = RuntimeContext(name, namespace)
    task.name = name
    task.transport = transport
    task.service = _NativeEcho()
    task._core = _core.Task(task.service, name, namespace=namespace, transport=transport,
                            native="echo", nats=natsobj,
                            max_workers=int(max_workers or 0))
    _all.add(task)
    return task


def shutdown_tasks():
    """Stop every running task (at exit)."""
    with _lock:
        running = list(_running)
        _running.clear()
    for t in running:
        try:
            t._core.close()
        except Exception:
            pass
