"""ONNX Runtime's other int8 kernels, on this machine: Python run with AMX refused.

ONNX Runtime (its MLAS library) picks its int8 kernels by the CPU: AMX where the CPU has AMX-INT8, else AVX-512
VNNI (or AVX-VNNI), else AVX2. On Linux a process must ask the kernel for AMX's tile registers
(``arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)``) before it uses them, and MLAS takes its VNNI kernels
when that is refused. So on an AMX machine a process that is refused AMX runs the VNNI kernels on the same CPU:
how tests/test_same_answer.py checks that they compute the same features, and benchmarks/run.py times both
kinds in one run. (AVX2's kernels need a CPU without AVX-512: tests/test_same_answer.py emulates one.)

    python -m dogcat.train.kernels --no-amx SCRIPT [ARGS]     # or -c CODE [ARGS], or -m MODULE [ARGS]

The refusal is a seccomp filter: it lasts as long as the process, and its children inherit it. It must be set
before ONNX Runtime is imported. Linux on x86-64 only; needs no privileges.
"""

from __future__ import annotations

import ctypes
import os
import platform
import runpy
import struct
import sys

NO_AMX = "DOGCAT_NO_AMX"  # set in a process refused AMX (and so in its children): dogcat.model.int8_kernels reads it
ARCH_PRCTL = 158  # the syscall's number on x86-64
ARCH_REQ_XCOMP_PERM = 0x1023
XFEATURE_XTILEDATA = 18


def refuse_amx() -> None:
    """From now on, this process and its children are refused AMX (arch_prctl(ARCH_REQ_XCOMP_PERM) fails with
    EPERM; every other system call is allowed). Raises RuntimeError where that cannot be done."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        raise RuntimeError("refusing AMX needs Linux on x86-64")
    if "onnxruntime" in sys.modules:
        raise RuntimeError("ONNX Runtime is loaded already: it has chosen its kernels")
    # A classic BPF program over struct seccomp_data {int nr; u32 arch; u64 ip; u64 args[6]}:
    program = [
        (0x20, 0, 0, 0),  # A = the system call's number
        (0x15, 0, 3, ARCH_PRCTL),  # arch_prctl? else allow
        (0x20, 0, 0, 16),  # A = its first argument (low 32 bits)
        (0x15, 0, 1, ARCH_REQ_XCOMP_PERM),  # a request for extended state? else allow
        (0x06, 0, 0, 0x00050000 | 1),  # SECCOMP_RET_ERRNO | EPERM
        (0x06, 0, 0, 0x7FFF0000),  # SECCOMP_RET_ALLOW
    ]
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *op) for op in program))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_no_new_privs, pr_set_seccomp, seccomp_mode_filter = 38, 22, 2
    fprog = SockFprog(len(program), ctypes.cast(code, ctypes.c_void_p))
    # no_new_privs first: it lets a process without privileges install a filter.
    if libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0) != 0 or \
            libc.prctl(pr_set_seccomp, seccomp_mode_filter, ctypes.byref(fprog), 0, 0) != 0:
        raise RuntimeError(f"seccomp refused the filter: {os.strerror(ctypes.get_errno())}")
    if libc.syscall(ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0:
        raise RuntimeError("AMX was granted all the same")
    os.environ[NO_AMX] = "1"


def main(argv: list[str]) -> None:
    if not argv or argv[0] != "--no-amx" or len(argv) < 2:
        raise SystemExit(__doc__)
    refuse_amx()
    what, rest = argv[1], argv[2:]
    if what in ("-c", "-m"):
        if not rest:
            raise SystemExit(f"{what} needs an argument")
        sys.argv = ["-c" if what == "-c" else rest[0], *rest[1:]]
        if what == "-c":
            exec(compile(rest[0], "<string>", "exec"), {"__name__": "__main__"})
        else:
            runpy.run_module(rest[0], run_name="__main__", alter_sys=True)
    else:
        sys.argv = [what, *rest]
        runpy.run_path(what, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
