"""Breed names: the model's Stanford Dogs labels (``n02099601-golden_retriever``), the names people read
(``Golden Retriever``), and the shelter's own words: the breeds of Animal Shelter Manager 3 (ASM3) and the short
names staff say (``lab``, ``GSD``, ``pit bull``, ``Lab mix``). docs/breeds.md has the tables.

- :data:`ASM3_DOG_BREEDS`: the 221 dog breeds of a stock ASM3 database, as ASM3 spells them (package data,
  ``dogcat/data/asm3_dog_breeds.txt``; ``python -m dogcat.breeds ASM3.db`` rewrites it from a database).
- :data:`ASM3_BREEDS`: model label → the ASM3 breed it is written as (docs/asm3.md says why for each);
  :func:`asm3_name` and, back, :func:`model_label` / :func:`model_labels`.
- :data:`SHORT_NAMES`: what shelters say → an ASM3 breed or a model label.
- :func:`resolve`: words as staff type them → :class:`BreedWords` (ASM3's breed 1 and 2, and the model label of
  each where there is one); :class:`UnknownBreed` with the closest names otherwise.

A leaf module: the standard library only, so any dogcat module may import it.

Layer: a leaf (names and rules; no dogcat imports but other leaves) (docs/architecture.md).
"""

from __future__ import annotations

import difflib
import re
import sys
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

_LABEL = re.compile(r"^(n\d{8})-(.+)$")


def breed_name(label: str) -> str:
    """``n02099601-golden_retriever`` → ``Golden Retriever``; ``n02086240-Shih-Tzu`` → ``Shih-Tzu``."""
    m = _LABEL.match(label)
    name = m.group(2) if m else label
    return " ".join(word[:1].upper() + word[1:] for word in name.split("_") if word)


def wnid(label: str) -> str | None:
    m = _LABEL.match(label)
    return m.group(1) if m else None


# --- ASM3's dog breeds ----------------------------------------------------------------------------------------

DATA_FILE = "data/asm3_dog_breeds.txt"  # in the package
DATA_HEADER = """\
# The dog breeds of a stock Animal Shelter Manager 3 (ASM3) database, spelt exactly as ASM3 spells them: the
# BreedName of every row of its `breed` table with SpeciesID 1 (Dog), in ID order (1-220, then 442 Mixed Breed).
# {count} names, one a line. ASM3 is github.com/sheltermanager/asm3, commit 625abaf7 (its default lookups come
# from sql_default_data in src/asm3/dbupdate.py); the list was read from the database that
# ../shared/asm3/shelter.py make DIR builds (DIR/asm3.db). dogcat.breeds reads this file (ASM3_DOG_BREEDS);
# tests/test_breeds.py (slow tier) rebuilds it and compares. To regenerate, from the checkout's root:
#   python ../shared/asm3/shelter.py make /tmp/asm3 2>/dev/null
#   python -m dogcat.breeds /tmp/asm3/asm3.db > dogcat/data/asm3_dog_breeds.txt
"""


def read_breed_list(text: str) -> tuple[str, ...]:
    """The names of a breed list file: one a line; ``#`` comment lines and blank lines skipped."""
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def breed_list_text(names: list[str] | tuple[str, ...]) -> str:
    """A breed list file's text: :data:`DATA_HEADER`, then the names."""
    return DATA_HEADER.format(count=len(names)) + "".join(f"{name}\n" for name in names)


def asm3_dog_breeds_in(database: str | Path) -> list[str]:
    """The dog breeds (species 1) of an ASM3 SQLite database, in ID order, as stored there."""
    import sqlite3

    con = sqlite3.connect(f"file:{Path(database).resolve()}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT BreedName FROM breed WHERE SpeciesID = 1 ORDER BY ID").fetchall()
    finally:
        con.close()
    return [str(name) for (name,) in rows]


ASM3_DOG_BREEDS: tuple[str, ...] = read_breed_list(
    resources.files("dogcat").joinpath(DATA_FILE).read_text(encoding="utf-8"))
MIXED_BREED = "Mixed Breed"

