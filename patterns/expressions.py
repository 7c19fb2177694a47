"""JMESPath with bounds: an expression is short and shallow, and evaluating one does a bounded amount of work.

Expressions come from callers (route ``on``, refine ``score``, ``{"$": ...}`` template leaves), so each is
checked when it is compiled, before any run starts:

- at most ``MAX_EXPRESSION_CHARS`` characters, checked before the lexer sees it;
- its syntax tree at most ``MAX_EXPRESSION_DEPTH`` levels deep (``((((x))))``, ``!!!!x``, ``a | b | c ...``);
- every function it calls exists and gets the right number of arguments.

Evaluation counts its work: a node visited, an element projected, flattened, sliced or passed to a function,
and for the functions and comparisons that walk whole values (``to_string``, ``contains``, ``==``) the size those
values expand to. Past ``MAX_EVALUATION_OPS`` it stops with ``limit_exceeded``, so an expression such as
``input | [@,@] | [@,@] | ...`` cannot hold the event loop. Type errors at run time (``sort_by`` over an object)
are ``invalid_input`` naming the expression.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jmespath
from jmespath import functions
from jmespath.exceptions import ArityError, JMESPathError, JMESPathTypeError, UnknownFunctionError
from jmespath.visitor import Options, TreeInterpreter

from patterns.errors import InvalidStep, LimitExceeded, PatternError, clip, describe_path
from storage.jsonshape import shape

MAX_EXPRESSION_CHARS = 4096
MAX_EXPRESSION_DEPTH = 32
MAX_EVALUATION_OPS = 200_000

_FUNCTIONS = functions.Functions()
_TABLE: dict[str, dict[str, Any]] = _FUNCTIONS.FUNCTION_TABLE
_WHOLE_VALUE_FUNCTIONS = frozenset({"to_string", "contains"})


class ExpressionError(ValueError):
    """An expression that cannot be compiled or evaluated. ``limit`` names the bound it passed, if that is why."""

    def __init__(self, message: str, limit: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.limit = limit


_LIMIT_VALUES = {
    "max_expression_chars": MAX_EXPRESSION_CHARS,
    "max_expression_depth": MAX_EXPRESSION_DEPTH,
    "max_evaluation_ops": MAX_EVALUATION_OPS,
}


def step_error(exc: ExpressionError, path: str, what: str = "") -> PatternError:
    """The pattern error for an expression of the step at ``path`` (``what`` says which, e.g. "route `on`")."""
    where = f"step {describe_path(path)}: " + (f"{what}: " if what else "")
    if exc.limit is not None:
        return LimitExceeded(exc.limit, _LIMIT_VALUES[exc.limit], where + exc.message, step=path)
    return InvalidStep(where + exc.message, step=path)


def _arity(name: str) -> tuple[int, bool]:
    signature = _TABLE[name]["signature"]
    return len(signature), bool(signature and signature[-1].get("variadic"))


# node types whose value is a value already in the data (or a boolean): an expression of only these cannot build
# anything larger than what it reads
_SELECTING = frozenset(
    {"field", "subexpression", "index_expression", "index", "current", "identity", "pipe", "or_expression",
     "and_expression", "not_expression", "comparator"}
)  # fmt: skip


def _inspect(tree: dict[str, Any], text: str) -> bool:
    """Check the depth of the syntax tree and the functions it calls, without recursing. Returns whether the
    expression only selects (builds no new list or object)."""
    selects = True
    stack: list[tuple[dict[str, Any], int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        kind = node.get("type")
        if kind not in _SELECTING and not (kind == "literal" and not isinstance(node.get("value"), list | dict)):
            selects = False
        if depth > MAX_EXPRESSION_DEPTH:
            raise ExpressionError(
                f"JMESPath {clip(text)!r} nests more than {MAX_EXPRESSION_DEPTH} levels deep; simplify it",
                limit="max_expression_depth",
            )
        if node.get("type") == "function_expression":
            name = str(node.get("value"))
            if name not in _TABLE:
                raise ExpressionError(
                    f"JMESPath {clip(text)!r} calls unknown function {clip(name, 60)}(); the functions are "
                    + ", ".join(sorted(_TABLE))
                )
            wanted, variadic = _arity(name)
            given = len(node.get("children", []))
            if given < wanted or (given > wanted and not variadic):
                at_least = "at least " if variadic else ""
                raise ExpressionError(
                    f"JMESPath {clip(text)!r}: {name}() takes {at_least}{wanted} argument"
                    f"{'s' if wanted != 1 else ''}, not {given}"
                )
        stack.extend((child, depth + 1) for child in node.get("children", []) if isinstance(child, dict))
    return selects


@dataclass(frozen=True)
class Expression:
    """A compiled, checked expression. ``search`` evaluates it within the evaluation budget."""

    text: str
    tree: dict[str, Any]
    selects: bool
    """Only selects from the data (``steps.a.b``, ``input[0]``): its value is never larger than what it reads."""

    def search(self, data: Any) -> Any:
        """Evaluate over ``data``. Raises ``ExpressionError`` (``limit`` set when the budget ran out)."""
        interpreter = _Bounded(self)
        try:
            return interpreter.visit(self.tree, data)
        except _OverBudget:
            raise ExpressionError(
                f"evaluating JMESPath {clip(self.text)!r} took more than {MAX_EVALUATION_OPS} operations "
                "(elements visited, copied or compared); narrow it to the data it needs",
                limit="max_evaluation_ops",
            ) from None
        except JMESPathTypeError as exc:
            raise ExpressionError(
                f"JMESPath {clip(self.text)!r}: {exc.function_name}() got a value of type {exc.actual_type}, "
                f"expected {' or '.join(str(t) for t in exc.expected_types)}"
            ) from None
        except (ArityError, UnknownFunctionError) as exc:  # checked at compile time; kept for safety
            raise ExpressionError(f"JMESPath {clip(self.text)!r}: {clip(str(exc))}") from None
        except JMESPathError as exc:
            raise ExpressionError(f"JMESPath {clip(self.text)!r} failed: {clip(str(exc))}") from None
        except RecursionError:  # the depth check makes this unreachable for data within the payload limits
            raise ExpressionError(f"JMESPath {clip(self.text)!r} recursed too deeply") from None
        except (TypeError, ValueError, OverflowError) as exc:  # e.g. comparing a string with a number in sort()
            raise ExpressionError(f"JMESPath {clip(self.text)!r} failed: {clip(str(exc))}") from None


@lru_cache(maxsize=2048)
def compile_expression(text: str) -> Expression:
    """Compile and check an expression once. Raises ``ExpressionError`` saying what is wrong and what is allowed."""
    if not isinstance(text, str):
        raise ExpressionError(f"a JMESPath expression is a string, not {type(text).__name__}")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(
            f"JMESPath expression is {len(text)} characters; at most {MAX_EXPRESSION_CHARS} are allowed",
            limit="max_expression_chars",
        )
    try:
        tree = dict(jmespath.compile(text).parsed)
    except RecursionError:
        raise ExpressionError(
            f"JMESPath {clip(text)!r} nests more than {MAX_EXPRESSION_DEPTH} levels deep; simplify it",
            limit="max_expression_depth",
        ) from None
    except JMESPathError as exc:
        detail = " ".join(str(exc).split("\n", 1)[0].split())
        raise ExpressionError(f"invalid JMESPath {clip(text)!r}: {clip(detail)}") from None
    return Expression(text, tree, _inspect(tree, text))


class _OverBudget(Exception):
    pass


class _Bounded(TreeInterpreter):
    """The JMESPath interpreter, charging every visit and every element it touches against a budget."""

    _options = Options(custom_functions=_FUNCTIONS)

    def __init__(self, expression: Expression) -> None:
        super().__init__(self._options)
        self.left = MAX_EVALUATION_OPS
        self._methods: dict[str, Any] = {}

    def charge(self, ops: int) -> None:
        self.left -= ops
        if self.left < 0:
            raise _OverBudget

    def charge_whole(self, value: Any) -> None:
        """Charge the size ``value`` expands to (its JSON size), for operations that walk all of it."""
        if isinstance(value, list | dict):
            self.charge(shape(value, max(self.left, 0), MAX_EXPRESSION_DEPTH * 8)[0])

    def visit(self, node: Any, *args: Any, **kwargs: Any) -> Any:
        self.left -= 1
        if self.left < 0:
            raise _OverBudget
        kind = node["type"]
        method = self._methods.get(kind)
        if method is None:
            method = self._methods[kind] = getattr(self, f"visit_{kind}", self.default_visit)
        return method(node, *args, **kwargs)

    def visit_function_expression(self, node: Any, value: Any) -> Any:
        args = [self.visit(child, value) for child in node["children"]]
        name = node["value"]
        for arg in args:
            if name in _WHOLE_VALUE_FUNCTIONS:
                self.charge_whole(arg)
            elif isinstance(arg, list | dict):
                self.charge(len(arg) + 1)
            elif isinstance(arg, str):
                self.charge(len(arg) // 64 + 1)
        return _FUNCTIONS.call_function(name, args)

    def visit_comparator(self, node: Any, value: Any) -> Any:
        if node["value"] in ("eq", "ne"):
            left = self.visit(node["children"][0], value)
            right = self.visit(node["children"][1], value)
            self.charge_whole(left)
            self.charge_whole(right)
            equal = self.COMPARATOR_FUNC["eq"](left, right)
            return equal if node["value"] == "eq" else not equal
        return super().visit_comparator(node, value)

    def visit_flatten(self, node: Any, value: Any) -> Any:
        base = self.visit(node["children"][0], value)
        if not isinstance(base, list):
            return None
        self.charge(len(base))
        self.charge(sum(len(element) for element in base if isinstance(element, list)))
        merged: list[Any] = []
        for element in base:
            if isinstance(element, list):
                merged.extend(element)
            else:
                merged.append(element)
        return merged

    def visit_slice(self, node: Any, value: Any) -> Any:
        if isinstance(value, list):
            self.charge(len(value))
        return super().visit_slice(node, value)

    def visit_value_projection(self, node: Any, value: Any) -> Any:
        base = self.visit(node["children"][0], value)
        if not isinstance(base, dict):
            return None
        self.charge(len(base))
        collected = []
        for element in base.values():
            current = self.visit(node["children"][1], element)
            if current is not None:
                collected.append(current)
        return collected
