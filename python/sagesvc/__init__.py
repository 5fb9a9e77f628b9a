"""sagesvc: services and calls at C speed, with the reference document's API.

    from sagesvc import (Environment, RuntimeContext, LocalServiceTask,
                         ServiceManager)

    env = Environment("demo")
    task = LocalServiceTask(MyService, RuntimeContext("my_service", "demo"))
    env.register_service("my_service", task)
    task.start_service()
    with ServiceManager(env) as manager:
        print(manager.call_service_sync("my_service", "process_data", args=(data,)))

docs/PYTHON.md describes the whole API, threads and the GIL, errors,
hosting (python3 -m sagesvc run FILE) and speed.
"""
import atexit as _atexit

from . import _core
from ._context import RuntimeContext, load_config
from ._manager import (CallFuture, Environment, ServiceManager, ServiceQueue,
                       log_exception as _log_exception, shutdown_managers as _shutdown_managers)
from ._messages import ServiceMiddleware, ServiceRequest, ServiceResponse
from ._tasks import (BaseServiceTask, LocalServiceTask, RayServiceTask, native_echo_task,
                     shutdown_tasks as _shutdown_tasks)
from .errors import (BadArgumentsError, ConfigError, HandlerError, NoSuchMethodError,
                     NoSuchServiceError, RejectedError, ServiceError, TimeoutError,
                     UnavailableError)
from . import errors as _errors

__version__ = _core.version

__all__ = [
    "Environment", "RuntimeContext", "LocalServiceTask", "BaseServiceTask", "RayServiceTask",
    "ServiceManager", "CallFuture", "ServiceQueue", "ServiceRequest", "ServiceResponse",
    "ServiceMiddleware", "ServiceError", "NoSuchServiceError", "NoSuchMethodError",
    "BadArgumentsError", "HandlerError", "RejectedError", "TimeoutError", "UnavailableError",
    "ConfigError", "load_config", "native_echo_task",
]

_core._register({
    "ServiceError": ServiceError,
    "ServiceRequest": ServiceRequest,
    "ServiceResponse": ServiceResponse,
    "CallFuture": CallFuture,
    "log_hook": _log_exception,
    "errors": dict(_errors.BY_CODE),
})


def _shutdown():
    # managers first (pending futures complete), then the tasks (a drain)
    _shutdown_managers()
    _shutdown_tasks()


_atexit.register(_shutdown)