# Stanford Dogs class → the breed as ASM3's default data names it (src/asm3/dbupdate.py, sql_default_data;
# species 1). Where ASM3 has no entry of its own, the nearest one it has; docs/asm3.md says why for each.
ASM3_BREEDS: dict[str, str] = {
    "n02085620-Chihuahua": "Chihuahua",
    "n02085782-Japanese_spaniel": "Japanese Chin",
    "n02085936-Maltese_dog": "Maltese",
    "n02086079-Pekinese": "Pekingese",
    "n02086240-Shih-Tzu": "Shih Tzu",
    "n02086646-Blenheim_spaniel": "Cavalier King Charles Spaniel",
    "n02086910-papillon": "Papillon",
    "n02087046-toy_terrier": "Terrier",
    "n02087394-Rhodesian_ridgeback": "Rhodesian Ridgeback",
    "n02088094-Afghan_hound": "Afghan Hound",
    "n02088238-basset": "Basset Hound",
    "n02088364-beagle": "Beagle",
    "n02088466-bloodhound": "Bloodhound",
    "n02088632-bluetick": "Bluetick Coonhound",
    "n02089078-black-and-tan_coonhound": "Black and Tan Coonhound",
    "n02089867-Walker_hound": "Treeing Walker Coonhound",
    "n02089973-English_foxhound": "Foxhound",
    "n02090379-redbone": "Redbone Coonhound",
    "n02090622-borzoi": "Borzoi",
    "n02090721-Irish_wolfhound": "Irish Wolfhound",
    "n02091032-Italian_greyhound": "Italian Greyhound",
    "n02091134-whippet": "Whippet",
    "n02091244-Ibizan_hound": "Ibizan Hound",
    "n02091467-Norwegian_elkhound": "Norwegian Elkhound",
    "n02091635-otterhound": "Otterhound",
    "n02091831-Saluki": "Saluki",
    "n02092002-Scottish_deerhound": "Scottish Deerhound",
    "n02092339-Weimaraner": "Weimaraner",
    "n02093256-Staffordshire_bullterrier": "Staffordshire Bull Terrier",
    "n02093428-American_Staffordshire_terrier": "American Staffordshire Terrier",
    "n02093647-Bedlington_terrier": "Bedlington Terrier",
    "n02093754-Border_terrier": "Border Terrier",
    "n02093859-Kerry_blue_terrier": "Kerry Blue Terrier",
    "n02093991-Irish_terrier": "Irish Terrier",
    "n02094114-Norfolk_terrier": "Norfolk Terrier",
    "n02094258-Norwich_terrier": "Norwich Terrier",
    "n02094433-Yorkshire_terrier": "Yorkshire Terrier Yorkie",
    "n02095314-wire-haired_fox_terrier": "Fox Terrier",
    "n02095570-Lakeland_terrier": "Lakeland Terrier",
    "n02095889-Sealyham_terrier": "Sealyham Terrier",
    "n02096051-Airedale": "Airedale Terrier",
    "n02096177-cairn": "Cairn Terrier",
    "n02096294-Australian_terrier": "Australian Terrier",
    "n02096437-Dandie_Dinmont": "Dandi Dinmont Terrier",
    "n02096585-Boston_bull": "Boston Terrier",
    "n02097047-miniature_schnauzer": "Schnauzer",
    "n02097130-giant_schnauzer": "Schnauzer",
    "n02097209-standard_schnauzer": "Schnauzer",
    "n02097298-Scotch_terrier": "Scottish Terrier Scottie",
    "n02097474-Tibetan_terrier": "Tibetan Terrier",
    "n02097658-silky_terrier": "Silky Terrier",
    "n02098105-soft-coated_wheaten_terrier": "Wheaten Terrier",
    "n02098286-West_Highland_white_terrier": "West Highland White Terrier Westie",
    "n02098413-Lhasa": "Lhasa Apso",
    "n02099267-flat-coated_retriever": "Flat-coated Retriever",
    "n02099429-curly-coated_retriever": "Retriever",
    "n02099601-golden_retriever": "Golden Retriever",
    "n02099712-Labrador_retriever": "Labrador Retriever",
    "n02099849-Chesapeake_Bay_retriever": "Chesapeake Bay Retriever",
    "n02100236-German_short-haired_pointer": "German Shorthaired Pointer",
    "n02100583-vizsla": "Vizsla",
    "n02100735-English_setter": "English Setter",
    "n02100877-Irish_setter": "Irish Setter",
    "n02101006-Gordon_setter": "Gordon Setter",
    "n02101388-Brittany_spaniel": "Brittany Spaniel",
    "n02101556-clumber": "Clumber Spaniel",
    "n02102040-English_springer": "English Springer Spaniel",
    "n02102177-Welsh_springer_spaniel": "Welsh Springer Spaniel",
    "n02102318-cocker_spaniel": "Cocker Spaniel",
    "n02102480-Sussex_spaniel": "Spaniel",
    "n02102973-Irish_water_spaniel": "Irish Water Spaniel",
    "n02104029-kuvasz": "Kuvasz",
    "n02104365-schipperke": "Schipperke",
    "n02105056-groenendael": "Belgian Shepherd Dog Sheepdog",
    "n02105162-malinois": "Belgian Shepherd Malinois",
    "n02105251-briard": "Briard",
    "n02105412-kelpie": "Australian Kelpie",
    "n02105505-komondor": "Komondor",
    "n02105641-Old_English_sheepdog": "Old English Sheepdog",
    "n02105855-Shetland_sheepdog": "Shetland Sheepdog Sheltie",
    "n02106030-collie": "Collie",
    "n02106166-Border_collie": "Border Collie",
    "n02106382-Bouvier_des_Flandres": "Bouvier des Flanders",
    "n02106550-Rottweiler": "Rottweiler",
    "n02106662-German_shepherd": "German Shepherd Dog",
    "n02107142-Doberman": "Doberman Pinscher",
    "n02107312-miniature_pinscher": "Miniature Pinscher",
    "n02107574-Greater_Swiss_Mountain_dog": "Greater Swiss Mountain Dog",
    "n02107683-Bernese_mountain_dog": "Bernese Mountain Dog",
    "n02107908-Appenzeller": "Appenzell Mountain Dog",
    "n02108000-EntleBucher": "Entlebucher",
    "n02108089-boxer": "Boxer",
    "n02108422-bull_mastiff": "Bullmastiff",
    "n02108551-Tibetan_mastiff": "Tibetan Mastiff",
    "n02108915-French_bulldog": "French Bulldog",
    "n02109047-Great_Dane": "Great Dane",
    "n02109525-Saint_Bernard": "Saint Bernard St. Bernard",
    "n02109961-Eskimo_dog": "Eskimo Dog",
    "n02110063-malamute": "Alaskan Malamute",
    "n02110185-Siberian_husky": "Siberian Husky",
    "n02110627-affenpinscher": "Affenpinscher",
    "n02110806-basenji": "Basenji",
    "n02110958-pug": "Pug",
    "n02111129-Leonberg": "Leonberger",
    "n02111277-Newfoundland": "Newfoundland Dog",
    "n02111500-Great_Pyrenees": "Great Pyrenees",
    "n02111889-Samoyed": "Samoyed",
    "n02112018-Pomeranian": "Pomeranian",
    "n02112137-chow": "Chow Chow",
    "n02112350-keeshond": "Keeshond",
    "n02112706-Brabancon_griffon": "Brussels Griffon",
    "n02113023-Pembroke": "Welsh Corgi",
    "n02113186-Cardigan": "Welsh Corgi",
    "n02113624-toy_poodle": "Poodle",
    "n02113712-miniature_poodle": "Poodle",
    "n02113799-standard_poodle": "Poodle",
    "n02113978-Mexican_hairless": "Xoloitzcuintle/Mexican Hairless",
    "n02115641-dingo": MIXED_BREED,
    "n02115913-dhole": MIXED_BREED,
    "n02116738-African_hunting_dog": MIXED_BREED,
}
# ASM3's catch-all entries, which ASM3_BREEDS uses for the nearest breed where ASM3 has none of the model's own
# (Toy Terrier → Terrier, Curly-coated Retriever → Retriever, Sussex Spaniel → Spaniel, the wild dogs → Mixed
# Breed). Read back from ASM3 they name a kind of dog, not that one breed: no model label.
CATCH_ALL = frozenset({MIXED_BREED, "Terrier", "Retriever", "Spaniel"})
# ASM3 breeds that are one of the model's breeds by another ASM3 name (a colour of it): read back as its label.
SAME_BREED: dict[str, str] = {
    "Black Labrador Retriever": "n02099712-Labrador_retriever",
    "Chocolate Labrador Retriever": "n02099712-Labrador_retriever",
    "Yellow Labrador Retriever": "n02099712-Labrador_retriever",
}

