"""One registry primitive: names mapped to objects (op factories, search spaces, losses,
engines ...), as timm's model registry and BasicSR's ``ARCH_REGISTRY`` do.

Every choice a config key or a command-line option offers is one :class:`Registry`, owned
by the module that implements the choice; config validation asks that registry, so a
name registered from outside the package (a plugin, a test) is accepted everywhere::

    OPS = Registry("operation", key="arch.primitives")

    @OPS.register("simple_3x3")
    def simple_3x3(**kw): ...

    OPS.register("zero", make_zero)  # the call form
    OPS.get("simple_3x33")  # QuantNASError: arch.primitives: unknown operation
                            # 'simple_3x33'; expected one of [...] (did you mean simple_3x3?)

Names keep their registration order (error messages list them in that order).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar, overload

from quantnas.errors import QuantNASError, shown

T = TypeVar("T")

#: Registries with more names than this list only the close matches in their errors.
MAX_LISTED = 16


class Registry(Generic[T]):
    """Names mapped to objects of one kind, with one-line errors for unknown names.

    Args:
        kind: What the objects are, for messages (``"operation"``, ``"search space"``).
        key: The config key or option whose value names an object (``"arch.space"``);
            lookups name it in their errors unless the caller names another place.

    """

    def __init__(self, kind: str, *, key: str = "") -> None:
        self.kind = kind
        self.key = key
        self._items: dict[str, T] = {}

    @classmethod
    def of(cls, kind: str, items: Mapping[str, T], *, key: str = "") -> Registry[T]:
        """A registry holding ``items`` (in their order), e.g. a vocabulary ``{name: doc}``."""
        reg: Registry[T] = cls(kind, key=key)
        for name, obj in items.items():
            reg.register(name, obj)
        return reg

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T) -> T: ...

    def register(self, name: str, obj: T | None = None) -> T | Callable[[T], T]:
        """Register ``obj`` under ``name``; without ``obj``, a decorator that registers
        what it decorates (and returns it unchanged).

        Raises:
            QuantNASError: ``name`` is not a non-empty string or is registered already.

        """
        if not isinstance(name, str) or not name:
            raise QuantNASError(f"{self.kind} name must be a non-empty string, got {shown(name)}")
        if name in self._items:
            raise QuantNASError(f"{self.kind} {name!r} registered twice")
        if obj is None:

            def decorate(target: T) -> T:
                return self.register(name, target)

            return decorate
        self._items[name] = obj
        return obj

    def unregister(self, name: str) -> T:
        """Remove ``name`` and return its object (plugins and tests clean up with it)."""
        self.check(name)
        return self._items.pop(name)  # type: ignore[arg-type]

    def get(self, name: object, *, where: str | None = None) -> T:
        """The object registered as ``name``.

        Args:
            name: The name looked up.
            where: The key or place named in the error (default: the registry's ``key``).

        Raises:
            QuantNASError: One line naming ``where``, the unknown name, the registered
                names (short registries) and the close matches.

        """
        self.check(name, where=where)
        return self._items[name]  # type: ignore[index]

    def check(self, name: object, *, where: str | None = None) -> None:
        """Raise the one-line error of :meth:`get` if ``name`` is not registered."""
        if name not in self:
            raise QuantNASError(self.unknown(name, where=where))

    def unknown(self, name: object, *, where: str | None = None) -> str:
        """The message for an unknown ``name``: ``where: unknown kind 'name'; expected one
        of [...] (did you mean ...?)``.
        """
        place = where if where is not None else self.key
        prefix = f"{place}: " if place else ""
        listed = f"; expected one of {list(self._items)}" if len(self) <= MAX_LISTED else ""
        return f"{prefix}unknown {self.kind} {shown(name)}{listed}{self.hint(name)}"

    def hint(self, name: object) -> str:
        """`` (did you mean a, b?)`` for the registered names close to ``name``, else ``""``."""
        if not isinstance(name, str):
            return ""
        close = difflib.get_close_matches(name[:200], list(self._items), n=3)
        return f" (did you mean {', '.join(close)}?)" if close else ""

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order."""
        return tuple(self._items)

    def items(self) -> tuple[tuple[str, T], ...]:
        """``(name, object)`` pairs, in registration order."""
        return tuple(self._items.items())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, key={self.key!r}, names={list(self._items)})"
