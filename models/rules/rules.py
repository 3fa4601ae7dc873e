"""Include / exclude rules over item and customer fields, and the set of them one decision is held to.

Rules are written one a line (or separated by `;`), each `include: EXPR` or `exclude: EXPR` in the expression
language of models/rules/expressions.py. A candidate is offered only if every include rule holds for it and no
exclude rule does. Besides the written rules, the default rule (`PERSO_RULES_DEFAULT`, on) never offers a catalog
item that is out of stock, hidden, or outside its validity window at the decision's event time.

What it costs per decision: a rule that reads only the item is judged when the item changes in the catalog, not
per decision; the decision gets the set of items refused now (cached between catalog changes and window
boundaries) as part of its exclusions, so a policy pays a set lookup per candidate. A rule that reads the customer
is judged once per decision; one that reads both, for the item the policy chose (and the policy asked again
without it if it is refused). An item the catalog does not know is judged as the events describe it (category,
price; in stock, not hidden, no tags, always valid), when a policy first chooses it.

>>> from models.catalog import Catalog, CatalogEntry
>>> catalog = Catalog()
>>> rules = RuleSet(parse_rules('exclude: item.category == "alcohol"; include: customer.segment != 3'), catalog)
>>> catalog.apply("wine", CatalogEntry("wine", "alcohol", 9.0))
>>> catalog.apply("tea", CatalogEntry("tea", "grocery", 4.0, in_stock=False))
>>> catalog.apply("mug", CatalogEntry("mug", "home", 6.0))
>>> sorted(rules.blocked_at(0.0))
['tea', 'wine']
>>> catalog.apply("tea", CatalogEntry("tea", "grocery", 4.0))  # back in stock
>>> sorted(rules.blocked_at(0.0))
['wine']
>>> rules.customer_allows({"segment": 3}), rules.customer_allows({"segment": 1})
(False, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from models.catalog import Catalog, CatalogEntry
from models.policies.exclusions import OnlyAmong
from models.rules.expressions import BOOL, NUMBER, TEXT, TEXTS, Compiled, Field, RuleError, compile_expression
from models.settings import ModelSettings, read_rules_file
from models.state import DAY, CustomerState

if TYPE_CHECKING:
    from models.policies.base import Decision, OfferPolicy, OfferRequest
    from schemas.experiments import ExperimentConfig

ITEM_FIELDS: Mapping[str, Field] = {
    "item_id": Field(TEXT), "category": Field(TEXT), "price": Field(NUMBER),
    "margin": Field(NUMBER, nullable=True, doc="fraction of the price; None when the catalog does not say"),
    "in_stock": Field(BOOL), "hidden": Field(BOOL), "tags": Field(TEXTS),
    "in_catalog": Field(BOOL, doc="false for an item known only from events"),
}


def _output(name: str) -> Callable[[CustomerState, Mapping[str, Any], float], Any]:
    return lambda state, outputs, now: outputs.get(name)


def _attribute(name: str) -> Callable[[CustomerState, Mapping[str, Any], float], Any]:
    return lambda state, outputs, now: getattr(state, name)


# Customer fields: the learners' outputs for this event and the customer's running state.
_CUSTOMER_VALUES: dict[str, tuple[Field, Callable[[CustomerState, Mapping[str, Any], float], Any]]] = {
    "customer_id": (Field(TEXT), _attribute("customer_id")),
    "segment": (Field(NUMBER, nullable=True), lambda s, o, now: o.get("segment", s.segment)),
    "segment_label": (Field(TEXT, nullable=True), _output("segment_label")),
    "propensity": (Field(NUMBER, nullable=True), _output("propensity")),
    "churn_risk": (Field(NUMBER, nullable=True), _output("churn_risk")),
    "rfm_group": (Field(TEXT, nullable=True), _output("rfm_group")),
    "events": (Field(NUMBER), _attribute("events")),
    "views": (Field(NUMBER), _attribute("views")),
    "carts": (Field(NUMBER), _attribute("carts")),
    "purchases": (Field(NUMBER), _attribute("purchases")),
    "sessions": (Field(NUMBER), _attribute("sessions")),
    "monetary": (Field(NUMBER), _attribute("monetary")),
    "recency_days": (Field(NUMBER), lambda s, o, now: s.recency_days(now)),
    "days_since_last_event": (Field(NUMBER), lambda s, o, now: max(0.0, (now - s.last_event_ts) / DAY)),
    "top_category": (Field(TEXT, nullable=True), lambda s, o, now: next(iter(s.top_categories(1)), None)),
}
CUSTOMER_FIELDS: Mapping[str, Field] = {name: spec for name, (spec, _) in _CUSTOMER_VALUES.items()}
FIELDS = {"item": ITEM_FIELDS, "customer": CUSTOMER_FIELDS}
# Times a decision asks the policy again after the item it chose was refused (by a rule reading the customer and
# the item, or an unknown item's first judgement); then it offers nothing.
MAX_CHOICES = 4


@dataclass(frozen=True)
class Rule:
    kind: Literal["include", "exclude"]
    expression: Compiled

    def __str__(self) -> str:
        return f"{self.kind}: {self.expression.text}"


def parse_rules(text: str, source: str = "rules") -> list[Rule]:
    """Rules from text: `include: EXPR` / `exclude: EXPR`, one a line or separated by `;` (outside quotes); blank
    lines and lines starting with `#` are skipped. RuleError names the rule (by its number and `source`).

    >>> [str(rule) for rule in parse_rules('include: item.in_stock; exclude: item.category == "a;b"')]
    ['include: item.in_stock', 'exclude: item.category == "a;b"']
    >>> parse_rules("keep: item.in_stock", source="PERSO_RULES")
    Traceback (most recent call last):
    models.rules.expressions.RuleError: PERSO_RULES rule 1: write `include: EXPR` or `exclude: EXPR`: keep: ...
    """
    rules = []
    for number, line in enumerate(_statements(text), start=1):
        kind, sep, expression = line.partition(":")
        kind = kind.strip().lower()
        if not sep or kind not in ("include", "exclude"):
            raise RuleError(f"{source} rule {number}: write `include: EXPR` or `exclude: EXPR`", line)
        try:
            compiled = compile_expression(expression, FIELDS)
        except RuleError as error:
            raise RuleError(f"{source} rule {number} ({kind}): {error.reason}", expression.strip(),
                            error.column) from None
        rules.append(Rule(kind, compiled))  # type: ignore[arg-type]
    return rules


def configured_rules(settings: ModelSettings) -> list[Rule]:
    """The deployment's rules: PERSO_RULES_FILE's, then PERSO_RULES."""
    rules = []
    if settings.rules_file is not None:
        rules += parse_rules(read_rules_file(settings.rules_file), source=f"PERSO_RULES_FILE {settings.rules_file}")
    return rules + parse_rules(settings.rules, source="PERSO_RULES")


def arm_rules(config: ExperimentConfig) -> dict[str, list[Rule]]:
    """Each arm's own rules, by arm name (arms without rules left out); RuleError names the arm."""
    return {arm.name: parse_rules(arm.rules, source=f"arm {arm.name!r}") for arm in config.arms if arm.rules}


