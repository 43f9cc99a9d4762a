"""The rule modules' own rules, case by case, each at its edges: the statuses' thresholds (dogcat.decision), how
an animal's photos are fused (dogcat.fusion), where codes and names come from (dogcat.naming), the path keys
(dogcat.pathkeys) and the budget for people's patterns (dogcat.patterns).

Plain Python and no model: these are the unit tests the mutation tests run (docs/development.md, "Mutation
testing"); each assertion is one that a plausible slip in the rule makes fail.
"""

from __future__ import annotations

import math
import os
import re
from datetime import date

import pytest

from dogcat import breeds, decision, fusion, naming, pathkeys, patterns
from dogcat.asm3 import records as asm3_records
from dogcat.decision import Thresholds, breed_status, decide, status_of

# --- dogcat.decision --------------------------------------------------------------------------------------------

RULE = Thresholds(not_a_dog_below=0.4, unsure_below=0.6, not_a_dog_confidence_below=0.3, second_look_below=0.7)


@pytest.mark.parametrize("confidence, dog, want", [
    (0.29, 0.39, "not_a_dog"),  # neither model sees a dog
    (0.30, 0.39, "unsure"),  # the breed model at its bound: not "not confident" any more
    (0.29, 0.40, "unsure"),  # the detector at its bound
    (0.29, None, "unsure"),  # the dog check off
    (0.59, 0.9, "unsure"),
    (0.60, 0.9, "dog"),  # reaches the bound: a dog
    (0.95, 0.01, "dog"),  # the breed model sure of a breed: the detector alone never says not a dog
])
def test_decide_at_each_bound(confidence, dog, want):
    assert decide(confidence, dog, RULE) == want


def test_breed_status_and_its_default():
    assert (breed_status(0.5), breed_status(0.4999)) == ("dog", "unsure")
    assert (breed_status(0.7, 0.7), breed_status(0.69, 0.7)) == ("dog", "unsure")
    assert decision.DEFAULT_UNSURE_BELOW == 0.5 and decision.DEFAULT_SECOND_LOOK_BELOW == 1.0


def test_thresholds_from_a_card():
    card = {"decision": {"not_a_dog_below": 0.1, "unsure_below": 0.2, "not_a_dog_confidence_below": 0.3,
                         "second_look_below": 0.4}}
    assert Thresholds.from_card(card) == Thresholds(0.1, 0.2, 0.3, 0.4)
    assert Thresholds.from_card(card, not_a_dog_below=0.0, unsure_below=0.9) == Thresholds(0.0, 0.9, 0.3, 0.4)
    assert Thresholds.from_card(card, not_a_dog_below=0.0).not_a_dog_below == 0.0  # 0 is an override, not "none"
    assert Thresholds.from_card(card, unsure_below=0.0).unsure_below == 0.0
    defaults = Thresholds(decision.DEFAULT_NOT_A_DOG_BELOW, decision.DEFAULT_UNSURE_BELOW,
                          decision.DEFAULT_NOT_A_DOG_CONFIDENCE_BELOW, decision.DEFAULT_SECOND_LOOK_BELOW)
    assert Thresholds.from_card({}) == Thresholds.from_card({"decision": None}) == defaults
    assert defaults == Thresholds(0.5, 0.5, 0.2, 1.0)
    assert Thresholds(0.1, 0.2) == Thresholds(0.1, 0.2, 1.0, 1.0)  # the detector alone; every photo looked twice

    class Model:
        card = {"decision": {"unsure_below": 0.8}}

    assert Thresholds.for_model(Model(), not_a_dog_below=0.25) == Thresholds(0.25, 0.8, 0.2, 1.0)
    assert Thresholds.for_model(Model(), unsure_below=0.35).unsure_below == 0.35


@pytest.mark.parametrize("record, want", [
    ({"error": "not an image", "status": "dog"}, "error"),
    ({"status": "not_a_dog", "top_k": [{"confidence": 0.9}]}, "not_a_dog"),
    ({"top_k": [{"confidence": 0.5}, {"confidence": 0.1}]}, "dog"),  # schema 1: its best guess alone
    ({"top_k": [{"confidence": 0.49}]}, "unsure"),
    ({"status": None, "top_k": [{"confidence": 0.49}]}, "unsure"),
    ({"top_k": []}, "error"),
    ({}, "error"),
    ({"top_k": [{"confidence": None}]}, "error"),
    ({"top_k": [{"breed": "Beagle"}]}, "error"),
])
def test_a_records_status(record, want):
    assert status_of(record) == want
    assert want in decision.STATUSES


