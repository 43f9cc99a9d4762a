"""The read model's rules (dogcat.readmodel: whose word an animal's answer is, how its photos vote, how answers
read) and the ASM3 plan's (dogcat.asm3: what an import file says of an animal: breeds, log line, age, which
photos, which corrections a person must make), case by case on plain records: no catalog, no model.

These are the unit tests the mutation tests run for those modules (docs/development.md, "Mutation testing"); each
assertion is one that a plausible slip in the rule makes fail.
"""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import pytest
from sqlalchemy import insert, update

from dogcat import db, fusion, readmodel
from dogcat.asm3 import plan as asm3_planning
from dogcat.asm3.plan import Handoff, Outgoing, Plan, Sent, breeds_key, estimated_age
from dogcat.errors import UsageError
from dogcat.readmodel import Answer, Correction, ModelInfo

BEAGLE, PUG, LAB = "n02088364-beagle", "n02110958-pug", "n02099712-Labrador_retriever"
BASSET, SPRINGER, POODLE = "n02088238-basset", "n02102040-English_springer", "n02113799-standard_poodle"
NAMES = {BEAGLE: "Beagle", PUG: "Pug", LAB: "Labrador Retriever", BASSET: "Basset", SPRINGER: "English Springer",
         POODLE: "Standard Poodle", "n02086240-Shih-Tzu": "Shih-Tzu",
         "n02100236-German_short-haired_pointer": "German Short-haired Pointer",
         "n02099712-Labrador%retriever": "Labrador%retriever", "n09999999-x_dog": "Village Dog"}


def guesses(*pairs) -> list[dict]:
    return [{"label": label, "breed": NAMES[label], "confidence": p} for label, p in pairs]


def photo(sha: str, *pairs, status: str | None = "dog", model: str | None = "m1", at: str | None = "2026-01-01",
          path: str | None = None, **more) -> dict:
    return {"path": path or f"A1/{sha}.jpg", "sha256": sha, "status": status, "top_k": guesses(*pairs),
            "model": model, "classified_at": at, "animal": "A1", **more}


def fix(id_: int, status: str = "dog", label: str | None = None, label2: str | None = None, breed: str | None = None,
        breed2: str | None = None, source: str = "staff") -> Correction:
    return Correction(id_, status, label, label2, "alice", "2026-12-04T10:11:12", breed, breed2, source, None)


# --- dogcat.readmodel: a correction ---------------------------------------------------------------------------

def test_a_corrections_asm3_breeds():
    assert fix(1, label=BEAGLE).asm3_breeds() == ("Beagle", "Beagle")  # a purebred twice
    assert fix(1, label=BEAGLE, label2=PUG).asm3_breeds() == ("Beagle", "Pug")
    assert fix(1, label=BEAGLE, breed="Beagle", breed2="Mixed Breed").asm3_breeds() == ("Beagle", "Mixed Breed")
    assert fix(1, breed="Pit Bull Terrier").asm3_breeds() == ("Pit Bull Terrier", "Pit Bull Terrier")
    assert fix(1, label=SPRINGER).asm3_breeds() == ("English Springer Spaniel",) * 2  # ASM3's spelling


def test_a_correction_as_a_record():
    assert fix(7, label=BEAGLE, label2=PUG, breed="Beagle", breed2="Pug").to_dict() == {
        "status": "dog", "label": BEAGLE, "breed": "Beagle", "label2": PUG, "breed2": "Pug", "by": "alice",
        "at": "2026-12-04T10:11:12", "source": "staff", "note": None}
    one = fix(8, label=BEAGLE, breed="Beagle").to_dict()
    assert (one["breed"], one["breed2"]) == ("Beagle", None)
    assert fix(9, "not_a_dog", source="asm3").to_dict()["breed"] is None
    assert fix(9, "not_a_dog", source="asm3").to_dict()["source"] == "asm3"


def row(**values):
    base = {"id": 3, "status": "dog", "label": None, "label2": None, "corrected_by": "bob",
            "corrected_at": "2026-05-06", "breed": None, "breed2": None, "source": None, "note": "seen twice"}
    return SimpleNamespace(**{**base, **values})


def test_a_corrections_row_read_as_outputs_read_it():
    old = readmodel.correction_of(row(label=SPRINGER, label2=PUG))  # before schema 4: no breed words
    assert old == Correction(3, "dog", SPRINGER, PUG, "bob", "2026-05-06", "English Springer Spaniel", "Pug",
                             "staff", "seen twice")
    assert readmodel.correction_of(row(label=BEAGLE)).breed2 is None
    new = readmodel.correction_of(row(label=None, breed="Pit Bull Terrier", breed2="Mixed Breed", source="asm3"))
    assert (new.breed, new.breed2, new.source) == ("Pit Bull Terrier", "Mixed Breed", "asm3")
    assert readmodel.correction_of(row(status="not_a_dog")).breed is None


def test_whose_word_a_photo_takes():
    own, animals = fix(1, label=PUG), fix(2, label=LAB)
    fixes = {("photo", "s1"): own, ("animal", "A1"): animals}
    assert readmodel.photo_correction(photo("s1", (BEAGLE, 0.9)), fixes) is own
    assert readmodel.photo_correction(photo("s1", status="error"), fixes) is None  # unreadable: its own is moot
    assert readmodel.photo_correction(photo("s2", (BEAGLE, 0.9)), fixes) is animals
    assert readmodel.photo_correction(photo("s2", (BEAGLE, 0.4), status="unsure"), fixes) is animals
    assert readmodel.photo_correction(photo("s2", status="not_a_dog"), fixes) is None
    assert readmodel.photo_correction(photo("s2", status="error"), fixes) is None
    assert readmodel.photo_correction(photo("s2", status="not_a_dog"), {("photo", "s2"): own}) is own


def test_a_correction_applied_to_a_photos_record():
    record = photo("s1", (BEAGLE, 0.9), label=BEAGLE, breed="Beagle", confidence=0.9, source="model")
    readmodel.apply_correction(record, fix(1, label=LAB, label2=PUG))
    assert {k: record[k] for k in ("source", "status", "label", "breed", "confidence")} == {
        "source": "correction", "status": "dog", "label": LAB, "breed": "Labrador Retriever / Pug",
        "confidence": None}
    readmodel.apply_correction(record, fix(2, "not_a_dog"))
    assert (record["status"], record["label"], record["breed"]) == ("not_a_dog", None, None)


# --- dogcat.readmodel: an animal's answer ---------------------------------------------------------------------

def fixed_by(a: Answer) -> int | None:
    return a.correction.id if a.correction is not None else None


INFOS = {"m1": ModelInfo(None, 0.5), "m2": ModelInfo(None, 0.8)}


def test_the_animals_own_correction_wins():
    photos = [photo("s1", (BEAGLE, 0.9))]
    a = readmodel.answer("A1", "Rex", photos, {("animal", "A1"): fix(4, label=LAB, label2=PUG),
                                                ("photo", "s1"): fix(5, label=BASSET)}, INFOS)
    assert (a.animal, a.name, a.photos, a.status, a.source, fixed_by(a)) == (
        "A1", "Rex", photos, "dog", "correction", 4)
    assert a.top_k == [{"label": LAB, "breed": "Labrador Retriever", "confidence": None},
                       {"label": PUG, "breed": "Pug", "confidence": None}]
    assert (a.votes, a.model, a.confidence, a.label, a.breed) == (0, None, None, LAB, "Labrador Retriever")
    gone = readmodel.answer("A1", "Rex", photos, {("animal", "A1"): fix(4, "not_a_dog")}, INFOS)
    assert (gone.status, gone.top_k, gone.source, gone.label) == ("not_a_dog", [], "correction", None)


def test_staff_words_the_model_lacks_are_the_answer():
    a = readmodel.answer("A1", "Rex", [], {("animal", "A1"): fix(4, breed="Pit Bull Terrier",
                                                                 breed2="Mixed Breed")}, INFOS)
    assert a.top_k == [{"label": None, "breed": "Pit Bull Terrier", "confidence": None},
                       {"label": None, "breed": "Mixed Breed", "confidence": None}]
    assert a.summary() == "Pit Bull Terrier / Mixed Breed (staff)"


def test_the_newest_photo_correction_names_the_animal():
    photos = [photo("s1", (BEAGLE, 0.9)), photo("s2", (BEAGLE, 0.9)), photo("s3", (BEAGLE, 0.9))]
    fixes = {("photo", "s1"): fix(9, label=PUG), ("photo", "s2"): fix(5, label=LAB),
             ("photo", "s3"): fix(12, "not_a_dog")}
    a = readmodel.answer("A1", "Rex", photos, fixes, INFOS)
    assert (a.status, a.source, fixed_by(a), a.label) == ("dog", "correction", 9, PUG)
    a = readmodel.answer("A1", "Rex", photos[::-1], fixes, INFOS)  # by id, not by the photos' order
    assert (fixed_by(a), a.animal, a.name, a.photos) == (9, "A1", "Rex", photos[::-1])
    fixes[("photo", "s3")] = fix(7, label=BASSET)
    assert fixed_by(readmodel.answer("A1", "Rex", photos, fixes, INFOS)) == 9  # the newest of three


