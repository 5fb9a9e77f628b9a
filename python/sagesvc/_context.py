"""Configurations and the runtime context a task is created with."""
import json
import os
from collections.abc import Mapping

from . import _core
from .errors import ConfigError

__all__ = ["RuntimeContext", "load_config"]


def load_config(config):
    """Turn a configuration given as None, a dict, a file path or a loaded
    Config into a validated _core.Config (or None). The YAML keys are those
    of services.yaml (service.local.*, service.cluster.* alias service.ray.*,
    service.call.*, nats, services); errors raise ConfigError naming the key.
    """
    if config is None or isinstance(config, _core.Config):
        return config
    if isinstance(config, Mapping):
        try:
            text = json.dumps(config, indent=1, allow_nan=True)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"configuration dict: {e}") from None
        return _core.Config.parse(text, "<dict>")
    if isinstance(config, (str, bytes, os.PathLike)):
        return _core.Config.load(config)
    raise TypeError(f"config: expected a dict, a file path or None, got {type(config).__name__}")


class RuntimeContext:
    """What a task is created with: its service name, namespace and configuration.

    config is a dict or a YAML file path with the keys of services.yaml. When it
    lists a service of this name under ``services``, that entry's settings apply
    (service.local merged with the entry's own, its middleware, its transport
    and its ``config:`` map, given to the factory as keyword arguments).
    """

    def __init__(self, name, namespace=None, config=None):
        if not isinstance(name, str) or not name:
            raise TypeError("RuntimeContext: name must be a non-empty str")
        self.name = name
        self.config = load_config(config)
        if namespace is None and self.config is not None:
            namespace = self.config.namespace
        self.namespace = namespace

    def service_entry(self):
        """The configuration's entry for this service (a dict), or None."""
        if self.config is None:
            return None
        for entry in self.config.services():
            if entry["name"] == self.name:
                return entry
        return None

    def __repr__(self):
        return f"RuntimeContext(name={self.name!r}, namespace={self.namespace!r})"
