"""dogcat's release number, in a module of its own: the store records it in every schema version it writes,
and the package's ``__init__`` (which imports the library façade on first use) must not be what it imports."""

__version__ = "0.1.0"