# --- dogcat.fusion ----------------------------------------------------------------------------------------------

def test_the_mean_of_two_photos():
    assert fusion.fuse([[0.8, 0.2, 0.0], [0.4, 0.4, 0.2]], "mean") == pytest.approx([0.6, 0.3, 0.1])


def test_the_log_mean_is_the_normalised_geometric_mean():
    a, b = [0.8, 0.15, 0.05], [0.2, 0.6, 0.2]
    geometric = [math.sqrt(x * y) for x, y in zip(a, b, strict=True)]
    want = [g / sum(geometric) for g in geometric]
    assert fusion.fuse([a, b]) == pytest.approx(want, rel=1e-12)
    assert fusion.fuse([a, b], "log-mean") == fusion.fuse([a, b])
    assert fusion.RULE == "log-mean" and fusion.RULES == ("mean", "log-mean")


def test_a_breed_must_fit_every_photo_in_the_log_mean():
    """One photo sure it is not breed 0 (probability 0, rounded) outweighs another sure it is: the floor, not a
    crash, and not the mean's even split."""
    fused = fusion.fuse([[1.0, 0.0], [0.0, 1.0]])
    assert fused == pytest.approx([0.5, 0.5])
    lopsided = fusion.fuse([[0.999999, 1e-9], [0.5, 0.5]])
    assert lopsided[1] == pytest.approx(math.sqrt(1e-6 * 0.5) / (math.sqrt(0.999999 * 0.5) + math.sqrt(1e-6 * 0.5)))
    assert fusion.fuse([[0.0, 0.0, 1.0]]) == pytest.approx([1 / 3 * 0 + 1e-6 / (2e-6 + 1)] * 2 + [1 / (2e-6 + 1)])


def test_one_photo_is_its_own_answer_and_none_is_empty():
    assert fusion.fuse([[0.7, 0.2, 0.1]]) == pytest.approx([0.7, 0.2, 0.1], rel=1e-12)
    assert fusion.fuse([[0.7, 0.2, 0.1]], "mean") == pytest.approx([0.7, 0.2, 0.1])
    assert fusion.fuse([]) == [] and fusion.fuse([], "mean") == []
    assert sum(fusion.fuse([[0.5, 0.3, 0.1], [0.1, 0.1, 0.1], [0.3, 0.3, 0.3]])) == pytest.approx(1.0)


def test_a_distribution_that_sums_to_zero_is_left_as_it_is():
    assert fusion.fuse([[0.0, 0.0]], "mean") == [0.0, 0.0]


def test_fusion_refuses_mismatched_photos_and_unknown_rules():
    with pytest.raises(ValueError, match=r"^every photo's probabilities must cover the same labels$"):
        fusion.fuse([[0.5, 0.5], [1.0]])
    with pytest.raises(ValueError, match="unknown fusion rule 'median'; known: mean, log-mean"):
        fusion.fuse([[1.0]], "median")


def test_ranked_is_best_first_with_ties_in_label_order():
    assert fusion.ranked([0.1, 0.6, 0.3], ["a", "b", "c"], 2) == [("b", 0.6), ("c", 0.3)]
    assert fusion.ranked([0.5, 0.5, 0.0], ["a", "b", "c"], 3) == [("a", 0.5), ("b", 0.5), ("c", 0.0)]
    assert fusion.ranked([0.2, 0.8], ["a", "b"], 5) == [("b", 0.8), ("a", 0.2)]
    assert all(type(p) is float for _, p in fusion.ranked([1, 0], ["a", "b"], 2))


# --- dogcat.naming ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, code", [
    ("A1023", "A1023"),
    ("a b/c", "a-b-c"),
    ("--x..", "x"),
    (".A1.", "A1"),
    ("ä ö ü", "animal"),
    ("", "animal"),
    ("Rex_Jr.v2", "Rex_Jr.v2"),
    ("x" * 39 + "-y", "x" * 39),  # cut at 40, and the cut's dash stripped
    ("x" * 45, "x" * 40),
    ("--" + "x" * 40, "x" * 40),  # stripped before the cut
    ("X1", "X1"),
    ("A1X", "A1X"),
])
def test_clean_code(text, code):
    assert naming.clean_code(text) == code
    assert naming.CODE_MAX == 40 and naming.NAME_MAX == 40


