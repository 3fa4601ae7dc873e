"""A small, safe expression language for rules over item and customer fields, compiled to closures.

The syntax is a subset of Python's, parsed with `ast` and never evaluated by Python: only the node types below are
accepted, every name must be `item.FIELD` or `customer.FIELD` of a known field, and types are checked before
anything runs. What compiles is a tree of closures: no `eval`, no attribute lookup by a name the rule wrote, no
calls. Why not CEL: cel-python 0.5 (the maintained pure-Python implementation) took 326 us to evaluate
`item.in_stock && !item.hidden && item.price < 50.0 && "organic" in item.tags` once here (about 0.3 us compiled
here), and its syntax (`&&`, `!`) is not what the issue's examples are written in.

- values: `true`/`false` are `True`/`False`, numbers, "text" or 'text', `None`, lists of literals `["a", "b"]`
- `and`, `or`, `not`; `==`, `!=`, `<`, `<=`, `>`, `>=` (chains too: `10 <= item.price < 50`); `in`, `not in`
  (a tag among `item.tags`, a value among a list, text within text); `+ - * /` on numbers
- a field that has no value (an unknown margin, a customer without a segment) is None: ordering it is false,
  `== None` tests for it, arithmetic with it gives None

>>> rule = compile_expression('item.price < 50 and "organic" in item.tags', ITEM_ONLY)
>>> class Item:
...     price, tags = 12.0, ("organic",)
>>> rule.evaluate(Item(), {}), sorted(rule.roots)
(True, ['item'])
>>> compile_expression("item.__class__", ITEM_ONLY)
Traceback (most recent call last):
models.rules.expressions.RuleError: unknown field item.__class__ (item fields: price, tags) at column 1:
  item.__class__
  ^
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# Types a rule can compute with: a field declares one, optionally nullable.
BOOL, NUMBER, TEXT, TEXTS, NUMBERS, NULL = "true/false", "number", "text", "list of texts", "list of numbers", "None"
ELEMENT = {TEXTS: TEXT, NUMBERS: NUMBER}

Fn = Callable[[Any, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Field:
    type: str
    nullable: bool = False
    doc: str = ""


# Fields a rule may read, by root name; the module that evaluates supplies values with these names.
FieldTable = Mapping[str, Mapping[str, Field]]
ITEM_ONLY: FieldTable = {"item": {"price": Field(NUMBER), "tags": Field(TEXTS)}}  # for the examples


class RuleError(ValueError):
    """A rule that cannot be compiled: what is wrong and where (column, 1-based) in its text."""

    def __init__(self, message: str, text: str, column: int | None = None) -> None:
        where = f" at column {column + 1}:\n  {text}\n  {' ' * column}^" if column is not None else f": {text}"
        super().__init__(message + where)
        self.reason = message
        self.column = column


@dataclass(frozen=True)
class Compiled:
    """A rule ready to run: `evaluate(item, customer)` with an item object (fields as attributes) and a mapping of
    customer fields; `roots` says which of the two it reads (a rule that reads only the item is judged once per
    item, not per decision)."""

    text: str
    evaluate: Fn
    roots: frozenset[str]
    fields: frozenset[tuple[str, str]]


_CMP: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_ARITH: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
}
_WORDS = {ast.Call: "function calls", ast.Subscript: "indexing", ast.Lambda: "lambdas", ast.Starred: "unpacking",
          ast.ListComp: "comprehensions", ast.GeneratorExp: "comprehensions", ast.SetComp: "comprehensions",
          ast.DictComp: "comprehensions", ast.NamedExpr: "assignments", ast.IfExp: "if-else expressions",
          ast.Dict: "dictionaries", ast.JoinedStr: "f-strings", ast.Await: "await"}


def compile_expression(text: str, fields: FieldTable) -> Compiled:
    """Parse, type-check and compile one rule expression; RuleError says what is wrong and where."""
    source = text.strip()
    if not source:
        raise RuleError("empty rule", text)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as error:
        column = error.offset - 1 if error.offset else len(source)  # no offset: the text ended too soon
        raise RuleError(f"syntax error ({error.msg})", source, min(max(column, 0), len(source))) from None
    compiler = _Compiler(source, fields)
    fn, kind = compiler.node(tree.body)
    if kind != BOOL:
        raise RuleError(f"a rule must be true or false, this is a {kind}", source, 0)
    return Compiled(source, fn, frozenset(root for root, _ in compiler.used), frozenset(compiler.used))


class _Compiler:
    def __init__(self, text: str, fields: FieldTable) -> None:
        self.text = text
        self.fields = fields
        self.used: set[tuple[str, str]] = set()

    def fail(self, message: str, node: ast.AST) -> RuleError:
        return RuleError(message, self.text, getattr(node, "col_offset", None))

    def node(self, node: ast.AST) -> tuple[Fn, str]:
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Attribute):
            return self.field(node)
        if isinstance(node, ast.BoolOp):
            return self.boolean(node)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.BinOp):
            return self.arithmetic(node)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            return self.literal_list(node)
        if isinstance(node, ast.Name):
            raise self.fail(f"unknown name {node.id!r}: write item.FIELD or customer.FIELD "
                            f"({' or '.join(self.fields)})", node)
        what = next((word for kind, word in _WORDS.items() if isinstance(node, kind)), type(node).__name__)
        raise self.fail(f"{what} are not allowed in rules", node)

    def constant(self, node: ast.Constant) -> tuple[Fn, str]:
        value = node.value
        if isinstance(value, bool):
            kind = BOOL
        elif isinstance(value, int | float):
            kind = NUMBER
        elif isinstance(value, str):
            kind = TEXT
        elif value is None:
            kind = NULL
        else:
            raise self.fail(f"{type(value).__name__} values are not allowed in rules", node)
        return (lambda i, c: value), kind

    def literal_list(self, node: ast.List | ast.Tuple | ast.Set) -> tuple[Fn, str]:
        values = []
        kinds = set()
        for element in node.elts:
            if not isinstance(element, ast.Constant) or element.value is None or isinstance(element.value, bool):
                raise self.fail("a list in a rule holds only texts or only numbers", element)
            values.append(element.value)
            kinds.add(TEXT if isinstance(element.value, str) else NUMBER)
        if len(kinds) > 1:
            raise self.fail("a list in a rule holds only texts or only numbers, not both", node)
        members = frozenset(values)
        return (lambda i, c: members), TEXTS if kinds == {TEXT} or not kinds else NUMBERS

    def field(self, node: ast.Attribute) -> tuple[Fn, str]:
        root = node.value
        if not isinstance(root, ast.Name) or root.id not in self.fields:
            raise self.fail(f"only {' and '.join(f'{r}.FIELD' for r in self.fields)} can be read", node)
        known = self.fields[root.id]
        spec = known.get(node.attr)
        if spec is None:
            raise self.fail(f"unknown field {root.id}.{node.attr} ({root.id} fields: {', '.join(sorted(known))})",
                            node)
        self.used.add((root.id, node.attr))
        name = node.attr
        if root.id == "item":
            get = operator.attrgetter(name)
            return (lambda i, c: get(i)), spec.type
        return (lambda i, c: c[name]), spec.type

    def boolean(self, node: ast.BoolOp) -> tuple[Fn, str]:
        parts = [self.expect(value, BOOL) for value in node.values]
        if isinstance(node.op, ast.And):
            if len(parts) == 2:
                a, b = parts
                return (lambda i, c: bool(a(i, c)) and bool(b(i, c))), BOOL
            return (lambda i, c: all(part(i, c) for part in parts)), BOOL
        if len(parts) == 2:
            a, b = parts
            return (lambda i, c: bool(a(i, c)) or bool(b(i, c))), BOOL
        return (lambda i, c: any(part(i, c) for part in parts)), BOOL

    def unary(self, node: ast.UnaryOp) -> tuple[Fn, str]:
        if isinstance(node.op, ast.Not):
            inner = self.expect(node.operand, BOOL)
            return (lambda i, c: not inner(i, c)), BOOL
        if isinstance(node.op, ast.USub):
            inner = self.expect(node.operand, NUMBER)
            return (lambda i, c: None if (v := inner(i, c)) is None else -v), NUMBER
        raise self.fail("only `not` and `-` go before a value", node)

    def expect(self, node: ast.AST, kind: str) -> Fn:
        fn, found = self.node(node)
        if found != kind:
            raise self.fail(f"expected a {kind} here, found a {found}", node)
        return fn

    def arithmetic(self, node: ast.BinOp) -> tuple[Fn, str]:
        op = _ARITH.get(type(node.op))
        if op is None:
            raise self.fail("only + - * / are allowed between numbers", node)
        a, b = self.expect(node.left, NUMBER), self.expect(node.right, NUMBER)

        def arith(i: Any, c: Mapping[str, Any]) -> Any:
            x, y = a(i, c), b(i, c)
            if x is None or y is None or (y == 0 and op is operator.truediv):
                return None
            return op(x, y)

        return arith, NUMBER

    def compare(self, node: ast.Compare) -> tuple[Fn, str]:
        checks: list[Fn] = []
        left_node = node.left
        left, left_kind = self.node(left_node)
        for op_node, right_node in zip(node.ops, node.comparators, strict=True):
            right, right_kind = self.node(right_node)
            checks.append(self.comparison(op_node, left, left_kind, right, right_kind, left_node, right_node))
            left, left_kind, left_node = right, right_kind, right_node
        if len(checks) == 1:
            return checks[0], BOOL
        return (lambda i, c: all(check(i, c) for check in checks)), BOOL

    def comparison(self, op_node: ast.cmpop, left: Fn, left_kind: str, right: Fn, right_kind: str,
                   left_node: ast.AST, where: ast.AST) -> Fn:
        if isinstance(op_node, ast.In | ast.NotIn):
            negate = isinstance(op_node, ast.NotIn)
            if right_kind in ELEMENT:
                if left_kind != ELEMENT[right_kind]:
                    raise self.fail(f"`in` a {right_kind} needs a {ELEMENT[right_kind]} on its left, found a "
                                    f"{left_kind}", left_node)
            elif not (right_kind == TEXT and left_kind == TEXT):
                raise self.fail(f"`in` needs a list or a text on its right, found a {right_kind}", where)

            def member(i: Any, c: Mapping[str, Any]) -> bool:
                x, y = left(i, c), right(i, c)
                found = x is not None and y is not None and x in y
                return not found if negate else found

            return member
        if isinstance(op_node, ast.Is | ast.IsNot):
            raise self.fail("write == None or != None rather than `is`", where)
        op = _CMP[type(op_node)]
        if isinstance(op_node, ast.Eq | ast.NotEq):
            if NULL not in (left_kind, right_kind) and left_kind != right_kind:
                raise self.fail(f"cannot compare a {left_kind} with a {right_kind}", where)
            return lambda i, c: op(left(i, c), right(i, c))
        if left_kind != right_kind or left_kind not in (NUMBER, TEXT):
            raise self.fail(f"cannot order a {left_kind} and a {right_kind} (< and > compare numbers or texts)",
                            where)

        def ordered(i: Any, c: Mapping[str, Any]) -> bool:
            x, y = left(i, c), right(i, c)
            return x is not None and y is not None and op(x, y)

        return ordered
