"""The reference document's message types and middleware base class."""
from dataclasses import dataclass
from typing import Any

__all__ = ["ServiceRequest", "ServiceResponse", "ServiceMiddleware"]


@dataclass
class ServiceRequest:
    """One call as a service task sees it (custom_handle_request, middleware).

    request_id is unique per caller (the same on every retry of an idempotent
    call); response_queue_name names the caller's reply channel.
    """
    request_id: str
    service_name: str
    method_name: str
    args: tuple
    kwargs: dict
    response_queue_name: str


@dataclass
class ServiceResponse:
    """An answer: success with result, or failure with error (a message)."""
    success: bool
    result: Any = None
    error: str = None


class ServiceMiddleware:
    """Hooks around every call of a task, in list order (``middleware=[...]``).

    before_call(request) runs before the method: raise to reject the call (the
    caller gets a RejectedError with the exception's message, or the class of a
    sagesvc.ServiceError raised). after_call(response) runs after it, in reverse
    order: return a ServiceResponse (or change the one given) to rewrite a
    successful answer. Hooks run on the thread serving the call, with the GIL.
    A hook left as this class's no-op costs nothing.
    """

    def before_call(self, request):
        pass

    def after_call(self, response):
        pass
