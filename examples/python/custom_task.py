"""The document's extension interfaces: a custom task overriding
custom_handle_request, and a ServiceMiddleware."""
from sagesvc import (BaseServiceTask, Environment, RejectedError, RuntimeContext,
                     ServiceManager, ServiceMiddleware)


class Service:
    def process(self, request):
        return f"processed {request.method_name}{request.args}"

    def hello(self, name, user=None):
        return f"hello, {name}"


class CustomServiceTask(BaseServiceTask):
    def __init__(self, service_factory, ctx):
        super().__init__(service_factory, ctx)
        # 自定义初始化 / custom initialisation

    def custom_handle_request(self, request):
        # 自定义请求处理逻辑 / custom request handling
        if request.method_name == "process":
            return self.service.process(request)
        return super().custom_handle_request(request)


class AuditMiddleware(ServiceMiddleware):
    def before_call(self, request):
        # 调用前的处理逻辑 / before the call: raise to reject
        if request.kwargs.get("user") == "mallory":
            raise PermissionError("mallory may not call this service")

    def after_call(self, response):
        # 调用后的处理逻辑 / after the call
        print("  audit:", "ok" if response.success else response.error)


env = Environment("demo")
ctx = RuntimeContext("custom", "demo")
task = CustomServiceTask(Service, ctx)
env.register_service("custom", task)
task.start_service()
plain = BaseServiceTask(Service, RuntimeContext("guarded", "demo"), middleware=[AuditMiddleware()])
env.register_service("guarded", plain)
plain.start_service()

with ServiceManager(env) as manager:
    print(manager.call_service_sync("custom", "process", args=(1, 2)))
    print(manager.call_service_sync("custom", "hello", args=("world",)))
    print(manager.call_service_sync("guarded", "hello", args=("alice",)))
    try:
        manager.call_service_sync("guarded", "hello", args=("m",), kwargs={"user": "mallory"})
    except RejectedError as e:
        print("rejected:", e)
task.stop_service()
plain.stop_service()
