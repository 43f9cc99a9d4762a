"""The catalog as one self-contained HTML page for people: one card per animal with its photos' thumbnails.
The animals to review (`unsure`) come first, then the dogs by breed (an animal staff corrected sits in its
breed's section, marked "staff"), then `not_a_dog` animals and unreadable files. Under each thumbnail, that
photo's own guess by the model, in a corrected animal too; a photo stored under a second name says "duplicate
of" the first on the later copy. Counts are animals (files only where files are listed). A search box.

Self-contained: thumbnails are data: URIs, the style and the script are inline, nothing is fetched, so the file
can be mailed or opened from a USB stick. Every piece of text from the catalog (file names above all) is
HTML-escaped (its control and bidi characters shown as ``<U+XXXX>``), and a Content-Security-Policy allows only
this page's own script and style (by hash): even a mistake in escaping could not run a script that came from a
file name.

Layer: an output (docs/architecture.md).
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import PurePath

from dogcat import previews, settings
from dogcat.decision import status_of
from dogcat.previews import Preview
from dogcat.readmodel import Answer, disagrees, guess_summary
from dogcat.text import percent, visible

THUMB_SIDE = 192  # pixels: shown at up to 160 CSS pixels, sharp enough on a high-density screen
LOW_CONFIDENCE = 0.5  # below this a breed's confidence is shown in warning colours

STYLE = """
:root { color-scheme: light; --ink: #1d2327; --muted: #5f6b73; --line: #d9dee2; --warn: #a4460b; --bad: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--ink); background: #f6f7f8; }
header { position: sticky; top: 0; z-index: 1; background: #fff; border-bottom: 1px solid var(--line);
         padding: 12px 24px; }
h1 { font-size: 20px; margin: 0 0 4px; }
.facts { color: var(--muted); margin: 0 0 8px; }
.facts b { color: var(--ink); }
#q { width: min(480px, 100%); font: inherit; padding: 6px 10px; border: 1px solid #aab3ba; border-radius: 6px; }
#count { color: var(--muted); margin-left: 8px; }
nav { padding: 8px 24px 0; }
nav a { display: inline-block; margin: 0 6px 6px 0; padding: 2px 8px; border-radius: 12px; background: #e8ecef;
        color: var(--ink); text-decoration: none; font-size: 13px; }
nav a.other { background: #fbe9dd; }
main { padding: 0 24px 40px; }
section { margin-top: 20px; }
h2 { font-size: 17px; margin: 0 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h2 .n { color: var(--muted); font-weight: normal; font-size: 14px; }
h2 .why { color: var(--muted); font-weight: normal; font-size: 13px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; }
figure { margin: 0; width: 176px; background: #fff; border: 1px solid var(--line); border-radius: 8px;
         padding: 8px; }
figure.dup { border-style: dashed; }
.thumb { width: 160px; height: 160px; display: flex; align-items: center; justify-content: center;
         background: #eef1f3; border-radius: 4px; overflow: hidden; }
.thumb img { max-width: 160px; max-height: 160px; }
.thumb .none { color: var(--muted); font-size: 12px; padding: 8px; text-align: center; }
figcaption { margin-top: 6px; font-size: 13px; overflow-wrap: anywhere; }
.file { font-weight: 600; }
.conf { float: right; font-variant-numeric: tabular-nums; }
.low { color: var(--warn); }
.then, .note, .guess { display: block; color: var(--muted); font-size: 12px; }
.fix { display: block; color: #2a7a3b; font-size: 12px; font-weight: 600; }
.said { font-weight: 600; display: block; }
.unlike { display: block; color: var(--bad); font-size: 12px; font-weight: 600; }
.animal { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 8px; }
.animal.staff { border-color: #2a7a3b; }
.animal-head { font-size: 14px; margin: 0 0 6px; display: flex; gap: 8px; align-items: baseline; flex-wrap: wrap; }
.aname { font-weight: 700; }
.acode, .src { color: var(--muted); font-size: 12px; }
.animal.staff .src { color: #2a7a3b; font-weight: 600; }
.photos { display: flex; flex-wrap: wrap; gap: 8px; }
.animal figure { border-color: #eceff1; }
.badge { display: inline-block; margin-top: 2px; padding: 0 6px; border-radius: 8px; font-size: 11px;
         background: #e3e7fb; color: #2a3a8f; }
table { border-collapse: collapse; background: #fff; }
td, th { border: 1px solid var(--line); padding: 4px 8px; text-align: left; font-size: 13px; vertical-align: top; }
td.error { color: var(--bad); }
[hidden] { display: none !important; }
"""

# Filters cards and rows as one types (every word must appear in a card's text), hides emptied sections and
# keeps the query in the address (#q=...), so that a search can be bookmarked or sent.
SCRIPT = """
(function () {
  var box = document.getElementById("q");
  var items = Array.prototype.slice.call(document.querySelectorAll("[data-search]"));
  var sections = Array.prototype.slice.call(document.querySelectorAll("section[data-group]"));
  function apply() {
    var words = box.value.toLowerCase().split(/\\s+/).filter(Boolean);
    items.forEach(function (item) {
      var text = item.getAttribute("data-search");
      item.hidden = !words.every(function (w) { return text.indexOf(w) !== -1; });
    });
    Array.prototype.forEach.call(document.querySelectorAll(".animal"), function (animal) {
      animal.hidden = animal.querySelectorAll("[data-search]:not([hidden])").length === 0;
    });
    // Counted as the page counts: animals, and files in the table of files that could not be read.
    sections.forEach(function (section) {
      var n = section.querySelectorAll(".animal:not([hidden]), tr[data-search]:not([hidden])").length;
      section.hidden = n === 0;
      section.querySelector(".n").textContent = n;
      var why = section.querySelector(".why[data-one]");  // "1 file", "2 files" as the search narrows the table
      if (why) { why.textContent = n === 1 ? why.getAttribute("data-one") : why.getAttribute("data-many"); }
      var link = document.querySelector('nav a[href="#' + section.id + '"]');
      if (link) {
        link.hidden = n === 0;
        link.querySelector(".n").textContent = n;
        var word = link.querySelector(".why[data-one]");
        if (word) { word.textContent = n === 1 ? word.getAttribute("data-one") : word.getAttribute("data-many"); }
      }
    });
    document.getElementById("shown").textContent = document.querySelectorAll(".animal:not([hidden])").length;
    try {
      history.replaceState(null, "", words.length ? "#q=" + encodeURIComponent(box.value) : "#");
    } catch (e) { /* some browsers refuse this for file: pages; the search still works */ }
  }
  var m = /^#q=(.*)$/.exec(location.hash);
  if (m) {
    // A hand-edited or cut link (#q=%, #q=%E0) is no reason to lose the search box: take the text as it is.
    try { box.value = decodeURIComponent(m[1]); } catch (e) { box.value = m[1]; }
  }
  box.addEventListener("input", apply);
  apply();
  document.body.setAttribute("data-ready", "1");
})();
"""


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode("ascii") + "'"


CSP = (f"default-src 'none'; img-src data:; style-src {_csp_hash(STYLE)}; script-src {_csp_hash(SCRIPT)}; "
       "base-uri 'none'; form-action 'none'")


def esc(value: object) -> str:
    """Text (file names, breeds, errors) → HTML that shows it as text, in an element or an attribute, with
    every control and bidi character written out (``<U+202E>``): a name cannot hide or reorder its letters."""
    return html.escape(visible(value), quote=True)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _common_folder(paths: list[str]) -> str:
    """The deepest folder holding every path: names are shown below it (a name alone when all share one)."""
    folders = [str(PurePath(p).parent) for p in paths]
    try:
        return os.path.commonpath(folders) if folders else ""
    except ValueError:  # relative and absolute paths mixed: show them whole
        return ""


@dataclass
class Catalog:
    """The records, sorted into what the page shows."""

    breeds: dict[str, list] = field(default_factory=dict)  # breed → its dog animals (dogcat.animals.Answer)
    unsure: list = field(default_factory=list)  # animals
    not_a_dog: list = field(default_factory=list)  # animals
    errors: list[dict] = field(default_factory=list)  # files that could not be read
    first_of: dict[str, str] = field(default_factory=dict)  # sha256 → the path catalogued first holding it
    names_of: dict[str, list[str]] = field(default_factory=dict)  # sha256 → every path holding it
    models: Counter = field(default_factory=Counter)
    folder: str = ""  # the folder every path is in: cards show names below it

    def shown(self, path: str) -> str:
        if self.folder and path.startswith(self.folder.rstrip("/") + "/"):
            return path[len(self.folder.rstrip("/")) + 1:]
        return path

    @property
    def files(self) -> int:
        shown = [a for group in (*self.breeds.values(), self.unsure, self.not_a_dog) for a in group]
        return sum(len(_shown_photos(a)) for a in shown) + len(self.errors)

    @property
    def animals(self) -> int:
        return sum(map(len, self.breeds.values())) + len(self.unsure) + len(self.not_a_dog)

    @property
    def duplicates(self) -> int:
        return sum(len(paths) - 1 for paths in self.names_of.values())

    @property
    def dogs(self) -> int:
        return sum(map(len, self.breeds.values()))

    @property
    def by_staff(self) -> int:
        return sum(a.source == "correction" for group in self.breeds.values() for a in group)


def _alone(r: dict):
    """A photo as an animal of its own, for records given without animals."""
    status = status_of(r)
    return Answer(PurePath(r["path"]).name, PurePath(r["path"]).stem, [r], status,
                  (r.get("top_k") or []) if status in ("dog", "unsure") else [], r.get("source") or "model",
                  votes=1, model=r.get("model"))


def _shown_photos(a) -> list[dict]:
    return [r for r in a.photos if status_of(r) != "error"]


def sort(records: Iterable[dict], animals: Iterable | None = None) -> Catalog:
    records = list(records)
    animals = list(animals) if animals is not None else [_alone(r) for r in records]
    c = Catalog(folder=_common_folder([r["path"] for r in records]))
    # The copy catalogued first is the photo; a later one is its duplicate (ties: path order).
    for r in sorted(records, key=lambda r: (r.get("catalogued_at") or "", r["path"])):
        sha = r.get("sha256")
        if sha:
            c.first_of.setdefault(sha, r["path"])
            c.names_of.setdefault(sha, []).append(r["path"])
    for r in records:
        if r.get("model"):
            c.models[r["model"]] += 1
        if status_of(r) == "error":
            c.errors.append({**r, "error": r.get("error") or "no prediction"})
    for a in animals:
        if not _shown_photos(a):
            continue
        if a.status == "dog":  # corrected or not, in its (first) breed's section: staff's are marked there
            c.breeds.setdefault(a.breed or a.summary(), []).append(a)
        elif a.status == "unsure":
            c.unsure.append(a)
        elif a.status == "not_a_dog":
            c.not_a_dog.append(a)
    c.breeds = dict(sorted(c.breeds.items(), key=lambda kv: (-len(kv[1]), kv[0].lower())))
    return c


def _search_text(r: dict, extra: str = "") -> str:
    guesses = " ".join(g.get("breed", "") for g in r.get("top_k") or [])
    return esc(" ".join([r["path"], guesses, r.get("looks_like") or "", r.get("error") or "", extra]).lower())


def _duplicate_badge(r: dict, c: Catalog) -> tuple[str, str]:
    """(badge HTML, search words) for a later copy of a photo catalogued before under another name; the first
    copy is the photo itself and has none."""
    first = c.first_of.get(r.get("sha256") or "")
    if first is None or r["path"] == first:
        return "", ""
    title = f"The same photo (same SHA-256) as {first}"
    return f'<span class="badge" title="{esc(title)}">{esc("duplicate of " + c.shown(first))}</span>', "duplicate"


def _card(r: dict, c: Catalog, thumb: Preview, body: str, animal_words: str = "") -> str:
    badge, words = _duplicate_badge(r, c)
    words = " ".join(w for w in (words, animal_words) if w)
    name = c.shown(r["path"])
    if thumb.jpeg:
        uri = "data:image/jpeg;base64," + base64.b64encode(thumb.jpeg).decode("ascii")
        picture = f'<img src="{uri}" alt="{esc(name)}" loading="lazy" decoding="async">'
    else:
        picture = f'<span class="none">{esc(thumb.problem or "no picture")}</span>'
    return (f'<figure class="card{" dup" if badge else ""}" '
            f'data-search="{_search_text(r, words)}"><div class="thumb">{picture}</div>'
            f'<figcaption><span class="file" title="{esc(r["path"])}">{esc(name)}</span>{body}'
            f'{"<br>" + badge if badge else ""}</figcaption></figure>')


def _guesses(top_k: list[dict], start: int, n: int = 2) -> str:
    return ", ".join(f"{g['breed']} {percent(g.get('confidence'))}" for g in top_k[start:start + n])


def _dog_body(r: dict) -> str:
    top_k = r.get("top_k") or []
    confidence = r.get("confidence", top_k[0].get("confidence") if top_k else None)
    low = " low" if confidence is not None and confidence < LOW_CONFIDENCE else ""
    then = _guesses(top_k, 1)
    return (f'<span class="conf{low}" title="confidence of the best guess">{esc(percent(confidence))}</span>'
            + (f'<span class="said" title="the model\'s guess for this photo">{esc(top_k[0]["breed"])}</span>'
               if top_k else "")
            + (f'<span class="then">then {esc(then)}</span>' if then else ""))


def _unsure_body(r: dict) -> str:
    top_k = r.get("top_k") or []
    said = guess_summary(r)  # "maybe a mix: Beagle 49% / Walker Hound 30%" or "probably Beagle (72%)"
    then = _guesses(top_k, 2 if said.startswith("maybe a mix") else 1)
    return (f'<span class="note" title="the model\'s guess for this photo">{esc(said)}</span>'
            + (f'<span class="then">then {esc(then)}</span>' if then else ""))


def _not_a_dog_body(r: dict) -> str:
    looks = r.get("looks_like")
    p = r.get("dog_probability")
    return ((f'<span class="note">looks like: {esc(looks)}</span>' if looks else "")
            + (f'<span class="then">dog check {esc(percent(p))}</span>' if p is not None else ""))


def _section(group: str, ident: str, title: str, cards: list[str], why: str = "") -> str:
    """A section of animal cards, headed by how many (the count the search box updates)."""
    why_html = f' <span class="why">{esc(why)}</span>' if why else ""
    return (f'<section id="{ident}" data-group="{group}"><h2>{esc(title)} <span class="n">{len(cards)}</span>'
            f'{why_html}</h2><div class="cards">{"".join(cards)}</div></section>')


def thumbnail(record: dict) -> Preview:
    """The photo read again from its path, if it is still the one catalogued, shrunk to a thumbnail."""
    return previews.preview(record["path"], record.get("sha256"), THUMB_SIDE, quality=settings.THUMBNAIL_QUALITY)


def _body_of(r: dict) -> str:
    return {"dog": _dog_body, "unsure": _unsure_body, "not_a_dog": _not_a_dog_body}.get(status_of(r),
                                                                                         lambda _: "")(r)


def _unlike(guess: dict, a) -> str:
    """The mark on a photo whose own guess names a breed its animal's answer does not (readmodel.disagrees)."""
    if not disagrees(guess, a):
        return ""
    return (f'<span class="unlike" title="the model names another breed for this photo than for its animal: '
            f'a photo of another dog?">not the animal\'s answer ({esc(a.summary())})</span>')


def _corrected_body(r: dict, guess: dict, animal_by_staff: bool) -> str:
    """A photo that staff's word covers: the model's own guess, small, and the staff's word for this photo
    when it is not the animal's (the animal's card already says that one)."""
    own = "" if animal_by_staff else (
        f'<span class="fix">staff: {esc(r.get("breed") or r["status"].replace("_", " "))}</span>')
    said = esc(guess_summary(guess))
    return own + f'<span class="guess" title="the model\'s own guess for this photo">model: {said}</span>'


def _animal_head(a) -> str:
    confidence = a.confidence
    low = " low" if confidence is not None and confidence < LOW_CONFIDENCE else ""
    if a.source == "correction":
        who = f"staff ({a.correction.by})" if a.correction else "staff"
    else:
        who = f"{a.votes} photo{'s' if a.votes != 1 else ''} fused" if a.votes > 1 else ""
    return (f'<div class="animal-head"><span class="aname">{esc(a.name)}</span>'
            f'<span class="acode" title="animal code">{esc(a.animal)}</span>'
            f'<span class="answer">{esc(a.summary())}</span>'
            + (f'<span class="aconf{low}" title="confidence of the animal\'s answer">{esc(percent(confidence))}'
               f'</span>' if confidence is not None else "")
            + (f'<span class="src">{esc(who)}</span>' if who else "") + "</div>")


def render(records: Iterable[dict], *, title: str, source: str, generated: str,
           thumbnail: Callable[[dict], Preview] = thumbnail,
           progress: Callable[[int, int], None] | None = None, animals: Iterable | None = None,
           guesses: dict[str, dict] | None = None) -> str:
    """The page. ``animals``: dogcat.readmodel.answers for these records (default: each photo its own animal).
    ``guesses``: path → the photo's record before corrections (readmodel.records(corrected=False)), the
    model's own guess shown under a corrected photo (default: its record's top_k).
    ``thumbnail(record)`` is asked once per distinct photo (not for errors); ``progress(done, total)``
    follows it."""
    c = sort(records, animals)
    guesses = guesses or {}

    def guess_of(r: dict) -> dict:
        """The model's own guess for a photo: its record, or for a corrected one its record before corrections."""
        if r.get("source") != "correction":
            return r
        return guesses.get(r["path"]) or {**r, "status": "dog" if r.get("top_k") else "error"}

    def body(r: dict, a) -> str:
        guess = guess_of(r)
        own = _body_of(r) if guess is r else _corrected_body(r, guess, a.source == "correction")
        return own + _unlike(guess, a)
    wanted = [r for group in (*c.breeds.values(), c.unsure, c.not_a_dog) for a in group for r in _shown_photos(a)]
    thumbs: dict[str, Preview] = {}
    total = len({r.get("sha256") or r["path"] for r in wanted})
    for r in wanted:
        key = r.get("sha256") or r["path"]
        if key not in thumbs:
            thumbs[key] = thumbnail(r)
            if progress:
                progress(len(thumbs), total)

    def cards(group: list) -> list[str]:
        """One card per animal: its answer, then a figure per photo (searched, and counted, one by one)."""
        out = []
        for a in group:
            words = " ".join([a.animal, a.name, a.summary(), "staff" if a.source == "correction" else ""])
            photos = "".join(_card(r, c, thumbs[r.get("sha256") or r["path"]], body(r, a),
                                   words + (" unlike" if disagrees(guess_of(r), a) else ""))
                             for r in _shown_photos(a))
            out.append(f'<div class="animal{" staff" if a.source == "correction" else ""}">{_animal_head(a)}'
                       f'<div class="photos">{photos}</div></div>')
        return out

    # The animals to review first, then the dogs by breed, then what is no dog; every count is of animals.
    sections, links = [], []
    if c.unsure:
        sections.append(_section("unsure", "unsure", "Unsure", cards(c.unsure), "to review: the answer from "
                                 "the photos is not sure enough (a mix, or a breed the model is not sure of)"))
        links.append(f'<a class="other" href="#unsure" title="animals to review">Unsure <span class="n">'
                     f'{len(c.unsure)}</span></a>')
    for i, (breed, group) in enumerate(c.breeds.items(), 1):
        ident = f"breed-{i}-{_slug(breed)}"  # numbered: two names may make the same slug
        sections.append(_section("breed", ident, breed, cards(group)))
        links.append(f'<a href="#{ident}" title="animals">{esc(breed)} <span class="n">{len(group)}</span></a>')
    if c.not_a_dog:
        sections.append(_section("not-a-dog", "not-a-dog", "Not a dog", cards(c.not_a_dog),
                                 "no photo of these shows a dog"))
        links.append(f'<a class="other" href="#not-a-dog" title="animals">Not a dog <span class="n">'
                     f'{len(c.not_a_dog)}</span></a>')
    if c.errors:
        rows = "".join(f'<tr data-search="{_search_text(r)}">'
                       f'<td title="{esc(r["path"])}">{esc(c.shown(r["path"]))}</td>'
                       f'<td class="error">{esc(r["error"])}</td></tr>' for r in c.errors)
        sections.append(f'<section id="errors" data-group="errors"><h2>Could not be read <span class="n">'
                        f'{len(c.errors)}</span> <span class="why" data-one="file" data-many="files">'
                        f'{"file" if len(c.errors) == 1 else "files"}</span></h2><table><thead><tr><th>file'
                        f'</th><th>problem</th></tr></thead><tbody>{rows}</tbody></table></section>')
        links.append(f'<a class="other" href="#errors" title="files">Could not be read <span class="n">'
                     f'{len(c.errors)}</span> <span class="why" data-one="file" data-many="files">'
                     f'{"file" if len(c.errors) == 1 else "files"}</span></a>')

    duplicates = (f"; <b>{c.duplicates}</b> photo{' is a duplicate' if c.duplicates == 1 else 's are duplicates'}"
                  " (the same photo under another name)" if c.duplicates else "")
    facts = (f"<b>{c.animals}</b> animals, from <b>{c.files}</b> files: <b>{len(c.unsure)}</b> to review "
             f"(unsure), <b>{c.dogs}</b> dogs in <b>{len(c.breeds)}</b> breeds (<b>{c.by_staff}</b> named by staff), "
             f"<b>{len(c.not_a_dog)}</b> not a dog; <b>{len(c.errors)}</b> file{'' if len(c.errors) == 1 else 's'} "
             f"could not be read{duplicates}. "
             "Counts are animals. Model: " + (esc(", ".join(c.models)) or "none")
             + f". Photos in {esc(c.folder or '(various folders)')}; catalog {esc(source)}, {esc(generated)}.")
    searchable = c.animals
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="dogcat">
<title>{esc(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>{esc(title)}</h1>
<p class="facts">{facts}</p>
<input id="q" type="search" placeholder="Search file names, breeds, problems…" aria-label="Search" autocomplete="off">
<span id="count"><span id="shown">{searchable}</span> of {searchable} animals shown</span>
</header>
<nav>{"".join(links)}</nav>
<main>
{"".join(sections) or "<p>The catalog is empty.</p>"}
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""
