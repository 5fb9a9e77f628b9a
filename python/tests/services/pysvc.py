"""Services the suite hosts in other processes (python: pysvc:...)."""
import os
import threading
import time


class Echo:
    def __init__(self, prefix=""):
        self.prefix = prefix
        self.lock = threading.Lock()
        self.count = 0

    def echo(self, x):
        return x

    def greet(self, name, punct="!"):
        return f"{self.prefix}{name}{punct}"

    def add(self, a, b):
        return a + b

    def slow(self, seconds):
        time.sleep(seconds)
        return "done"

    def fail(self, text="boom"):
        raise ValueError(text)

    def pid(self):
        return os.getpid()

    def bump(self):
        with self.lock:
            self.count += 1
            return self.count


def make_refusing(limit=None):
    if limit is None:
        raise ValueError("limit is required")
    return Echo()


not_callable = 42