# What shelters say → the ASM3 breed (or, where it names one of the model's breeds that ASM3 files under a
# shared name, the model label). Case, spaces and punctuation do not matter ("St. Bernard" is "st bernard").
# Never a breed's own name: ASM3's names, their parts ("Blue Heeler" of "Australian Cattle Dog/Blue Heeler") and
# the model's names resolve without an entry here, and so do the first words of exactly one of them ("jack
# russell"); a few of those are listed all the same (golden, pit bull, cocker, cavalier) since shelters say them
# most. ASM3's own Husky and Corgi are what "husky" and "corgi" name. docs/breeds.md shows this table;
# tests/test_breeds.py checks that they agree.
SHORT_NAMES: dict[str, str] = {
    "lab": "Labrador Retriever",
    "lab retriever": "Labrador Retriever",
    "black lab": "Black Labrador Retriever",
    "chocolate lab": "Chocolate Labrador Retriever",
    "choc lab": "Chocolate Labrador Retriever",
    "yellow lab": "Yellow Labrador Retriever",
    "golden": "Golden Retriever",
    "GSD": "German Shepherd Dog",
    "alsatian": "German Shepherd Dog",
    "pit bull": "Pit Bull Terrier",
    "pitbull": "Pit Bull Terrier",
    "pittie": "Pit Bull Terrier",
    "pitty": "Pit Bull Terrier",
    "APBT": "Pit Bull Terrier",
    "American Pit Bull Terrier": "Pit Bull Terrier",
    "staffie": "Staffordshire Bull Terrier",
    "staffy": "Staffordshire Bull Terrier",
    "SBT": "Staffordshire Bull Terrier",
    "am staff": "American Staffordshire Terrier",
    "amstaff": "American Staffordshire Terrier",
    "yorkie": "Yorkshire Terrier Yorkie",
    "westie": "West Highland White Terrier Westie",
    "scottie": "Scottish Terrier Scottie",
    "sheltie": "Shetland Sheepdog Sheltie",
    "St. Bernard": "Saint Bernard St. Bernard",
    "sibe": "Siberian Husky",
    "doxie": "Dachshund",
    "doxy": "Dachshund",
    "wiener dog": "Dachshund",
    "aussie": "Australian Shepherd",
    "heeler": "Australian Cattle Dog/Blue Heeler",
    "red heeler": "Australian Cattle Dog/Blue Heeler",
    "ACD": "Australian Cattle Dog/Blue Heeler",
    "chi": "Chihuahua",
    "JRT": "Jack Russell Terrier",
    "pom": "Pomeranian",
    "peke": "Pekingese",
    "cavalier": "Cavalier King Charles Spaniel",
    "CKCS": "Cavalier King Charles Spaniel",
    "dobie": "Doberman Pinscher",
    "dobe": "Doberman Pinscher",
    "rottie": "Rottweiler",
    "rott": "Rottweiler",
    "frenchie": "French Bulldog",
    "shitzu": "Shih Tzu",
    "shih tsu": "Shih Tzu",
    "GSP": "German Shorthaired Pointer",
    "springer": "English Springer Spaniel",
    "cocker": "Cocker Spaniel",
    "sharpei": "Shar Pei",
    "corso": "Cane Corso Mastiff",
    "pyr": "Great Pyrenees",
    "berner": "Bernese Mountain Dog",
    "swissy": "Greater Swiss Mountain Dog",
    "dane": "Great Dane",
    "min pin": "Miniature Pinscher",
    "minpin": "Miniature Pinscher",
    "xolo": "Xoloitzcuintle/Mexican Hairless",
    "toller": "Nova Scotia Duck-Tolling Retriever",
    "PBGV": "Petit Basset Griffon Vendeen",
    "mini schnauzer": "n02097047-miniature_schnauzer",
    "mini poodle": "n02113712-miniature_poodle",
    "mix": MIXED_BREED,
    "mutt": MIXED_BREED,
}

