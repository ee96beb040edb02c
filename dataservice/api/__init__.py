"""HTTP: one blueprint per resource, plus the probes, the change feed, batches, /metrics and /docs.

Every module of this package that defines `blp` is served: create_app registers them all, so a
new resource adds its module and edits no list.
"""

import importlib
import pkgutil

from . import parsing


def blueprints() -> list:
    """The `blp` of every module here, in module-name order (the OpenAPI document's order)."""
    modules = sorted(info.name for info in pkgutil.iter_modules(__path__))
    found = [
        getattr(importlib.import_module(f"{__name__}.{name}"), "blp", None) for name in modules
    ]
    return [blueprint for blueprint in found if blueprint is not None]


__all__ = ["blueprints", "parsing"]
