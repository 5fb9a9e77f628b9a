"""The reference document's examples, with only the import changed:
a LocalServiceTask registered in an Environment, called sync and async."""
from sagesvc import Environment, LocalServiceTask, RuntimeContext, ServiceManager


class MyService:
    def process_data(self, data):
        return {"items": len(data), "sum": sum(data)}


def service_factory():
    return MyService()


environment = Environment("demo")
ctx = runtime_context = RuntimeContext("my_service", "demo")

# 创建本地服务任务 / create the local service task
service_task = LocalServiceTask(service_factory, runtime_context)
service_name = "my_service"
environment.register_service(service_name, service_task)
# 启动服务 / start it
service_task.start_service()

service_manager = ServiceManager(environment)
data = [1, 2, 3, 4]
# 同步调用服务 / a synchronous call
response = service_manager.call_service_sync(
    service_name="my_service",
    method="process_data",
    args=(data,),
    kwargs={"timeout": 30}
)
print("sync:", response)

# 异步调用服务 / an asynchronous call
future = service_manager.call_service_async(
    service_name="my_service",
    method="process_data",
    args=(data,)
)
result = future.result()
print("async:", result)

# 服务发现 / discovery
service_queue = service_manager.get_service_queue(service_name)
print("queue:", service_queue)

# 检查服务状态 / status
status = service_task.get_service_status()
print("status:", status["state"], status["requests"], "requests")

service_manager.close()
service_task.stop_service()