# "X mix", "X cross", "X x": breed X and Mixed Breed, as ASM3 records a mix (breed 1 X, breed 2 Mixed Breed,
# Crossbreed ticked). "X x Y", "X cross Y": a cross of two breeds.
_MIX_WORDS = ("mixed breed", "mix breed", "cross breed", "crossbreed", "mixed", "mix", "cross", "x")
_CROSS_WORDS = ("x", "cross")


@dataclass(frozen=True)
class BreedWords:
    """A dog's breed as a shelter records it in ASM3: breed 1 and breed 2 in ASM3's spelling (a purebred has the
    same breed twice, a mix "Labrador Retriever" and "Mixed Breed"), and the model label each one is, where it
    is one of the model's 120 breeds (else None: Mixed Breed, Pit Bull Terrier, ASM3's Poodle that is three of
    the model's breeds ...)."""

    breed1: str
    label1: str | None
    breed2: str
    label2: str | None

    @property
    def crossbreed(self) -> bool:
        """ASM3's Crossbreed tick: breed 2 differs from breed 1."""
        return self.breed2 != self.breed1

    @property
    def labels(self) -> tuple[str, ...]:
        """The model labels among the two breeds, each once."""
        return tuple(dict.fromkeys(label for label in (self.label1, self.label2) if label))


