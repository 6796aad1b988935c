"""A small, safe evaluator for slow-control conversion formulas.

Formulas come from the ODB (``/History/Display/*/*/Formula``, e.g.
``(x-4)/16*200-50``) and from configuration files, i.e. from outside the
program: they are parsed with :mod:`ast` and only a whitelist of node types is
accepted (numbers, the variable ``x``, ``+ - * / **``, unary minus/plus,
parentheses and a few math functions). Nothing is ever passed to ``eval`` or
``exec``. A formula is compiled once into a tree of Python closures, so
converting a reading costs a few function calls.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable

from cygno_online.errors import CygnoError

#: functions a formula may call, with their accepted argument counts
FUNCTIONS: dict[str, tuple[Callable[..., float], tuple[int, ...]]] = {
    "exp": (math.exp, (1,)),
    "log": (math.log, (1,)),
    "log10": (math.log10, (1,)),
    "sqrt": (math.sqrt, (1,)),
    "abs": (abs, (1,)),
    "min": (min, (2, 3, 4, 5, 6, 7, 8)),
    "max": (max, (2, 3, 4, 5, 6, 7, 8)),
}

#: largest allowed |exponent|: 10**400 overflows a float anyway, and an integer
#: power such as 9**9**9 must never be attempted
MAX_EXPONENT = 64.0
#: formulas longer than this are refused before parsing (ODB strings are short)
MAX_LENGTH = 500
#: nesting depth limit (a deeply nested expression would exhaust the stack)
MAX_DEPTH = 50


class FormulaError(CygnoError):
    """A formula that is not in the allowed language."""

    kind = "formula"

    def __init__(self, formula: str, message: str) -> None:
        self.formula = formula
        self.reason = message
        super().__init__(f"formula {formula!r}: {message}")


Fn = Callable[[float], float]


class Formula:
    """A compiled conversion ``x -> value``.

    >>> Formula("(x-4)/16*200-50")(12.0)
    50.0
    """

    __slots__ = ("_fn", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._fn = compile_formula(text)

    def __call__(self, x: float) -> float:
        """Evaluate; math errors (log of a negative number, division by zero,
        overflow) give NaN: one odd reading must not stop a slow-control bank."""
        try:
            return float(self._fn(float(x)))
        except (ArithmeticError, ValueError):
            return math.nan

    def __repr__(self) -> str:
        return f"Formula({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Formula) and normalise(self.text) == normalise(other.text)

    def __hash__(self) -> int:
        return hash(normalise(self.text))


def normalise(text: str) -> str:
    """Formula text without white space (to compare formulas)."""
    return "".join(text.split())


def compile_formula(text: str) -> Fn:
    """Parse ``text`` and return a function of ``x``; raises :class:`FormulaError`."""
    if not isinstance(text, str):
        raise FormulaError(repr(text), "must be a string")
    if len(text) > MAX_LENGTH:
        raise FormulaError(text[:40] + "...", f"longer than {MAX_LENGTH} characters")
    stripped = text.strip()
    if not stripped:
        raise FormulaError(text, "is empty")
    # ODB dumps written under a comma-decimal locale ("0,0375*x"): a comma is
    # never valid outside min()/max(), and the error says so.
    try:
        tree = ast.parse(stripped, mode="eval")
    except SyntaxError as exc:
        hint = " (a decimal comma? write 0.5, not 0,5)" if "," in text else ""
        raise FormulaError(text, f"syntax error: {exc.msg}{hint}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise FormulaError(text, f"cannot be parsed: {exc}") from None
    return _compile(tree.body, text, 0)


def _has_x(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) for n in ast.walk(node))


_BINOPS: dict[type, Callable[[float, float], float]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}


def _pow(a: float, b: float) -> float:
    if abs(b) > MAX_EXPONENT:
        raise OverflowError(f"exponent {b} larger than {MAX_EXPONENT}")
    # float() first: an integer base/exponent would make Python compute an
    # exact (possibly enormous) integer power
    return math.pow(float(a), float(b))


def _compile(node: ast.AST, text: str, depth: int) -> Fn:
    if depth > MAX_DEPTH:
        raise FormulaError(text, f"nested deeper than {MAX_DEPTH} levels")
    d = depth + 1
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FormulaError(text, f"constant {value!r} is not a number")
        c = float(value)
        if not math.isfinite(c):
            raise FormulaError(text, f"constant {value!r} is not finite")
        return lambda x: c
    if isinstance(node, ast.Name):
        if node.id != "x":
            raise FormulaError(text, f"unknown name {node.id!r}; only 'x' is allowed")
        return lambda x: x
    if isinstance(node, (ast.BinOp, ast.Call, ast.UnaryOp)) and not _has_x(node):
        # constant sub-expressions are computed once, here: 9**9**9 or 1/0 are
        # refused when the formula is read, not on every reading
        fn = _compile_node(node, text, d)
        try:
            c = float(fn(0.0))
        except (ArithmeticError, ValueError) as exc:
            raise FormulaError(text, f"constant part cannot be computed: {exc}") from None
        return lambda x: c
    return _compile_node(node, text, d)


def _compile_node(node: ast.AST, text: str, d: int) -> Fn:
    if isinstance(node, ast.UnaryOp):
        operand = _compile(node.operand, text, d)
        if isinstance(node.op, ast.USub):
            return lambda x: -operand(x)
        if isinstance(node.op, ast.UAdd):
            return operand
        raise FormulaError(text, f"operator {type(node.op).__name__} is not allowed")
    if isinstance(node, ast.BinOp):
        left = _compile(node.left, text, d)
        right = _compile(node.right, text, d)
        if isinstance(node.op, ast.Pow):
            # constant exponents are checked now, variable ones at evaluation
            if isinstance(node.right, ast.Constant):
                b = float(node.right.value)
                if abs(b) > MAX_EXPONENT:
                    raise FormulaError(text, f"exponent {b:g} larger than {MAX_EXPONENT:g}")
            return lambda x: _pow(left(x), right(x))
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise FormulaError(text, f"operator {type(node.op).__name__} is not allowed")
        return lambda x: op(left(x), right(x))
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            raise FormulaError(text, "only calls of plain function names are allowed")
        name = node.func.id
        entry = FUNCTIONS.get(name)
        if entry is None:
            raise FormulaError(
                text, f"unknown function {name!r}; allowed: {', '.join(sorted(FUNCTIONS))}"
            )
        if node.keywords:
            raise FormulaError(text, f"{name}() takes no keyword arguments")
        func, counts = entry
        if len(node.args) not in counts:
            raise FormulaError(text, f"{name}() takes {counts[0]} argument(s)")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise FormulaError(text, "argument unpacking is not allowed")
        args = [_compile(a, text, d) for a in node.args]
        if len(args) == 1:
            (a0,) = args
            return lambda x: func(a0(x))
        return lambda x: func(*(a(x) for a in args))
    if isinstance(node, ast.Tuple):
        raise FormulaError(
            text, "a comma outside min()/max() (a decimal comma? write 0.5, not 0,5)"
        )
    if isinstance(node, ast.Attribute):
        raise FormulaError(text, "attribute access is not allowed")
    if isinstance(node, ast.Subscript):
        raise FormulaError(text, "subscripts are not allowed")
    raise FormulaError(text, f"{type(node).__name__} expressions are not allowed")
