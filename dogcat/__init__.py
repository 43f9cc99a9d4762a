"""dogcat: name the dog breed in a shelter's photos, and keep a durable record of them.

The Python API (dogcat/api.py), imported on first use so that ``dogcat --help`` stays fast:

- ``dogcat.classify(photos, top_k=3)``: paths, bytes or PIL images → Results (``.to_dict()`` is the
  ``classify --json`` record);
- ``dogcat.Catalog(db)``: ``.add(folder)`` catalogs as ``dogcat catalog`` does, ``.records()``,
  ``.animals()``.

Layer: the library façade (docs/architecture.md).
"""

from dogcat.version import __version__

__all__ = ["Catalog", "Result", "__version__", "classify"]
_API = ("Catalog", "Result", "classify")


def __getattr__(name: str):
    if name in _API:
        from dogcat import api

        return getattr(api, name)
    raise AttributeError(f"module 'dogcat' has no attribute {name!r}")
