"""`dogcat train report`: the study's comparison table and validation curves, rebuilt from the ledger.

Each ledger row is one real run (or one attempt that could not run here, with its reason). The study's
original numbers (Tesla P100, 224 px, full budgets) are shown beside them for reference only; every number
in the "here" columns comes from the ledger.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The original study, in its order: key → (what it was, val accuracy, "epochs (best)", wall time on a P100).
# Scratch variations are cumulative (+ augmentation, then + BatchNorm/Dropout; RMSprop and 5x5 on top of that).
STUDY = {
    "vgg16 scratch": ("VGG16 from scratch, Adam 1e-3", 0.13, "11", "3m18s"),
    "vgg16 scratch +augment": ("+ data augmentation", 0.12, "11", "6m35s"),
    "vgg16 scratch +augment +bn-dropout": ("+ BatchNorm + Dropout 0.5", 0.16, "18", "11m24s"),
    "vgg16 scratch +augment +bn-dropout rmsprop": ("RMSprop instead of Adam", 0.15, "42", "26m22s"),
    "vgg16 scratch +augment +bn-dropout k5": ("5x5 kernels", 0.15, "17", "12m7s"),
    "resnet50 scratch": ("ResNet50 from scratch", 0.14, "13", "8m29s"),
    "resnet50 transfer": ("ResNet50 transfer (frozen, common head)", 0.934, "31 (21)", "19m4s"),
    "vgg16 transfer": ("VGG16 transfer", 0.889, "44 (34)", "21m5s"),
    "xception transfer": ("Xception transfer", 0.949, "23 (13)", "12m21s"),
    "xception tune": ("Hyperband on Xception: best dropout 0.3, lr 1e-4", None, "", "13m55s"),
    "xception transfer tuned": ("Xception final (tuned)", 0.955, "23", "10m33s"),
    "xception finetune": ("+ fine-tuning all layers from epoch 14, lr 1e-5", 0.931, "11", "8m41s"),
}


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def is_study(row: dict) -> bool:
    """A row stands beside the study's numbers if it ran one of its experiments on its 10 breeds."""
    return row.get("key") in STUDY and ", 10 breeds" in row.get("data", "")


def ordered(rows: list[dict]) -> list[tuple[str, dict | None]]:
    """(key, row) in the study's order, one per ledger row; study rows with no run yet get (key, None);
    other runs (more breeds, other backbones) follow in ledger order."""
    out: list[tuple[str, dict | None]] = []
    for key in STUDY:
        mine = [r for r in rows if r.get("key") == key and is_study(r)]
        out += [(key, r) for r in mine] or [(key, None)]
    return out + [("", r) for r in rows if not is_study(r)]


def table(rows: list[dict]):
    from rich.table import Table

    t = Table(title="The study, re-run (study numbers: Tesla P100, 224 px, full budget; 'here': the ledger)",
              show_lines=True)
    columns: list[tuple[str, dict[str, Any]]] = [
        ("experiment", {}), ("study: val acc", {"justify": "right"}), ("epochs", {}), ("time", {}),
        ("here: val acc", {"justify": "right", "style": "bold"}), ("epochs (best)", {}), ("wall time", {}),
        ("budget / status", {}), ("data", {})]
    for name, kw in columns:
        t.add_column(name, **kw)
    for key, row in ordered(rows):
        what, acc, epochs, when = STUDY.get(key, ("", None, "", ""))
        study = [f"{acc:.3f}" if acc is not None else "", epochs, when]
        if row is None:
            t.add_row(what or key, *study, "", "", "", "[yellow]no run recorded yet[/]", "")
            continue
        tuned = row.get("best")
        here = (f"{row['val_accuracy']:.3f}" if row.get("val_accuracy") is not None else "—")
        epochs_here = (f"{row['epochs_total']} ({row['epochs_best']})" if row.get("epochs_total") else
                       (f"{row.get('trials')} trials" if row.get("trials") else ""))
        status = row["budget"] if row.get("status", "ok") == "ok" else f"[red]{row['status']}[/]"
        if tuned:
            status += f"; best dropout {tuned['dropout']:.1f}, lr {tuned['learning_rate']:g}"
        if row.get("seconds_fit") is not None:
            status += f"; fit {duration(row['seconds_fit'])}"
        if row.get("note"):
            status += f"\n[italic]{row['note']}[/]"
        label = f"{what}\n[dim]{row['experiment']}[/]" if what else row["experiment"]
        wall = duration(row.get("seconds"))
        if row.get("cpu_seconds") and row.get("seconds"):
            wall += f"\n[dim]cpu {duration(row['cpu_seconds'])}, load {row.get('load_avg')}[/]"
        t.add_row(label, *study, here, epochs_here, wall,
                  status, row.get("data", ""))
    return t


def plot(rows: list[dict], out: Path) -> Path:
    """Validation accuracy per epoch of each experiment's latest run (a dot marks its best epoch)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latest = {}  # the latest run of each study row (or other experiment), per number of breeds and image size
    for row in rows:
        if row.get("history", {}).get("val_accuracy"):
            size = row.get("budget", "").split(",")[0]
            latest[(row.get("key") or row["experiment"], row.get("data", "").split(" train")[0], size)] = row
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(14, 9), sharex=True)
    for row in latest.values():
        curve = row["history"]["val_accuracy"]
        epochs = range(1, len(curve) + 1)
        ax = top if max(curve) >= 0.5 else bottom
        label = f"{row['experiment']} ({row['budget'].split(',')[0]})"
        (line,) = ax.plot(epochs, curve, label=label, linewidth=1.5)
        best = row.get("epochs_best")
        if best and best <= len(curve):
            ax.plot([best], [curve[best - 1]], "o", color=line.get_color())
    top.set_title("Transfer learning (frozen ImageNet backbones, fine-tuning)")
    bottom.set_title("From scratch (reduced budgets, see labels)")
    for ax in (top, bottom):
        ax.set_ylabel("validation accuracy")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the curves, not over them
    bottom.set_xlabel("epoch")
    bottom.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")  # the legends sit outside the axes
    plt.close(fig)
    return out