def test_photos_corrected_as_not_dogs_do_not_vote():
    photos = [photo("s1", (PUG, 0.9), (BEAGLE, 0.05)), photo("s2", (BEAGLE, 0.7), (PUG, 0.2))]
    a = readmodel.answer("A1", "Rex", photos, {("photo", "s1"): fix(3, "not_a_dog")}, INFOS)
    assert (a.source, a.votes, a.label, a.status) == ("model", 1, BEAGLE, "dog")
    assert a.top_k[0]["confidence"] == pytest.approx(0.7 / 0.9, abs=1e-6)  # s2's alone, over the listed breeds


def test_an_animal_whose_dogs_staff_all_called_not_dogs():
    photos = [photo("s1", (PUG, 0.9)), photo("s2", (BEAGLE, 0.7)), photo("s3", status="error")]
    fixes = {("photo", "s1"): fix(3, "not_a_dog"), ("photo", "s2"): fix(6, "not_a_dog")}
    a = readmodel.answer("A1", "Rex", photos, fixes, INFOS)
    assert (a.status, a.source, fixed_by(a), a.top_k) == ("not_a_dog", "correction", 6, [])
    assert (a.animal, a.name, a.photos) == ("A1", "Rex", photos)
    # a photo the model itself took for no dog: the model's word, not the staff's
    cat = photo("s4", (PUG, 0.2), status="not_a_dog")
    a = readmodel.answer("A1", "Rex", [*photos, cat], fixes, INFOS)
    assert (a.status, a.source, a.correction) == ("not_a_dog", "model", None)


def test_an_animal_with_no_dog_photo():
    cat, broken = photo("s1", (PUG, 0.2), status="not_a_dog"), photo("s2", status="error")
    a = readmodel.answer("A1", "Rex", [broken, cat], {}, INFOS)
    assert (a.status, a.source, a.top_k, a.votes) == ("not_a_dog", "model", [], 0)
    assert (a.animal, a.name, a.photos) == ("A1", "Rex", [broken, cat])
    a = readmodel.answer("A1", "Rex", [broken], {}, INFOS)
    assert (a.status, a.summary(), a.label, a.breed) == ("error", "no readable photo", None, None)
    assert readmodel.answer("A1", "Rex", [], {}, INFOS).status == "error"


def test_one_vote_per_photo_and_the_newest_models_rule():
    same = [photo("s1", (BEAGLE, 0.9), (PUG, 0.1), path="A1/a.jpg", model="m2", at="2026-02-01"),
            photo("s1", (BEAGLE, 0.9), (PUG, 0.1), path="A1/b.jpg", model="m2", at="2026-02-01"),
            photo("s2", (BEAGLE, 0.6), (PUG, 0.4), model="m1", at="2026-01-01")]
    a = readmodel.answer("A1", "Rex", same, {}, INFOS)
    assert (a.votes, a.model, a.animal, a.name, a.photos) == (2, "m2", "A1", "Rex", same)
    # s1 once and s2: Beagle 0.786, below m2's 0.8, so unsure (s1 counted twice: 0.832, and m1's 0.5: dog)
    assert a.top_k[0]["confidence"] == pytest.approx(0.786, abs=1e-3) and a.status == "unsure"
    older = [{**p, "model": "m2" if p["sha256"] == "s2" else "m1"} for p in same]
    a = readmodel.answer("A1", "Rex", older, {}, INFOS)
    assert (a.model, a.status) == ("m1", "dog")  # the newest photo's model, not the largest name
    a = readmodel.answer("A1", "Rex", [photo("s1", (BEAGLE, 0.5), (PUG, 0.5), model="m9")], {}, INFOS)
    assert (a.model, a.status) == ("m9", "dog")  # an unknown model: the default rule (dog from 0.5)
    a = readmodel.answer("A1", "Rex", [photo("s1", (BEAGLE, 0.45), (PUG, 0.45), (LAB, 0.1), model="m9")], {}, INFOS)
    assert a.status == "unsure"
    a = readmodel.answer("A1", "Rex", [photo("s1", (BEAGLE, 0.9), model=None, at=None)], {}, INFOS)
    assert a.model is None
    undated = [photo("s1", (BEAGLE, 0.6), (PUG, 0.4), model="m2", at=None), photo("s2", (BEAGLE, 0.9), (PUG, 0.1))]
    assert readmodel.answer("A1", "Rex", undated, {}, INFOS).model == "m1"  # a dated photo is newer than none


def test_k_guesses_and_the_unsure_photos_vote():
    photos = [photo("s1", (BEAGLE, 0.4), (PUG, 0.3), (LAB, 0.2), status="unsure")]
    a = readmodel.answer("A1", "Rex", photos, {}, INFOS, k=2)
    assert [g["label"] for g in a.top_k] == [BEAGLE, PUG] and a.votes == 1
    four = [photo("s1", (BEAGLE, 0.4), (PUG, 0.3), (LAB, 0.2), (BASSET, 0.1), status="unsure")]
    assert [g["label"] for g in readmodel.answer("A1", "Rex", four, {}, INFOS).top_k] == [BEAGLE, PUG, LAB]
    assert len(readmodel.fuse_photos(four, {})) == 3


def test_a_photos_distribution():
    labels = [BEAGLE, LAB, PUG]
    info = ModelInfo(labels, 0.5)
    whole = photo("s1", (BEAGLE, 0.6), probabilities=[0.6, 0.3, 0.1])
    assert readmodel._distribution(whole, info) == {BEAGLE: 0.6, LAB: 0.3, PUG: 0.1}
    top_only = {None: pytest.approx(0.2), BEAGLE: 0.6, PUG: 0.2}
    assert readmodel._distribution(photo("s1", (BEAGLE, 0.6), (PUG, 0.2)), info) == top_only
    # probabilities of another label set, or no labels: the top-k alone
    assert readmodel._distribution({**whole, "probabilities": [0.6, 0.4]}, info) == {BEAGLE: 0.6, None: 0.4}
    assert readmodel._distribution(whole, ModelInfo(None, 0.5)) == {BEAGLE: 0.6, None: 0.4}
    assert readmodel._distribution(whole, None) == {BEAGLE: 0.6, None: 0.4}
    over = photo("s1", (BEAGLE, 0.7), (PUG, 0.5), (LAB, None))
    assert readmodel._distribution(over, None) == {BEAGLE: 0.7, PUG: 0.5, None: 0.0}  # never below 0
    assert readmodel._distribution({"top_k": None}, None) == {None: 1.0}


def test_fused_photos_share_what_their_top_k_left_out():
    one, two = photo("s1", (BEAGLE, 0.6), (PUG, 0.3)), photo("s2", (BEAGLE, 0.5), (LAB, 0.3))
    # labels in order: beagle, Labrador, pug; each photo's 0.1 left out goes to the label it did not list and
    # the labels nobody listed, in equal shares
    want = fusion.ranked(fusion.fuse([[0.6, 0.05, 0.3], [0.5, 0.3, 0.1]]), [BEAGLE, LAB, PUG], 3)
    got = readmodel.fuse_photos([one, two], {})
    assert [(g["label"], g["confidence"]) for g in got] == [(label, round(p, 6)) for label, p in want]
    assert [g["breed"] for g in got] == ["Beagle", "Pug", "Labrador Retriever"]
    assert len(readmodel.fuse_photos([one, two], {}, k=2)) == 2
    info = {"m1": ModelInfo([BEAGLE, LAB, PUG], 0.5)}
    whole = [{**one, "probabilities": [0.2, 0.7, 0.1]}]
    assert [g["label"] for g in readmodel.fuse_photos(whole, info)] == [LAB, BEAGLE, PUG]
    assert [g["label"] for g in readmodel.fuse_photos([{**whole[0], "model": None}], info)] == [BEAGLE, PUG]
    modelless = {key: value for key, value in one.items() if key != "model"}
    assert [g["label"] for g in readmodel.fuse_photos([modelless], info)] == [BEAGLE, PUG]


def test_a_whole_distribution_fused_with_a_top_k_of_another_labels():
    # the whole distribution lists every one of its labels: a label only the other photo has is 0 there
    whole = photo("s1", (BEAGLE, 0.6), probabilities=[0.6, 0.3, 0.1])
    top_only = photo("s2", (BASSET, 0.5), (BEAGLE, 0.4), model=None)
    labels = [BASSET, BEAGLE, LAB, PUG]
    want = fusion.ranked(fusion.fuse([[0.0, 0.6, 0.3, 0.1], [0.5, 0.4, 0.1 / 3, 0.1 / 3]]), labels, 3)
    got = readmodel.fuse_photos([whole, top_only], {"m1": ModelInfo([BEAGLE, LAB, PUG], 0.5)})
    assert [(g["label"], g["confidence"]) for g in got] == [(label, round(p, 6)) for label, p in want]
    assert got[0]["label"] == BEAGLE


