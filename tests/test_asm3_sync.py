"""`dogcat asm3 sync` (issue 34): ASM3's service API, against ASM3's own service code.

``../shared/asm3/server.py DIR`` serves a shelter made by ``shelter.py make DIR`` (six dogs staff entered) with
ASM3's own ``asm3.service.handler``; ``shelter.py show`` and ``edit`` work on the same database meanwhile. The
slow tests run it: three sync cycles with a new photo and a staff edit between them, a wrong password and key,
the server stopped, an answer lost after ASM3 imported, dogcat killed (-9) before and after ASM3's answer, and
rows ASM3 rejects. The fast ones check the address and secret rules with no server at all.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import SHARED, needs_program, needs_shared
from conftest import shelter_py as shelter
from typer.testing import CliRunner

from dogcat.asm3 import service as asm3_service
from dogcat.cli import app
from dogcat.errors import UsageError

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
CROPS = SHARED / "data" / "stanford-dogs-crops-224"
PASSWORD = "letmein"  # the stock ASM3 database's user "user"
FOLDERS = {"A1001-Rex": "n02106662-German_shepherd", "A1002 Bella": "n02088364-beagle",
           "A1005-Max": "n02093256-Staffordshire_bullterrier", "A1007-Pip": "n02085620-Chihuahua"}
STAFF_FIELDS = ("name", "dob", "sex", "breed1", "breed2", "crossbreed", "comments", "hidden")


# --- no server: the address and the secrets ---------------------------------------------------------------

def test_plain_http_is_refused_except_to_this_machine_unless_asked():
    for local in ("http://localhost:8080/service", "http://127.0.0.1/service", "http://[::1]:5000/service"):
        assert asm3_service.check_url(local).startswith("http://")
    with pytest.raises(UsageError, match="plain http.*--allow-http"):
        asm3_service.check_url("http://asm.example.org/service")
    assert asm3_service.check_url("http://asm.example.org/service", allow_http=True) == "http://asm.example.org/service"
    assert asm3_service.check_url("https://service.sheltermanager.com/asmservice").startswith("https://")


def test_a_secret_in_the_address_is_refused_without_repeating_it():
    for url in ("https://h.example/service?method=x&password=hunter2", "https://user:hunter2@h.example/service",
                "https://h.example/service#hunter2"):
        with pytest.raises(UsageError) as refused:
            asm3_service.check_url(url)
        assert "hunter2" not in str(refused.value)
    with pytest.raises(UsageError, match="DOGCAT_ASM3_PASSWORD"):
        asm3_service.credentials("user", {})
    with pytest.raises(UsageError, match="--username"):
        asm3_service.credentials(None, {"DOGCAT_ASM3_PASSWORD": "x"})
    assert asm3_service.credentials(None, {"DOGCAT_ASM3_KEY": "k"}) == {"key": "k"}
    service = asm3_service.Service("https://h.example/service", {"username": "u", "password": "hunter2"}, "acct")
    assert "hunter2" not in repr(service) and "hunter2" not in service.where


def test_the_command_takes_no_password_option_and_refuses_a_missing_one(tmp_path):
    db = tmp_path / "shelter.db"
    result = runner.invoke(app, ["asm3", "sync", "--db", db, "--url", "https://h.example/service", "--username",
                                 "user", "--password", "x"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["asm3", "sync", "--db", db, "--url", "https://h.example/service", "--username",
                                 "user"], env={"DOGCAT_ASM3_PASSWORD": "", "DOGCAT_ASM3_KEY": ""})
    assert result.exit_code == 2 and "DOGCAT_ASM3_PASSWORD" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not db.exists()


def test_an_unverifiable_certificate_is_refused_and_nothing_sent(tmp_path):
    """A TLS server on this machine with a self-signed certificate: dogcat refuses it (nothing else runs)."""
    import ssl
    openssl = needs_program(shutil.which("openssl"), "openssl (it makes the self-signed certificate)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():
        connection, _ = listener.accept()
        try:
            context.wrap_socket(connection, server_side=True).close()
        except (ssl.SSLError, OSError):
            pass  # the client hangs up on the certificate

    threading.Thread(target=serve, daemon=True).start()
    service = asm3_service.Service(f"https://127.0.0.1:{port}/service", {"username": "u", "password": "hunter2"},
                               timeout_s=10)
    with pytest.raises(asm3_service.NotSent, match="certificate cannot be verified") as refused:
        service.shelter_animals()
    assert "hunter2" not in str(refused.value)
    listener.close()


# --- against ASM3's own service ---------------------------------------------------------------------------



def asm3_config(folder: Path, item: str, value: str):
    """Set one of ASM3's settings in the shelter's database with ASM3's own code (as its Settings screen does)."""
    script = (f"import sys; sys.path.insert(0, {str(SHARED / 'asm3')!r}); import shelter; "
              f"dbo = shelter.dbo_for({str(folder)!r}); import asm3.configuration; "
              f"asm3.configuration.cset(dbo, {item!r}, {value!r})")
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=120)


