"""dogcat.asm3.records: the animals a shelter keeps in ASM3, read from ASM3's own "export animals as CSV".

Fast tests write small files in the shape of a real export (its header, copied below from one that
``shelter.py make`` wrote; every field quoted; one full row per animal, then log rows with only code and name).
The slow ones run ASM3's own export through ../shared/asm3/shelter.py.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from dogcat.asm3.records import ShelterAnimal, ShelterFileError, parse_date, read_animals
from tests.conftest import SHARED, needs_shared

# The header of ASM3's csvexport_animals (commit 625abaf7), as a stock database writes it (no additional fields).
HEADER = (
    "ANIMALID,ANIMALCODE,ANIMALLITTER,ANIMALNAME,ANIMALSEX,ANIMALTYPE,ANIMALWEIGHT,ANIMALCOLOR,ANIMALBREED1,"
    "ANIMALBREED2,ANIMALDOB,ANIMALLOCATION,ANIMALUNIT,ANIMALSPECIES,ANIMALDESCRIPTION,ANIMALWARNING,"
    "ANIMALHIDDENDETAILS,ANIMALHEALTHPROBLEMS,ANIMALMARKINGS,ANIMALREASONFORENTRY,ANIMALNEUTERED,"
    "ANIMALNEUTEREDDATE,ANIMALMICROCHIP,ANIMALMICROCHIPDATE,ANIMALENTRYDATE,ANIMALDECEASEDDATE,"
    "ANIMALDECEASEDREASON,ANIMALDECEASEDNOTES,ANIMALEUTHANIZED,ANIMALJURISDICTION,ANIMALPICKUPLOCATION,"
    "ANIMALPICKUPADDRESS,ANIMALENTRYCATEGORY,ANIMALNOTFORADOPTION,ANIMALNONSHELTER,ANIMALTRANSFER,"
    "ANIMALGOODWITHCATS,ANIMALGOODWITHDOGS,ANIMALGOODWITHKIDS,ANIMALHOUSETRAINED,ANIMALIMAGE,ANIMALPDFNAME,"
    "ANIMALPDFDATA,ANIMALHTMLNAME,ANIMALHTMLDATA,COSTDATE,COSTTYPE,COSTAMOUNT,COSTDESCRIPTION,CURRENTVETTITLE,"
    "CURRENTVETINITIALS,CURRENTVETFIRSTNAME,CURRENTVETLASTNAME,CURRENTVETADDRESS,CURRENTVETCITY,CURRENTVETSTATE,"
    "CURRENTVETZIPCODE,CURRENTVETHOMEPHONE,CURRENTVETWORKPHONE,CURRENTVETCELLPHONE,CURRENTVETEMAIL,LOGDATE,"
    "LOGTIME,LOGTYPE,LOGCOMMENTS,ORIGINALOWNERTITLE,ORIGINALOWNERINITIALS,ORIGINALOWNERFIRSTNAME,"
    "ORIGINALOWNERLASTNAME,ORIGINALOWNERADDRESS,ORIGINALOWNERCITY,ORIGINALOWNERSTATE,ORIGINALOWNERZIPCODE,"
    "ORIGINALOWNERHOMEPHONE,ORIGINALOWNERWORKPHONE,ORIGINALOWNERCELLPHONE,ORIGINALOWNEREMAIL,ORIGINALOWNERWARNING,"
    "MOVEMENTTYPE,MOVEMENTDATE,PERSONTITLE,PERSONINITIALS,PERSONFIRSTNAME,PERSONLASTNAME,PERSONADDRESS,PERSONCITY,"
    "PERSONSTATE,PERSONZIPCODE,PERSONFOSTERER,PERSONHOMEPHONE,PERSONWORKPHONE,PERSONCELLPHONE,PERSONEMAIL,"
    "PERSONCOMMENTS,PERSONWARNING,TESTTYPE,TESTRESULT,TESTDUEDATE,TESTPERFORMEDDATE,TESTCOMMENTS,VACCINATIONTYPE,"
    "VACCINATIONDUEDATE,VACCINATIONGIVENDATE,VACCINATIONEXPIRESDATE,VACCINATIONRABIESTAG,VACCINATIONMANUFACTURER,"
    "VACCINATIONBATCHNUMBER,VACCINATIONCOMMENTS,MEDICALNAME,MEDICALDOSAGE,MEDICALGIVENDATE,MEDICALCOMMENTS,"
    "MEDICALTYPE"
).split(",")
SHELTER = SHARED / "asm3" / "shelter.py"


def animal_row(id_, code, name, sex="Male", breed1="Beagle", breed2=None, dob="03/01/2021", **more) -> dict:
    """An animal's full row as the export writes it (the fields these tests care about, and a few others)."""
    return {"ANIMALID": str(id_), "ANIMALCODE": code, "ANIMALNAME": name, "ANIMALSEX": sex, "ANIMALTYPE": "D (Dog)",
            "ANIMALWEIGHT": "0.0", "ANIMALCOLOR": "Black", "ANIMALBREED1": breed1, "ANIMALBREED2": breed2 or breed1,
            "ANIMALDOB": dob, "ANIMALLOCATION": "Shelter", "ANIMALSPECIES": "Dog", "ANIMALNEUTERED": "0",
            "ANIMALENTRYDATE": "11/30/2026", "ANIMALGOODWITHCATS": "Unknown", "MOVEMENTTYPE": "0", **more}


