"""The ``dogcat`` command line: one module per command group, each parsing arguments and printing; the work
happens in the modules they call.

- ``common``: the application, the options every group shares, opening the catalog, printing tables;
- ``photos``: classify, evaluate; ``catalog``: catalog, export, report; ``animals``: animals and its commands;
  ``corrections``: correct, teach; ``similar``: similar; ``asm3``: asm3 pull, sync, files, forget;
- the lab's ``dogcat train`` is dogcat/train/cli.py, added here.

Heavy modules (onnxruntime, sqlalchemy, tensorflow) are imported inside the commands that need them, so
``dogcat --help`` is instant and inference never loads TensorFlow.

Layer: the command lines (docs/architecture.md).
"""

from __future__ import annotations

# Importing a group's module registers its commands on the application (Commands orders them in --help).
from dogcat.cli import animals, asm3, catalog, corrections, photos, similar  # noqa: F401
from dogcat.cli.common import app

__all__ = ["app", "main"]


def _add_train():
    from dogcat.train.cli import app as train_app

    app.add_typer(train_app, name="train")


_add_train()


def main():
    app(prog_name="dogcat")
