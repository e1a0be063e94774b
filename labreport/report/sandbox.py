"""The sandbox templates run in. A template is untrusted input (a course's, a student's): it
may read the figures it is given and choose words around them, nothing else.

What a template may reach, from explicit lists:
- On a measurement record (a pydantic model): its fields, and the few methods its class lists in
  TEMPLATE_CALLS. Never the model's own machinery (parse, load, copy, dump, schema ...).
- On labreport's views: their data, and the methods their class lists in TEMPLATE_CALLS.
- On plain values: the str, dict, list and tuple methods in PLAIN_CALLS.
- On classes: nothing.
- Jinja's own helpers (loop, macros, cycler, joiner, namespace, range, dict).

And every operation that makes a string or a list is checked *before* it allocates: `*`, `**`,
`+`, `~`, `%`, str.format, replace, join, center, indent, batch, slice, tojson, wordwrap and sum
refuse results beyond MAX_OUTPUT_CHARS, and a field width beyond MAX_WIDTH.
"""

from __future__ import annotations

import functools
import operator
import re
import string
import types
from collections.abc import Callable, Iterable
from typing import Any

import jinja2
import jinja2.compiler
import jinja2.filters
import jinja2.nodes
import jinja2.sandbox
from pydantic import BaseModel

MAX_OUTPUT_CHARS = 20_000_000
MAX_POWER_BITS = 100_000  # of an integer a ** b (or a * b) may make
MAX_WIDTH = 10_000  # a field width or precision in a format, a center or indent width
MAX_ITEMS = 100_000  # lists a filter makes (batch, slice), as Jinja's own range()
MAX_JSON_INDENT = 16

STR_CALLS = """upper lower title capitalize strip lstrip rstrip split rsplit splitlines startswith
endswith count find rfind isdigit isalpha isalnum isspace islower isupper removeprefix removesuffix
replace join format format_map"""
PLAIN_CALLS: dict[type, frozenset[str]] = {
    str: frozenset(STR_CALLS.split()),
    dict: frozenset({"items", "keys", "values", "get"}),
    list: frozenset({"index", "count"}),
    tuple: frozenset({"index", "count"}),
}
# str methods that make strings of any size: reached only through their bounded wrappers.
GROWING = frozenset({"replace", "join", "format", "format_map"})
# Jinja's globals a template keeps: lipsum is left out (it makes text of any size).
GLOBALS = ("range", "dict", "cycler", "joiner", "namespace")


class TemplateLimitError(Exception):
    """A template went past a limit (time, output size); raised inside its rendering."""


_CALLS: dict[type, frozenset[str]] = {}


def template_calls(owner: type) -> frozenset[str]:
    """The methods a class of labreport's lets templates call (its TEMPLATE_CALLS, inherited)."""
    found = _CALLS.get(owner)
    if found is None:
        names = (vars(klass).get("TEMPLATE_CALLS", ()) for klass in owner.__mro__)
        found = _CALLS[owner] = frozenset(name for group in names for name in group)
    return found


def _jinja_helper(obj: Any) -> bool:
    """Jinja's own: a global (range, cycler ...), a macro, a loop, or a method of one of them."""
    if isinstance(obj, type | types.FunctionType):
        module = obj.__module__
    else:
        module = type(getattr(obj, "__self__", obj)).__module__
    return module.split(".")[0] == "jinja2"


def _plain_call(obj: Any, name: str) -> bool:
    return any(isinstance(obj, kind) and name in names for kind, names in PLAIN_CALLS.items())


def _too_big(size: int, what: str) -> None:
    if size > MAX_OUTPUT_CHARS:
        raise TemplateLimitError(f"{what} of {size:,} characters is beyond the limit")


def _at_most(value: Any, limit: int, what: str) -> None:
    if isinstance(value, int) and value > limit:
        raise TemplateLimitError(f"{what} {value:,} is beyond the limit of {limit:,}")


def _width(value: Any, what: str) -> None:
    _at_most(value, MAX_WIDTH, what)


def _longest(values: Iterable[Any]) -> int:
    return max((len(str(value)) for value in values), default=0)


PRINTF_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[a-zA-Z%]")