@pytest.mark.parametrize("folder, want", [
    ("A1023-Rex", ("A1023", "Rex")),
    ("A1023 Rex", ("A1023", "Rex")),
    ("A1023_Rex", ("A1023", "Rex")),
    ("A1023 - Rex the dog", ("A1023", "Rex the dog")),
    ("7-Up", ("7", "Up")),
    ("Big-Max", None),  # no digit: a name, not a code
    ("Rex_Jr", None),
    ("2024-06-01", None),  # a date is not an animal "2024"
    ("A1023", None),
    ("A1023-", None),
    ("A1023-Rex\nJr", ("A1023", "Rex Jr")),
])
def test_split_folder(folder, want):
    assert naming.split_folder(folder) == want


def test_split_folder_with_a_shelters_pattern():
    scheme = re.compile(r"\((?P<code>K\d+)\)(?:\s*(?P<name>.*))?")
    assert naming.split_folder("intake (K77) Bo", scheme) == ("K77", "Bo")  # searched, not matched whole
    assert naming.split_folder("intake (K77)", scheme) == ("K77", "K77")  # no name: the code is its name
    assert naming.split_folder("intake K77", scheme) is None
    assert naming.code_and_name({"code": "", "name": "Rex"}) is None
    assert naming.code_and_name({"name": "Rex"}) is None
    assert naming.code_and_name({"code": "a/b", "name": None}) == ("a-b", "a-b")
    assert naming.code_and_name({"code": "A1", "name": "  " + "n" * 45}) == ("A1", "n" * 40)
    assert naming.code_and_name({"code": "A1", "name": "r" * 39 + " Jr"}) == ("A1", "r" * 39)  # cut, then stripped


def test_code_key_ignores_case():
    assert naming.code_key("a1023") == naming.code_key("A1023") == "code:A1023"


@pytest.mark.parametrize("value, want", [
    ('Rex "the dog"', "Rex ''the dog''"),
    ("  Rex\n\tJr  ", "Rex Jr"),
    (None, ""),
    (42, "42"),
    ("Rex\u202eJr", "Rex<U+202E>Jr"),
])
def test_one_line(value, want):
    assert naming.one_line(value) == want


@pytest.mark.parametrize("path, want", [
    ("/intake/IMG_0001.jpg", "IMG 0001"),
    ("/intake/=SUM(A1).jpg", "SUM A1"),  # never starts like a formula
    ("/intake/-rex-.jpg", "rex"),
    ("/intake/'rex'.jpg", "rex"),
    ("/intake/___.jpg", naming.UNNAMED),
    ("", naming.UNNAMED),
    ("/intake/O'Malley-Jr.jpg", "O'Malley-Jr"),
    ("/intake/" + "a" * 39 + " b.jpg", "a" * 39),
    ("/intake/caf\\xe9.jpg", "caf<U+DCE9>"),  # a byte that is not UTF-8, shown as the tables show it
    ("/intake/two  words.jpg", "two words"),
    ("/intake/Xena X.jpg", "Xena X"),
])
def test_placeholder_name(path, want):
    assert naming.placeholder_name(path) == want
    assert naming.UNNAMED == "Unnamed dog"


def test_folder_name():
    assert naming.folder_name("/intake/A1-Rex") == "/intake/A1-Rex"
    assert naming.folder_name("/intake/caf\\xe9") == "/intake/caf<U+DCE9>"
    assert naming.folder_name("/intake/a\\\\xb") == "/intake/a\\xb"  # a backslash in the name, as it is
    assert naming.folder_name("/in\\take/\u00e9\\xff") == "/in\\take/\u00e9<U+DCFF>"
    assert naming.folder_name("/in\\take/\x1b") == "/in\\take/\x1b"  # only the bytes: visible() comes later
    assert naming.folder_name("/a\\x80 b") == "/a<U+DC80> b"


