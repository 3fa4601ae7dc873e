"""The item catalog as the worker holds it: every item's current fields, by item id. No I/O here.

The streams side feeds it from the compacted `items` topic (`apply` per record, None for a tombstone); rules
(models/rules/) read it and are told of every change so they can re-judge just that item. An item the catalog
does not know is not in it: whoever reads the catalog decides what that means (rules treat it as in stock,
shown and always valid, i.e. as before there was a catalog).

>>> catalog = Catalog()
>>> seen = []
>>> catalog.watch(lambda item_id, entry: seen.append((item_id, entry is not None)))
>>> catalog.apply("tea", CatalogEntry("tea", "grocery", 4.5, in_stock=False, tags=("organic",)))
>>> catalog.get("tea").in_stock, len(catalog), "tea" in catalog
(False, 1, True)
>>> catalog.apply("tea", None)  # deleted
>>> catalog.get("tea") is None, seen
(True, [('tea', True), ('tea', False)])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from schemas.items import CatalogItem

Listener = Callable[[str, "CatalogEntry | None"], None]


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One item's fields; times are epoch seconds (event time), None where the catalog says nothing."""

    item_id: str
    category: str
    price: float
    margin: float | None = None
    in_stock: bool = True
    hidden: bool = False
    tags: tuple[str, ...] = ()
    valid_from: float | None = None
    valid_to: float | None = None
    in_catalog: bool = True  # False: made up from what events said of an item the catalog does not know

    @classmethod
    def from_item(cls, item: CatalogItem) -> CatalogEntry:
        return cls(item.item_id, item.category, item.price, item.margin, item.in_stock, item.hidden, item.tags,
                   CatalogItem.epoch(item.valid_from), CatalogItem.epoch(item.valid_to))

    def valid_at(self, ts: float) -> bool:
        """Within its validity window at event time `ts` (from inclusive, to exclusive)."""
        return (self.valid_from is None or ts >= self.valid_from) and (self.valid_to is None or ts < self.valid_to)


class Catalog:
    def __init__(self) -> None:
        self._items: dict[str, CatalogEntry] = {}
        self._listeners: list[Listener] = []

    def apply(self, item_id: str, entry: CatalogEntry | None) -> None:
        """The item as it is now (None: deleted); every watcher hears of it."""
        if entry is None:
            if self._items.pop(item_id, None) is None:
                return  # deleting an unknown item changes nothing
        else:
            self._items[item_id] = entry
        for listener in self._listeners:
            listener(item_id, entry)

    def get(self, item_id: str) -> CatalogEntry | None:
        return self._items.get(item_id)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(list(self._items.values()))

    def watch(self, listener: Listener) -> None:
        """Call `listener(item_id, entry)` on every change from now on."""
        self._listeners.append(listener)

    def unwatch(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)