def check_printf(fmt: str, args: Any) -> None:
    """`fmt % args` (and the format filter), before it formats."""
    values = list(args.values()) if isinstance(args, dict) else args
    values = values if isinstance(values, tuple | list) else [values]
    longest = _longest(values)
    size = len(fmt)
    for field in PRINTF_FIELD.finditer(fmt):
        for number in field.groups():
            if number == "*":
                raise TemplateLimitError("a '*' width in a format is not allowed in templates")
            _width(int(number) if number else 0, "a field width of")
            size += int(number or 0)
        size += longest
    _too_big(size, "a formatted string")


def check_str_format(fmt: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """str.format / format_map, before it formats: no nested fields, bounded widths."""
    longest = _longest([*args, *kwargs.values()])
    size = 0
    for literal, field, spec, _ in string.Formatter().parse(fmt):
        size += len(literal)
        if field is None:
            continue
        if spec and "{" in spec:
            raise TemplateLimitError("a nested field in a format spec is not allowed in templates")
        for number in re.findall(r"\d+", spec or ""):
            _width(int(number), "a field width of")
            size += int(number)
        size += longest
    _too_big(size, "a formatted string")


def check_replace(text: str, old: str, new: str, count: int | None = None) -> None:
    found = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        found = min(found, count)
    _too_big(len(text) + found * (len(new) - len(old)), "a replaced string")


def _bounded_join(separator: str, items: Iterable[Any]) -> str:
    parts = [str(item) for item in items]
    _too_big(sum(map(len, parts)) + len(separator) * max(len(parts) - 1, 0), "a joined string")
    return separator.join(parts)


def _checked(call: Callable[..., Any], check: Callable[..., None]) -> Callable[..., Any]:
    @functools.wraps(call)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        check(*args, **kwargs)
        return call(*args, **kwargs)

    bounded.template_safe = True  # type: ignore[attr-defined]
    return bounded


def _filter(original: Callable[..., Any], check: Callable[..., None]) -> Callable[..., Any]:
    """A Jinja filter with a check of its arguments first (the filter's pass_* kept)."""

    @functools.wraps(original)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        plain = args[1:] if getattr(original, "jinja_pass_arg", None) else args
        check(*plain, **kwargs)
        return original(*args, **kwargs)

    return bounded


def _join_filter(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    items = list(value)
    if attribute is not None:
        items = list(map(jinja2.filters.make_attrgetter(eval_ctx.environment, attribute), items))
    _bounded_join(str(d), items)
    return str(jinja2.filters.do_join(eval_ctx, items, d))


def _indent(s: Any, width: Any = 4, *rest: Any, **kwargs: Any) -> None:
    _width(width, "an indent of")
    lines = str(s).count("\n") + 1
    _too_big(
        len(str(s)) + lines * (width if isinstance(width, int) else len(str(width))),
        "an indented string",
    )


def _replace(s: Any, old: Any, new: Any, count: int | None = None) -> None:
    check_replace(str(s), str(old), str(new), count)


def _sum_numbers(iterable: Any, attribute: Any = None, start: Any = 0) -> None:
    if not isinstance(start, int | float):
        raise TemplateLimitError("sum adds numbers only in templates")


def _batch(value: Any, count: int, fill_with: Any = None) -> None:
    _at_most(count, MAX_ITEMS, "a count of")


def _tojson(value: Any, indent: int | None = None) -> None:
    _at_most(indent, MAX_JSON_INDENT, "a JSON indent of")


def _wordwrap(s: Any, width: int = 79, long: bool = True, wrap: str | None = None, *_: Any) -> None:
    _too_big(len(str(s)) * (1 + len(wrap or "\n")), "a wrapped string")


def _bounded_filters() -> dict[str, Callable[..., Any]]:
    f = jinja2.filters
    return {
        "center": _filter(f.do_center, lambda value, width=80: _width(width, "a width of")),
        "indent": _filter(f.do_indent, _indent),
        "format": _filter(f.do_format, lambda value, *a, **k: check_printf(str(value), k or a)),
        "replace": _filter(f.do_replace, _replace),
        "join": jinja2.pass_eval_context(_join_filter),
        "batch": _filter(f.do_batch, _batch),
        "slice": _filter(f.do_slice, _batch),
        "tojson": _filter(f.do_tojson, _tojson),
        "wordwrap": _filter(f.do_wordwrap, _wordwrap),
        "sum": _filter(f.do_sum, _sum_numbers),
    }


class BoundedCodeGenerator(jinja2.compiler.CodeGenerator):
    """`a ~ b` through the environment's concat, which checks the size before it joins."""

    def visit_Concat(self, node: jinja2.nodes.Concat, frame: jinja2.compiler.Frame) -> None:  # noqa: N802 (Jinja's name)
        self.write("environment.concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class LabSandbox(jinja2.sandbox.ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with an explicit list of what may be called and every
    string-making operation bounded (see the module's docstring)."""

    code_generator_class = BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals = {name: self.globals[name] for name in GLOBALS}
        self.filters.update(_bounded_filters())
        self.filters.pop("random")  # a report is the same bytes from the same files

    # -- what a template may reach -----------------------------------------------------------
    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value) or isinstance(obj, type):
            return False
        if isinstance(obj, BaseModel):
            return attr in type(obj).model_fields or attr in template_calls(type(obj))
        if not callable(value) or _jinja_helper(obj):
            return True
        return _plain_call(obj, attr) or attr in template_calls(type(obj))

    def is_safe_callable(self, obj: Any) -> bool:
        if not super().is_safe_callable(obj):
            return False
        if getattr(obj, "template_safe", False) is True or obj is dict or _jinja_helper(obj):
            return True
        owner, name = getattr(obj, "__self__", None), getattr(obj, "__name__", "")
        if owner is None or isinstance(owner, type) or (isinstance(owner, str) and name in GROWING):
            return False
        if isinstance(owner, BaseModel):
            return name in template_calls(type(owner))
        return _plain_call(owner, name) or name in template_calls(type(owner))

    def getattr(self, obj: Any, attribute: str) -> Any:
        return self._bounded(obj, attribute, super().getattr(obj, attribute))

    def getitem(self, obj: Any, argument: Any) -> Any:
        value = super().getitem(obj, argument)
        return self._bounded(obj, argument, value) if isinstance(argument, str) else value

    def _bounded(self, obj: Any, name: str, value: Any) -> Any:
        if not isinstance(obj, str) or not callable(value):
            return value
        if name == "replace":
            return _checked(value, lambda old, new, count=-1: check_replace(obj, old, new, count))
        if name == "join":
            return _checked(lambda items: _bounded_join(obj, items), lambda items: None)
        return value

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__
        if value.__name__ == "format_map":
            return _checked(
                wrapped, lambda mapping=None, *rest: check_str_format(fmt, (), dict(mapping or {}))
            )
        return _checked(wrapped, lambda *args, **named: check_str_format(fmt, args, named))

    # -- operations, checked before they allocate ---------------------------------------------
    def concat(self, parts: Iterable[Any]) -> str:
        """Jinja's own join (of `~`, a macro's or a block's output), its size checked first."""
        texts = [str(part) for part in parts]
        _too_big(sum(map(len, texts)), "a joined string")
        return "".join(texts)

    def call_binop(self, context: jinja2.runtime.Context, op: str, left: Any, right: Any) -> Any:
        sequence = (str, list, tuple)
        if op == "*":
            for sized, count in ((left, right), (right, left)):
                if isinstance(sized, sequence) and isinstance(count, int):
                    _too_big(len(sized) * count, "a repetition")
            self._int_bits(
                left,
                right,
                left.bit_length() + right.bit_length() if self._ints(left, right) else 0,
            )
            return operator.mul(left, right)
        if op == "+":
            if isinstance(left, sequence) and isinstance(right, sequence):
                _too_big(len(left) + len(right), "a joined value")
            return operator.add(left, right)
        if op == "%":
            if isinstance(left, str):
                check_printf(left, right)
            return operator.mod(left, right)
        huge = self._ints(left, right) and abs(left) > 1 and right > 0
        self._int_bits(left, right, right * abs(left).bit_length() if huge else 0)
        return operator.pow(left, right)

    @staticmethod
    def _ints(left: Any, right: Any) -> bool:
        return all(isinstance(x, int) and not isinstance(x, bool) for x in (left, right))

    @staticmethod
    def _int_bits(left: Any, right: Any, bits: int) -> None:
        if bits > MAX_POWER_BITS:
            raise TemplateLimitError(f"a number of {bits:,} bits is beyond the limit")
