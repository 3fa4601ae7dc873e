"""Exclusions narrowed to a set of allowed items (a promotion's), for policies that test candidates with `in`.

>>> excluded = OnlyAmong({"tea"}, allowed={"tea", "mug"})
>>> "tea" in excluded, "mug" in excluded, "pot" in excluded
(True, False, True)
"""

from __future__ import annotations

from collections.abc import Set


class OnlyAmong(set[str]):
    """Exclusions that also exclude every item outside `allowed` (a promotion's items): what policies test with
    `in` (an empty set otherwise: policies never iterate their exclusions)."""

    def __init__(self, excluded: Set[str], allowed: Set[str]) -> None:
        super().__init__()
        self.excluded = excluded
        self.allowed = allowed

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.excluded or item_id not in self.allowed