class Server:
    """server.py on a free port, until stop()."""

    def __init__(self, folder: Path, *args: str):
        script = needs_shared(SHARED / "asm3" / "server.py", "ASM3's service")
        self.process = subprocess.Popen([sys.executable, str(script), str(folder), *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline() if self.process.stdout else ""
        assert line.startswith("listening on "), line
        self.url = line.split()[-1]
        self.port = int(self.url.split(":")[2].split("/")[0])

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)


@pytest.fixture
def asm3_shelter(tmp_path, monkeypatch):
    """A shelter in ASM3 and a way to start its service. ASM3 caches its settings on disk under the database's
    name, which is "asm3" for every shelter.py database on the machine: each test's ASM3 processes get a disk
    cache of their own (ASM3's own asm3.conf, named by ASM3_CONF), so that no other shelter's settings are read
    here, and none of these (no photos allowed, an API key) leak into another's."""
    conf = tmp_path / "asm3.conf"
    conf.write_text(f"disk_cache = {tmp_path / 'asm_disk_cache'}\n", encoding="utf-8")
    monkeypatch.setenv("ASM3_CONF", str(conf))
    folder = tmp_path / "asm3"
    shelter("make", folder)
    servers: list[Server] = []

    def start(*args: str) -> Server:
        servers.append(Server(folder, *args))
        return servers[-1]

    yield folder, start
    for s in servers:
        s.stop()


def photos(folder: Path, breed: str, n: int, skip: int = 0):
    folder.mkdir(parents=True, exist_ok=True)
    for source in sorted((needs_shared(CROPS, "Stanford Dogs") / breed).glob("*.jpg"))[skip:skip + n]:
        shutil.copy(source, folder / source.name)


def intake(tmp_path: Path) -> tuple[Path, Path]:
    """Two photos each of three dogs ASM3 has and of one it does not (A1007), catalogued."""
    folder, db = tmp_path / "intake", tmp_path / "shelter.db"
    for name, breed in FOLDERS.items():
        photos(folder / name, breed, 2)
    catalog(folder, db)
    return folder, db


def catalog(folder: Path, db: Path):
    result = runner.invoke(app, ["catalog", str(folder), "--db", str(db), "--quiet"])
    assert result.exit_code == 0, result.output


def sync(db: Path, url: str, *extra: str, code: int = 0, password: str = PASSWORD, env: dict | None = None):
    """dogcat asm3 sync in this process; its output (one JSON object with --json)."""
    result = runner.invoke(app, ["asm3", "sync", "--db", str(db), "--url", url, "--username", "user", "--age", "2",
                                 *extra], env={"DOGCAT_ASM3_PASSWORD": password, "DOGCAT_ASM3_KEY": "",
                                               **(env or {})})
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and password not in result.output
    return result


def sync_process(db: Path, url: str, stop: str) -> subprocess.CompletedProcess:
    """dogcat asm3 sync in a process of its own that kills itself (-9) at step ``stop``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DOGCAT_ASM3_PASSWORD": PASSWORD,
           "DOGCAT_TEST_ASM3_SYNC_STOP": stop}
    return subprocess.run([sys.executable, "-m", "dogcat", "asm3", "sync", "--db", str(db), "--url", url,
                           "--username", "user", "--age", "2"], env=env, capture_output=True, text=True,
                          timeout=300)


def state(folder: Path) -> dict[str, dict]:
    return {a["code"]: a for a in shelter("show", folder)["per_animal"]}


def on_disk(folder: Path) -> dict[str, int]:
    return {name[:5]: len(list((folder / name).glob("*.jpg"))) for name in FOLDERS}


def photos_in_asm3(folder: Path) -> dict[str, int]:
    return {code: a["media"] for code, a in state(folder).items() if code in {n[:5] for n in FOLDERS}}


def sends(db: Path) -> list[dict]:
    return [json.loads(line) for line in runner.invoke(app, ["asm3", "files", "--db", str(db), "--json"])
            .stdout.splitlines()]


@pytest.mark.slow
def test_three_sync_cycles_with_a_new_photo_and_a_staff_breed_edit(tmp_path, asm3_shelter):
    folder, start = asm3_shelter
    before = state(folder)
    server = start()
    pictures, db = intake(tmp_path)

    # Cycle 1: the three dogs ASM3 has get their photos only; A1007 is made once, its breed dogcat's guess.
    first = json.loads(sync(db, server.url, "--json").stdout)
    assert first["sent"]["taken"] == {"animal": 1, "photo": 8, "log": 1} and not first["sent"]["not_taken"]
    after = state(folder)
    for code, staff in before.items():
        assert {f: after[code][f] for f in STAFF_FIELDS} == {f: staff[f] for f in STAFF_FIELDS}, code
    assert photos_in_asm3(folder) == on_disk(pictures)
    assert after["A1007"]["breed1"] == "Chihuahua" and after["A1007"]["name"] == "Pip"

    # Staff work in ASM3: Bella is a Beagle mix; a new photo of her comes in.
    shelter("edit", folder, "A1002", "breed1", "Beagle")
    photos(pictures / "A1002 Bella", FOLDERS["A1002 Bella"], 1, skip=10)
    catalog(pictures, db)
    edited = state(folder)

    second = json.loads(sync(db, server.url, "--json").stdout)
    assert second["pulled"]["corrected"] == ["A1002"]
    assert second["sent"]["taken"] == {"photo": 1} and not second["sent"]["not_taken"], second["sent"]
    after = state(folder)
    for code, staff in edited.items():
        assert {f: after[code][f] for f in STAFF_FIELDS} == {f: staff[f] for f in STAFF_FIELDS}, code
    assert photos_in_asm3(folder) == on_disk(pictures)  # each photo once, the new one too
    assert list(after) == list(edited) and len(after) == 7  # A1007 made once
    bella = [json.loads(line) for line in runner.invoke(app, ["animals", "--db", str(db), "--json"]).stdout
             .splitlines() if '"A1002"' in line][0]
    assert (bella["breed"], bella["source"], bella["corrected_by"]) == ("Beagle", "correction", "ASM3")

    # Cycle 3: nothing new: nothing sent, nothing in ASM3 changes; the file path agrees (one record).
    third = sync(db, server.url)
    assert "nothing new for ASM3: nothing sent" in third.stdout
    assert state(folder) == after
    exported = tmp_path / "asm3-import.csv"
    result = runner.invoke(app, ["export", "--db", str(db), "--format", "asm3", "-o", str(exported)])
    assert result.exit_code == 0 and not exported.exists(), result.output
    assert [s["photos"] for s in sends(db)] == [8, 1]
    assert all(PASSWORD not in json.dumps(s) for s in sends(db))
    assert PASSWORD.encode() not in db.read_bytes()  # nowhere in the catalog


@pytest.mark.slow
def test_a_wrong_password_or_key_sends_nothing_and_says_so_in_one_line(tmp_path, asm3_shelter):
    folder, start = asm3_shelter
    server = start("--api-key", "k-right")
    _, db = intake(tmp_path)
    result = sync(db, server.url, code=1, password="not-it")
    assert result.output.count("\n") == 1 and "Invalid username and password" in result.output
    assert "not-it" not in result.output
    result = sync(db, server.url, code=1, env={"DOGCAT_ASM3_KEY": "k-wrong"})
    assert "Invalid API Key" in result.output and "k-wrong" not in result.output
    assert sends(db) == [] and photos_in_asm3(folder) == {"A1001": 0, "A1002": 0, "A1005": 0}  # no A1007
    sync(db, server.url, env={"DOGCAT_ASM3_KEY": "k-right"})  # the right key: everything, once
    assert photos_in_asm3(folder) == {"A1001": 2, "A1002": 2, "A1005": 2, "A1007": 2}


class DropsTheAnswer(socketserver.ThreadingTCPServer):
    """Between dogcat and ASM3: hands each request to ASM3 and passes its answer on, except an import's: ASM3
    imports and answers, and then the connection is dropped before the answer reaches dogcat (``hold``: it is
    held open, unanswered, until dogcat gives up). ``imported`` is set once ASM3 has answered the import."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, target_port: int, hold: bool = False):
        self.target_port = target_port
        self.imported = threading.Event()

        class Handler(socketserver.StreamRequestHandler):
            def handle(handler):
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = handler.request.recv(65536)
                    if not chunk:
                        return
                    head += chunk
                headers, _, body = head.partition(b"\r\n\r\n")
                length = int(next((h.split(b":")[1] for h in headers.split(b"\r\n")
                                   if h.lower().startswith(b"content-length:")), b"0"))
                while len(body) < length:
                    body += handler.request.recv(65536)
                upstream = http.client.HTTPConnection("127.0.0.1", self.target_port, timeout=300)
                upstream.request("POST", "/service", body, {"Content-Type": "application/x-www-form-urlencoded"})
                answer = upstream.getresponse()
                data = answer.read()  # ASM3 did it all ...
                upstream.close()
                if b"method=csv_import" in body:
                    self.imported.set()
                    if hold:
                        handler.request.settimeout(120)
                        handler.request.recv(1)  # until dogcat hangs up
                    return  # ... and the import's answer never reaches dogcat
                handler.request.sendall(b"HTTP/1.0 %d OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
                    answer.status, (answer.getheader("Content-Type") or "text/plain").encode(), len(data)) + data)

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.mark.slow
@pytest.mark.parametrize("lost", ["dropped", "timed out"])
def test_the_server_stopped_or_the_answer_lost_sends_each_photo_once(tmp_path, asm3_shelter, lost):
    folder, start = asm3_shelter
    server = start()
    pictures, db = intake(tmp_path)
    dead = server.url
    server.stop()
    result = sync(db, dead, code=1)  # the server stopped: nothing sent, nothing recorded
    assert "cannot reach it" in result.output and "nothing sent" in result.output
    assert sends(db) == []

    server = start()
    proxy = DropsTheAnswer(server.port, hold=lost == "timed out")
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        result = sync(db, f"http://127.0.0.1:{proxy.server_address[1]}/service",
                      *(["--timeout", "1"] if lost == "timed out" else []), code=1)
        assert proxy.imported.wait(120)
    finally:
        proxy.shutdown()
        proxy.server_close()
    said = "no answer to csv_import within 1 s" if lost == "timed out" else "the connection dropped"
    assert said in result.output and "finds out what it took" in result.output, result.output
    assert result.output.count("\n") == 1  # one line
    assert photos_in_asm3(folder) == on_disk(pictures)  # ASM3 imported it all
    assert sends(db)[0]["photos"] == 8  # and it counts as sent until told otherwise

    settled = json.loads(sync(db, server.url, "--json").stdout)  # finds out, sends nothing again
    assert [e["taken"] for e in settled["earlier"]] == [{"animal": 1, "photo": 8, "log": 1}]
    assert settled["sent"] is None
    assert photos_in_asm3(folder) == on_disk(pictures) and len(state(folder)) == 7
    assert len([log for log in state(folder)["A1007"]["logs"] if "dogcat:" in log]) == 1


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["begun", "answered"])
def test_dogcat_killed_mid_sync_then_the_next_sync_sends_each_photo_once(tmp_path, asm3_shelter, stop):
    folder, start = asm3_shelter
    server = start()
    pictures, db = intake(tmp_path)
    killed = sync_process(db, server.url, stop)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    imported = stop == "answered"
    assert photos_in_asm3(folder) == ({"A1001": 2, "A1002": 2, "A1005": 2, "A1007": 2} if imported else
                                      {"A1001": 0, "A1002": 0, "A1005": 0})
    settled = json.loads(sync(db, server.url, "--json").stdout)
    assert len(settled["earlier"]) == 1
    earlier = settled["earlier"][0]
    if imported:
        assert earlier["taken"] == {"animal": 1, "photo": 8, "log": 1} and not earlier["not_taken"]
        assert settled["sent"] is None
    else:
        assert earlier["not_taken"] == {"animal": 1, "photo": 8, "log": 1} and not earlier["taken"]
        assert settled["sent"]["taken"] == {"animal": 1, "photo": 8, "log": 1}
    assert photos_in_asm3(folder) == on_disk(pictures) and len(state(folder)) == 7
    logs = [log for log in state(folder)["A1007"]["logs"] if "dogcat:" in log]
    assert len(logs) == 1, logs
    assert sync(db, server.url).stdout.count("nothing new for ASM3") == 1


