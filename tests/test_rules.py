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

import pytest

from dogcat import decision, fusion, naming, pathkeys, patterns
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
    with pytest.raises(ValueError, match="same labels"):
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
])
def test_placeholder_name(path, want):
    assert naming.placeholder_name(path) == want
    assert naming.UNNAMED == "Unnamed dog"


def test_folder_name():
    assert naming.folder_name("/intake/A1-Rex") == "/intake/A1-Rex"
    assert naming.folder_name("/intake/caf\\xe9") == "/intake/caf<U+DCE9>"
    assert naming.folder_name("/intake/a\\\\xb") == "/intake/a\\xb"  # a backslash in the name, as it is
    assert naming.folder_name("/in\\take/\u00e9\\xff") == "/in\\take/\u00e9<U+DCFF>"
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