def test_a_guess_rounds_its_confidence():
    assert readmodel._guess(BEAGLE, 0.12345678) == {"label": BEAGLE, "breed": "Beagle", "confidence": 0.123457}
    assert readmodel._guess(PUG, None) == {"label": PUG, "breed": "Pug", "confidence": None}


# --- dogcat.readmodel: how an answer reads ----------------------------------------------------------------------

def model_answer(status: str, *pairs, votes: int = 2, model: str | None = "m1") -> Answer:
    return Answer("A1", "Rex", [photo("s1", (BEAGLE, 0.9))], status, guesses(*pairs), "model", None, votes, model)


def test_how_a_models_answer_reads():
    sure = model_answer("dog", (BEAGLE, 0.9), (PUG, 0.05))
    assert (sure.summary(), sure.mix, sure.confidence, sure.label, sure.breed) == ("Beagle", None, 0.9, BEAGLE,
                                                                                  "Beagle")
    assert model_answer("dog", (BEAGLE, 0.6), (PUG, 0.3)).summary() == "Beagle"  # sure: no mix spoken of
    mix = model_answer("unsure", (BEAGLE, 0.45), (PUG, 0.25))
    assert (mix.summary(), mix.mix) == ("maybe a mix: Beagle / Pug", ("Beagle", "Pug"))
    unsure = model_answer("unsure", (BEAGLE, 0.45), (PUG, 0.24))
    assert (unsure.summary(), unsure.mix) == ("probably Beagle", None)
    alone = model_answer("unsure", (BEAGLE, 0.45))
    assert (alone.summary(), alone.mix) == ("probably Beagle", None)
    assert model_answer("not_a_dog").summary() == "not a dog"
    assert (model_answer("not_a_dog", (BEAGLE, 0.3)).label, model_answer("not_a_dog", (BEAGLE, 0.3)).breed,
            model_answer("not_a_dog", (BEAGLE, 0.3)).confidence) == (None, None, None)
    assert (model_answer("dog").label, model_answer("dog").confidence) == (None, None)


def test_how_a_staff_answer_reads():
    def staff(c: Correction) -> Answer:
        return Answer("A1", "Rex", [], c.status, readmodel._staff_top_k(c) if c.status == "dog" else [],
                      "correction", c)
    two = staff(fix(1, label=BEAGLE, label2=PUG))
    assert (two.summary(), two.mix, two.confidence) == ("Beagle / Pug (staff)", ("Beagle", "Pug"), None)
    one = staff(fix(1, label=BEAGLE))
    assert (one.summary(), one.mix) == ("Beagle (staff)", None)
    assert staff(fix(1, "not_a_dog")).summary() == "not a dog (staff)"


def test_an_answer_as_a_record():
    a = model_answer("unsure", (BEAGLE, 0.4512345), (PUG, 0.3), votes=3)
    assert a.to_dict() == {"animal": "A1", "name": "Rex", "photos": ["A1/s1.jpg"], "status": "unsure",
                           "label": BEAGLE, "breed": "Beagle", "confidence": 0.451234, "breed2": "Pug",
                           "summary": "maybe a mix: Beagle / Pug", "top_k": a.top_k, "source": "model",
                           "corrected_by": None, "corrected_at": None, "votes": 3, "model": "m1"}
    assert model_answer("dog", (BEAGLE, 0.9)).to_dict()["breed2"] is None
    staff = Answer("A1", "Rex", [], "dog", readmodel._staff_top_k(fix(1, label=BEAGLE)), "correction",
                   fix(1, label=BEAGLE))
    d = staff.to_dict()
    assert (d["confidence"], d["corrected_by"], d["corrected_at"], d["source"]) == (
        None, "alice", "2026-12-04T10:11:12", "correction")


@pytest.mark.parametrize("record, want", [
    ({"error": "truncated JPEG", "top_k": []}, "could not be read: truncated JPEG"),
    ({"status": "error"}, "could not be read: no prediction"),
    ({"status": "not_a_dog", "looks_like": "tabby"}, "not a dog (looks like tabby)"),
    ({"status": "not_a_dog", "looks_like": None}, "not a dog"),
    ({"status": "unsure", "top_k": []}, "unsure"),
    ({"status": "dog", "top_k": None}, "dog"),
    ({"status": "unsure", "top_k": guesses((BEAGLE, 0.49), (LAB, 0.3))},
     "maybe a mix: Beagle 49% / Labrador Retriever 30%"),
    ({"status": "unsure", "top_k": guesses((BEAGLE, 0.49), (LAB, 0.1))}, "probably Beagle (49%)"),
    ({"status": "dog", "top_k": guesses((BEAGLE, 0.96), (LAB, 0.3))}, "Beagle 96%"),
    ({"top_k": guesses((BEAGLE, 0.004))}, "probably Beagle (<1%)"),  # schema 1: no status
])
def test_a_photos_own_answer_in_a_line(record, want):
    assert readmodel.guess_summary(record) == want


def test_a_photo_that_disagrees_with_its_animal():
    beagle, pug = photo("s1", (BEAGLE, 0.9)), photo("s2", (PUG, 0.9))
    sure = model_answer("dog", (BEAGLE, 0.8), (PUG, 0.3))
    assert not readmodel.disagrees(beagle, sure) and readmodel.disagrees(pug, sure)
    mix = model_answer("unsure", (BEAGLE, 0.4), (PUG, 0.3))  # either breed of a mix agrees
    assert not readmodel.disagrees(pug, mix)
    assert readmodel.disagrees(photo("s3", (LAB, 0.9)), mix)
    assert readmodel.disagrees(pug, model_answer("unsure", (BEAGLE, 0.4), (PUG, 0.2)))  # no mix: its first only
    assert not readmodel.disagrees(photo("s2", (PUG, 0.3), status="not_a_dog"), sure)
    assert not readmodel.disagrees(photo("s2", status="error"), sure)
    assert not readmodel.disagrees({**pug, "top_k": []}, sure)
    assert not readmodel.disagrees(pug, model_answer("not_a_dog", (BEAGLE, 0.3)))
    assert readmodel.disagrees(photo("s2", (PUG, 0.4), status="unsure"), sure)
    staff = Answer("A1", "Rex", [], "dog", [], "correction", fix(1, label=LAB, label2=PUG))
    assert not readmodel.disagrees(pug, staff) and readmodel.disagrees(beagle, staff)
    words = Answer("A1", "Rex", [], "dog", [], "correction", fix(1, breed="Pit Bull Terrier"))
    assert not readmodel.disagrees(pug, words)  # breeds the model does not have: it could never name them
    assert not readmodel.disagrees(pug, model_answer("dog"))
    third = model_answer("unsure", (BEAGLE, 0.4), (PUG, 0.3), (LAB, 0.2))  # a mix is its first two breeds
    assert readmodel.disagrees(photo("s3", (LAB, 0.9)), third)
    unlabelled = Answer("A1", "Rex", [], "dog", guesses((PUG, None)), "correction", None)  # staff's, no row
    assert not readmodel.disagrees(pug, unlabelled) and readmodel.disagrees(beagle, unlabelled)


@pytest.mark.parametrize("asked, label, breed, want", [
    ("golden retriever", "n02099601-golden_retriever", "Golden Retriever", True),
    ("Golden_Retriever", "n02099601-golden_retriever", "Golden Retriever", True),
    ("  GOLDEN RETRIEVER ", None, "Golden Retriever", True),
    ("n02099601-golden_retriever", "n02099601-golden_retriever", "Golden Retriever", True),
    ("golden retriever", "n02099601-golden_retriever", None, True),  # by the label's ending
    ("retriever", "n02099601-golden_retriever", "Golden Retriever", False),
    ("golden", "n02099601-golden_retriever", "Golden Retriever", False),
    ("golden_retriever", None, "Golden Retriever", True),  # the words, as a label writes them
    ("beagle", None, None, False),
    ("xxxx", None, None, False),  # an animal with no breed matches no breed, whatever is asked
])
def test_an_animal_matches_breed_as_a_photo_does(asked, label, breed, want):
    assert readmodel._breed_matches(asked, label, breed) is want


def test_history_and_files_as_records():
    entry = readmodel.HistoryEntry(fix(2, label=BEAGLE, label2=PUG), "photo", "A1/a.jpg", "bob", "2026-12-05", False)
    assert entry.said() == "Beagle / Pug"
    assert readmodel.HistoryEntry(fix(2, "not_a_dog"), "animal", "A1", None, None, True).said() == "not a dog"
    assert entry.to_dict() == {"kind": "photo", "target": "A1/a.jpg", **fix(2, label=BEAGLE, label2=PUG).to_dict(),
                               "undone_by": "bob", "undone_at": "2026-12-05", "in_force": False}
    sent = readmodel.SentFile(4, "/x/a.csv", "2026-12-01", "alice", None, [("photo", "abc"), ("log", "Beagle")])
    assert sent.to_dict() == {"file": 4, "path": "/x/a.csv", "written_at": "2026-12-01", "written_by": "alice",
                              "forgotten_at": None, "items": [{"kind": "photo", "item": "abc"},
                                                              {"kind": "log", "item": "Beagle"}]}


