"""How every ``dogcat … --help`` page is laid out; typer renders them with rich.

What typer (0.2x) does not do by itself:

- Paragraphs flow. A command's docstring is wrapped at 120 characters in the source, and typer keeps those line
  breaks after a help page's first paragraph (and in a group's command list), so they showed mid-sentence at any
  other terminal width. :class:`Group` joins the lines of each paragraph (:func:`reflow`) of every command under
  it, and rich wraps the result to the terminal. Blank lines still separate paragraphs; an indented paragraph
  (an example, an exit code) stays one indented line; a paragraph that starts with ``\\b`` keeps its lines
  (click's convention for verbatim blocks).
- Plain usage lines and messages: ``PATHS...`` and ``INTO OTHER`` where this typer writes ``{paths}...`` and
  ``{into} {other}``; a refused choice without pydantic's "Value error, " in front.
- No type column for what takes no value, or names its own: typer showed ``<bool>`` beside every flag and the
  Python type beside an argument (``<list[str]>`` for ``paths...``). An option that takes a value keeps its
  type (``<path>``, ``<int range>``, the choices).

``dogcat``'s app and ``dogcat train``'s (which its tests also run alone) are made with ``typer.Typer(cls=Group,
…)``; a group tidies every command under it, its subgroups' too.

Layer: a leaf (names and rules; no dogcat imports but other leaves) (docs/architecture.md).
"""

from __future__ import annotations

import inspect
import re

from typer.core import TyperArgument, TyperGroup, TyperOption


def reflow(text: str | None) -> str | None:
    """``text`` with each paragraph on one line (see the module's docstring); None stays None."""
    if not text:
        return text
    paragraphs = re.split(r"\n[ \t]*\n", inspect.cleandoc(text))
    return "\n\n".join(p if p.startswith("\b") else _one_line(p) for p in paragraphs)


def _one_line(paragraph: str) -> str:
    first, *rest = paragraph.split("\n")
    return " ".join([first.rstrip(), *(line.strip() for line in rest)])


class Group(TyperGroup):
    """A typer group whose commands, its own and its subgroups', read as reflowed prose in ``--help``, listed
    in the order of :attr:`order` (the ones it does not name after them, as they were added)."""

    order: tuple[str, ...] = ()

    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        first = [name for name in self.order if name in names]
        return first + [name for name in names if name not in first]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        stack: list = [self]
        while stack:  # typer builds a group's subcommands and subgroups before the group
            command = stack.pop()
            command.help = reflow(command.help)
            stack.extend(getattr(command, "commands", {}).values())


# The type column: this typer takes it from each parameter's display_type_rich, which nothing else calls. Typer
# releases without the method render it their own way, and are left to it.
if hasattr(TyperOption, "display_type_rich") and hasattr(TyperArgument, "display_type_rich"):
    _option_type = TyperOption.display_type_rich

    def _value_type(self: TyperOption, ctx) -> str | None:
        return None if self.is_flag else _option_type(self, ctx)

    def _no_type(self, ctx) -> str | None:
        return None

    TyperOption.display_type_rich = _value_type  # type: ignore[method-assign]
    TyperArgument.display_type_rich = _no_type  # type: ignore[method-assign]


# Usage lines: this typer writes a required argument as ``{paths}...`` and ``{into} {other}``; people read
# ``PATHS...`` and ``INTO OTHER`` (the names the help texts use), as click writes them. An argument is named in
# capitals in its error messages too ("Missing argument 'PATHS'").
if hasattr(TyperArgument, "_usage_display_name") and hasattr(TyperArgument, "display_name_raw"):

    def _argument_name(self: TyperArgument) -> str:
        return self.metavar if self.metavar is not None else (self.name or "").upper()

    def _usage_name(self: TyperArgument) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")

    TyperArgument.display_name_raw = property(_argument_name)  # type: ignore[assignment,method-assign]
    TyperArgument._usage_display_name = _usage_name  # type: ignore[method-assign]

# A refused choice (--device gpu): this typer checks a value with pydantic, whose message for it begins "Value
# error, ". Without it: "Invalid value for '--device': 'gpu' is not one of 'auto', 'cpu', 'cuda'."
try:
    from typer import _coercion
except ImportError:  # another typer: its own messages
    _coercion = None  # type: ignore[assignment]
if _coercion is not None and callable(getattr(_coercion, "get_error_msg", None)):
    _pydantic_message = _coercion.get_error_msg

    def _plain_message(exc) -> str:
        return _pydantic_message(exc).removeprefix("Value error, ")

    _coercion.get_error_msg = _plain_message