def _statements(text: str) -> Iterable[str]:
    """Non-empty, non-comment statements split at newlines and at `;` outside quotes."""
    current: list[str] = []
    quote: str | None = None
    for char in text + "\n":
        if quote is not None:
            current.append(char)
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
            current.append(char)
        elif char in ";\n":
            statement = "".join(current).strip()
            current = []
            if statement and not statement.startswith("#"):
                yield statement
        else:
            current.append(char)


class RuleSet:
    """The rules one decision is held to (the deployment's, plus an experiment arm's), judged over `catalog`.

    `fallback(item_id)` describes an item the catalog does not know (from what events said of it), or None.
    """

    def __init__(self, rules: Sequence[Rule], catalog: Catalog, default: bool = True,
                 fallback: Callable[[str], CatalogEntry | None] | None = None) -> None:
        self.rules = list(rules)
        self.catalog = catalog
        self.default = default
        self.fallback = fallback
        by_roots: dict[str, list[Rule]] = {"item": [], "customer": [], "both": []}
        for rule in self.rules:
            roots = rule.expression.roots
            by_roots["both" if len(roots) == 2 else "item" if roots == {"item"} else "customer"].append(rule)
        self._item_rules = by_roots["item"]
        self._customer_rules = by_roots["customer"]
        self._mixed_rules = by_roots["both"]
        used = {name for rule in self.rules for root, name in rule.expression.fields if root == "customer"}
        self._customer_values = [(name, _CUSTOMER_VALUES[name][1]) for name in sorted(used)]
        self._blocked: set[str] = set()  # catalog items the item rules (or the default rule) refuse
        self._windows: dict[str, tuple[float, float]] = {}  # catalog items allowed only within a window
        self._unknown: dict[str, bool] = {}  # verdicts on items the catalog does not know, judged when chosen
        self._unknown_blocked: set[str] = set()
        self._version = 0
        self._cached: tuple[int, float, float, set[str]] | None = None  # version, from, to, the set
        for entry in catalog:
            self._judge(entry.item_id, entry)
        catalog.watch(self._judge)

    def close(self) -> None:
        """Stop following the catalog (the rule set is replaced)."""
        self.catalog.unwatch(self._judge)

    @property
    def reads_customer(self) -> bool:
        return bool(self._customer_values)

    # --- judging items -------------------------------------------------------------------------
    def _judge(self, item_id: str, entry: CatalogEntry | None) -> None:
        """A catalog change: judge that item again (item rules, the default rule)."""
        self._version += 1
        self._blocked.discard(item_id)
        self._windows.pop(item_id, None)
        self._unknown.pop(item_id, None)
        self._unknown_blocked.discard(item_id)
        if entry is None:
            return
        if not self._item_passes(entry) or (self.default and (not entry.in_stock or entry.hidden)):
            self._blocked.add(item_id)
        elif self.default and (entry.valid_from is not None or entry.valid_to is not None):
            self._windows[item_id] = (-math.inf if entry.valid_from is None else entry.valid_from,
                                      math.inf if entry.valid_to is None else entry.valid_to)

    def _item_passes(self, entry: CatalogEntry, customer: Mapping[str, Any] | None = None,
                     rules: Sequence[Rule] | None = None) -> bool:
        empty: Mapping[str, Any] = {} if customer is None else customer
        for rule in self._item_rules if rules is None else rules:
            if bool(rule.expression.evaluate(entry, empty)) != (rule.kind == "include"):
                return False
        return True

    def blocked_at(self, now_ts: float) -> set[str]:
        """Every item known to be refused at event time `now_ts`, whoever the customer. The same set object is
        returned until the catalog changes or `now_ts` crosses an item's window boundary; callers must leave it
        as they found it."""
        cached = self._cached
        if cached is not None and cached[0] == self._version and cached[1] <= now_ts < cached[2]:
            return cached[3]
        low, high = -math.inf, math.inf
        blocked = self._blocked | self._unknown_blocked
        for item_id, (start, end) in self._windows.items():
            if now_ts < start:
                blocked.add(item_id)
                high = min(high, start)
            elif now_ts >= end:
                blocked.add(item_id)
                low = max(low, end)
            else:
                low, high = max(low, start), min(high, end)
        self._cached = (self._version, low, high, blocked)
        return blocked

    def customer_view(self, state: CustomerState, outputs: Mapping[str, Any], now_ts: float) -> dict[str, Any]:
        """The customer fields the rules read, as of now."""
        return {name: value(state, outputs, now_ts) for name, value in self._customer_values}

    def customer_allows(self, customer: Mapping[str, Any]) -> bool:
        """The rules that read only the customer: False means no item may be offered to them now."""
        for rule in self._customer_rules:
            if bool(rule.expression.evaluate(None, customer)) != (rule.kind == "include"):
                return False
        return True

    def allows(self, item_id: str, customer: Mapping[str, Any], now_ts: float) -> bool:
        """Whether one item may be offered to this customer now (every rule, the default included)."""
        entry = self.catalog.get(item_id)
        if entry is not None:
            if item_id in self._blocked or (self.default and not entry.valid_at(now_ts)):
                return False
        else:
            if item_id in self._unknown_blocked:
                return False
            if self._item_rules or self._mixed_rules:
                entry = (self.fallback(item_id) if self.fallback is not None else None) or CatalogEntry(
                    item_id, "", 0.0, in_catalog=False)
                verdict = self._unknown.get(item_id)
                if verdict is None:
                    verdict = self._unknown[item_id] = self._item_passes(entry)
                    if not verdict:
                        self._unknown_blocked.add(item_id)
                        if self._cached is not None:
                            self._cached[3].add(item_id)  # refused from now on, before the policy chooses
                if not verdict:
                    return False
        return entry is None or not self._mixed_rules or self._item_passes(entry, customer, self._mixed_rules)

    # --- one decision --------------------------------------------------------------------------
    def choose(self, policy: OfferPolicy, request: OfferRequest, only: Set[str] | None = None) -> Decision | None:
        """The policy's choice among the candidates these rules allow: the refused items are added to the request's
        exclusions (so they never reach the policy's choice), and a choice refused after all is asked again.
        `only`: among these items alone (a promotion's)."""
        if not self.rules and not len(self.catalog) and only is None:
            return policy.decide(request)  # nothing to hold it to: as before there were rules or a catalog
        customer = self.customer_view(request.state, request.outputs, request.now_ts) if self.reads_customer else {}
        if not self.customer_allows(customer):
            return None
        blocked = self.blocked_at(request.now_ts)
        excluded = request.excluded
        added = excluded - blocked  # lent to the shared set for this decision only, taken back below
        blocked |= added
        request.excluded = blocked if only is None else OnlyAmong(blocked, only)
        refused: set[str] = set()
        try:
            for _ in range(MAX_CHOICES):
                decision = policy.decide(request)
                if decision is None or self.allows(decision.item_id, customer, request.now_ts):
                    return decision
                item_id = decision.item_id
                if item_id in refused:
                    return None  # a policy that ignores its exclusions: nothing it offers now can be trusted
                refused.add(item_id)
                if item_id not in blocked:
                    blocked.add(item_id)
                    added.add(item_id)
            return None
        finally:
            blocked -= added
            request.excluded = excluded
