"""dogcat's release number, in a module of its own: the store records it in every schema version it writes,
and the package's ``__init__`` (which imports the library façade on first use) must not be what it imports.

Layer: a leaf (names and rules; no dogcat imports but other leaves) (docs/architecture.md).
"""

__version__ = "0.1.0"
