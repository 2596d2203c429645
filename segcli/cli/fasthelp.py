"""Keep ``segcli --help`` fast: typer's help renderer imports ``rich.markdown`` (which pulls in
pygments) and ``rich.traceback`` (rich.pretty, attrs) at module level, for markdown help text
and pretty tracebacks that segcli never uses (its help is Rich markup, its errors one line).
Together they cost more than typer and rich themselves.

:func:`defer_unused_rich_modules` puts a stand-in for each in ``sys.modules`` before typer
imports them: the names typer imports (``Markdown``, ``Traceback``) are placeholder classes,
and the first real use of either (building one, a class attribute such as
``Traceback.from_exception``, or any other name of the module) imports the real module and
hands over to it. Nothing changes for a process that had imported them already.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

DEFERRED = {"rich.markdown": ("Markdown",), "rich.traceback": ("Traceback",)}


def _stand_in(module: str, names: tuple[str, ...]) -> types.ModuleType:
    stand_in = types.ModuleType(module, f"{module}, imported on first use (segcli.cli.fasthelp)")

    def load() -> types.ModuleType:
        if sys.modules.get(module) is stand_in:
            del sys.modules[module]
        return importlib.import_module(module)

    class Deferred(type):
        def __getattr__(cls, attr: str) -> Any:
            return getattr(getattr(load(), cls.__name__), attr)

        def __instancecheck__(cls, obj: object) -> bool:
            return isinstance(obj, getattr(load(), cls.__name__))

    def new(cls: type, *args: Any, **kwargs: Any) -> Any:
        return getattr(load(), cls.__name__)(*args, **kwargs)

    for name in names:
        setattr(stand_in, name, Deferred(name, (), {"__new__": new, "__module__": module}))

    def module_getattr(attr: str) -> Any:
        if attr.startswith("__"):  # the import system asks for __spec__ and the like: not a use
            raise AttributeError(attr)
        return getattr(load(), attr)

    stand_in.__getattr__ = module_getattr  # type: ignore[method-assign]  # PEP 562
    return stand_in


def defer_unused_rich_modules() -> None:
    """Install the stand-ins (once; a module already imported is left as it is)."""
    for module, names in DEFERRED.items():
        if module not in sys.modules:
            sys.modules[module] = _stand_in(module, names)
