"""Regular expressions that people give on the command line (``--pattern``, ``--folder-pattern``), matched with a
time budget.

Python's ``re`` backtracks: ``(a+)+$`` against sixty ``a`` and a ``!`` takes longer than the age of the universe,
and nothing can stop a match once it has started (it holds the GIL; a thread cannot be cancelled). So the names are
matched in a child process that answers as it goes; when it falls silent for :data:`BUDGET_S`, or the whole takes
longer than :data:`BUDGET_S` plus :data:`PER_NAME_S` per name, it is killed and the pattern refused (exit 2,
naming it). A pattern that finishes in time costs one short-lived process (about 0.1 s), only when one is given.

Layer: a leaf (names and rules; no dogcat imports but other leaves) (docs/architecture.md).
"""

from __future__ import annotations

import multiprocessing
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from dogcat.errors import UsageError

BUDGET_S = 2.0  # the longest the matcher may go without an answer: far beyond any sane pattern on a file name
PER_NAME_S = 0.001  # and, over all the names, this much more each
START_S = 60.0  # a child process starting on a loaded machine: not the pattern's fault
FLUSH_S = 0.05  # the child sends what it has at least this often, so that silence means one slow name
FLUSH_NAMES = 2000

# A match as the parent keeps it: the whole match, the numbered groups, the named groups (all picklable).
Found = tuple[str, tuple[str | None, ...], dict[str, str | None]]


class PatternError(UsageError):
    """A pattern that is not a regular expression, or that cannot be matched within the budget; one line."""


@dataclass
class UserPattern:
    """A user's regular expression (``option`` says which: ``--pattern``) and its matches found so far."""

    option: str
    regex: re.Pattern
    found: dict[str, Found | None] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def compile(cls, option: str, text: str) -> UserPattern:
        try:
            return cls(option, re.compile(text))
        except (re.error, RecursionError, OverflowError) as e:
            raise PatternError(f"{option} {as_typed(text)}: not a valid regular expression ({e})") from None

    @property
    def text(self) -> str:
        return self.regex.pattern

    @property
    def typed(self) -> str:
        """The pattern as the user typed it, quoted, for a message (:func:`as_typed`)."""
        return as_typed(self.text)

    def search_all(self, names: Iterable[str]) -> None:
        """Search every name (``regex.search``) within the budget, keeping the results for :meth:`search`.
        Raises PatternError naming the pattern when it cannot finish in time: nothing has been written then."""
        todo = sorted(set(names) - self.found.keys())
        if todo:
            self.found.update(_search_in_child(self, todo))

    def search(self, name: str) -> Found | None:
        """The match of ``name`` (searched with the budget, as :meth:`search_all`, unless it already was)."""
        if name not in self.found:
            self.search_all([name])
        return self.found[name]


def as_typed(text: str) -> str:
    """A pattern quoted as the user typed it in a shell, for a message: ``'A(\\d+)_'`` shows ``\\d`` once (repr
    would double every backslash)."""
    return f'"{text}"' if "'" in text else f"'{text}'"


def _too_slow(pattern: UserPattern, how_many: int) -> PatternError:
    return PatternError(f"{pattern.option} {pattern.typed}: cannot be matched against the {how_many} name(s) "
                        f"within {BUDGET_S:g} s (a pattern that backtracks, like nested repeats '(a+)+': "
                        "simplify it); nothing was written")


def _search_in_child(pattern: UserPattern, names: list[str]) -> dict[str, Found | None]:
    ctx = multiprocessing.get_context("spawn")  # not fork: the caller may hold threads (ONNX Runtime's)
    receiving, sending = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(pattern.regex.pattern, pattern.regex.flags, names, sending),
                        daemon=True, name="dogcat-pattern")
    child.start()
    sending.close()
    out: dict[str, Found | None] = {}
    try:
        if not receiving.poll(START_S):
            raise _too_slow(pattern, len(names))
        receiving.recv()  # "ready": the budget starts now
        deadline = time.monotonic() + BUDGET_S + PER_NAME_S * len(names)
        while len(out) < len(names):
            wait = min(BUDGET_S, deadline - time.monotonic())
            if wait <= 0 or not receiving.poll(wait):
                raise _too_slow(pattern, len(names))
            for i, match in receiving.recv():
                out[names[i]] = match
    except EOFError:  # the child died (out of memory ...)
        raise _too_slow(pattern, len(names)) from None
    finally:
        receiving.close()
        if child.is_alive():
            child.kill()
        child.join()
    return out


def _child(text: str, flags: int, names: list[str], sending) -> None:
    regex = re.compile(text, flags)
    sending.send("ready")
    batch: list[tuple[int, Found | None]] = []
    last = time.monotonic()
    for i, name in enumerate(names):
        m = regex.search(name)
        batch.append((i, (m.group(0), m.groups(), m.groupdict()) if m else None))
        if len(batch) >= FLUSH_NAMES or time.monotonic() - last >= FLUSH_S:
            sending.send(batch)
            batch, last = [], time.monotonic()
    sending.send(batch)
    sending.close()