# --- dogcat.asm3: the plan ---------------------------------------------------------------------------------

@pytest.mark.parametrize("first, second, want", [
    ("Beagle", "Beagle", "Beagle"),
    ("Beagle", "beagle ", "Beagle"),  # a purebred once, whatever the case
    ("Beagle", None, "Beagle"),
    (" Beagle ", "  ", "Beagle"),
    ("Beagle", "Pug", "Beagle / Pug"),
    (None, None, ""),
])
def test_one_text_for_a_pair_of_breeds(first, second, want):
    assert breeds_key(first, second) == want


def test_an_estimated_age_or_a_date_of_birth():
    assert estimated_age() == {}
    assert estimated_age("2") == {"ANIMALAGE": "2", "ANIMALDOB": ""}
    assert estimated_age(0.5) == {"ANIMALAGE": "0.5", "ANIMALDOB": ""}
    assert estimated_age("100") == {"ANIMALAGE": "100", "ANIMALDOB": ""}
    assert estimated_age(None, "2020-02-29") == {"ANIMALAGE": "", "ANIMALDOB": "2020-02-29"}
    today = dt.date.today().isoformat()
    assert estimated_age(None, today) == {"ANIMALAGE": "", "ANIMALDOB": today}


@pytest.mark.parametrize("age, dob, what, message", [
    ("2", "2020-01-01", "--age", "--age: give an age or a date of birth, not both"),
    ("two", None, "--age", "--age 'two': not a number of years"),
    ("0", None, "--age", "--age 0: ASM3 accepts an estimated age above 0 and at most 100 years"),
    ("100.5", None, "--age", "--age 100.5: ASM3 accepts an estimated age above 0 and at most 100 years"),
    ("-1", None, "A7: age", "A7: age -1: ASM3 accepts an estimated age above 0 and at most 100 years"),
    (None, "2020-13-01", "--age", "--dob '2020-13-01': not a date as YYYY-MM-DD"),
    (None, "2020-13-01", "A7: age", "A7: dob '2020-13-01': not a date as YYYY-MM-DD"),
    (None, "3000-01-01", "A7: age", "A7: dob 3000-01-01: in the future"),
])
def test_an_age_asm3_would_refuse(age, dob, what, message):
    with pytest.raises(UsageError) as refused:
        estimated_age(age, dob, what)
    assert str(refused.value) == message


def test_an_age_refused_names_the_option_by_default():
    with pytest.raises(UsageError, match=r"^--age 0: ASM3 accepts"):
        estimated_age("0")
    with pytest.raises(UsageError, match=r"^--dob '2020-02-30': not a date"):
        estimated_age(None, "2020-02-30")


def test_tomorrow_is_no_date_of_birth():
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    with pytest.raises(UsageError, match="in the future"):
        estimated_age(None, tomorrow)


def test_the_photos_to_attach():
    photos = [photo("s1", (BEAGLE, 0.7), path="A1/a.jpg", confidence=0.7),
              photo("s2", (BEAGLE, 0.9), path="A1/b.jpg", confidence=0.9),
              photo("s2", (BEAGLE, 0.9), path="A1/b-copy.jpg", confidence=0.9),
              photo("s3", status="not_a_dog", path="A1/cat.jpg", confidence=0.99),
              photo("s4", status="error", path="A1/broken.jpg"),
              photo("s5", (BEAGLE, 0.4), status="unsure", path="A1/c.jpg", confidence=None),
              photo("s6", (BEAGLE, 0.45), status="unsure", path="A1/d.jpg", confidence=0.45)]
    a = Answer("A1", "Rex", photos, "dog", guesses((BEAGLE, 0.9)))
    # the most confident first (ASM3's preferred photo), each content once, no cat and nothing unreadable
    assert [p["path"] for p in asm3_planning.photos_to_attach(a)] == ["A1/b.jpg", "A1/a.jpg", "A1/d.jpg", "A1/c.jpg"]


def test_a_breed_as_asm3_spells_it():
    def spelt(label):
        return asm3_planning._asm3_spelling(guesses((label, 0.5))[0])
    assert spelt(SPRINGER) == "English Springer Spaniel"  # ASM3's longer name
    assert spelt(POODLE) == "Standard Poodle"  # ASM3's "Poodle" is wider than the model's breed
    assert spelt(BASSET) == "Basset Hound"
    assert spelt(BEAGLE) == "Beagle"
    assert spelt("n02086240-Shih-Tzu") == "Shih Tzu"  # the same words, ASM3's spelling (staff search for it)
    assert spelt("n02100236-German_short-haired_pointer") == "German Shorthaired Pointer"
    assert asm3_planning._asm3_spelling({"label": "n09999999-tanuki", "breed": "Tanuki"}) == "Tanuki"  # no ASM3 breed
    assert asm3_planning._asm3_spelling({"label": None, "breed": "Dingo-like"}) == "Dingo-like"


def test_the_log_line_of_a_models_answer():
    a = model_answer("dog", (BEAGLE, 0.97), (BASSET, 0.02), (SPRINGER, None), votes=3, model="xception-120")
    assert asm3_planning.log_text(a) == ("dogcat: Beagle 97% (then Basset Hound 2%, English Springer Spaniel ?); "
                                     "from 3 photos; model xception-120.")
    assert asm3_planning.log_text(model_answer("dog", (BEAGLE, 0.97), votes=1, model=None)) == (
        "dogcat: Beagle 97%; from 1 photo.")
    assert asm3_planning.log_text(model_answer("unsure", (BEAGLE, 0.45), (PUG, 0.1), votes=0, model=None)) == (
        "dogcat: probably Beagle 45% (then Pug 10%); from 0 photos.")
    assert asm3_planning.log_text(model_answer("unsure", (BEAGLE, 0.45), (PUG, 0.3), (LAB, 0.1), model="m")) == (
        "dogcat: mix? Beagle 45%, Pug 30%, Labrador Retriever 10%; from 2 photos; model m.")
    unrecorded = Answer("A1", "Rex", [], "dog", guesses((PUG, None)), "correction", None)  # staff's, no row
    assert asm3_planning.log_text(unrecorded) == "dogcat: Pug ?; from 0 photos."


def test_the_log_line_of_a_staff_answer():
    def staff(c: Correction) -> Answer:
        return Answer("A1", "Rex", [], c.status, readmodel._staff_top_k(c) if c.status == "dog" else [],
                      "correction", c)
    assert asm3_planning.log_text(staff(fix(1, label=BEAGLE, label2=SPRINGER))) == (
        "dogcat: staff said Beagle / English Springer Spaniel (alice, 2026-12-04).")
    assert asm3_planning.log_text(staff(fix(1, label=BEAGLE))) == "dogcat: staff said Beagle (alice, 2026-12-04)."
    assert asm3_planning.log_text(staff(fix(1, "not_a_dog"))) == "dogcat: staff said not a dog (alice, 2026-12-04)."


def test_a_new_animals_breeds():
    assert asm3_planning._breeds_of(model_answer("dog", (SPRINGER, 0.9), (PUG, 0.3))) == (
        "English Springer Spaniel", "English Springer Spaniel")  # a purebred twice
    assert asm3_planning._breeds_of(model_answer("unsure", (BEAGLE, 0.45), (SPRINGER, 0.3))) == (
        "Beagle", "English Springer Spaniel")
    assert asm3_planning._breeds_of(model_answer("unsure", (BEAGLE, 0.45), (PUG, 0.1))) == ("Beagle", "Beagle")
    staff = Answer("A1", "Rex", [], "dog", [], "correction", fix(1, breed="Pit Bull Terrier", breed2="Mixed Breed"))
    assert asm3_planning._breeds_of(staff) == ("Pit Bull Terrier", "Mixed Breed")
    unrecorded = Answer("A1", "Rex", [], "dog", guesses((PUG, None)), "correction", None)  # staff's, no row
    assert asm3_planning._breeds_of(unrecorded) == ("Pug", "Pug")


@pytest.mark.parametrize("key, grouped, loose", [
    ("photo:abc", {"folder"}, True),  # intake/IMG_0042.jpg: an animal of its own only for want of a folder
    ("file:/x/IMG_1.jpg", set(), True),
    ("photo:abc", {"staff"}, False),  # staff put it there (animals move)
    ("photo:abc", {"none", "folder"}, False),  # --animals none: one animal per photo on purpose
    ("folder:rex", {"folder"}, False),
    (None, {"folder"}, False),
])
def test_a_loose_photo(key, grouped, loose):
    assert asm3_planning._loose(SimpleNamespace(key=key), grouped) is loose