class UnknownBreed(ValueError):
    """Words that name no breed dogcat knows, or the start of several; the message is one line with the closest
    names. ``suggestions``: those names, as the shelter spells them."""

    def __init__(self, message: str, suggestions: list[str] | None = None):
        super().__init__(message)
        self.suggestions = suggestions or []


def key(words: str) -> str:
    """Words compared without case, accents, punctuation or extra spaces: "St. Bernard" → "st bernard"."""
    plain = unicodedata.normalize("NFKD", words)
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch)).lower().replace("&", " and ")
    return " ".join(re.sub(r"[\W_]+", " ", plain).split())


_ASM3_BY_KEY = {key(name): name for name in ASM3_DOG_BREEDS}
_BY_WNID = {wnid(label): name for label, name in ASM3_BREEDS.items()}


def asm3_name(label: str | None) -> str:
    """ASM3's name for a model label: a taught model's label of the shelter's ("Pit Bull Terrier", "Labrador
    Retriever mix": dogcat teach) is its first breed; a label that is neither (another model's) → Mixed Breed."""
    return asm3_pair(label)[0]


def asm3_pair(label: str | None) -> tuple[str, str]:
    """ASM3's breed 1 and breed 2 for a model's answer: a Stanford Dogs breed twice (a purebred), a taught
    label as its words say ("Labrador Retriever mix": Labrador Retriever and Mixed Breed), else Mixed Breed."""
    if not label:
        return MIXED_BREED, MIXED_BREED
    name = ASM3_BREEDS.get(label) or _BY_WNID.get(wnid(label) or "")
    if name is not None:
        return name, name
    try:
        words = resolve(label)
    except UnknownBreed:
        return MIXED_BREED, MIXED_BREED
    return words.breed1, words.breed2


def model_labels(asm3_breed: str) -> tuple[str, ...]:
    """Every model label that dogcat writes as this ASM3 breed (any case): "Poodle" → the three poodles."""
    name = _ASM3_BY_KEY.get(key(asm3_breed), asm3_breed)
    return tuple(label for label, spelt in ASM3_BREEDS.items() if spelt == name)


