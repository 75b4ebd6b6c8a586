"""One way to make a component: a registry per kind, filled by a decorator in the file that
defines each one (as timm registers its models).

    BACKBONES = Registry("backbone", "model.network")

    @BACKBONES.register("my_net")
    class MyNet(KeypointNet): ...

Configs, checkpoints and export files name components; the name is looked up here, so a file a
user passes in can only choose among what fkp (or the user's own imported code) registered,
never name a function to call. Kinds: backbones and heads (`fkp.models`), codecs
(`fkp.models.codecs`), data formats (`fkp.data.formats`), detectors (`fkp.runtime.detect`),
transforms (`fkp.data.transforms`).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from fkp.errors import FkpError

T = TypeVar("T")


class Registry(Generic[T]):
    """Components of one kind by name. kind: what they are ("backbone"); option: the setting
    that names one, for messages ("model.network"); package: where they are defined (every
    module in it is imported the first time a name is not yet registered, or the names are
    listed, so a new file there is all it takes; a name already registered costs no import,
    so reading a CSV never loads the training modules beside its reader)."""

    def __init__(self, kind: str, option: str, package: str | None = None) -> None:
        self.kind, self.option, self.package = kind, option, package
        self._items: dict[str, T] = {}
        self._discovered = package is None

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        root = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(root.__path__, f"{self.package}."):
            if not module.name.rsplit(".", 1)[1].startswith("_"):
                importlib.import_module(module.name)

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@REGISTRY.register("name")` on a class or factory function."""

        def add(item: T) -> T:
            if name in self._items and self._items[name] is not item:
                raise FkpError(f"{self.kind} {name!r} is registered twice; rename one of them.")
            self._items[name] = item
            return item

        return add

    def get(self, name: object) -> T:
        """The component called `name`; anything else is one line naming the choices."""
        if not isinstance(name, str) or name not in self:
            raise FkpError(
                f"{self.option}={str(name)[:100]} is unknown; use one of {', '.join(self)}."
            )
        return self._items[name]

    def build(self, name: object, *args: Any, **settings: Any) -> Any:
        """`get(name)(*args, **settings)`, with settings its signature does not take refused in
        one line that lists the ones it does."""
        factory: Any = self.get(name)
        check_settings(factory, settings, f"{self.option}={name}", skip=len(args))
        return factory(*args, **settings)

    def __contains__(self, name: object) -> bool:
        if name not in self._items:
            self._discover()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        self._discover()
        return iter(sorted(self._items))

    def __len__(self) -> int:
        self._discover()
        return len(self._items)


def accepted(factory: Callable, skip: int = 0) -> list[str] | None:
    """The keyword settings a class or function takes (after `skip` positional ones), or None
    when it takes any (**kwargs)."""
    params = list(inspect.signature(factory).parameters.values())[skip:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL]


def check_settings(factory: Callable, settings: Mapping[str, Any], where: str,
                   skip: int = 0) -> None:  # fmt: skip
    """One FkpError if settings holds names the factory's signature does not take."""
    names = accepted(factory, skip)
    unknown = [k for k in settings if names is not None and k not in names]
    if unknown:
        takes = ", ".join(names or []) or "no settings"
        raise FkpError(f"{where}: it takes no setting {', '.join(unknown)}; it takes {takes}.")
