"""dogcat.breeds: the shelter's breed words (ASM3's dog breeds, short names, mixes) and the model's labels.

The fast tests need nothing outside the checkout (the breed list is package data); the slow one rebuilds the
list from a stock ASM3 database made by ../shared/asm3/shelter.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from dogcat import breeds, corrections
from dogcat.breeds import BreedWords
from tests.conftest import ROOT, SHARED, needs_shared

LAB = "n02099712-Labrador_retriever"
GSD = "n02106662-German_shepherd"


def pure(name: str, label: str | None) -> BreedWords:
    return BreedWords(name, label, name, label)


# --- the words ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("words,expected", [
    ("Mixed Breed", pure("Mixed Breed", None)),
    ("Pit Bull Terrier", pure("Pit Bull Terrier", None)),
    ("lab", pure("Labrador Retriever", LAB)),
    ("GSD", pure("German Shepherd Dog", GSD)),
    ("yorkie", pure("Yorkshire Terrier Yorkie", "n02094433-Yorkshire_terrier")),
    ("pit bull", pure("Pit Bull Terrier", None)),
    ("Lab mix", BreedWords("Labrador Retriever", LAB, "Mixed Breed", None)),
    ("St. Bernard", pure("Saint Bernard St. Bernard", "n02109525-Saint_Bernard")),
    ("st bernard", pure("Saint Bernard St. Bernard", "n02109525-Saint_Bernard")),
    ("Saint Bernard", pure("Saint Bernard St. Bernard", "n02109525-Saint_Bernard")),
    ("labrador", pure("Labrador Retriever", LAB)),  # the first words of exactly one breed
    ("german shepherd", pure("German Shepherd Dog", GSD)),
    ("n02088364-beagle", pure("Beagle", "n02088364-beagle")),
    ("beagle", pure("Beagle", "n02088364-beagle")),
    ("  BEAGLE ", pure("Beagle", "n02088364-beagle")),
    ("staffy", pure("Staffordshire Bull Terrier", "n02093256-Staffordshire_bullterrier")),
    ("am staff", pure("American Staffordshire Terrier", "n02093428-American_Staffordshire_terrier")),
    ("husky", pure("Husky", None)),  # ASM3's own Husky, none of the model's
    ("Blue Heeler", pure("Australian Cattle Dog/Blue Heeler", None)),  # a name inside an ASM3 name
    ("Löwchen", pure("Lowchen", None)),
    ("black lab", pure("Black Labrador Retriever", LAB)),
    ("Boxer mix", BreedWords("Boxer", "n02108089-boxer", "Mixed Breed", None)),
    ("pitbull x", BreedWords("Pit Bull Terrier", None, "Mixed Breed", None)),
    ("Husky cross", BreedWords("Husky", None, "Mixed Breed", None)),
    ("lab x beagle", BreedWords("Labrador Retriever", LAB, "Beagle", "n02088364-beagle")),
    ("Poodle", pure("Poodle", None)),  # three of the model's breeds: none picked
    ("Terrier", pure("Terrier", None)),  # ASM3's catch-all, not the model's Toy Terrier
    ("toy terrier", pure("Terrier", "n02087046-toy_terrier")),
    ("Pembroke", pure("Welsh Corgi", "n02113023-Pembroke")),
    ("dingo", pure("Mixed Breed", "n02115641-dingo")),
])
def test_words_as_a_shelter_says_them(words, expected):
    got = breeds.resolve(words)
    assert got == expected
    assert got.crossbreed == (expected.breed1 != expected.breed2)


def test_a_mix_is_a_crossbreed():
    mix = breeds.resolve("Lab mix")
    assert mix.crossbreed and mix.labels == (LAB,)
    assert not breeds.resolve("lab").crossbreed


@pytest.mark.parametrize("words,hint", [
    ("pit bul", "did you mean Pit Bull Terrier?"),
    ("beagel", "did you mean Beagle?"),
    ("german", "did you mean German Pinscher, German Shepherd Dog"),  # the start of several
    ("wolf", "dogcat knows ASM3's 221 dog breeds and the model's 120"),
    ("pit bul mix", "'pit bul' (in 'pit bul mix'): unknown breed; did you mean Pit Bull Terrier?"),
    ("", "unknown breed"),
])
def test_unknown_words(words, hint):
    with pytest.raises(breeds.UnknownBreed) as e:
        breeds.resolve(words)
    assert isinstance(e.value, ValueError)
    message = str(e.value)
    assert hint in message and "unknown breed" in message and "\n" not in message


# --- the lists --------------------------------------------------------------------------------------------------

def test_the_packaged_list_is_asm3s_default_dog_breeds():
    """The package's list against the one copied from ASM3's source (tests/data/asm3/dog_breeds.tsv)."""
    tsv = (ROOT / "tests" / "data" / "asm3" / "dog_breeds.tsv").read_text().splitlines()
    from_source = [line.split("\t")[1] for line in tsv if line and not line.startswith("#")]
    assert list(breeds.ASM3_DOG_BREEDS) == from_source and len(from_source) == 221
    assert {"Mixed Breed", "Pit Bull Terrier", "Catahoula Leopard Dog"} <= set(breeds.ASM3_DOG_BREEDS)
    assert set(breeds.ASM3_BREEDS.values()) <= set(breeds.ASM3_DOG_BREEDS)
    assert breeds.CATCH_ALL <= set(breeds.ASM3_DOG_BREEDS) and set(breeds.SAME_BREED) <= set(breeds.ASM3_DOG_BREEDS)
    text = (ROOT / "dogcat" / "data" / "asm3_dog_breeds.txt").read_text(encoding="utf-8")
    assert text == breeds.breed_list_text(breeds.ASM3_DOG_BREEDS)  # what python -m dogcat.breeds writes


def test_every_asm3_breed_resolves_to_itself():
    for name in breeds.ASM3_DOG_BREEDS:
        for words in (name, name.upper(), name.lower().replace(" ", "  ")):
            got = breeds.resolve(words)
            assert (got.breed1, got.breed2) == (name, name), words
            assert got.label1 == got.label2 == breeds.model_label(name), words


def test_all_120_labels_round_trip():
    assert len(breeds.ASM3_BREEDS) == 120
    for label, name in breeds.ASM3_BREEDS.items():
        for words in (label, label.split("-", 1)[1], breeds.breed_name(label)):
            assert breeds.resolve(words) == pure(name, label), words
        assert breeds.asm3_name(label) == name
        assert corrections.resolve_breed(label) == corrections.resolve_breed(breeds.breed_name(label)) == label
        back = breeds.model_label(name)
        assert back == (label if len(breeds.model_labels(name)) == 1 and name not in breeds.CATCH_ALL else None)
        assert label in breeds.model_labels(name)
    assert breeds.asm3_name("n02099601-Golden-Retriever") == "Golden Retriever"  # known by its WordNet id
    assert breeds.asm3_name("n09999999-wolf") == breeds.asm3_name(None) == "Mixed Breed"


def test_reading_breeds_back_from_asm3():
    assert breeds.model_label("German Shepherd Dog") == breeds.model_label("german shepherd dog") == GSD
    assert breeds.model_label("Yellow Labrador Retriever") == LAB
    for name in ("Poodle", "Schnauzer", "Welsh Corgi", "Mixed Breed", "Terrier", "Retriever", "Spaniel",
                 "Pit Bull Terrier", "Husky", "No Such Breed"):
        assert breeds.model_label(name) is None, name
    assert len(breeds.model_labels("Poodle")) == 3 and breeds.model_labels("Pit Bull Terrier") == ()
    # the 120 labels are 113 ASM3 names; 106 read back as one label (not Poodle, Schnauzer, Welsh Corgi and the
    # catch-alls Mixed Breed, Terrier, Retriever, Spaniel)
    one = {name for name in breeds.ASM3_DOG_BREEDS if breeds.model_label(name)}
    assert len(set(breeds.ASM3_BREEDS.values())) == 113 and len(one - set(breeds.SAME_BREED)) == 106


def test_short_names_are_names_and_never_shadow_one():
    assert 40 <= len(breeds.SHORT_NAMES)
    names = {breeds.key(n): n for n in breeds.ASM3_DOG_BREEDS}
    for short, target in breeds.SHORT_NAMES.items():
        assert target in breeds.ASM3_DOG_BREEDS or target in breeds.ASM3_BREEDS, short
        assert breeds.key(short) not in names, f"{short}: already ASM3's {names[breeds.key(short)]}"
        got = breeds.resolve(short)
        assert got.breed1 == breeds.ASM3_BREEDS.get(target, target)
    # no word means two things
    assert all(len(meanings) == 1 for meanings in breeds._NAMES.values())


def test_the_documented_short_names_are_the_code():
    doc = (ROOT / "docs" / "breeds.md").read_text(encoding="utf-8")
    section = doc.split("## Short names", 1)[1]
    rows = re.findall(r"^\| ([^|`]+?) \| ([^|]+?) \| (?:`([^`]+)`|—) \|$", section, flags=re.MULTILINE)
    assert [short for short, _, _ in rows] == list(breeds.SHORT_NAMES)
    for short, name, label in rows:
        assert breeds.resolve(short) == pure(name, label or None), short
    assert "221" in doc and "asm3_dog_breeds.txt" in doc


def test_resolve_breed_keeps_to_the_models_breeds():
    assert corrections.resolve_breed("GSD") == GSD and corrections.resolve_breed("St. Bernard").endswith("Bernard")
    for words, why in (("Pit Bull Terrier", "ASM3's Pit Bull Terrier, not one of the model's 120"),
                       ("Mixed Breed", "not one of the model's 120 breeds"),
                       ("Terrier", "the model's nearest: Toy Terrier"),
                       ("Schnauzer", "several breeds (Giant Schnauzer, Miniature Schnauzer, Standard Schnauzer)"),
                       ("Lab mix", "is a mix (Labrador Retriever / Mixed Breed)"),
                       ("pit bul", "did you mean Pit Bull Terrier?")):
        with pytest.raises(corrections.CorrectionError, match=re.escape(why)):
            corrections.resolve_breed(words)


# --- the list, rebuilt from ASM3 ------------------------------------------------------------------------------

@pytest.mark.slow  # ASM3's code in ../shared, a stock database built (a few seconds)
def test_the_list_is_a_fresh_asm3_databases(tmp_path: Path):
    shelter = needs_shared(SHARED / "asm3" / "shelter.py", "ASM3's shelter")
    made = subprocess.run([sys.executable, str(shelter), "make", str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    names = breeds.asm3_dog_breeds_in(tmp_path / "asm3.db")
    assert len(names) == 221 and tuple(names) == breeds.ASM3_DOG_BREEDS
    written = subprocess.run([sys.executable, "-m", "dogcat.breeds", str(tmp_path / "asm3.db")], capture_output=True,
                             text=True, cwd=ROOT, timeout=60)
    assert written.returncode == 0, written.stderr
    assert written.stdout == (ROOT / "dogcat" / "data" / "asm3_dog_breeds.txt").read_text(encoding="utf-8")