def test_single():
    assert naming.single("/intake/IMG_7.jpg", "ab" * 32) == ("photo:" + "ab" * 32, "IMG_7", "IMG 7")
    assert naming.single("/intake/bad file.jpg", None) == ("file:/intake/bad file.jpg", "bad-file", "bad file")
    assert naming.single("/intake/x.jpg", "") == ("file:/intake/x.jpg", "x", "x")


# --- dogcat.pathkeys --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, key", [
    (b"/intake/rex.jpg", "/intake/rex.jpg"),
    (b"a\xff.jpg", "a\\xff.jpg"),
    (b"a\\xff.jpg", "a\\\\xff.jpg"),  # a backslash before x: doubled
    (b"a\\\\b", "a\\\\\\b"),  # before a backslash: doubled; the last one before b: as it is
    (b"C:\\photos\\dog.jpg", "C:\\photos\\dog.jpg"),
    (b"a\\\xfe", "a\\\\\\xfe"),  # before an escaped byte: doubled
    (b"end\\", "end\\"),
    (b"\x80\x8f", "\\x80\\x8f"),
    (b"caf\xc3\xa9", "caf\u00e9"),  # UTF-8 as it is
])
def test_keys_of_bytes_and_back(raw, key):
    assert pathkeys.key_of_bytes(raw) == key
    assert pathkeys.to_bytes(key) == raw


def test_every_short_name_has_its_own_key():
    names = [bytes(p) for p in ([a] for a in range(256))] + [b"\\" + bytes([a]) for a in range(256)]
    names += [b"\\x" + bytes([a, b]) for a in b"0123456789abcdefABCDEF\\" for b in b"0f8\\x"]
    keys = [pathkeys.key_of_bytes(n) for n in names]
    assert len(set(keys)) == len(set(names))
    assert all(pathkeys.to_bytes(k) == n for k, n in zip(keys, names, strict=True))


def test_a_key_of_a_file_is_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert pathkeys.key("rex.jpg") == str(tmp_path / "rex.jpg")
    assert pathkeys.to_path(pathkeys.key("rex.jpg")) == tmp_path / "rex.jpg"
    assert not pathkeys.exists(pathkeys.key("rex.jpg"))
    (tmp_path / "rex.jpg").write_bytes(b"")
    assert pathkeys.exists(pathkeys.key("rex.jpg"))
    odd = os.fsdecode(b"caf\xe9.jpg")
    os.symlink(tmp_path / "gone", tmp_path / odd)  # a broken link is still there
    assert pathkeys.exists(pathkeys.key(odd)) and pathkeys.key(odd).endswith("caf\\xe9.jpg")
    assert pathkeys.to_path(pathkeys.key(odd)) == tmp_path / odd


def test_schema_2s_keys():
    assert pathkeys.old_key(b"a\xff.jpg") == pathkeys.old_key(b"a\\xff.jpg") == "a\\xff.jpg"  # the bug of issue 13
    assert pathkeys.old_key("café".encode()) == "café"
    assert pathkeys.old_key_candidates("a\\xff.jpg") == [b"a\\xff.jpg", b"a\xff.jpg"]
    assert pathkeys.old_key_candidates("a.jpg") == [b"a.jpg"]
    assert pathkeys.old_key_candidates("a\\x41.jpg") == [b"a\\x41.jpg"]  # below 0x80: never written so
    assert pathkeys.old_key_candidates("a\\xc3\\xa9") == [b"a\\xc3\\xa9"]  # UTF-8 é would have been é
    assert pathkeys.old_key_candidates("a\\x80\\xaf") == [b"a\\x80\\xaf", b"a\x80\xaf"]


# --- dogcat.patterns --------------------------------------------------------------------------------------------

def test_a_pattern_is_searched_within_the_budget():
    found = patterns.UserPattern.compile("--pattern", r"(?P<code>A\d+)")
    assert found.text == r"(?P<code>A\d+)" and found.option == "--pattern"
    found.search_all(["x A12 y", "none", "x A12 y"])
    assert found.found == {"none": None, "x A12 y": ("A12", ("A12",), {"code": "A12"})}
    assert found.search("A3") == ("A3", ("A3",), {"code": "A3"})  # searched when first asked
    assert found.search("none") is None and set(found.found) == {"none", "x A12 y", "A3"}