@pytest.mark.slow
def test_rows_asm3_rejects_are_listed_with_its_message_and_sent_again_next_time(tmp_path, asm3_shelter):
    folder, start = asm3_shelter
    asm3_config(folder, "MediaAllowJPG", "No")  # ASM3's setting: its import refuses every photo
    server = start()
    pictures, db = intake(tmp_path)
    result = sync(db, server.url, code=1)
    rejected = [line for line in result.output.splitlines() if line.startswith("rejected: ")]
    assert len(rejected) == 8 and all("upload of media type jpg is disabled" in line for line in rejected)
    assert "rejected 8 row(s)" in result.output
    after = state(folder)
    assert after["A1007"]["media"] == 0 and photos_in_asm3(folder) == {"A1001": 0, "A1002": 0, "A1005": 0,
                                                                       "A1007": 0}
    server.stop()
    asm3_config(folder, "MediaAllowJPG", "Yes")
    server = start()
    again = json.loads(sync(db, server.url, "--json").stdout)
    assert again["sent"]["taken"] == {"photo": 8} and not again["sent"]["rejected"], again["sent"]
    assert photos_in_asm3(folder) == on_disk(pictures)
    assert len(state(folder)) == 7  # A1007 made once, by the first sync
    assert len([log for log in state(folder)["A1007"]["logs"] if "dogcat:" in log]) == 1