def log_row(code, name, comments="Moved from -* to Shelter") -> dict:
    return {"ANIMALCODE": code, "ANIMALNAME": name, "LOGDATE": "11/30/2026", "LOGTIME": "13:38:14",
            "LOGTYPE": "History", "LOGCOMMENTS": f"{code} {name}: {comments}"}


def export_text(rows: list[dict], header: list[str] = HEADER) -> str:
    """As csvexport_animals writes it: the header unquoted, every field quoted with " doubled, \\n line ends."""
    def quoted(v: str) -> str:
        return '"' + v.replace('"', '""') + '"'
    return ",".join(header) + "\n" + "".join(",".join(quoted(r.get(h, "")) for h in header) + "\n" for r in rows)


def write(tmp_path: Path, text: str | bytes, name: str = "asm3-animals.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def two_dogs() -> list[dict]:
    return [animal_row(1, "A1001", "Rex"), log_row("A1001", "Rex"),
            animal_row(2, "A1002", "Bella", sex="Female", breed1="Labrador Retriever", breed2="Mixed Breed",
                       dob="06/15/2023", ANIMALDESCRIPTION='Says "hi",\nthen naps.'),
            log_row("A1002", "Bella"), log_row("A1002", "Bella", "Weight: 12 lb")]


# --- reading ---------------------------------------------------------------------------------------------------

def test_an_export_with_log_rows_is_one_animal_per_code(tmp_path):
    animals = read_animals(write(tmp_path, export_text(two_dogs())))
    assert animals == [
        ShelterAnimal("A1001", "Rex", date(2021, 3, 1), "Male", "Beagle", "Beagle", False, 2),
        ShelterAnimal("A1002", "Bella", date(2023, 6, 15), "Female", "Labrador Retriever", "Mixed Breed", True, 4),
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        animals[0].name = "Max"  # type: ignore[misc]


def test_line_numbers_count_lines_of_the_file_not_rows(tmp_path):
    # Bella's comments hold a line break, so the rows after hers start one line later than their index says
    rows = [*two_dogs(), animal_row(3, "A1003", "Daisy")]
    assert [a.line for a in read_animals(write(tmp_path, export_text(rows)))] == [2, 4, 8]


def test_a_bom_crlf_and_spaces_around_fields_are_accepted(tmp_path):
    text = export_text(two_dogs()).replace("\n", "\r\n").replace('"A1001"', '" A1001 "')
    animals = read_animals(write(tmp_path, b"\xef\xbb\xbf" + text.encode("utf-8")))
    assert [a.code for a in animals] == ["A1001", "A1002"]


def test_empty_fields_are_none_and_a_time_after_the_date_is_dropped(tmp_path):
    rows = [animal_row(1, "A1001", "Rex", sex="", breed1="", dob="03/01/2021 00:00:00"),
            animal_row(2, "A1002", "Bella", dob="", sex="Unknown")]
    rows[0]["ANIMALBREED2"] = ""
    rex, bella = read_animals(write(tmp_path, export_text(rows)))
    assert (rex.dob, rex.sex, rex.breed1, rex.breed2, rex.crossbreed) == (date(2021, 3, 1), None, None, None, False)
    assert (bella.dob, bella.sex) == (None, "Unknown")


def test_fields_can_come_from_any_of_an_animals_rows(tmp_path):
    # a log row first (the export never does this), the full row later: the animal starts at the first line
    rows = [log_row("A1001", "Rex"), animal_row(1, "A1001", "Rex")]
    (rex,) = read_animals(write(tmp_path, export_text(rows)))
    assert (rex.line, rex.breed1, rex.dob) == (2, "Beagle", date(2021, 3, 1))


def test_only_the_columns_it_reads_are_needed(tmp_path):
    text = "ANIMALCODE,ANIMALNAME,ANIMALBREED1\nA1,Rex,Beagle\nA2,Bella,\n"
    animals = read_animals(write(tmp_path, text))
    assert [(a.code, a.name, a.breed1, a.dob, a.sex) for a in animals] == [
        ("A1", "Rex", "Beagle", None, None), ("A2", "Bella", None, None, None)]


def test_blank_rows_are_skipped(tmp_path):
    text = export_text(two_dogs()) + ",".join('""' for _ in HEADER) + "\n\n"
    assert len(read_animals(write(tmp_path, text))) == 2


@pytest.mark.parametrize("text, day_first, want", [
    ("03/01/2021", False, date(2021, 3, 1)), ("3/1/2021", False, date(2021, 3, 1)),
    ("03/01/2021", True, date(2021, 1, 3)), ("2021-03-01", False, date(2021, 3, 1)),
    ("2021-03-01", True, date(2021, 3, 1)), ("12/31/2020 13:38:14", False, date(2020, 12, 31)),
    ("12/31/2020 1:38 PM", False, date(2020, 12, 31)),
    # Every format of ASM3's locales (src/asm3/i18n.py): with "." or "-" and the year last, always day first.
    ("2021/03/01", False, date(2021, 3, 1)), ("2021.03.01", True, date(2021, 3, 1)),
    ("01.03.2021", False, date(2021, 3, 1)), ("01-03-2021", False, date(2021, 3, 1)),
    ("1.3.2021", True, date(2021, 3, 1)),
])
def test_parse_date(text, day_first, want):
    assert parse_date(text, day_first=day_first) == want


@pytest.mark.parametrize("text", ["31/12/2020", "02/30/2021", "2021/13/01", "03/01/21", "01/05/1", "31-13-2021",
                                  "2021.03/01", "today", "03/01/2021 soon", ""])
def test_parse_date_refuses(text):
    with pytest.raises(ValueError):
        parse_date(text)


def test_day_first_reads_a_dd_mm_export(tmp_path):
    path = write(tmp_path, export_text([animal_row(1, "A1001", "Rex", dob="31/12/2020", ANIMALENTRYDATE="30/11/2026")]))
    assert read_animals(path, day_first=True)[0].dob == date(2020, 12, 31)
    assert read_animals(path)[0].dob == date(2020, 12, 31)  # told from the file's own dates


def day_first_dogs(dob: str = "01/03/2021", entry: str = "05/11/2026") -> list[dict]:
    """Two dogs whose dates all have a day of 12 or less (an en_GB export on the 5th of November)."""
    return [animal_row(1, "A1001", "Rex", dob=dob, ANIMALENTRYDATE=entry),
            {**log_row("A1001", "Rex"), "LOGDATE": entry},
            animal_row(2, "A1002", "Bella", dob="02/06/2023", ANIMALENTRYDATE=entry)]


def test_the_date_order_is_the_whole_files_never_a_rows(tmp_path):
    # One date with a day above 12 anywhere (here a log row's date) makes every date of the file day first ...
    rows = day_first_dogs()
    rows[1]["LOGDATE"] = "13/11/2026"
    rex, bella = read_animals(write(tmp_path, export_text(rows)))
    assert (rex.dob, bella.dob) == (date(2021, 3, 1), date(2023, 6, 2))
    # ... and one with a month above 12 month first; a file with both is refused, naming the later line.
    rows[2]["ANIMALDOB"] = "06/15/2023"
    message = refused(write(tmp_path, export_text(rows)))
    assert ", line 4: ANIMALDOB of A1002 is '06/15/2023', month first, but line 3 has LOGDATE" in message


def test_an_undecidable_file_is_refused_naming_the_option_that_settles_it(tmp_path):
    path = write(tmp_path, export_text(day_first_dogs()))
    message = refused(path)
    assert ", line 2: ANIMALDOB of A1001 is '01/03/2021', day or month first" in message
    assert "--day-first" in message and "--month-first" in message
    assert [a.dob for a in read_animals(path, day_first=True)] == [date(2021, 3, 1), date(2023, 6, 2)]
    assert [a.dob for a in read_animals(path, day_first=False)] == [date(2021, 1, 3), date(2023, 2, 6)]
    # The option must agree with a file that tells.
    rows = day_first_dogs(entry="25/11/2026")
    assert "is '25/11/2026', day first, but --month-first was given" in refused(
        write(tmp_path, export_text(rows)), day_first=False)


@pytest.mark.parametrize("dob, why", [("01/01/2999", "in the future"), ("01/05/1", "not four digits"),
                                      ("01/05/0001", "over 100 years ago"), ("01.05.1900", "over 100 years ago")])
def test_a_date_of_birth_no_animal_has_is_refused_naming_its_line(tmp_path, dob, why):
    path = write(tmp_path, export_text(day_first_dogs(dob=dob, entry="25/11/2026")))
    message = refused(path)
    assert ", line 2: ANIMALDOB of A1001" in message and why in message


# --- malformed files: one line, the file and the line ---------------------------------------------------------

def refused(path: Path, **kw) -> str:
    with pytest.raises(ShelterFileError) as e:
        read_animals(path, **kw)
    message = str(e.value)
    assert "\n" not in message and message.startswith(str(path)), message
    assert isinstance(e.value, ValueError)
    return message


def test_a_bad_date_names_its_line(tmp_path):
    rows = two_dogs()
    rows[2]["ANIMALDOB"] = "15/06/2023"  # a DD/MM date in an MM/DD export
    message = refused(write(tmp_path, export_text(rows)))
    assert ", line 4:" in message and "ANIMALDOB of A1002" in message and "15/06/2023" in message


def test_no_animalcode_column(tmp_path):
    header = [h for h in HEADER if h != "ANIMALCODE"]
    assert ", line 1: no ANIMALCODE column" in refused(write(tmp_path, export_text(two_dogs(), header)))


@pytest.mark.parametrize("content", [b"", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", b'{"animals": []}\n',
                                     b"just some text\nover two lines\n"])
def test_not_a_csv_export(tmp_path, content):
    assert "not" in refused(write(tmp_path, content)).split(": ", 1)[1]


def test_an_unclosed_quote(tmp_path):
    text = export_text(two_dogs()) + '"3","A1003","","Daisy\n'
    assert "not readable as CSV" in refused(write(tmp_path, text))


def test_a_row_with_another_number_of_fields(tmp_path):
    text = export_text(two_dogs()) + '"3","A1003","","Daisy"\n'
    assert ", line 8: 4 fields where the header has 113" in refused(write(tmp_path, text))


def test_a_row_with_an_empty_code_but_animal_fields(tmp_path):
    rows = two_dogs()
    rows.insert(2, animal_row(7, "", "Stray"))
    assert ", line 4: a row without ANIMALCODE" in refused(write(tmp_path, export_text(rows)))


@pytest.mark.parametrize("field, value, found", [
    ("ANIMALNAME", "Bellissima", "ANIMALNAME 'Bellissima' here but 'Bella' on line 4"),
    ("ANIMALBREED1", "Beagle", "ANIMALBREED1 'Beagle' here but 'Labrador Retriever' on line 4"),
    ("ANIMALID", "9", "ANIMALID '9' here but '2' on line 4"),
])
def test_two_rows_of_one_animal_that_disagree(tmp_path, field, value, found):
    rows = two_dogs()
    rows[4][field] = value  # Bella's second log row, line 7
    message = refused(write(tmp_path, export_text(rows)))
    assert ", line 7: A1002 has " + found in message


def test_codes_that_differ_only_in_case(tmp_path):
    rows = two_dogs()
    rows[3]["ANIMALCODE"] = "a1002"
    assert "differ only in case" in refused(write(tmp_path, export_text(rows)))


def test_an_unknown_sex_and_a_missing_name(tmp_path):
    path = write(tmp_path, export_text([animal_row(1, "A1001", "Rex", sex="Rüde")]))
    assert ", line 2: ANIMALSEX of A1001 is 'Rüde'" in refused(path)
    path = write(tmp_path, export_text([animal_row(1, "A1001", "")]))
    assert ", line 2: A1001 has no ANIMALNAME" in refused(path)


def test_control_characters_in_a_message_are_made_visible(tmp_path):
    path = write(tmp_path, export_text([animal_row(1, "A1\u202e001", "Rex", dob="99/99/2020")]))
    assert "A1<U+202E>001" in refused(path)


# --- ASM3's own export (../shared/asm3/shelter.py) --------------------------------------------------------------

def shelter(*args: str) -> str:
    tool = needs_shared(SHELTER, "ASM3's shelter tool")
    done = subprocess.run([sys.executable, str(tool), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def default_animals() -> list[dict]:
    """shelter.py's DEFAULT_ANIMALS, read from its source (importing it would put ASM3's code on sys.path)."""
    tree = ast.parse(needs_shared(SHELTER, "ASM3's shelter tool").read_text(encoding="utf-8"))
    (value,) = [n.value for n in tree.body if isinstance(n, ast.Assign)
                and any(getattr(t, "id", None) == "DEFAULT_ANIMALS" for t in n.targets)]
    return ast.literal_eval(value)


@pytest.mark.slow
def test_asm3s_own_export_of_the_six_dogs(tmp_path):
    made = json.loads(shelter("make", str(tmp_path)))
    animals = read_animals(made["export"])
    want = default_animals()
    assert [a.code for a in animals] == [w["code"] for w in want]
    for got, w in zip(animals, want, strict=True):
        assert (got.name, got.dob, got.sex, got.breed1) == (w["name"], date.fromisoformat(w["dob"]), w["sex"],
                                                             w["breed1"])
        assert got.breed2 == (w.get("breed2") or w["breed1"])  # ASM3 keeps a purebred's breed twice
        assert got.crossbreed == bool(w.get("breed2"))
    assert [a.line for a in animals] == [2, 4, 6, 8, 10, 12]  # each animal has one log row


@pytest.mark.slow
def test_a_breed_staff_change_in_asm3_is_read(tmp_path):
    shelter("make", str(tmp_path))
    before = {a.code: a for a in read_animals(tmp_path / "asm3-animals.csv")}
    shelter("edit", str(tmp_path), "A1002", "breed1", "Beagle")
    after = {a.code: a for a in read_animals(tmp_path / "asm3-animals.csv")}
    assert before["A1002"].breed1 == "Mixed Breed" and after["A1002"].breed1 == "Beagle"
    assert after["A1002"].breed2 == "Mixed Breed"  # breed2 stays: a crossbreed as ASM3's import would read it
    assert after["A1002"].crossbreed
    assert {c: a for c, a in after.items() if c != "A1002"} == {c: a for c, a in before.items() if c != "A1002"}