def model_label(asm3_breed: str) -> str | None:
    """The model label an ASM3 breed (any case) is, reading a breed back from ASM3: "German Shepherd Dog" →
    ``n02106662-German_shepherd``. None for a breed outside the model's 120 (Pit Bull Terrier), for one ASM3
    name that is several of the model's breeds (Poodle, Schnauzer, Welsh Corgi: not one of them silently), for
    ASM3's catch-alls (Mixed Breed, Terrier, Retriever, Spaniel) and for a name that is no ASM3 dog breed."""
    name = _ASM3_BY_KEY.get(key(asm3_breed))
    if name is None or name in CATCH_ALL:
        return None
    if name in SAME_BREED:
        return SAME_BREED[name]
    labels = model_labels(name)
    return labels[0] if len(labels) == 1 else None


# --- words → a breed ------------------------------------------------------------------------------------------

_Meaning = tuple[str, str | None]  # (ASM3 breed, model label or None)


def _of_label(label: str) -> _Meaning:
    return ASM3_BREEDS[label], label


def _of_asm3(name: str) -> _Meaning:
    return name, model_label(name)


def _parts(name: str) -> list[str]:
    """The names inside an ASM3 name: "Australian Cattle Dog/Blue Heeler", "Patterdale Terrier (Fell Terrier)"."""
    return [p for p in re.split(r"[/()]", name) if p.strip()] if re.search(r"[/()]", name) else []


def _index() -> tuple[dict[str, set[_Meaning]], dict[str, set[_Meaning]]]:
    """(every accepted key → what it means, the keys whose first words may be said alone → what they mean)."""
    names: dict[str, set[_Meaning]] = {}
    for label in ASM3_BREEDS:
        for spelling in (label, label.split("-", 1)[-1], breed_name(label)):
            names.setdefault(key(spelling), set()).add(_of_label(label))
    for name in ASM3_DOG_BREEDS:
        for spelling in (name, *_parts(name)):
            names.setdefault(key(spelling), set()).add(_of_asm3(name))
    starts = {k: set(v) for k, v in names.items()}  # not the short names: "am" is not the start of "am staff"
    for short, target in SHORT_NAMES.items():
        meaning = _of_label(target) if target in ASM3_BREEDS else _of_asm3(target)
        names.setdefault(key(short), set()).add(meaning)
    return names, starts


_NAMES, _STARTS = _index()


def _shown(meaning: _Meaning) -> str:
    """How a suggestion is shown: ASM3's name, or the model's where ASM3's name is not that breed alone."""
    name, label = meaning
    return breed_name(label) if label and model_label(name) != label else name


def _one(words: str, said: str) -> _Meaning:
    """One breed: a known name exactly, else the first words of exactly one; UnknownBreed otherwise."""
    wanted = key(words)
    found = _NAMES.get(wanted)
    if found is None and wanted:  # the start of one breed's name: "labrador" for Labrador Retriever
        found = {m for spelling, ms in _STARTS.items() if spelling.startswith(wanted + " ") for m in ms} or None
    if found is not None and len(found) == 1:
        return next(iter(found))
    where = "" if key(said) == wanted else f" (in {said!r})"
    if found:  # several
        shown = sorted({_shown(m) for m in found})
        raise UnknownBreed(f"{words!r}{where}: unknown breed; did you mean {', '.join(shown)}? (say which)", shown)
    close = difflib.get_close_matches(wanted, list(_NAMES), n=4, cutoff=0.6)
    shown = list(dict.fromkeys(_shown(m) for c in close for m in sorted(_NAMES[c], key=str)))
    hint = f"; did you mean {', '.join(shown)}?" if shown else \
        f" (dogcat knows ASM3's {len(ASM3_DOG_BREEDS)} dog breeds and the model's {len(ASM3_BREEDS)})"
    raise UnknownBreed(f"{words!r}{where}: unknown breed{hint}", shown)


