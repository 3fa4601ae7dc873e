"""Plug-ins by name: what the configuration may name, and the clear errors when it names something else.

>>> kinds: Registry[object] = Registry("widget", "PERSO_WIDGETS")
>>> class Knob:
...     name = "knob"
>>> kinds.register(Knob) is Knob, kinds.lookup("knob") is Knob
(True, True)
>>> kinds.lookup("dial")
Traceback (most recent call last):
ValueError: unknown widget 'dial' in PERSO_WIDGETS; registered: knob
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")
C = TypeVar("C", bound=type)


class Registry(dict[str, type[T]], Generic[T]):
    def __init__(self, kind: str, setting: str) -> None:
        super().__init__()
        self.kind = kind
        self.setting = setting

    def register(self, cls: C) -> C:
        """Make `cls` available by its `name`; a second class under the same name is a mistake."""
        name = cls.name  # type: ignore[attr-defined]
        existing = self.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"two {self.kind}s are named {name!r}: {existing.__qualname__} and {cls.__qualname__}")
        self[name] = cls
        return cls

    def lookup(self, name: str) -> type[T]:
        """The class registered under `name`, or an error that lists what is."""
        if name not in self:
            raise ValueError(f"unknown {self.kind} {name!r} in {self.setting}; registered: {', '.join(sorted(self))}")
        return self[name]