def test_no_catalogued_animal_is_loose():
    assert asm3_planning._loose(None, {"staff"}) is True


def test_a_staff_correction_asm3_cannot_take_is_handed_to_a_person():
    staff = Answer("A1", "Rex", [], "dog", [], "correction", fix(1, label=LAB, label2=PUG))
    in_asm3 = SimpleNamespace(asm3_code="ASM-7", breed1="Beagle", breed2="Beagle")
    sent = Sent(last={("A1", "animal"): "Beagle"})
    h = asm3_planning._handoff(staff, in_asm3, sent)
    assert h == Handoff("A1", "ASM-7", "Beagle", "Labrador Retriever / Pug", "alice", "2026-12-04T10:11:12")
    assert h.to_dict() == {"animal": "A1", "asm3_code": "ASM-7", "in_asm3": "Beagle",
                           "staff": "Labrador Retriever / Pug", "by": "alice", "at": "2026-12-04T10:11:12"}
    assert h.line() == ("A1: ASM3 still says Beagle (dogcat's guess, sent before); staff said Labrador Retriever / "
                        "Pug (alice, 2026-12-04). ASM3's import never changes a breed: in ASM3 open animal ASM-7, "
                        "Details, Breed, and set Labrador Retriever / Pug (the next dogcat asm3 pull sees it)")
    # none: ASM3 holds the staff's breeds already (any case), or holds what it was not sent by dogcat
    took = SimpleNamespace(asm3_code="ASM-7", breed1="labrador retriever", breed2="PUG")
    assert asm3_planning._handoff(staff, took, Sent(last={("A1", "animal"): "labrador retriever / PUG"})) is None
    assert asm3_planning._handoff(staff, in_asm3, Sent(last={("A1", "animal"): "Basset Hound"})) is None
    assert asm3_planning._handoff(staff, in_asm3, Sent()) is None
    mix = SimpleNamespace(asm3_code="ASM-7", breed1="Beagle", breed2="Basset Hound")  # dogcat sent a mix
    h = asm3_planning._handoff(staff, mix, Sent(last={("A1", "animal"): "Beagle / Basset Hound"}))
    assert h is not None and h.in_asm3 == "Beagle / Basset Hound"
    # none: not the staff's, or not a breed
    assert asm3_planning._handoff(model_answer("dog", (LAB, 0.9)), in_asm3, sent) is None
    pulled = Answer("A1", "Rex", [], "dog", [], "correction", fix(1, label=LAB, source="asm3"))
    assert asm3_planning._handoff(pulled, in_asm3, sent) is None
    assert asm3_planning._handoff(Answer("A1", "Rex", [], "not_a_dog", [], "correction", fix(1, "not_a_dog")),
                              in_asm3, sent) is None
    assert asm3_planning._handoff(Answer("A1", "Rex", [], "dog", [], "correction", None), in_asm3, sent) is None


def test_a_plan_counts_what_its_file_holds():
    a = model_answer("dog", (BEAGLE, 0.9))
    new = Outgoing(a, "A1", "Rex", True, [], "log", "Beagle")
    photos = Outgoing(a, "A2", "Pip", False, [photo("s1"), photo("s2")], None, None)
    logged = Outgoing(a, "A3", "Tom", False, [], "dogcat: Beagle", "Beagle")
    empty = Outgoing(a, "A4", "Sam", False, [], None, None)
    plan = Plan([new, photos, logged, empty], [], False)
    assert (plan.photos, plan.new, plan.logs) == (2, 1, 2)
    plan.drop_empty()
    assert plan.animals == [new, photos, logged]


# --- dogcat.asm3_planning.plan: on a catalog written by hand (real SQLite, no model) ------------------------------

class Shelter:
    """A real SQLite catalog whose rows a test writes itself: animals, their photos (files on disk), the model's
    answers, and what earlier ASM3 files sent."""

    def __init__(self, tmp_path):
        self.root = tmp_path
        self.engine = db.connect(str(tmp_path / "catalog.db"))
        with db.writing(self.engine) as conn:
            conn.execute(insert(db.models).values(id="m1", name="m1", first_used_at="2026-01-01"))

    def animal(self, code: str, name: str, *, key: str | None = None, **facts):
        with db.writing(self.engine) as conn:
            conn.execute(insert(db.animals).values(code=code, name=name, key=key or f"folder:/{code}",
                                                   created_at="2026-01-01", **facts))

    def photo(self, code: str | None, sha: str, *pairs, status: str = "dog", on_disk: bool = True,
              grouped_by: str = "folder", error: str | None = None, name: str | None = None, **prediction) -> str:
        path = self.root / (code or "loose") / (name or f"{sha}.jpg")
        if on_disk:
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(sha.encode())
        with db.writing(self.engine) as conn:
            db.insert_ignore(conn, db.photos, [{"sha256": sha, "size": 3, "first_seen_at": "2026-01-01",
                                                "error": error}])
            conn.execute(insert(db.files).values(path=str(path), sha256=sha, size=3, catalogued_at="2026-01-01",
                                                 updated_at="2026-01-01"))
            if code is not None:
                conn.execute(insert(db.animal_files).values(path=str(path), animal=code, grouped_by=grouped_by,
                                                            grouped_at="2026-01-01"))
        if pairs:
            self.predict(sha, *pairs, status=status, **prediction)
        return str(path)

    def predict(self, sha: str, *pairs, status: str = "dog", model: str = "m1", at: str = "2026-01-02", **more):
        top = guesses(*pairs)
        with db.writing(self.engine) as conn:
            db.insert_ignore(conn, db.models, [{"id": model, "name": model, "first_used_at": "2026-01-01"}])
            db.insert_ignore(conn, db.predictions, [{
                "sha256": sha, "model_id": model, "label": top[0]["label"], "breed": top[0]["breed"],
                "confidence": top[0]["confidence"], "top_k": json.dumps(top), "catalogued_at": at,
                "status": status, **more}])

    def in_asm3(self, code: str, asm3_code: str, name: str, breed1: str = "Beagle", breed2: str = "Beagle"):
        with db.writing(self.engine) as conn:
            conn.execute(insert(db.asm3_animals).values(animal=code, asm3_code=asm3_code, name=name, breed1=breed1,
                                                        breed2=breed2, source="pull", updated_at="2026-01-03"))

    def sent(self, *items: tuple[str, str, str], forgotten: bool = False):
        with db.writing(self.engine) as conn:
            file_id = conn.execute(insert(db.asm3_files).values(
                path="/x/old.csv", written_at="2026-01-04", written_by="alice",
                forgotten_at="2026-01-05" if forgotten else None)).lastrowid
            conn.execute(insert(db.asm3_sent), [{"file": file_id, "animal": a, "kind": kind, "item": item}
                                                for a, kind, item in items])

    def correct(self, code: str, kind: str = "animal", **what):
        with db.writing(self.engine) as conn:
            conn.execute(insert(db.corrections).values(target_kind=kind, target=code, corrected_by="alice",
                                                       corrected_at="2026-12-04T10:11:12", **what))


@pytest.fixture
def shelter(tmp_path) -> Shelter:
    return Shelter(tmp_path)


def shas(outgoing: Outgoing) -> list[str]:
    return [p["sha256"] for p in outgoing.photos]


def test_a_new_animal_is_a_full_row_with_its_photos(shelter):
    shelter.animal("A1", "Rex")
    shelter.photo("A1", "s1", (BEAGLE, 0.7), (PUG, 0.2))
    shelter.photo("A1", "s2", (BEAGLE, 0.9), (PUG, 0.05))
    shelter.photo("A1", "s3", (PUG, 0.3), status="not_a_dog")
    plan = asm3_planning.plan(shelter.engine, age="2")
    [a] = plan.animals
    assert (a.code, a.name, a.new, shas(a), a.born, a.sex, a.breeds) == (
        "A1", "Rex", True, ["s2", "s1"], {"ANIMALAGE": "2", "ANIMALDOB": ""}, "", ("Beagle", "Beagle"))
    assert (a.log, a.log_key) == (asm3_planning.log_text(a.answer), "Beagle")
    assert str(a.log).startswith("dogcat: Beagle ") and a.answer.animal == "A1"
    assert (plan.warnings, plan.not_sent, plan.handoff, plan.resend) == ([], [], [], False)
    assert asm3_planning.plan(shelter.engine, dob="2020-02-29").animals[0].born == {"ANIMALAGE": "",
                                                                               "ANIMALDOB": "2020-02-29"}


