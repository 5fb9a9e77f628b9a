"""The exceptions of sagesvc: one class per class of error.

Every failure of a call raises a :class:`ServiceError` subclass carrying
``code`` (the sagesvc error code, an int that travels on the wire), ``name``
(its symbol, ``"ETIMEDOUT"``) and ``detail`` (the message, the service's own
when the service failed). A service written in Python may raise them too:
the caller then gets the same class and message.
"""
import builtins

from . import _core

__all__ = [
    "ServiceError", "NoSuchServiceError", "NoSuchMethodError", "BadArgumentsError",
    "HandlerError", "RejectedError", "TimeoutError", "UnavailableError", "ConfigError",
]


class ServiceError(Exception):
    """A call or an operation of sagesvc failed; base of every sagesvc error."""

    code = _core.EHANDLER

    def __init__(self, detail=None, *, code=None):
        if code is None:
            code = type(self).code
        if detail is None:
            detail = _core.strerror(code)
        super().__init__(str(detail))
        self.code = int(code)
        self.detail = str(detail)

    @property
    def name(self):
        """The error's symbol, such as "ENOSERVICE"."""
        return _core.errname(self.code)

    def __str__(self):
        return self.detail

    def __reduce__(self):
        return (_rebuild, (type(self), self.detail, self.code))


def _rebuild(cls, detail, code):
    return cls(detail, code=code)


class NoSuchServiceError(ServiceError):
    """No service of that name is known (in the environment, on this host, in the cluster)."""
    code = _core.ENOSERVICE


class NoSuchMethodError(ServiceError):
    """The service has no method of that name."""
    code = _core.ENOMETHOD


class BadArgumentsError(ServiceError):
    """The service refused the arguments (wrong number, wrong type)."""
    code = _core.EBADARGS


class HandlerError(ServiceError):
    """The service's method failed; for a Python service, detail is "Type: message"."""
    code = _core.EHANDLER


class RejectedError(ServiceError):
    """A middleware of the service refused the call."""
    code = _core.EREJECTED


class TimeoutError(ServiceError, builtins.TimeoutError):
    """No answer within the call's timeout (also a built-in TimeoutError)."""
    code = _core.ETIMEDOUT


class UnavailableError(ServiceError):
    """The service is stopping, its process died, its queue stayed full, the manager is
    closed, or NATS cannot be reached (code says which)."""
    code = _core.EUNAVAILABLE


class ConfigError(ServiceError, ValueError):
    """A configuration (dict, file, or task options) is invalid; detail names where."""
    code = _core.ECONFIG


#: the class raised for each error code (others raise ServiceError itself)
BY_CODE = {
    _core.ENOSERVICE: NoSuchServiceError,
    _core.ENOMETHOD: NoSuchMethodError,
    _core.EBADARGS: BadArgumentsError,
    _core.EHANDLER: HandlerError,
    _core.EREJECTED: RejectedError,
    _core.ETIMEDOUT: TimeoutError,
    _core.EUNAVAILABLE: UnavailableError,
    _core.EFULL: UnavailableError,
    _core.ECLOSED: UnavailableError,
    _core.ECONNECT: UnavailableError,
    _core.ECONFIG: ConfigError,
    _core.EPLUGIN: ConfigError,
}
