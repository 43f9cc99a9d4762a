"""The one base of every error dogcat raises for people: a message already written as one line, and the exit
code a script gets for it. The command lines turn any of them into ``dogcat: error: <message>`` and that code
(dogcat.failures); the Python API raises them as they are.

Layer: a leaf (names and rules; no dogcat imports but other leaves) (docs/architecture.md).
"""

from __future__ import annotations


class DogcatError(Exception):
    """An error whose message is one line for people; ``exit_code`` is what the command line exits with."""

    exit_code = 1


class UsageError(DogcatError):
    """Bad usage found after parsing (a pattern that matches nothing, an age that is not a number ...): exit 2,
    and nothing was written."""

    exit_code = 2