@pytest.mark.slow
def test_a_shelter_switches_from_files_to_sync_and_nothing_is_sent_twice(tmp_path, asm3_shelter):
    """One record for both paths: a file exported and imported by hand, then a sync, then a file again."""
    folder, start = asm3_shelter
    pictures, db = intake(tmp_path)
    shelter("export", folder)
    pulled = runner.invoke(app, ["asm3", "pull", str(folder / "asm3-animals.csv"), "--db", str(db)])
    assert pulled.exit_code == 0, pulled.output
    exported = tmp_path / "asm3-import.csv"
    result = runner.invoke(app, ["export", "--db", str(db), "--format", "asm3", "--age", "2", "-o", str(exported)])
    assert result.exit_code == 0, result.output
    assert shelter("import", folder, exported)["errors"] == []
    assert photos_in_asm3(folder) == on_disk(pictures)

    server = start()
    photos(pictures / "A1005-Max", FOLDERS["A1005-Max"], 1, skip=10)
    catalog(pictures, db)
    synced = json.loads(sync(db, server.url, "--json").stdout)
    assert synced["sent"]["taken"] == {"photo": 1}, synced["sent"]  # only the new photo; A1007 not made again
    assert photos_in_asm3(folder) == on_disk(pictures) and len(state(folder)) == 7
    again = tmp_path / "asm3-import-2.csv"
    result = runner.invoke(app, ["export", "--db", str(db), "--format", "asm3", "-o", str(again)])
    assert result.exit_code == 0 and not again.exists(), result.output
