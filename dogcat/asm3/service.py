"""ASM3's service API, as a hosted Animal Shelter Manager 3 answers it: the HTTP client, its authentication, its
errors, and the secrets kept out of everything dogcat prints.

ASM3 answers ``/service`` (hosted: ``https://service.sheltermanager.com/asmservice``) with ``method=…`` and the
method's parameters; a method that needs a user takes ``username`` and ``password``, or an API key ``key``;
hosted databases also take ``account``. What is used here (from ASM3's ``src/asm3/service.py``):

- ``json_shelter_animals``: the animals in care, each with ASM3's ``ID``, ``SHELTERCODE``, ``ANIMALNAME``,
  ``DATEOFBIRTH`` (ISO), ``SEXNAME``, ``BREEDNAME1``/``BREEDNAME2`` and ``PHOTOURLS`` (one URL per published
  JPEG, ``…&mediaid=N&…``: media ids only grow, which is how a lost answer's photos are found again).
- ``csv_import``: ``data`` = a CSV file, base64; answers ``{"rows": N, "success": N, "errors": [[row, text,
  message], …]}`` (rows counted from 1, the header not counted).
- Every failure ASM3 itself reports is a text answer starting ``ERROR`` with HTTP 200 (a wrong password:
  ``ERROR: Invalid username and password``; a key not allowed the method: ``ERROR: Invalid API Key``).

Every request is a POST with a form body: the secret never goes into a URL (GET answers are also cached by
ASM3, which would hide an import just made). Certificates are verified (the system's CA store); plain HTTP is
refused except to this machine unless the caller allows it. :class:`ServiceError` messages name the service by
:attr:`Service.where` (scheme, host and path; never the query, never a user or password).

Standard library only. Layer: ASM3 (docs/architecture.md); it imports only leaves and asm3.records.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import re
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import date

from dogcat.asm3.records import SEXES, ShelterAnimal
from dogcat.errors import DogcatError, UsageError

PASSWORD_ENV = "DOGCAT_ASM3_PASSWORD"
KEY_ENV = "DOGCAT_ASM3_KEY"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
DEFAULT_TIMEOUT_S = 120.0  # an import of a few hundred photos takes ASM3 a while; its answer comes at the end
METHODS = ("json_shelter_animals", "csv_import")  # what an API key for dogcat needs (docs/asm3.md)
_MEDIA_ID = re.compile(r"[?&]mediaid=(\d+)")


class ServiceError(DogcatError):
    """ASM3's service could not be used: one line naming the service and what went wrong (exit 1)."""


class NotSent(ServiceError):
    """The request certainly did not reach ASM3 (no connection, a refusal before the request was read, or an
    ``ERROR`` answer): nothing was imported."""


class AnswerLost(ServiceError):
    """The request went out and its answer did not come back (a time-out, a dropped connection): ASM3 may have
    imported some or all of it. The next sync finds out from ASM3's animals before sending again."""


@dataclass(frozen=True)
class RemoteAnimal:
    """One animal in care in ASM3, as ``json_shelter_animals`` gives it: the fields a pull reads, ASM3's own id,
    and the ids of its published photos."""

    animal: ShelterAnimal
    asm3_id: int
    media: tuple[int, ...]


@dataclass
class ImportAnswer:
    """ASM3's answer to ``csv_import``: rows read, rows without error, and each row's errors (row from 1)."""

    rows: int
    success: int
    errors: dict[int, list[str]] = field(default_factory=dict)


def where(url: str) -> str:
    """A URL as messages show it: scheme, host, port and path; never a query, a fragment or user information."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _is_local(host: str) -> bool:
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, allow_http: bool = False) -> str:
    """The service URL, checked (UsageError, exit 2): http(s) with a host; no query, user or password in it (a
    secret there would be printed and kept in shell histories; the password and key come from the
    environment); plain HTTP only to this machine unless ``allow_http``."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        parts.port  # noqa: B018 — raises ValueError for a port that is not a number
    except ValueError:
        raise UsageError("--url: not a URL (e.g. https://service.sheltermanager.com/asmservice)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError("--url: give the service's http(s) address, e.g. "
                         "https://service.sheltermanager.com/asmservice")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise UsageError(f"--url {where(url)}: give the address only, without a query or user information (the "
                         f"account goes in --account, the password in {PASSWORD_ENV}, a key in {KEY_ENV})")
    if parts.scheme == "http" and not _is_local(parts.hostname) and not allow_http:
        raise UsageError(f"--url {where(url)}: plain http would send the password unencrypted; use https, or "
                         "--allow-http for a server on a network you trust")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))


def credentials(username: str | None, environ: dict[str, str]) -> dict[str, str]:
    """The authentication parameters: an API key from DOGCAT_ASM3_KEY, else --username with the password from
    DOGCAT_ASM3_PASSWORD. Raises UsageError (exit 2) when neither is there."""
    key = environ.get(KEY_ENV)
    if key:
        return {"key": key}
    password = environ.get(PASSWORD_ENV)
    if not username:
        raise UsageError(f"give --username NAME (its password in {PASSWORD_ENV}), or an API key in {KEY_ENV}")
    if not password:
        raise UsageError(f"--username {username}: put its password in the environment variable {PASSWORD_ENV} "
                         "(never on the command line)")
    return {"username": username, "password": password}


