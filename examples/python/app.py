"""A Python service for services.yaml (python: app:Counter), hosted by
`python3 -m sagesvc run examples/python/services.yaml`."""
import threading


class Counter:
    def __init__(self, start=0):
        self.lock = threading.Lock()
        self.value = start

    def add(self, n=1):
        with self.lock:
            self.value += n
            return self.value

    def get(self):
        return self.value