def test_a_new_animals_facts_come_from_the_csv_then_the_catalog_then_the_default(shelter):
    shelter.animal("A1", "Rex", dob="2019-05-01", sex="Male")
    shelter.animal("A2", "Pip", age="3")
    shelter.animal("A3", "Tom")
    for code in ("A1", "A2", "A3"):
        shelter.photo(code, f"s{code}", (BEAGLE, 0.9), (PUG, 0.05))
    plan = asm3_planning.plan(shelter.engine, age="1")
    got = {a.code: (a.name, a.born, a.sex) for a in plan.animals}
    assert got == {"A1": ("Rex", {"ANIMALDOB": "2019-05-01", "ANIMALAGE": ""}, "Male"),
                   "A2": ("Pip", {"ANIMALAGE": "3", "ANIMALDOB": ""}, ""),
                   "A3": ("Tom", {"ANIMALAGE": "1", "ANIMALDOB": ""}, "")}
    facts = {"a1": asm3_planning.ShelterFacts(name="Rex II", age="4", sex="Female"),
             "A3": asm3_planning.ShelterFacts(dob="2021-01-01")}
    got = {a.code: (a.name, a.born, a.sex) for a in asm3_planning.plan(shelter.engine, facts=facts).animals}
    assert got == {"A1": ("Rex II", {"ANIMALAGE": "4", "ANIMALDOB": ""}, "Female"),
                   "A2": ("Pip", {"ANIMALAGE": "3", "ANIMALDOB": ""}, ""),
                   "A3": ("Tom", {"ANIMALAGE": "", "ANIMALDOB": "2021-01-01"}, "")}
    with pytest.raises(UsageError, match=r"^A1: age 'x': not a number"):
        asm3_planning.plan(shelter.engine, facts={"A1": asm3_planning.ShelterFacts(age="x")})


def test_new_animals_with_no_age_are_refused_by_name(shelter):
    for n in range(1, 23):
        code = f"A{n:02d}"
        shelter.animal(code, f"Dog {n}", age="2" if n == 1 else None)
        shelter.photo(code, f"s{n}", (BEAGLE, 0.9), (PUG, 0.05))
    with pytest.raises(UsageError) as refused:
        asm3_planning.plan(shelter.engine)
    listed = ", ".join(f"A{n:02d}" for n in range(2, 22))
    assert str(refused.value) == (
        f"ASM3 creates an animal only with a date of birth or an estimated age, and 21 animal(s) new to ASM3 have "
        f"none: {listed} and 1 more. Give them in --animals-csv FILE (code,name,dob,age,sex), or a default with "
        "--age YEARS or --dob YYYY-MM-DD; nothing was written")
    assert len(asm3_planning.plan(shelter.engine, codes=["a02"], age="1").animals) == 1  # the one asked for
    with db.writing(shelter.engine) as conn:
        conn.execute(update(db.animals).where(db.animals.c.code == "A22").values(age="5"))
    with pytest.raises(UsageError) as refused:  # twenty: every one named
        asm3_planning.plan(shelter.engine)
    assert f"20 animal(s) new to ASM3 have none: {listed}. Give them" in str(refused.value)


def test_an_animal_asm3_has_gets_only_new_photos_and_a_changed_answer(shelter):
    shelter.animal("A1", "Rex")
    shelter.photo("A1", "s1", (BEAGLE, 0.9), (PUG, 0.05))
    shelter.photo("A1", "s2", (BEAGLE, 0.8), (PUG, 0.1))
    shelter.in_asm3("A1", "ASM-1", "Rexy ")
    shelter.sent(("A1", "photo", "s1"), ("A1", "log", "Pug"))
    [a] = asm3_planning.plan(shelter.engine).animals
    assert (a.code, a.name, a.new, shas(a), a.log_key, a.born, a.breeds) == (
        "ASM-1", "Rexy ", False, ["s2"], "Beagle", {}, ("", ""))
    assert a.log is not None and a.log.startswith("dogcat: Beagle ")
    shelter.sent(("A1", "log", "Beagle"))  # the answer as last sent: no log line
    [a] = asm3_planning.plan(shelter.engine).animals
    assert (shas(a), a.log, a.log_key) == (["s2"], None, None)
    shelter.sent(("A1", "photo", "s2"))
    assert asm3_planning.plan(shelter.engine).animals == []  # nothing new: no row
    again = asm3_planning.plan(shelter.engine, resend=True)  # --all: every photo and the answer again
    assert (shas(again.animals[0]), again.animals[0].log_key, again.resend) == (["s1", "s2"], "Beagle", True)


def test_a_forgotten_file_counts_as_not_sent(shelter):
    shelter.animal("A1", "Rex")
    shelter.photo("A1", "s1", (BEAGLE, 0.9), (PUG, 0.05))
    shelter.in_asm3("A1", "ASM-1", "Rex")
    shelter.sent(("A1", "photo", "s1"), ("A1", "log", "Beagle"), forgotten=True)
    [a] = asm3_planning.plan(shelter.engine).animals
    assert (shas(a), a.log_key) == (["s1"], "Beagle")


def test_a_photo_asm3_has_is_never_sent_under_another_animal(shelter):
    for code, name in (("A1", "Rex"), ("A2", "Rex again"), ("A3", "Pip"), ("A4", "Tom")):
        shelter.animal(code, name)
    shelter.photo("A1", "s1", (BEAGLE, 0.9), (PUG, 0.05))
    shelter.photo("A4", "s6", (BEAGLE, 0.9), (PUG, 0.05))
    shelter.photo("A2", "s1", (BEAGLE, 0.9), (PUG, 0.05))  # copies filed under other folders
    shelter.photo("A2", "s6", (BEAGLE, 0.9), (PUG, 0.05))
    shelter.photo("A3", "s1", (BEAGLE, 0.9), (PUG, 0.05))
    shelter.photo("A3", "s3", (BEAGLE, 0.8), (PUG, 0.05))
    shelter.in_asm3("A1", "ASM-1", "Rex")
    shelter.in_asm3("A4", "ASM-4", "Tom")
    shelter.sent(("A1", "photo", "s1"), ("A1", "log", "Beagle"), ("A4", "photo", "s6"), ("A4", "log", "Beagle"))
    plan = asm3_planning.plan(shelter.engine, age="1")
    assert [(a.code, shas(a)) for a in plan.animals] == [("A3", ["s3"])]
    assert plan.warnings == [
        "A2: not made a new ASM3 animal: every photo of it is ASM3's A1, A4's (dogcat animals merge, or a new "
        "photo, settles it)",
        "A3: 1 photo(s) ASM3 has under A1 already; not sent again"]
    shelter.photo("A3", "s7", (BEAGLE, 0.7), (PUG, 0.05))
    shelter.sent(("A4", "photo", "s7"))
    assert asm3_planning.plan(shelter.engine, age="1").warnings[1] == (
        "A3: 2 photo(s) ASM3 has under A1, A4 already; not sent again")
    resent = asm3_planning.plan(shelter.engine, age="1", resend=True)
    assert [(a.code, shas(a)) for a in resent.animals] == [("ASM-1", ["s1"]), ("A3", ["s3"]), ("ASM-4", ["s6"])]
    assert [a.answer.animal for a in resent.animals] == ["A1", "A3", "A4"]


def test_photos_gone_from_disk_and_loose_photos(shelter):
    shelter.animal("A1", "Rex")
    shelter.photo("A1", "s1", (BEAGLE, 0.9), (PUG, 0.05))
    shelter.photo("A1", "s2", (BEAGLE, 0.8), (PUG, 0.05), on_disk=False)
    shelter.animal("A2", "Pip")
    shelter.photo("A2", "s3", (BEAGLE, 0.8), (PUG, 0.05), on_disk=False)
    shelter.animal("IMG_1", "IMG 1", key="photo:s4")
    loose = shelter.photo("IMG_1", "s4", (BEAGLE, 0.8), (PUG, 0.05))
    shelter.animal("IMG_2", "IMG 2", key="photo:s5")
    shelter.photo("IMG_2", "s5", (BEAGLE, 0.8), (PUG, 0.05), grouped_by="staff")  # staff made it an animal
    shelter.animal("IMG_3", "IMG 3", key="file:/IMG_3.jpg")
    other = shelter.photo("IMG_3", "s6", (BEAGLE, 0.8), (PUG, 0.05))
    plan = asm3_planning.plan(shelter.engine, age="1")
    assert [(a.code, shas(a)) for a in plan.animals] == [("A1", ["s1"]), ("IMG_2", ["s5"])]
    assert plan.warnings == ["A1: 1 photo(s) gone from disk, not attached",
                             "A2: every photo is gone from disk; left out (dogcat animals prune retires it)"]
    assert plan.not_sent == [f"{loose}: {asm3_planning.LOOSE}", f"{other}: {asm3_planning.LOOSE}"]
    shelter.in_asm3("IMG_1", "ASM-9", "IMG 1")  # a loose photo ASM3 has already is its animal
    assert [a.code for a in asm3_planning.plan(shelter.engine, age="1").animals] == ["A1", "ASM-9", "IMG_2"]


