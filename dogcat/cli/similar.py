"""``dogcat similar``: the animals that look most alike.

Layer: the command lines (docs/architecture.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from dogcat import settings
from dogcat.shell import failures
from dogcat.text import json_text, visible

if TYPE_CHECKING:
    pass

from dogcat.cli.common import DbOption, ModelOption, app, open_catalog, path_table, print_whole


@app.command()
def similar(
    query: Annotated[str, typer.Argument(help="A photo (catalogued or not), or an animal's code.",
                                         show_default=False)],
    db: DbOption = settings.DEFAULT_DB,
    top: Annotated[int, typer.Option("--top", "-n", min=1, help="How many animals to list.")] = 5,
    retired: Annotated[bool, typer.Option("--retired", help="Compare the animals whose photos are gone too "
                                          "(dogcat animals prune retired them): the same dog, back again.")] = False,
    model_path: ModelOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per animal per line, best first.")] = False,
):
    """The catalogued animals that look most like a photo or an animal, best first, with a similarity (1: the
    same look; compared on the features the breed model reads, so mostly breed, coat and build).

    For a dog found outside, its photo against the animals in care; for an animal, the others that look like
    it. The query's own animal is left out.

    [b]Examples[/b]

      dogcat similar found-dog.jpg --db shelter.db

      dogcat similar A1023 --db shelter.db --top 10 --json

    [b]Exit codes[/b]

      0  listed;  1  no such photo or animal, a photo that cannot be read, no animal to compare with, or the
      catalog cannot be read;  2  bad usage
    """
    with failures(db), open_catalog(db, readonly=True) as catalog:
        found = catalog.similar(query, top=top, retired=retired, model=model_path)
    if as_json:
        for m in found:
            print(json_text(m.to_dict()))
        return
    rows = [[str(i), escape(visible(m.animal)) + (" (retired)" if m.retired else ""),
             escape(visible(m.name if m.name != m.animal else "")), f"{m.similarity:.3f}",
             escape(visible(m.breed or "")), str(m.photos), escape(visible(m.photo))] for i, m in enumerate(found, 1)]
    print_whole(path_table(("", "animal", "name", "similarity", "breed", "photos", "most alike photo"),
                             "most alike photo", rows))