def resolve(words: str) -> BreedWords:
    """Words as staff type them → the breed as ASM3 records it, with the model label of each breed.

    Accepted, in any case, spacing and punctuation: the model's label (``n02088364-beagle``, ``beagle``), its
    name (``Beagle``), any of ASM3's dog breeds (``German Shepherd Dog``, ``Pit Bull Terrier``, ``Mixed Breed``)
    or a part of one (``Blue Heeler``), the short names of :data:`SHORT_NAMES` (``lab``, ``GSD``, ``St.
    Bernard``), the first words of exactly one breed (``labrador``); ``X mix``, ``X cross`` or ``X x`` (X and
    Mixed Breed, a crossbreed) and ``X x Y`` / ``X cross Y`` (a cross of two breeds). Raises UnknownBreed (a
    ValueError) with the closest names otherwise, or for the start of several breeds (``german``)."""
    try:
        name, label = _one(words, words)
        return BreedWords(name, label, name, label)
    except UnknownBreed as e:
        unknown = e
    tokens = key(words).split()
    for mix in _MIX_WORDS:
        n = len(mix.split())
        if len(tokens) > n and tokens[-n:] == mix.split():
            name, label = _one(" ".join(tokens[:-n]), words)
            return BreedWords(name, label, MIXED_BREED, None)
    for i, token in enumerate(tokens[1:-1], start=1):
        if token in _CROSS_WORDS:
            (name1, label1), (name2, label2) = _one(" ".join(tokens[:i]), words), _one(" ".join(tokens[i + 1:]), words)
            return BreedWords(name1, label1, name2, label2)
    raise unknown


# --- words that name no look -----------------------------------------------------------------------------------

# Words a shelter records for a dog whose breed it does not know, or that is of many: they name no appearance.
# A dog recorded with one is a mix (ASM3: breed 2 Mixed Breed, Crossbreed ticked), and no model learns one as
# an answer: a column for "Mixed Breed" takes every breed's photos (dogcat teach: docs/teach.md, measured). The
# one list; compared as :func:`key` compares words (any case, spacing, punctuation).
NO_LOOK_WORDS: tuple[str, ...] = (
    MIXED_BREED, "Mixed", "Mix", "Mix Breed", "Mixed Breed Dog", "Mutt", "Mongrel", "Crossbreed", "Cross Breed",
    "Cross", "Unknown", "Unknown Breed", "Unknown Mix", "Not Known", "Not Sure", "Undetermined", "Unspecified",
    "Various", "Other", "Other Breed", "None", "N/A", "TBD",
)
_NO_LOOK_KEYS = frozenset(key(w) for w in NO_LOOK_WORDS)


def names_no_look(words: str | None) -> bool:
    """Whether ``words`` (a breed as recorded) name no appearance (:data:`NO_LOOK_WORDS`, or nothing at all)."""
    return not words or not key(words) or key(words) in _NO_LOOK_KEYS


def look_word(breed1: str | None, breed2: str | None = None) -> str | None:
    """The one word for the look of a dog recorded as ``breed1`` (and ``breed2``), as a model would learn it;
    None when neither names a look ("Mixed Breed", "Unknown": a mix of no breed anyone named).

    Order and repeats never make two words: a breed given twice is that breed ("Beagle"); a named breed with a
    word of no look, in either place, is that breed's mix ("Beagle" + "Mixed Breed" and "Mixed Breed" + "Beagle"
    are both "Beagle mix"); two named breeds are a cross in :func:`key` order ("Pug" + "Beagle" is "Beagle x
    Pug"). Case is kept as given: compare two words with :func:`key` ("Labradoodle" and "labradoodle")."""
    given = [b.strip() for b in (breed1, breed2) if b and b.strip()]
    named = list({key(b): b for b in reversed(given) if not names_no_look(b)}.values())[::-1]
    if not named:
        return None
    if len(named) == 2:
        return " x ".join(sorted(named, key=key))
    return f"{named[0]} mix" if len(given) > 1 and any(names_no_look(b) for b in given) else named[0]


def main(argv: list[str]) -> int:
    """``python -m dogcat.breeds ASM3.db``: the breed list file (dogcat/data/asm3_dog_breeds.txt) on stdout."""
    if len(argv) != 1:
        print("usage: python -m dogcat.breeds ASM3.db > dogcat/data/asm3_dog_breeds.txt", file=sys.stderr)
        return 2
    sys.stdout.write(breed_list_text(asm3_dog_breeds_in(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