def test_what_is_no_animal_and_what_was_not_asked_for(shelter):
    shelter.animal("A1", "Rex")
    shelter.photo("A1", "s1", (PUG, 0.3), status="not_a_dog")
    shelter.animal("A2", "Pip")
    shelter.photo("A2", "s2", (BEAGLE, 0.9), (PUG, 0.05))
    shelter.animal("A3", "Tom")
    shelter.photo("A3", "s3", (BEAGLE, 0.9), (PUG, 0.05))
    assert [a.code for a in asm3_planning.plan(shelter.engine, age="1").animals] == ["A2", "A3"]
    assert [a.code for a in asm3_planning.plan(shelter.engine, age="1", codes=["a3"]).animals] == ["A3"]
    assert asm3_planning.plan(shelter.engine, age="1", codes=["A9"]).animals == []


def test_staff_words_in_the_plan(shelter):
    shelter.animal("A1", "Rex")
    shelter.photo("A1", "s1", (BEAGLE, 0.9), (PUG, 0.05))
    shelter.animal("A2", "Pip")
    shelter.photo("A2", "s2", (BEAGLE, 0.9), (PUG, 0.05))
    shelter.animal("A3", "Tom")
    shelter.photo("A3", "s3", (BEAGLE, 0.9), (PUG, 0.05))
    shelter.correct("A1", status="dog", label=LAB, label2=PUG, breed="Labrador Retriever", breed2="Pug",
                    source="staff")
    shelter.correct("A2", status="dog", label=PUG, breed="Pug", source="asm3")  # read from ASM3: not logged back
    shelter.correct("A3", status="dog", label=PUG, breed="Pug", source="staff")
    shelter.in_asm3("A1", "ASM-1", "Rex")
    shelter.in_asm3("A2", "ASM-2", "Pip")
    shelter.in_asm3("A3", "ASM-3", "Tom")
    shelter.sent(("A1", "animal", "Beagle"), ("A2", "animal", "Beagle"), ("A2", "photo", "s2"),
                 ("A3", "photo", "s3"), ("A3", "log", "Pug (staff)"))
    plan = asm3_planning.plan(shelter.engine)
    assert [(a.code, shas(a), a.log_key) for a in plan.animals] == [
        ("ASM-1", ["s1"], "Labrador Retriever / Pug (staff)")]
    assert plan.animals[0].log == "dogcat: staff said Labrador Retriever / Pug (alice, 2026-12-04)."
    assert plan.handoff == [Handoff("A1", "ASM-1", "Beagle", "Labrador Retriever / Pug", "alice",
                                    "2026-12-04T10:11:12")]
    assert asm3_planning.handoffs(shelter.engine) == plan.handoff


# --- dogcat.readmodel: what the catalog says, on a catalog written by hand --------------------------------------

def paths(records) -> list[str]:
    return [r["path"].rsplit("/", 1)[1] for r in records]


@pytest.fixture
def kennel(shelter) -> Shelter:
    """A1: a sure Beagle and an unsure Pug; A2: a cat and an unreadable photo; a loose Pug in no animal yet."""
    shelter.animal("A1", "Rex")
    shelter.photo("A1", "s1", (BEAGLE, 0.9123456), (PUG, 0.05), dog_probability=0.98765432,
                  probabilities=json.dumps([0.9, 0.1]))
    shelter.photo("A1", "s2", (PUG, 0.45), (BEAGLE, 0.3), status="unsure")
    shelter.animal("A2", "Pip")
    shelter.photo("A2", "s3", (PUG, 0.2), status="not_a_dog", looks_like="tabby")
    shelter.photo("A2", "s4", error="truncated JPEG")
    shelter.photo(None, "s5", (PUG, 0.8), (BEAGLE, 0.1), name="IMG_0042.jpg")
    return shelter


def test_the_catalogs_records(kennel):
    got = list(readmodel.records(kennel.engine))
    assert paths(got) == ["s1.jpg", "s2.jpg", "s3.jpg", "s4.jpg", "IMG_0042.jpg"]
    s1 = got[0]
    assert list(s1) == [name for name in readmodel.FIELDS if name in s1] and "probabilities" not in s1
    assert {k: s1[k] for k in ("status", "label", "breed", "confidence", "dog_probability", "model", "animal",
                               "source", "sha256", "classified_at")} == {
        "status": "dog", "label": BEAGLE, "breed": "Beagle", "confidence": 0.912346, "dog_probability": 0.987654,
        "model": "m1", "animal": "A1", "source": "model", "sha256": "s1", "classified_at": "2026-01-02"}
    assert s1["top_k"] == guesses((BEAGLE, 0.9123456), (PUG, 0.05))
    cat, broken, loose = got[2], got[3], got[4]
    assert (cat["status"], cat["label"], cat["confidence"], cat["looks_like"]) == ("not_a_dog", None, None, "tabby")
    assert (broken["status"], broken["error"], broken["top_k"], broken["animal"]) == (
        "error", "truncated JPEG", [], "A2")
    assert loose["animal"] is None
    whole = list(readmodel.records(kennel.engine, probabilities=True))
    assert (whole[0]["probabilities"], whole[1]["probabilities"]) == ([0.9, 0.1], None)


@pytest.mark.parametrize("asked, want", [
    ({"breed": "beagle"}, ["s1.jpg"]),
    ({"breed": " PUG "}, ["s2.jpg", "IMG_0042.jpg"]),
    ({"breed": "n02088364-beagle"}, ["s1.jpg"]),
    ({"breed": "tabby"}, []),
    ({"min_confidence": 0.8}, ["s1.jpg", "IMG_0042.jpg"]),
    ({"min_confidence": 0.45}, ["s1.jpg", "s2.jpg", "IMG_0042.jpg"]),
    ({"errors": True}, ["s4.jpg"]),
    ({"status": "unsure"}, ["s2.jpg"]),
    ({"status": "not_a_dog"}, ["s3.jpg"]),
    ({"animal": "A2"}, ["s3.jpg", "s4.jpg"]),
    ({"animal": ["A1", "A2"]}, ["s1.jpg", "s2.jpg", "s3.jpg", "s4.jpg"]),
    ({"animal": "a1"}, []),  # the code as stored
])
def test_records_filtered(kennel, asked, want):
    assert paths(readmodel.records(kennel.engine, **asked)) == want


def test_breed_words_with_an_underscore_or_a_like_wildcard(shelter):
    shelter.animal("A1", "Rex")
    shelter.photo("A1", "s1", (LAB, 0.9), (PUG, 0.05))
    shelter.photo("A1", "s2", ("n02099712-Labrador%retriever", 0.9), (PUG, 0.05))
    assert paths(readmodel.records(shelter.engine, breed="labrador_retriever")) == ["s1.jpg"]
    assert paths(readmodel.records(shelter.engine, breed="Labrador Retriever")) == ["s1.jpg"]
    assert paths(readmodel.records(shelter.engine, breed="labrador%retriever")) == ["s2.jpg"]


def test_breed_asked_by_words_that_are_not_the_labels(shelter):
    # a model whose labels are codes: its breed words and its label say different things
    shelter.animal("A1", "Rex")
    shelter.photo("A1", "s1", ("n09999999-x_dog", 0.9), (PUG, 0.05))
    shelter.photo("A1", "s2", (PUG, 0.9), (BEAGLE, 0.05))
    for asked in ("village dog", "Village_Dog", "n09999999-X_DOG", "x dog", "X_Dog"):
        assert paths(readmodel.records(shelter.engine, breed=asked)) == ["s1.jpg"], asked
    for asked in ("village", "x", "dog", "09999999-x_dog"):
        assert paths(readmodel.records(shelter.engine, breed=asked)) == [], asked


def test_a_records_newest_prediction_or_the_models_asked_for(kennel):
    kennel.predict("s1", (PUG, 0.7), (BEAGLE, 0.2), model="m2", at="2026-02-01")
    assert [r["label"] for r in readmodel.records(kennel.engine, animal="A1")] == [PUG, PUG]
    assert [r["model"] for r in readmodel.records(kennel.engine, animal="A1", model_id="m1")] == ["m1", "m1"]


def test_records_with_the_staffs_corrections(kennel):
    kennel.correct("A1", status="dog", label=LAB, breed="Labrador Retriever", source="staff")
    kennel.correct("s2", kind="photo", status="dog", label=BEAGLE, label2=PUG, breed="Beagle", breed2="Pug")
    got = list(readmodel.records(kennel.engine))
    assert [(r["source"], r["label"], r["breed"], r["confidence"]) for r in got[:2]] == [
        ("correction", LAB, "Labrador Retriever", None), ("correction", BEAGLE, "Beagle / Pug", None)]
    assert [r["source"] for r in got[2:]] == ["model", "model", "model"]
    model = list(readmodel.records(kennel.engine, corrected=False))
    assert [(r["source"], r["label"]) for r in model[:2]] == [("model", BEAGLE), ("model", PUG)]