def test_a_pattern_keeps_its_flags():
    found = patterns.UserPattern.compile("--pattern", r"(?i)rex")
    found.search_all(["REX"])
    assert found.found["REX"] == ("REX", (), {})


def test_many_names_are_all_answered():
    found = patterns.UserPattern.compile("--pattern", r"(\d+)")
    names = [f"dog {i}" for i in range(patterns.FLUSH_NAMES * 2 + 5)]
    found.search_all(names)
    assert [found.found[n][1] for n in names] == [(str(i),) for i in range(len(names))]


def test_a_pattern_that_is_not_one():
    with pytest.raises(patterns.PatternError, match=r"^--folder-pattern '\(x': not a valid regular expression"):
        patterns.UserPattern.compile("--folder-pattern", "(x")


def test_a_pattern_that_never_ends_is_refused(monkeypatch):
    monkeypatch.setattr(patterns, "BUDGET_S", 0.5)
    slow = patterns.UserPattern.compile("--pattern", r"(a+)+$")
    with pytest.raises(patterns.PatternError) as refused:
        slow.search_all(["a" * 40 + "!", "ok"])
    assert str(refused.value) == ("--pattern '(a+)+$': cannot be matched against the 2 name(s) within 0.5 s (a "
                                  "pattern that backtracks, like nested repeats '(a+)+': simplify it); nothing was "
                                  "written")
    assert slow.found == {}
    quick = patterns.UserPattern.compile("--pattern", r"a+$")  # the same budget: a sane pattern still answers
    quick.search_all(["a" * 40 + "!", "aa"])
    assert quick.found == {"a" * 40 + "!": None, "aa": ("aa", (), {})}


# --- dogcat.asm3.records: each malformed file's one line, whole -------------------------------------------------

