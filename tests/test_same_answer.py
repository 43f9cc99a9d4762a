"""Issue 32: one photo, one answer, on every CPU.

ONNX Runtime picks its kernels by the CPU's instructions: AVX2 only, AVX-512 VNNI or AMX. With the shipped
backbone (7-bit weights, docs/model.md) and dogcat's session settings (no NCHWc layout: dogcat.model), each
computes the same features to the last bit. The test runs the bundled model on this CPU and on an AVX2-only one
emulated by qemu-user (``qemu-x86_64 -cpu Haswell``: its CPUID has AVX2 and FMA, no AVX-512, so ONNX Runtime
takes its AVX2 kernels; Debian's qemu-user, which .ci/services.sh installs), and wants the same bits. On an
AVX2-only machine the emulated CPU is the same kind: the test then checks the emulator, which is still a check
that threads and batches do not change the answer.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import missing, needs_module, needs_program

DATA = Path(__file__).parent / "data"
PHOTO = DATA / "stanford-dogs" / "stanford-dogs-crops-224" / "n02085620-Chihuahua"

SCRIPT = """
import sys, numpy as np
from pathlib import Path
from dogcat import images
from dogcat.model import BreedModel, int8_kernels, mirrored
model = BreedModel(None, "cpu")
photos = sorted(Path(sys.argv[1]).glob("*.jpg"))[:2]
pixels = images.load_batch(photos, model.preprocessing)
np.save(sys.argv[2], np.stack([model.features(pixels), model.features(mirrored(pixels))]))
print(int8_kernels())
"""


def features(tmp_path: Path, name: str, python: list[str]) -> tuple[np.ndarray, str]:
    """The features of two photos and their mirror images, computed by a fresh process (``python`` then
    ``-c SCRIPT``), with a cache of its own: an optimized graph is made for the CPU that made it, and under
    qemu-user /proc/cpuinfo still names the host's; and the int8 kernels the process says it ran."""
    out = tmp_path / f"{name}.npy"
    env = dict(os.environ, DOGCAT_CACHE=str(tmp_path / f"cache-{name}"))
    done = subprocess.run([*python, "-c", SCRIPT, str(PHOTO), str(out)], capture_output=True, text=True,
                          timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return np.load(out), done.stdout.split()[-1]


@pytest.mark.slow
def test_an_avx2_cpu_computes_the_same_features_to_the_last_bit(tmp_path):
    if platform.machine() not in ("x86_64", "AMD64"):
        missing("an x86-64 CPU (qemu-user emulates an AVX2 one beside it)")
    qemu = needs_program(shutil.which("qemu-x86_64"), "qemu-user (qemu-x86_64), to emulate an AVX2-only CPU")
    here, _ = features(tmp_path, "here", [sys.executable])
    avx2, _ = features(tmp_path, "avx2", [qemu, "-cpu", "Haswell", sys.executable])
    assert here.shape == (2, 2, 2048)
    assert np.array_equal(here, avx2), f"max |diff| {np.abs(here - avx2).max()}"


@pytest.mark.slow
def test_the_vnni_kernels_compute_the_same_features_to_the_last_bit(tmp_path):
    """On an AMX CPU, a process refused AMX (dogcat.train.kernels) runs ONNX Runtime's AVX-512 VNNI int8
    kernels on the same CPU: a real VNNI run beside the AMX one, which must give the same bits. (On a CPU
    without AMX both processes run the same kernels, and the test checks that the refusal changes nothing.)"""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        missing("Linux on x86-64 (refusing AMX to a process is a Linux seccomp filter)")
    here, kernels = features(tmp_path, "here", [sys.executable])
    refused, refused_kernels = features(tmp_path, "no-amx", [sys.executable, "-m", "dogcat.train.kernels",
                                                             "--no-amx"])
    assert refused_kernels == ("vnni" if kernels == "amx" else kernels)
    assert np.array_equal(here, refused), f"{kernels} against {refused_kernels}: max |diff| " \
                                          f"{np.abs(here - refused).max()}"


@pytest.mark.slow
def test_this_cpu_computes_what_the_oracle_computes():
    """dogcat.train.oracle evaluates the rewritten graph in numpy with the kernels' arithmetic, on no CPU's
    kernels; ONNX Runtime here must give its features (the same bits up to the last pooling, whose mean may
    round one float32 step apart). A single int8 value apart before it would put the features ~14 % apart."""
    needs_module("onnx")
    from dogcat import images
    from dogcat.model import BreedModel
    from dogcat.train import oracle

    model = BreedModel(None, "cpu")
    photo = sorted(PHOTO.glob("*.jpg"))[1]
    pixels = images.load_batch([photo], model.preprocessing)
    assert model.backbone is not None
    expected = oracle.features(model.backbone.path, pixels)
    np.testing.assert_allclose(model.features(pixels), expected, rtol=3e-7, atol=1e-7)