def test_the_corrections_in_force_and_the_models_rules(kennel):
    kennel.correct("A1", status="dog", label=LAB)
    kennel.correct("A1", status="dog", label=PUG)
    kennel.correct("A2", status="dog", label=BEAGLE)
    with db.writing(kennel.engine) as conn:
        conn.execute(update(db.corrections).where(db.corrections.c.id == 3).values(undone_at="x", undone_by="b"))
        conn.execute(update(db.models).where(db.models.c.id == "m1").values(
            labels=json.dumps([BEAGLE, PUG]), decision=json.dumps({"unsure_below": 0.95})))
        conn.execute(insert(db.models).values(id="m2", first_used_at="2026-01-01"))
        fixes = readmodel.active_corrections(conn)
        infos = readmodel.model_infos(conn)
        assert readmodel.members(conn) == {str(kennel.root / "A1" / f"{s}.jpg"): "A1" for s in ("s1", "s2")} | {
            str(kennel.root / "A2" / f"{s}.jpg"): "A2" for s in ("s3", "s4")}
    assert {key: c.label for key, c in fixes.items()} == {("animal", "A1"): PUG}
    assert (infos["m1"].labels, infos["m1"].unsure_below) == ([BEAGLE, PUG], 0.95)
    assert (infos["m2"].labels, infos["m2"].unsure_below) == (None, 0.5)


def test_every_animals_answer(kennel):
    with db.writing(kennel.engine) as conn:
        conn.execute(update(db.models).where(db.models.c.id == "m1").values(decision=json.dumps(
            {"unsure_below": 0.6})))
        conn.execute(insert(db.animals).values(code="A0", name="Empty", created_at="2026-01-01"))
        conn.execute(insert(db.animals).values(code="A9", name="Merged", created_at="2026-01-01", merged_into="A1"))
        conn.execute(insert(db.files).values(path=str(kennel.root / "aaa-notes.jpg"), error=readmodel.NOT_AN_IMAGE,
                                             catalogued_at="2026-01-01", updated_at="2026-01-01"))
    kennel.animal("b0", "Lo")  # codes in order whatever their case
    kennel.photo("b0", "s6", (PUG, 0.4), (BEAGLE, 0.3), (LAB, 0.2), (BASSET, 0.1), status="unsure")
    got = readmodel.answers(kennel.engine)
    assert [(a.animal, a.name, a.status, a.source) for a in got] == [
        ("A1", "Rex", "dog", "model"), ("A2", "Pip", "not_a_dog", "model"), ("b0", "Lo", "unsure", "model"),
        ("IMG_0042", "IMG 0042", "dog", "model")]
    assert len(got[2].top_k) == 3
    assert (got[0].votes, got[0].model, len(got[0].photos), got[0].label) == (2, "m1", 2, BEAGLE)
    assert got[0].top_k[0]["confidence"] > 0.6
    assert [a.animal for a in readmodel.answers(kennel.engine, include_empty=True)] == ["A0", "A1", "A2", "b0",
                                                                                        "IMG_0042"]
    assert [len(a.top_k) for a in readmodel.answers(kennel.engine, k=1)][0] == 1
    kennel.correct("A1", status="not_a_dog")
    assert readmodel.answers(kennel.engine)[0].status == "not_a_dog"
    model_only = readmodel.records(kennel.engine, probabilities=True, corrected=False)
    assert readmodel.answers(kennel.engine, model_only, corrections={})[0].status == "dog"
    only = readmodel.answers(kennel.engine, photos=readmodel.records(kennel.engine, animal="A2"))
    assert [a.animal for a in only] == ["A2"]
    with db.writing(kennel.engine) as conn:
        conn.execute(update(db.animals).where(db.animals.c.code == "A2").values(retired_at="2026-03-01"))
    assert [a.animal for a in readmodel.answers(kennel.engine)] == ["A1", "b0", "IMG_0042"]


def test_answers_fuse_whole_distributions_of_the_model_asked_for(kennel):
    with db.writing(kennel.engine) as conn:
        conn.execute(update(db.models).where(db.models.c.id == "m1").values(labels=json.dumps([BEAGLE, PUG])))
    kennel.predict("s1", (PUG, 0.7), (BEAGLE, 0.2), model="m2", at="2026-02-01")
    kennel.predict("s2", (PUG, 0.7), (BEAGLE, 0.2), model="m2", at="2026-02-01")
    assert readmodel.answers(kennel.engine)[0].label == PUG  # m2's, the newest
    a1 = readmodel.answers(kennel.engine, model_id="m1")[0]
    # s1's whole distribution (0.9, 0.1), not its top-k; s2 has none: its top-k
    want = fusion.fuse([[0.9, 0.1], [0.3, 0.45]])[0]
    assert (a1.label, a1.model, a1.top_k[0]["confidence"]) == (BEAGLE, "m1", round(want, 6))
    assert readmodel.animal_answers(kennel.engine, model_id="m1")[0].top_k == a1.top_k


def test_the_animals_filtered_by_their_answer(kennel):
    kennel.animal("A3", "Tom")
    kennel.photo("A3", "s6", (PUG, 0.4), (BEAGLE, 0.3), (LAB, 0.2), (BASSET, 0.1), status="unsure")
    kennel.animal("A4", "Sam")
    kennel.photo("A4", "s7", (BEAGLE, 0.3), (PUG, 0.3), status="unsure")
    kennel.correct("A4", status="dog", label=BEAGLE)
    kennel.animal("A5", "Bo")
    kennel.photo("A5", "s8", (BEAGLE, 0.3), (PUG, 0.3), status="unsure")
    kennel.correct("A5", status="dog", breed="Pit Bull Terrier")
    kennel.animal("A0", "Nobody")

    def codes(**asked):
        return [a.animal for a in readmodel.animal_answers(kennel.engine, **asked)]
    assert codes() == ["A1", "A2", "A3", "A4", "A5", "IMG_0042"]
    assert codes(status="unsure") == ["A3"]
    assert codes(breed="pug") == codes(breed=PUG) == ["A3", "IMG_0042"]
    assert codes(breed="beagle") == ["A1", "A4"]
    assert codes(breed="pit bull terrier") == ["A5"]  # staff's words, no label
    assert codes(min_confidence=0.5) == ["A1", "A4", "A5", "IMG_0042"]  # staff's word has no confidence: kept
    assert codes(min_confidence=0.4) == ["A1", "A3", "A4", "A5", "IMG_0042"]
    assert codes(include_empty=True, status="error") == ["A0"] and codes(status="error") == []
    assert [len(a.top_k) for a in readmodel.animal_answers(kennel.engine)] == [2, 0, 3, 1, 1, 2]
    assert [len(a.top_k) for a in readmodel.animal_answers(kennel.engine, k=1)] == [1, 0, 1, 1, 1, 1]


def test_animals_whose_photos_are_all_gone(kennel):
    with db.reading(kennel.engine) as conn:
        assert readmodel.gone(conn) == {}
    (kennel.root / "A2" / "s3.jpg").unlink()
    with db.reading(kennel.engine) as conn:
        assert readmodel.gone(conn) == {}  # one photo is left
    (kennel.root / "A2" / "s4.jpg").unlink()
    (kennel.root / "A1" / "s1.jpg").unlink()
    kennel.animal("B1", "Bo")
    kennel.photo("B1", "s8", (PUG, 0.9), (BEAGLE, 0.05), on_disk=False, name="z.jpg")
    kennel.photo("B1", "s7", (PUG, 0.9), (BEAGLE, 0.05), on_disk=False, name="y.jpg")
    kennel.animal("C_1", "Cy")
    kennel.photo("C_1", "s10", (PUG, 0.9), (BEAGLE, 0.05), on_disk=False)
    kennel.animal("Ca", "Ca")
    kennel.photo("Ca", "s11", (PUG, 0.9), (BEAGLE, 0.05), on_disk=False)
    kennel.animal("a3", "Lo")
    kennel.photo("a3", "s9", (PUG, 0.9), (BEAGLE, 0.05), on_disk=False)
    with db.reading(kennel.engine) as conn:
        assert readmodel.gone(conn) == {"A2": [str(kennel.root / "A2" / f"{s}.jpg") for s in ("s3", "s4")],
                                        "a3": [str(kennel.root / "a3" / "s9.jpg")],
                                        "B1": [str(kennel.root / "B1" / f"{s}.jpg") for s in ("y", "z")],
                                        "C_1": [str(kennel.root / "C_1" / "s10.jpg")],
                                        "Ca": [str(kennel.root / "Ca" / "s11.jpg")]}
        assert list(readmodel.gone(conn)) == ["A2", "a3", "B1", "C_1", "Ca"]
    with db.writing(kennel.engine) as conn:
        conn.execute(update(db.animals).where(db.animals.c.code == "B1").values(retired_at="2026-03-01"))
        conn.execute(update(db.animals).where(db.animals.c.code == "a3").values(merged_into="A1"))
    with db.reading(kennel.engine) as conn:
        assert list(readmodel.gone(conn)) == ["A2", "C_1", "Ca"]
