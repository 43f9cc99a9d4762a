"""Stanford Dogs class folders (``n02099601-golden_retriever``) and the breed names people read."""

from __future__ import annotations

import re

_LABEL = re.compile(r"^(n\d{8})-(.+)$")


def breed_name(label: str) -> str:
    """``n02099601-golden_retriever`` → ``Golden Retriever``; ``n02086240-Shih-Tzu`` → ``Shih-Tzu``."""
    m = _LABEL.match(label)
    name = m.group(2) if m else label
    return " ".join(word[:1].upper() + word[1:] for word in name.split("_") if word)


def wnid(label: str) -> str | None:
    m = _LABEL.match(label)
    return m.group(1) if m else None
