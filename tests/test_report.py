"""``dogcat report``: a real catalog (real photos, the real models, a real SQLite file) → one HTML page, loaded
from file:// in a real headless Chromium (Debian's ``chromium``, which .ci/run installs) and driven over the
DevTools protocol: what a person sees, what the search box does, and that no file name can run a script.
"""

from __future__ import annotations

import base64
import fcntl
import html
import html.parser
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from dogcat import catalog, db, pathkeys, readmodel, report
from dogcat.cli import app
from dogcat.status import Judge
from tests.conftest import needs_program

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("DOGCAT_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")

# File names that would run a script if the page pasted them in as HTML. A name cannot hold "/", so the
# classic one is a folder "<script>alert(1)<" holding "script>.jpg": the page shows "<script>alert(1)</script>.jpg".
SCRIPT_NAME = "<script>alert(1)</script>.jpg"
IMG_NAME = "<img src=x onerror=alert(2)>.jpg"


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe: it reads commands
    on its fd 3 and writes replies and events on its fd 4, each a JSON text ended by a NUL byte)."""

    def __init__(self, binary: str, profile: Path):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def give_fds():  # in the child: the pipe ends on fds 3 and 4, where Chromium looks for them
            a, b = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
             "--no-default-browser-check", "--hide-scrollbars", "--mute-audio", "--disable-dev-shm-usage",
             f"--user-data-dir={profile}", "about:blank"],
            preexec_fn=give_fds, close_fds=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self._inbox: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=True)

    def _read(self):
        buffer = b""
        while chunk := os.read(self._from_browser, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for m in messages:
                self._inbox.put(json.loads(m))
        self._inbox.put(None)

    def _pump(self, deadline: float):
        message = self._inbox.get(timeout=max(0.01, deadline - time.monotonic()))
        assert message is not None, "chromium exited"
        if "id" in message:
            self._replies[message["id"]] = message
        else:
            self.events.append(message)
            if message.get("method") == "Page.javascriptDialogOpening":  # never leave the page blocked
                self.send("Page.handleJavaScriptDialog", session=True, accept=True, wait=False)

    def send(self, method: str, session: bool = False, wait: bool = True, timeout: float = 60, **params):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        if not wait:
            return None
        deadline = time.monotonic() + timeout
        while self._next_id not in self._replies:
            self._pump(deadline)
        reply = self._replies.pop(self._next_id)
        assert "error" not in reply, (method, reply["error"])
        return reply["result"]

    def open(self, url: str, timeout: float = 60):
        """Load the page afresh (by way of a blank one: a new #fragment alone would not reload it) and wait until
        its load event has fired. ``events`` then holds what happened while it loaded."""
        for address in ("about:blank", url):
            self.events.clear()
            self.send("Page.navigate", session=True, url=address)
            deadline = time.monotonic() + timeout
            while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
                self._pump(deadline)

    def js(self, expression: str):
        result = self.send("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                           awaitPromise=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while not self.js(expression):
            assert time.monotonic() < deadline, f"still false after {timeout} s: {expression}"
            time.sleep(0.05)

    def type(self, text: str):
        """Type into the focused element as a person does (real input events)."""
        self.send("Input.insertText", session=True, text=text)

    def fit_page(self, width: int = 1280):
        """A window as tall as the whole page: everything is in view at once."""
        self.send("Emulation.setDeviceMetricsOverride", session=True, width=width, height=600,
                  deviceScaleFactor=1, mobile=False)
        height = self.js("document.documentElement.scrollHeight")
        self.send("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def screenshot(self, path: Path, width: int = 1280) -> Image.Image:
        self.fit_page(width)
        data = self.send("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return Image.open(path)

    def close(self):
        try:
            self.send("Browser.close", wait=False)
            self.proc.wait(timeout=20)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)


@pytest.fixture(scope="module")
def shelter(crops, model_path, tmp_path_factory) -> tuple[Path, Path]:
    """Dogs of four breeds (one the model is torn on), a second name for one photo, two hostile file names, two
    pictures with no dog, two broken files: catalogued with the real breed model and dog detector."""
    intake = tmp_path_factory.mktemp("report") / "intake"
    (intake / "<script>alert(1)<").mkdir(parents=True)
    for folder, n in [("n02099601-golden_retriever", 2), ("n02088364-beagle", 1), ("n02110958-pug", 1),
                      ("n02109525-Saint_Bernard", 1)]:
        for i, photo in enumerate(sorted((crops / folder).glob("*.jpg"))[:n]):
            shutil.copy(photo, intake / f"{folder.split('-', 1)[1].lower()}-{i + 1}.jpg")
    shutil.copy(crops / "n02109961-Eskimo_dog/n02109961_12118.jpg", intake / "kennel 7.jpg")  # torn: unsure
    shutil.copy(intake / "pug-1.jpg", intake / "IMG_0042.jpg")
    shutil.copy(sorted((crops / "n02110185-Siberian_husky").glob("*.jpg"))[0], intake / SCRIPT_NAME)
    shutil.copy(sorted((crops / "n02108089-boxer").glob("*.jpg"))[0], intake / IMG_NAME)
    card = Image.new("RGB", (600, 400), "white")  # pictures of no dog at all
    for i, line in enumerate(["KENNEL CARD", "Name: Rex", "Age: 3 years", "Intake: 2024-06-01"]):
        ImageDraw.Draw(card).text((30, 30 + 40 * i), line, fill="black")
    card.save(intake / "kennel-card.png")
    squares = Image.new("L", (320, 320), 255)
    for x in range(0, 320, 40):
        for y in range(0, 320, 40):
            if (x + y) // 40 % 2:
                squares.paste(0, (x, y, x + 40, y + 40))
    squares.save(intake / "checker.png")
    (intake / "broken.jpg").write_text("not a photo")
    (intake / "empty.jpg").write_bytes(b"")
    path = intake.parent / "shelter.db"
    engine = db.connect(str(path))
    try:
        catalog.run(engine, [intake], Judge.load(model_path))
    finally:
        engine.dispose()
    return path, intake


def records(shelter_db: Path) -> list[dict]:
    engine = db.connect(str(shelter_db), create=False)
    try:
        return list(readmodel.records(engine))
    finally:
        engine.dispose()


def animal_of(shelter_db: Path) -> dict[str, str]:
    """path → the code of the animal it is in."""
    engine = db.connect(str(shelter_db), create=False)
    try:
        return {p["path"]: a.animal for a in readmodel.answers(engine) for p in a.photos}
    finally:
        engine.dispose()


def duplicate_pair(recs: dict[str, dict], intake: Path) -> tuple[str, str]:
    """(the copy catalogued first, the later one) of the photo stored under two names."""
    first, later = sorted([str(intake / "IMG_0042.jpg"), str(intake / "pug-1.jpg")],
                          key=lambda p: (recs[p]["catalogued_at"], p))
    return first, later


@pytest.fixture(scope="module")
def page(shelter, tmp_path_factory) -> Path:
    shelter_db, _ = shelter
    out = tmp_path_factory.mktemp("page") / "report.html"
    result = runner.invoke(app, ["report", "--db", str(shelter_db), "-o", str(out), "--title", "Intake <June>"])
    assert result.exit_code == 0 and result.stdout == "", result.output
    assert f"{out}: 13 files" in " ".join(result.stderr.split())
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary = needs_program(CHROMIUM, "no chromium to load the page in (.ci/run installs Debian's; or set "
                                     "DOGCAT_TEST_CHROMIUM)")
    chromium = Chromium(binary, tmp_path_factory.mktemp("chromium-profile"))
    yield chromium
    chromium.close()


class Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_page_is_self_contained_and_escapes_every_text(page, shelter):
    """Read as HTML (no browser): nothing is fetched, and no catalog text became markup."""
    text = page.read_text(encoding="utf-8")
    parsed = Tags()
    parsed.feed(text)
    tags = parsed.tags
    assert [t for t, _ in tags].count("script") == 1 and [t for t, _ in tags].count("style") == 1
    assert {t for t, _ in tags} <= {"html", "head", "meta", "title", "style", "body", "header", "h1", "p", "b",
                                    "input", "span", "nav", "a", "main", "section", "h2", "div", "figure", "img",
                                    "figcaption", "br", "table", "thead", "tbody", "tr", "th", "td", "script"}
    for tag, attrs in tags:  # every picture is inside the page; every link stays on it
        assert not attrs.get("src") or attrs["src"].startswith("data:image/jpeg;base64,"), (tag, attrs)
        assert not attrs.get("href") or attrs["href"].startswith("#"), (tag, attrs)
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.jpg" in text and "&lt;img src=x onerror=alert(2)&gt;.jpg" in text
    assert "<title>Intake &lt;June&gt;</title>" in text
    csp = next(a["content"] for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp and "img-src data:" in csp and "'unsafe-inline'" not in csp


def sections_of(page: str) -> list[tuple[str, str, int, str]]:
    """(id, heading, count shown, body) of each section, in page order."""
    return [(ident, html.unescape(heading), int(n), body) for ident, heading, n, body in re.findall(
        r'<section id="([^"]+)" data-group="[^"]+"><h2>(.*?) <span class="n">(\d+)</span>(.*?)</section>', page,
        re.DOTALL)]


def test_the_page_as_a_volunteer_reads_it(shelter, tmp_path):
    """Without a browser: the animals to review first; a corrected animal in its breed's section, marked staff,
    with each photo's own guess; counts in animals; "duplicate of" on the later copy only."""
    shelter_db, intake = shelter
    copy = tmp_path / "shelter.db"
    shutil.copy(shelter_db, copy)
    animals = animal_of(copy)
    beagle, golden = animals[str(intake / "beagle-1.jpg")], animals[str(intake / "golden_retriever-2.jpg")]
    for args in ([beagle, "--breed", "beagle", "--breed2", "labrador"], [golden, "--breed", "pug"]):
        result = runner.invoke(app, ["correct", *args, "--by", "alice", "--db", str(copy)])
        assert result.exit_code == 0, result.output
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "--db", str(copy), "-o", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    page = re.sub(r"data:image/jpeg;base64,[^\"]+", "data:", out.read_text(encoding="utf-8"))
    engine = db.connect(str(copy), create=False)
    try:
        answers = readmodel.answers(engine)
    finally:
        engine.dispose()
    status = {a.animal: a.status for a in answers}

    sections = sections_of(page)
    assert sections[0][:2] == ("unsure", "Unsure") and sections[0][2] == sum(s == "unsure" for s in status.values())
    assert [ident for ident, *_ in sections[-2:]] == ["not-a-dog", "errors"]
    headings = [heading for _, heading, *_ in sections]
    assert not any("staff" in h or "/" in h for h in headings)  # no section of its own for staff's answers
    by_heading = {heading: body for _, heading, _, body in sections}
    staff_cards = re.findall(r'<div class="animal staff">.*?</div></div></div>', page, re.DOTALL)
    assert len(staff_cards) == 2
    assert 'title="animal code">' + beagle + "<" in by_heading["Beagle"]
    assert "Beagle / Labrador Retriever (staff)" in by_heading["Beagle"]
    assert 'title="animal code">' + golden + "<" in by_heading["Pug"]
    golden_card = next(card for card in staff_cards if 'title="animal code">' + golden + "<" in card)
    assert '<span class="src">staff (alice)</span>' in golden_card
    # Under the thumbnail: what the model said of this photo, though staff said pug.
    assert re.search(r'<span class="guess"[^>]*>model: Golden Retriever \d+%</span>', golden_card), golden_card

    # One unit: animals, in the header, the chips and the headings (files only for files that could not be read).
    for ident, heading, n, body in sections:
        if ident == "errors":
            assert n == body.count("<tr data-search") and "files" in body[:80]
        else:
            assert n == len(re.findall(r'<div class="animal( staff)?">', body)), heading
            assert re.search(rf'href="#{ident}" title="animals[^"]*">[^<]*<span class="n">{n}</span></a>', page)
    shown = sum(n for ident, _, n, _ in sections if ident != "errors")
    facts = re.sub(r"<[^>]+>", "", re.search(r'<p class="facts">(.*?)</p>', page).group(1))
    assert facts.startswith(f"{shown} animals, from 13 files: ") and "2 named by staff" in facts
    assert f'<span id="shown">{shown}</span> of {shown} animals shown' in page

    first, later = duplicate_pair({r["path"]: r for r in records(copy)}, intake)
    badges = re.findall(r'<span class="badge" title="([^"]*)">([^<]*)</span>', page)
    assert badges == [(html.escape(f"The same photo (same SHA-256) as {first}"),
                       f"duplicate of {Path(first).name}")]
    assert "also as" not in page


def test_hostile_breed_names_and_errors_stay_text(shelter):
    """Another model's breed names, a non-dog's label and an error message are catalog text like file names."""
    shelter_db, _ = shelter
    hostile = "<b onmouseover=alert(3)>Lab</b>"
    rows = [{**r, "breed": hostile, "top_k": [{**g, "breed": hostile} for g in r["top_k"]],
             "looks_like": hostile, "error": hostile if r["error"] else None} for r in records(shelter_db)]
    page = report.render(rows, title=hostile, source="a <db>", generated="now",
                         thumbnail=lambda r: report.Preview(None, hostile))
    parsed = Tags()
    parsed.feed(page)
    assert all("onmouseover" not in attrs for _, attrs in parsed.tags)
    assert page.count(report.esc(hostile)) >= len(rows)


def test_the_page_in_a_real_browser(page, shelter, browser, tmp_path):
    shelter_db, intake = shelter
    recs = {r["path"]: r for r in records(shelter_db)}
    by_status = {s: sorted(p for p, r in recs.items() if r["status"] == s) for s in ("dog", "unsure", "not_a_dog",
                                                                                       "error")}
    assert len(by_status["unsure"]) >= 1 and len(by_status["not_a_dog"]) >= 2 and len(by_status["error"]) == 2
    browser.open(page.as_uri())

    assert browser.js("document.body.dataset.ready") == "1"  # the page's own script ran (its CSP hash is right)
    dialogs = [e for e in browser.events if e.get("method") == "Page.javascriptDialogOpening"]
    problems = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown" or (
                e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    assert dialogs == [] and problems == [], (dialogs, problems)
    assert browser.js("document.querySelectorAll('script').length") == 1
    assert browser.js("document.querySelectorAll('img[src=\"x\"], [onerror]').length") == 0
    shown = browser.js("Array.from(document.querySelectorAll('.file, td[title]')).map(e => e.textContent)")
    assert SCRIPT_NAME in shown and IMG_NAME in shown  # the hostile names, shown as the text they are
    assert browser.js("document.title") == "Intake <June>"

    # Every thumbnail decoded and drawn; one per photo that is not an error. They load lazily, as they come
    # into view: make the whole page the view first, as a person scrolling down would.
    browser.fit_page()
    browser.wait_for("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    images = browser.js("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight,"
                        " i.getBoundingClientRect().width, i.src.slice(0, 23)])")
    assert len(images) == len(recs) - 2
    assert all(done and w > 0 and h > 0 and box > 0 and src == "data:image/jpeg;base64,"
               for done, w, h, box, src in images), images

    # Grouped: each breed's section holds exactly its dogs; unsure, not a dog and errors in their own sections.
    groups = browser.js("""Object.fromEntries(Array.from(document.querySelectorAll('section')).map(s =>
        [s.querySelector('h2').firstChild.textContent.trim(),
         Array.from(s.querySelectorAll('[data-search] .file, [data-search] td:first-child'))
              .map(e => e.getAttribute('title'))]))""")
    expected = {}
    for path in by_status["dog"]:
        expected.setdefault(recs[path]["breed"], []).append(path)
    expected.update({"Unsure": by_status["unsure"], "Not a dog": by_status["not_a_dog"],
                     "Could not be read": by_status["error"]})
    assert {k: sorted(v) for k, v in groups.items()} == expected
    assert list(groups)[0] == "Unsure" and list(groups)[-2:] == ["Not a dog", "Could not be read"]
    confidences = browser.js("Object.fromEntries(Array.from(document.querySelectorAll('figure')).filter(f => "
                             "f.querySelector('.conf')).map(f => [f.querySelector('.file').title, "
                             "f.querySelector('.conf').textContent]))")
    assert confidences == {p: f"{recs[p]['confidence']:.0%}" if recs[p]["confidence"] >= 0.005 else "<1%"
                           for p in by_status["dog"]}
    errors = browser.js("Array.from(document.querySelectorAll('td.error')).map(e => e.textContent)")
    assert sorted(errors) == sorted(recs[p]["error"] for p in by_status["error"])
    badges = browser.js("Object.fromEntries(Array.from(document.querySelectorAll('.badge')).map(b => "
                        "[b.closest('figure').querySelector('.file').title, b.textContent]))")
    first, later = duplicate_pair(recs, intake)
    assert badges == {later: f"duplicate of {Path(first).name}"}  # on the later copy only

    browser.screenshot(tmp_path / "report.png")
    screenshot = np.asarray(Image.open(tmp_path / "report.png").convert("HSV"))
    colourful = int(((screenshot[..., 1] > 60) & (screenshot[..., 2] > 40)).sum())
    assert screenshot.shape[1] == 1280 and colourful > 20_000  # the photos are on the screen, not only text
    if os.environ.get("DOGCAT_REPORT_SCREENSHOT"):
        shutil.copy(tmp_path / "report.png", os.environ["DOGCAT_REPORT_SCREENSHOT"])


def visible(browser: Chromium) -> list[str]:
    return browser.js("Array.from(document.querySelectorAll('[data-search]')).filter(e => !e.hidden && "
                      "e.offsetParent !== null).map(e => (e.querySelector('.file') || e.firstChild).title)")


def test_the_search_box_filters_as_one_types(page, shelter, browser):
    shelter_db, intake = shelter
    recs = {r["path"]: r for r in records(shelter_db)}
    animals = animal_of(shelter_db)
    _, later = duplicate_pair(recs, intake)

    def matching(*words):
        return sorted(p for p, r in recs.items() if all(
            w in " ".join([p, *(g["breed"] for g in r["top_k"]), r["looks_like"] or "", r["error"] or "",
                           "duplicate" if p == later else ""]).lower()
            for w in words))

    browser.open(page.as_uri())
    assert sorted(visible(browser)) == sorted(recs)
    browser.js("document.getElementById('q').focus()")
    browser.type("golden")
    hits = matching("golden")
    assert str(intake / "golden_retriever-1.jpg") in hits and len(hits) < len(recs)
    assert sorted(visible(browser)) == hits
    # Counted in animals, as the header counts them: those with a photo that matches.
    assert browser.js("document.getElementById('shown').textContent") == str(len({animals[p] for p in hits
                                                                             if recs[p]["status"] != "error"}))
    assert browser.js("Array.from(document.querySelectorAll('section')).filter(s => !s.hidden).length") == len(
        {recs[p]["breed"] if recs[p]["status"] == "dog" else recs[p]["status"] for p in hits})
    assert browser.js("location.hash") == "#q=golden"

    browser.js("(q => { q.value = ''; q.dispatchEvent(new Event('input')); })(document.getElementById('q'))")
    browser.type("alert(1)")
    assert visible(browser) == [str(intake / SCRIPT_NAME)]
    browser.js("document.getElementById('q').select()")
    browser.type("empty file")
    assert visible(browser) == matching("empty", "file") == [str(intake / "empty.jpg")]

    browser.open(page.as_uri() + "#q=pug")  # a search sent as a link
    assert browser.js("document.getElementById('q').value") == "pug"
    assert sorted(visible(browser)) == matching("pug") and len(matching("pug")) >= 2


SPOOF = "photo\u202egpj.exe"  # shows as "photoexe.jpg" when the right-to-left override is obeyed


def test_control_and_bidi_characters_are_shown_not_obeyed(crops, model_path, tmp_path):
    """A name cannot reorder or hide its letters in the page (text, tooltip, alt), nor in the terminal."""
    intake = tmp_path / "intake"
    intake.mkdir()
    beagles = sorted((crops / "n02088364-beagle").glob("*.jpg"))
    shutil.copy(beagles[0], intake / SPOOF)  # catalogued by its content: it is a JPEG
    shutil.copy(beagles[1], intake / "tab\there\x1b[31mred\u2066.jpg")
    shelter_db = tmp_path / "shelter.db"
    result = runner.invoke(app, ["catalog", str(intake), "--db", str(shelter_db), "--quiet"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "--db", str(shelter_db), "-o", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    for hidden in ("\u202e", "\u2066", "\x1b", "\t"):
        assert hidden not in page.split("<script>")[0], repr(hidden)
    names = [(tag, attrs) for tag, attrs in tags(page) if attrs.get("title", "").startswith(str(intake))]
    assert sorted(attrs["title"] for _, attrs in names) == sorted(
        [str(intake / "photo<U+202E>gpj.exe"), str(intake / "tab<U+0009>here<U+001B>[31mred<U+2066>.jpg")])
    assert ">photo&lt;U+202E&gt;gpj.exe<" in page and 'alt="photo&lt;U+202E&gt;gpj.exe"' in page

    done = subprocess.run([sys.executable, "-m", "dogcat", "classify", str(intake / SPOOF), str(tmp_path / SPOOF),
                           *(["--model", str(model_path)] if model_path else [])], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "300"})
    assert done.returncode == 1  # the second one is missing
    assert "\u202e" not in done.stdout + done.stderr
    assert "photo<U+202E>gpj.exe" in done.stdout
    assert done.stderr.strip() == f"dogcat: error: {tmp_path}/photo<U+202E>gpj.exe: no such file or folder"


def tags(page: str) -> list[tuple[str, dict]]:
    parser = Tags()
    parser.feed(page)
    return parser.tags


def test_a_malformed_search_link_keeps_the_search_box_working(page, shelter, browser):
    shelter_db, intake = shelter
    recs = {r["path"]: r for r in records(shelter_db)}
    for link, shown in (("#q=%", "%"), ("#q=%E0%A4%A", "%E0%A4%A"), ("#q=pug%", "pug%")):
        browser.open(page.as_uri() + link)
        assert browser.js("document.body.dataset.ready") == "1", link  # the script ran to its end
        assert browser.js("document.getElementById('q').value") == shown
        browser.js("document.getElementById('q').select()")
        browser.type("golden")
        hits = sorted(p for p, r in recs.items()
                      if "golden" in " ".join([p, *(g["breed"] for g in r["top_k"])]).lower())
        assert hits and sorted(visible(browser)) == hits, link


def test_report_to_stdout_and_errors(shelter, tmp_path):
    shelter_db, _ = shelter
    result = runner.invoke(app, ["report", "--db", str(shelter_db), "--quiet"])
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout.startswith("<!DOCTYPE html>") and result.stdout.rstrip().endswith("</html>")
    result = runner.invoke(app, ["report", "--db", str(tmp_path / "missing.db"), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 1 and "no such database file" in result.stderr
    assert not (tmp_path / "r.html").exists()
    result = runner.invoke(app, ["report", "--db", str(shelter_db), "-o", str(tmp_path / "no" / "r.html")])
    assert result.exit_code == 1 and "cannot write" in result.stderr


def test_thumbnails_show_only_the_photo_that_was_catalogued(shelter, tmp_path):
    """Thumbnails are read back from disk: a file changed since, gone, or turned into a pipe shows why it has
    no picture (and a pipe is never opened); a name that is not UTF-8 is found again from its \\xNN form."""
    shelter_db, intake = shelter
    golden = next(r for r in records(shelter_db) if r["path"].endswith("golden_retriever-1.jpg"))
    assert report.thumbnail(golden).jpeg  # as catalogued: a thumbnail
    changed = {**golden, "sha256": "0" * 64}
    os.mkfifo(tmp_path / "pipe.jpg")
    cases = {"changed": (changed, "file changed since it was catalogued (run dogcat catalog again)"),
             "gone": ({**golden, "path": str(tmp_path / "gone.jpg")}, "file no longer there"),
             "pipe": ({**golden, "path": str(tmp_path / "pipe.jpg")}, "not a regular file any more")}
    for name, (record, problem) in cases.items():
        shown = report.thumbnail(record)
        assert (shown.jpeg, shown.problem) == (None, problem), name
    page = report.render([changed], title="t", source="s", generated="g")
    assert "<img" not in page and "file changed since it was catalogued" in page

    odd = tmp_path / os.fsdecode(b"caf\xe9.jpg")  # Latin-1 bytes in a name, as old cameras and shares write
    shutil.copy(golden["path"], odd)
    key = pathkeys.key(odd)
    assert key.endswith("caf\\xe9.jpg") and report.thumbnail({**golden, "path": key}).jpeg


def test_every_photo_card_names_its_own_guess_and_the_misfiled_one_is_marked(crops, tmp_path, browser):
    """Issue 36: an animal of two beagles and a pug filed with them. In a real browser each photo's card names
    the breed the model sees in it (not only a confidence and runners-up), and the pug's card says it is not
    its animal's answer; the beagles' cards do not."""
    intake = tmp_path / "intake" / "A10-Rex"
    intake.mkdir(parents=True)
    beagles = sorted((crops / "n02088364-beagle").glob("*.jpg"))[:2]
    for i, photo in enumerate(beagles):
        shutil.copy(photo, intake / f"beagle-{i}.jpg")
    shutil.copy(sorted((crops / "n02110958-pug").glob("*.jpg"))[0], intake / "pug.jpg")
    shelter_db = tmp_path / "shelter.db"
    result = runner.invoke(app, ["catalog", str(intake.parent), "--db", str(shelter_db), "--quiet"])
    assert result.exit_code == 0, result.output
    recs = {Path(r["path"]).name: r for r in records(shelter_db)}
    assert recs["pug.jpg"]["breed"] == "Pug" and recs["beagle-0.jpg"]["breed"] == "Beagle"
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "--db", str(shelter_db), "-o", str(out), "--quiet"])
    assert result.exit_code == 0, result.output

    browser.open(out.as_uri())
    cards = browser.js("Object.fromEntries(Array.from(document.querySelectorAll('figure')).map(f => "
                       "[f.querySelector('.file').textContent, f.querySelector('figcaption').innerText]))")
    assert sorted(cards) == ["beagle-0.jpg", "beagle-1.jpg", "pug.jpg"]
    for name, text in cards.items():
        r = recs[name]
        said = r["breed"] if r["status"] == "dog" else readmodel.guess_summary(r)
        assert said in text, (name, text)  # the photo's own guess, by name
    assert re.search(r"not the animal's answer \((probably )?Beagle\)", cards["pug.jpg"]), cards["pug.jpg"]
    assert not any("not the animal's answer" in cards[n] for n in ("beagle-0.jpg", "beagle-1.jpg")), cards
    head = browser.js("document.querySelector('.animal-head').innerText")
    assert "Rex" in head and "A10" in head and "Beagle" in head
    browser.js("document.getElementById('q').focus()")
    browser.type("unlike")  # the marked photos can be searched for
    assert visible(browser) == [str(intake / "pug.jpg")]