def asm3_file(tmp_path, text: str | bytes, name: str = "animals.csv"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def refusal(path, **kwargs) -> str:
    with pytest.raises(asm3_records.ShelterFileError) as refused:
        asm3_records.read_animals(path, **kwargs)
    return str(refused.value)


def test_each_malformed_asm3_file_says_where_and_what(tmp_path):
    p = asm3_file(tmp_path, "")
    assert refusal(p) == f"{p}: the file is empty, not an ASM3 animal export"
    p = asm3_file(tmp_path, "ID,NAME,SEX,DOB,BREED\n")
    assert refusal(p) == (f"{p}, line 1: no ANIMALCODE or ANIMALNAME column: not an ASM3 animal export "
                          "(the header starts 'ID,NAME,SEX,DOB')")
    p = asm3_file(tmp_path, "ANIMALNAME," + "X" * 90 + "\n")
    assert refusal(p) == (f"{p}, line 1: no ANIMALCODE column: not an ASM3 animal export "
                          f"(the header starts {('ANIMALNAME,' + 'X' * 90)[:80]!r})")
    p = asm3_file(tmp_path, "ANIMALCODE,ANIMALNAME,ANIMALSEX,ANIMALSEX\nA1,Rex,Male,Male\n")
    assert refusal(p) == f"{p}, line 1: the header has ANIMALSEX 2 times"
    p = asm3_file(tmp_path, "ANIMALCODE,ANIMALNAME,ANIMALCODE,ANIMALCODE\nA1,Rex,A1,A1\n")
    assert refusal(p) == f"{p}, line 1: the header has ANIMALCODE 3 times"
    p = asm3_file(tmp_path, b"ANIMALCODE,ANIMALNAME\nA1,Rex\nA2,Caf\xe9\n")
    assert refusal(p) == f"{p}, line 3: not UTF-8 text (byte 35): not an ASM3 animal export"
    p = asm3_file(tmp_path, "ANIMALCODE,ANIMALNAME\nA1,Rex\n\nA2,\"Bo\"x\n")
    assert refusal(p) == (f"{p}, line 4: not readable as CSV (',' expected after '\"')")
    p = asm3_file(tmp_path, "ANIMALCODE,ANIMALNAME\nA1,Rex\nA1,Max\n")
    assert refusal(p) == f"{p}, line 3: A1 has ANIMALNAME 'Max' here but 'Rex' on line 2"
    p = asm3_file(tmp_path, "ANIMALCODE,ANIMALNAME,ANIMALDOB\nA1,Rex,2/30/2020\n")
    assert refusal(p) == f"{p}, line 2: ANIMALDOB of A1: '2/30/2020' is no day (MM/DD/YYYY)"
    # Given --day-first, a file whose only date can be month-first alone says so (the order is the whole file's).
    assert refusal(p, day_first=True) == (f"{p}, line 2: ANIMALDOB of A1 is '2/30/2020', month first, but "
                                          "--day-first was given")
    p = asm3_file(tmp_path, "ANIMALCODE,ANIMALNAME,ANIMALDOB\nA1,Rex,30/02/2020\n")
    assert refusal(p, day_first=True) == f"{p}, line 2: ANIMALDOB of A1: '30/02/2020' is no day (DD/MM/YYYY)"
    # A year-first date (ASM3's Japanese, Hungarian ... locales) is no day in its own order, whatever the option.
    p = asm3_file(tmp_path, "ANIMALCODE,ANIMALNAME,ANIMALDOB\nA1,Rex,2020.13.02\n")
    assert refusal(p) == refusal(p, day_first=True) == (f"{p}, line 2: ANIMALDOB of A1: '2020.13.02' is no day "
                                                        "(YYYY-MM-DD)")
    p = asm3_file(tmp_path, "ANIMALCODE,ANIMALNAME,ANIMALDOB\nA1,Rex,31.04.2020\n")
    assert refusal(p) == f"{p}, line 2: ANIMALDOB of A1: '31.04.2020' is no day (DD.MM.YYYY)"
    p = asm3_file(tmp_path, "ANIMALCODE,ANIMALNAME,ANIMALDOB\nA1,Rex,01/02/2020 noon\n")
    assert refusal(p) == (f"{p}, line 2: ANIMALDOB of A1: '01/02/2020 noon' is not a date (MM/DD/YYYY, DD.MM.YYYY, "
                          "YYYY/MM/DD, YYYY-MM-DD ...)")
    p = asm3_file(tmp_path, "ANIMALCODE,ANIMALNAME\nA1,Rex\nA1,Rex,extra\n")
    assert refusal(p) == f"{p}, line 3: 3 fields where the header has 2"


def test_an_asm3_file_read_as_written(tmp_path):
    p = asm3_file(tmp_path, "\ufeffANIMALCODE , ANIMALNAME,ANIMALBREED1,ANIMALBREED2,ANIMALDOB\r\n"
                            "A1, Rex ,,Beagle,2020-01-31\r\n,,,,\r\n\r\n\"A2\",\"Bo\r\nJr\",Pug,PUG,\r\n"
                            "A3,Max,Pug,,\r\n")
    rex, bo, max_ = asm3_records.read_animals(p)
    assert (rex.code, rex.name, rex.breed1, rex.breed2, rex.crossbreed, rex.line) == ("A1", "Rex", None, "Beagle",
                                                                                      True, 2)
    assert rex.dob == date(2020, 1, 31) and rex.sex is None
    assert (bo.name, bo.line, bo.crossbreed) == ("Bo\r\nJr", 5, False)  # the blank rows still count as lines
    assert (max_.breed2, max_.crossbreed, max_.line) == (None, False, 7)


def test_a_missing_column_reads_as_empty(tmp_path):
    p = asm3_file(tmp_path, "ANIMALNAME,ANIMALCODE\nRex,A1\n")
    [rex] = asm3_records.read_animals(p)
    assert (rex.code, rex.name, rex.dob, rex.sex, rex.breed1, rex.breed2) == ("A1", "Rex", None, None, None, None)


@pytest.mark.parametrize("text, day_first, want", [
    ("2020-01-31", True, date(2020, 1, 31)),  # ISO whatever the locale
    ("1/2/2020", False, date(2020, 1, 2)),
    ("1/2/2020", True, date(2020, 2, 1)),
    ("01/02/2020 13:05", False, date(2020, 1, 2)),
    ("01/02/2020 1:05:09.5 pm", False, date(2020, 1, 2)),
    ("  01/02/2020  ", False, date(2020, 1, 2)),
])
def test_parse_date_cases(text, day_first, want):
    assert asm3_records.parse_date(text, day_first=day_first) == want


# --- dogcat.breeds: the small rules under resolve ----------------------------------------------------------------

def test_labels_names_and_wnids():
    assert breeds.breed_name("n02099601-golden_retriever") == "Golden Retriever"
    assert breeds.breed_name("n02086240-Shih-Tzu") == "Shih-Tzu"
    assert breeds.breed_name("pit_bull__terrier") == "Pit Bull Terrier"  # not a label: its words as they are
    assert breeds.wnid("n02088364-beagle") == "n02088364"
    assert breeds.wnid("Pit Bull Terrier") is None and breeds.wnid("n0208836-beagle") is None


def test_a_breed_list_file():
    text = "# ASM3's breeds\n\nBeagle\n  Pug  \n   \n#Poodle\n Basset Hound\n"
    assert breeds.read_breed_list(text) == ("Beagle", "Pug", "Basset Hound")
    assert breeds.read_breed_list(breeds.breed_list_text(["Beagle", "Pug"])) == ("Beagle", "Pug")


def test_keys_compare_words_not_spelling():
    assert breeds.key("St. Bernard") == "st bernard"
    assert breeds.key("Black & Tan Coonhound") == "black and tan coonhound"
    assert breeds.key("  Épagneul_Breton ") == "epagneul breton"


def test_an_asm3_name_is_found_by_any_of_its_parts():
    """ASM3 writes two names in one ("Australian Cattle Dog/Blue Heeler", "Patterdale Terrier (Fell Terrier)"):
    either part resolves to it, and the whole name only to it."""
    for said in ("Blue Heeler", "Australian Cattle Dog", "australian cattle dog/blue heeler"):
        assert breeds.resolve(said).breed1 == "Australian Cattle Dog/Blue Heeler", said
    assert breeds.resolve("fell terrier").breed1 == "Patterdale Terrier (Fell Terrier)"
    assert breeds.resolve("Lancashire Heeler").breed1 == "Lancashire Heeler"


def test_asm3_names_of_labels():
    assert breeds.asm3_name("n02106662-German_shepherd") == "German Shepherd Dog"
    assert breeds.asm3_pair("n02106662-german_SHEPHERD") == ("German Shepherd Dog", "German Shepherd Dog")  # wnid
    assert breeds.asm3_pair("Labrador Retriever mix") == ("Labrador Retriever", breeds.MIXED_BREED)
    assert breeds.asm3_pair("Pit Bull Terrier") == ("Pit Bull Terrier", "Pit Bull Terrier")
    assert breeds.asm3_pair("n09999999-dingo") == (breeds.MIXED_BREED, breeds.MIXED_BREED)
    assert breeds.asm3_pair(None) == breeds.asm3_pair("") == (breeds.MIXED_BREED, breeds.MIXED_BREED)
    assert breeds.asm3_name(None) == breeds.MIXED_BREED


def test_model_labels_of_an_asm3_breed():
    assert breeds.model_labels("poodle") == breeds.model_labels("Poodle") and len(breeds.model_labels("Poodle")) == 3
    assert breeds.model_labels("German Shepherd Dog") == ("n02106662-German_shepherd",)
    assert breeds.model_labels("Pit Bull Terrier") == () and breeds.model_labels("no such breed") == ()
    assert breeds.model_label("german shepherd dog") == "n02106662-German_shepherd"
    assert breeds.model_label("Mixed Breed") is None and breeds.model_label("Poodle") is None


def test_an_unknown_breed_has_suggestions_or_none():
    assert breeds.UnknownBreed("x").suggestions == []
    assert breeds.UnknownBreed("x", ["Pug"]).suggestions == ["Pug"]
    with pytest.raises(breeds.UnknownBreed) as unknown:
        breeds.resolve("beagel")
    assert unknown.value.suggestions[0] == "Beagle"
    with pytest.raises(breeds.UnknownBreed) as unknown:  # the four closest names, the closest first
        breeds.resolve("terier")
    assert unknown.value.suggestions == ["Terrier", "Toy Terrier", "Rat Terrier", "Fox Terrier"]


def test_fusion_arithmetic_with_three_photos():
    """The mean divides by the number of photos; the log-mean is shifted by its largest value, not by more."""
    three = [[0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.1, 0.8, 0.1]]
    assert fusion.fuse(three, "mean") == pytest.approx([0.3, 1.3 / 3, 0.8 / 3])
    geometric = [(a * b * c) ** (1 / 3) for a, b, c in zip(*three, strict=True)]
    assert fusion.fuse(three) == pytest.approx([g / sum(geometric) for g in geometric], rel=1e-12)
    tiny = [[1e-300, 1e-300]]  # a sum below 1 is still normalised
    assert fusion.fuse(tiny, "mean") == [0.5, 0.5]
    assert fusion.fuse([[0.9, 0.1]] * 700) == pytest.approx([0.9, 0.1])  # no overflow: exp(v - top) <= 1


def test_more_malformed_asm3_files(tmp_path):
    p = asm3_file(tmp_path, "ANIMALCODE,ANIMALNAME\nA1,Rex\nA2,B\0o\nA3,\0\n")  # the first NUL's line
    assert refusal(p) == f"{p}, line 3: a NUL character: not a CSV text file"
    p = asm3_file(tmp_path, "ANIMALCODE,ANIMALNAME\nA1,Rex\nA2,Bo\na1,Rex\n")
    assert refusal(p) == (f"{p}, line 4: codes 'A1' and 'a1' differ only in case (ASM3 takes them for one code), "
                          "line 2")
    p = asm3_file(tmp_path, b"\xef\xbb\xbfANIMALCODE,ANIMALNAME\nA1,Rex\n")  # a BOM is no part of the header
    assert [a.code for a in asm3_records.read_animals(p)] == ["A1"]


def test_labels_known_by_their_wnid_and_taught_labels():
    # Another model's spelling of a Stanford Dogs breed: its WordNet id says which.
    assert breeds.asm3_pair("n02106662-Alsatian") == ("German Shepherd Dog", "German Shepherd Dog")
    assert breeds.asm3_name("Labrador Retriever mix") == "Labrador Retriever"  # breed 1 of a taught label


def test_unknown_words_inside_a_mix_are_named_with_what_was_said():
    with pytest.raises(breeds.UnknownBreed) as unknown:
        breeds.resolve("beagel mix")
    assert str(unknown.value).startswith("'beagel' (in 'beagel mix'): unknown breed; did you mean Beagle")
    with pytest.raises(breeds.UnknownBreed) as unknown:
        breeds.resolve("beagel")
    assert str(unknown.value).startswith("'beagel': unknown breed; did you mean Beagle")
    with pytest.raises(breeds.UnknownBreed) as several:
        breeds.resolve("german")
    assert str(several.value).endswith("(say which)") and len(several.value.suggestions) > 1
    assert set(several.value.suggestions) >= {"German Shepherd Dog", "German Shorthaired Pointer"}
    with pytest.raises(breeds.UnknownBreed) as close:
        breeds.resolve("shnauzer")  # the four closest, no more
    assert close.value.suggestions == ["Schnauzer", "Miniature Schnauzer", "Giant Schnauzer", "Standard Schnauzer"]


def test_a_suggestion_is_the_models_breed_where_asm3s_name_is_several():
    """ASM3's Poodle is three of the model's breeds: a suggestion close to one of them names that one."""
    with pytest.raises(breeds.UnknownBreed) as close:
        breeds.resolve("toy poodel")
    assert close.value.suggestions == ["Toy Poodle", "Poodle"]


def test_crosses_and_their_unknown_parts():
    cross = breeds.resolve("german shepherd x pug")
    assert (cross.breed1, cross.label1, cross.breed2) == ("German Shepherd Dog", "n02106662-German_shepherd", "Pug")
    assert breeds.resolve("pug cross german shepherd").breed2 == "German Shepherd Dog"
    for said, part in (("beagel x pug", "beagel"), ("pug x beagel", "beagel")):
        with pytest.raises(breeds.UnknownBreed) as unknown:
            breeds.resolve(said)
        assert str(unknown.value).startswith(f"{part!r} (in {said!r}): unknown breed; did you mean Beagle")
    with pytest.raises(breeds.UnknownBreed) as alone:
        breeds.resolve("cross")  # a mix word alone is not "a mix of nothing"
    assert str(alone.value).startswith("'cross': unknown breed")
    with pytest.raises(breeds.UnknownBreed) as close:
        breeds.resolve("shnauzer")
    assert str(close.value) == ("'shnauzer': unknown breed; did you mean Schnauzer, Miniature Schnauzer, "
                                "Giant Schnauzer, Standard Schnauzer?")
