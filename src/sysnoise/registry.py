"""Named implementations: a new variant is one small function plus one decorator line."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class UnknownNameError(KeyError):
    """A name that no registry entry carries; the message lists the close matches."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the plain sentence
        return str(self.args[0])


@dataclass(frozen=True)
class Entry(Generic[F]):
    name: str
    fn: F
    description: str
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[F]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[F]] = {}

    def register(self, name: str, description: str, **meta: Any) -> Callable[[F], F]:
        def add(fn: F) -> F:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = Entry(name, fn, description, dict(meta))
            return fn

        return add

    def unregister(self, name: str) -> None:
        """Remove an entry (a plugin or a test that registered one for a while)."""
        self.get(name)  # an unknown name says so, with the close matches
        del self._entries[name]

    def get(self, name: str) -> Entry[F]:
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._entries, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UnknownNameError(f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(self._entries)}.") from None

    def __call__(self, name: str) -> F:
        return self.get(name).fn

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[F]]:
        return iter(self._entries.values())

    def names(self) -> list[str]:
        return list(self._entries)