class Service:
    """One ASM3 service endpoint with its credentials. ``auth`` comes from :func:`credentials`; it is held
    here only, sent in request bodies only, and never part of a message or a repr."""

    def __init__(self, url: str, auth: dict[str, str], account: str | None = None, *, allow_http: bool = False,
                 timeout_s: float = DEFAULT_TIMEOUT_S, context: ssl.SSLContext | None = None):
        self.url = check_url(url, allow_http)
        self.where = where(self.url) + (f" (account {account})" if account else "")
        self._auth = dict(auth)
        self._account = account
        self.timeout_s = timeout_s
        self._context = context or ssl.create_default_context()

    def __repr__(self) -> str:
        return f"Service({self.where!r})"

    def _call(self, method: str, fields: dict[str, str], *, imports: bool = False) -> bytes:
        """POST one method; the answer's bytes. Raises NotSent when nothing can have reached ASM3, AnswerLost
        when the request may have (only ``imports`` calls make that distinction matter; a read that fails is
        NotSent too, as nothing was changed)."""
        body = {"method": method, **({"account": self._account} if self._account else {}), **self._auth, **fields}
        request = urllib.request.Request(self.url, data=urllib.parse.urlencode(body).encode("ascii"),
                                         method="POST",
                                         headers={"Content-Type": "application/x-www-form-urlencoded",
                                                  "User-Agent": "dogcat"})
        lost = AnswerLost if imports else NotSent
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s, context=self._context) as answer:
                data = answer.read()
        except urllib.error.HTTPError as e:
            if imports and e.code >= 500:  # a gateway giving up on a long import, ASM3 failing midway: unknown
                raise AnswerLost(f"{self.where}: {method} answered HTTP {e.code} {e.reason}" + _after(True)) \
                    from None
            raise NotSent(f"{self.where}: {method} answered HTTP {e.code} {e.reason} (is this ASM3's service "
                          "address?)") from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise NotSent(f"{self.where}: its certificate cannot be verified ({reason.verify_message}); "
                              "nothing sent") from None
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise lost(f"{self.where}: no answer to {method} within {self.timeout_s:g} s" + _after(imports)) \
                    from None
            raise NotSent(f"{self.where}: cannot reach it ({_reason(reason)}); nothing sent") from None
        except (TimeoutError, socket.timeout):
            raise lost(f"{self.where}: no answer to {method} within {self.timeout_s:g} s" + _after(imports)) \
                from None
        except (http.client.HTTPException, ConnectionError, OSError) as e:
            raise lost(f"{self.where}: the connection dropped before {method}'s answer ({_reason(e)})"
                       + _after(imports)) from None
        text = data[:200].decode("utf-8", "replace").strip()
        if text.startswith("ERROR"):
            raise NotSent(f"{self.where}: ASM3 answered {method} with {_one_line(text)}" + _hint(text))
        return data

    def shelter_animals(self) -> list[RemoteAnimal]:
        """The animals in care (json_shelter_animals)."""
        data = self._call("json_shelter_animals", {"sensitive": "1"})
        try:
            rows = json.loads(data)
        except ValueError:
            raise NotSent(f"{self.where}: json_shelter_animals answered something that is not JSON "
                          f"({_one_line(data[:80].decode('utf-8', 'replace'))}…)") from None
        if not isinstance(rows, list):
            raise NotSent(f"{self.where}: json_shelter_animals did not answer a list of animals")
        return [animal_of(r, i) for i, r in enumerate(rows, 1)]

    def csv_import(self, content: bytes) -> ImportAnswer:
        """Import a CSV file (csv_import); ASM3's answer. Raises AnswerLost when it may have been imported
        without the answer coming back."""
        data = self._call("csv_import", {"data": base64.b64encode(content).decode("ascii"),
                                         "encoding": "utf-8"}, imports=True)
        try:
            answer = json.loads(data)
            errors: dict[int, list[str]] = {}
            for row, _text, message in answer.get("errors") or []:
                errors.setdefault(int(row), []).append(_one_line(str(message)))
            return ImportAnswer(int(answer["rows"]), int(answer["success"]), errors)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise AnswerLost(f"{self.where}: csv_import answered something dogcat cannot read "
                             f"({_one_line(data[:80].decode('utf-8', 'replace'))}…)" + _after(True)) from None


def animal_of(row: dict, i: int = 0) -> RemoteAnimal:
    """One json_shelter_animals row as the animal a pull reads (the same as a row of ASM3's CSV export)."""
    def text(name: str) -> str | None:
        value = row.get(name)
        return str(value).strip() if value not in (None, "") else None

    born = text("DATEOFBIRTH")
    try:
        dob = date.fromisoformat(born[:10]) if born else None
    except ValueError:
        dob = None
    sex = SEXES.get((text("SEXNAME") or "").casefold())
    breed1, breed2 = text("BREEDNAME1"), text("BREEDNAME2")
    code = text("SHELTERCODE") or text("CODE") or ""
    media = tuple(sorted(int(m.group(1)) for url in row.get("PHOTOURLS") or []
                         if (m := _MEDIA_ID.search(str(url)))))
    animal = ShelterAnimal(code, text("ANIMALNAME") or "", dob, sex, breed1, breed2 or breed1,
                           bool(breed2 and breed1 and breed2.casefold() != breed1.casefold()), i)
    return RemoteAnimal(animal, int(row.get("ID") or 0), media)


def _after(imports: bool) -> str:
    return ("; ASM3 may have imported it: the next dogcat asm3 sync finds out what it took before sending "
            "anything again") if imports else ""


def _hint(text: str) -> str:
    if "username and password" in text:
        return f" (check --username and {PASSWORD_ENV}); nothing sent"
    if "API Key" in text:
        return f" (check {KEY_ENV}, and that the key may call {', '.join(METHODS)}); nothing sent"
    return "; nothing sent"


def _reason(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "no such host"
    return _one_line(str(reason) or type(reason).__name__)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]
