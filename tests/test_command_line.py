"""What people expect of a command line: --version, shell completion, --help with examples on every command,
NO_COLOR, and output that pipes (data on stdout, messages and progress on stderr). Real processes, real bash."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from dogcat import __version__
from dogcat.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
COLOUR = re.compile(r"\x1b\[[0-9;]*(3[0-9]|4[0-9]|9[0-7]|10[0-7])m")  # a foreground or background colour


def dogcat(*args, env_extra=None, **kwargs) -> subprocess.CompletedProcess:
    """The real program in a child process, reading this working tree."""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}  # as the test says
    env.update({"PYTHONPATH": str(ROOT), **(env_extra or {})})
    return subprocess.run([sys.executable, "-m", "dogcat", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, **kwargs)


def all_commands() -> list[list[str]]:
    def walk(command, prefix):
        subcommands = getattr(command, "commands", None)
        if not subcommands:
            return [prefix]
        return [path for name, sub in subcommands.items() for path in walk(sub, [*prefix, name])]
    return walk(get_command(app), [])


def test_version():
    done = dogcat("--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"dogcat {__version__}\n", "")
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


@pytest.mark.parametrize("command", all_commands(), ids=" ".join)
def test_every_command_has_help_with_examples(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "Usage: dogcat " + " ".join(command) in text or "Usage: root " + " ".join(command) in text, text[:200]
    assert "Example" in text and f"dogcat {' '.join(command)}" in text.split("Example", 1)[1], text
    assert runner.invoke(app, [*command, "-h"]).stdout == result.stdout  # -h is --help too


def every_help_page() -> list[list[str]]:
    """Every command's and every group's: dogcat, dogcat animals, dogcat train, and all under them."""
    def walk(command, prefix):
        subcommands = getattr(command, "commands", {})
        return [prefix, *(path for name, sub in subcommands.items() for path in walk(sub, [*prefix, name]))]
    return walk(get_command(app), [])


@pytest.mark.parametrize("command", every_help_page(), ids=lambda c: " ".join(["dogcat", *c]))
def test_help_paragraphs_flow_and_flags_show_no_type(command):
    """Rendered far wider than any paragraph, each paragraph of a help page is one line: a paragraph on two
    lines (or a command's description on two rows of the Commands panel) is a line break kept from the source,
    which a terminal of any other width shows mid-sentence. A flag takes no value and an argument is named, so
    neither shows a type (typer's <bool>, <list[str]>)."""
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "2000"})
    assert result.exit_code == 0, result.output
    page = result.stdout
    assert "<bool>" not in page and "<list[" not in page, page
    description, _, panels = page.partition("╭")
    lines = [line.strip() for line in description.splitlines()]
    broken = [(a, b) for a, b in itertools.pairwise(lines) if a and b]
    assert not broken, f"paragraph broken over lines: {broken}"
    for panel in panels.split("╭")[1:]:
        if panel.startswith("─ Commands"):
            rows = [line for line in panel.splitlines()[1:] if line.startswith("│")]
            broken_rows = [row.strip("│ ") for row in rows if row.startswith("│  ")]
            assert rows and not broken_rows, f"command description broken over rows: {broken_rows}"


def test_bash_completion_completes_commands_options_and_choices(tmp_path):
    """Install nothing: source what --show-completion prints into a real bash and ask it to complete."""
    assert shutil.which("bash")
    bindir = tmp_path / "bin"  # `dogcat` on PATH as a user has it, running this tree
    bindir.mkdir()
    (bindir / "dogcat").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m dogcat "$@"\n')
    (bindir / "dogcat").chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    # --show-completion names the shell it finds among its parent processes (this typer takes no shell name), so
    # it runs inside a bash that stays alive, as in a user's `eval "$(dogcat --show-completion)"` (a plain
    # `bash -c "dogcat …"` execs dogcat in bash's place): a test run whose ancestors hold no shell, such as a
    # detached CI job, would otherwise get "Shell  not supported".
    shown = subprocess.run(["bash", "-c", 'printf "%s\\n" "$(dogcat --show-completion)"'], env=env,
                           capture_output=True, text=True, timeout=120)
    script = shown.stdout
    assert "_DOGCAT_COMPLETE=complete_bash" in script and "complete " in script, (shown.returncode, shown.stderr)

    def complete(*words: str) -> list[str]:
        line = " ".join(f"'{w}'" for w in words)
        shell = (f"source <(dogcat --show-completion)\nCOMP_WORDS=(dogcat {line})\n"
                 f"COMP_CWORD={len(words)}\n_dogcat_completion dogcat\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n")
        done = subprocess.run(["bash", "-c", shell], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("exp") == ["export"]
    assert {"catalog", "classify", "export", "report", "train"} <= set(complete(""))
    assert complete("export", "--for") == ["--format"]
    assert sorted(complete("export", "--format", "")) == ["asm3", "csv", "jsonl"]
    # zsh and fish (not installed here) get their scripts the same way, from the shell typer detects: that this
    # typer has them for dogcat's completion variable.
    from typer.completion import get_completion_script

    for shell in ("zsh", "fish"):
        script = get_completion_script(prog_name="dogcat", complete_var="_DOGCAT_COMPLETE", shell=shell)
        assert f"_DOGCAT_COMPLETE=complete_{shell}" in script, shell


def test_no_color_is_respected(tmp_path):
    """FORCE_COLOR makes rich colour even into a pipe (as in a terminal); NO_COLOR then takes the colour out."""
    missing = str(tmp_path / "missing.db")
    coloured = dogcat("export", "--db", missing, env_extra={"FORCE_COLOR": "1"})
    assert coloured.returncode == 1 and COLOUR.search(coloured.stderr), coloured.stderr  # the red "error:"
    plain = dogcat("export", "--db", missing, env_extra={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert plain.returncode == 1 and "dogcat: error:" in plain.stderr and not COLOUR.search(plain.stderr)
    assert COLOUR.search(dogcat("catalog", "--help", env_extra={"FORCE_COLOR": "1"}).stdout)
    help_text = dogcat("catalog", "--help", env_extra={"FORCE_COLOR": "1", "NO_COLOR": "1"}).stdout
    assert "Examples" in help_text and not COLOUR.search(help_text)


def in_a_terminal(*args, env_extra=None) -> tuple[int, bytes]:
    """The real program with stdout and stderr on a pseudo-terminal, as a person at a terminal runs it."""
    import pty

    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env.update({"PYTHONPATH": str(ROOT), "TERM": "xterm-256color", **(env_extra or {})})
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "dogcat", *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=child, stderr=child)
    os.close(child)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the program has closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    return proc.wait(timeout=300), seen


def test_no_color_means_no_escape_codes_at_all_in_a_terminal(crops, model_path, tmp_path):
    """NO_COLOR: not a colour, and no bold, dim or cursor movement either (rich alone still sends those)."""
    intake = tmp_path / "intake"
    intake.mkdir()
    shutil.copy(sorted((crops / "n02085620-Chihuahua").glob("*.jpg"))[0], intake / "a.jpg")
    model = ["--model", str(model_path)] if model_path else []
    code, shown = in_a_terminal("export", "--db", str(tmp_path / "missing.db"))
    assert code == 1 and b"\x1b[" in shown  # a terminal: styled as usual
    runs = {"export": (1, ["export", "--db", str(tmp_path / "missing.db")]),
            "catalog": (0, ["catalog", str(intake), "--db", str(tmp_path / "s.db"), *model]),
            "help": (0, ["catalog", "--help"]), "usage": (2, ["classify", "--device", "gpu", str(intake)])}
    for name, (expected, args) in runs.items():
        code, shown = in_a_terminal(*args, env_extra={"NO_COLOR": "1"})
        assert code == expected and shown.strip(), (name, shown)
        assert b"\x1b" not in shown, (name, shown)
    assert b"1/1 files" in in_a_terminal(*runs["catalog"][1], env_extra={"NO_COLOR": "1"})[1]


def test_a_bad_option_value_is_always_exit_2(tmp_path):
    for args in (["classify", "--device", "gpu", "x.jpg"], ["catalog", str(tmp_path), "--device", "gpu"],
                 ["export", "--format", "xls"], ["export", "--status", "happy"], ["catalog", str(tmp_path),
                 "--batch-size", "0"], ["evaluate", str(tmp_path), "--part", "test"]):
        # In this process (typer's runner, as a refused option is parsing, not the process): an exception is raised
        # here rather than printed, so a traceback still fails the test.
        done = runner.invoke(app, args, prog_name="dogcat", catch_exceptions=False)
        assert done.exit_code == 2, (args, done.exit_code, done.stderr)
        assert "Traceback" not in done.stderr


def test_data_on_stdout_messages_and_progress_on_stderr(crops, model_path, tmp_path):
    intake = tmp_path / "intake"
    intake.mkdir()
    for folder in sorted(crops.iterdir())[:3]:
        shutil.copy(sorted(folder.glob("*.jpg"))[0], intake / f"{folder.name}.jpg")
    model = ["--model", str(model_path)] if model_path else []

    done = dogcat("classify", "--json", str(intake), str(tmp_path / "missing.jpg"), *model)
    assert done.returncode == 1, done.stderr  # one photo could not be classified
    records = [json.loads(line) for line in done.stdout.splitlines()]  # nothing but JSON on stdout
    assert len(records) == 4 and sum(1 for r in records if r["error"]) == 1
    assert done.stderr.splitlines() == [f"dogcat: error: {tmp_path / 'missing.jpg'}: no such file or folder"]

    shelter = str(tmp_path / "shelter.db")
    done = dogcat("catalog", str(intake), "--db", shelter, *model)
    assert done.returncode == 0, done.stderr
    assert "3 new" in " ".join(done.stdout.split()) and "cataloguing" not in done.stdout  # the summary is data
    assert "cataloguing" in done.stderr and "3/3 files" in done.stderr  # ... the progress bar is not
    assert "\x1b[" not in done.stdout + done.stderr  # not a terminal: no escape codes at all
    done = dogcat("catalog", str(intake), "--db", shelter, "--quiet", *model)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")

    # A reader that stops early (`dogcat export | head -1`) is no error worth a traceback.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(f'"{sys.executable}" -m dogcat export --db "{shelter}" --format jsonl | head -n 1',
                            shell=True, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    stdout, stderr = proc.communicate(timeout=120)
    assert len(stdout.splitlines()) == 1 and json.loads(stdout)["path"].startswith(str(intake))
    assert "Traceback" not in stderr and "Broken pipe" not in stderr, stderr


def test_similar_and_asm3_files_cut_no_path_into_a_pipe(crops, model_path, tmp_path):
    """Issue 36: into a pipe (an 80-column default) the paths of `similar` and `asm3 files` come whole, one line
    per row; on an 80-column terminal they are never cut with "…" either (folded where they do not fit)."""
    shelter = tmp_path / "shelter" / "intake" / "2024-06 intake, the long folder name"
    for code, folder in (("A1024-Bella", "n02110958-pug"), ("A1025-Max", "n02099601-golden_retriever"),
                         ("A1026-Rex", "n02088364-beagle")):
        (shelter / code).mkdir(parents=True)
        for photo in sorted((crops / folder).glob("*.jpg"))[:2]:
            shutil.copy(photo, shelter / code / photo.name)
    db = str(tmp_path / "shelter.db")
    model = ["--model", str(model_path)] if model_path else []
    assert dogcat("catalog", str(shelter), "--db", db, "--quiet", *model).returncode == 0
    sent = tmp_path / "shelter" / "asm3 import file for June, with a long name.csv"
    done = dogcat("export", "--format", "asm3", "--age", "2", "--db", db, "-o", str(sent))
    assert done.returncode == 0, done.stderr
    pages = {"similar": dogcat("similar", "A1026", "--db", db, *model, env_extra={"COLUMNS": "80"}),
             "asm3 files": dogcat("asm3", "files", "--db", db, env_extra={"COLUMNS": "80"})}
    for name, done in pages.items():
        assert done.returncode == 0, (name, done.stderr)
        rows = done.stdout.splitlines()[2:]
        assert rows and "…" not in done.stdout, (name, done.stdout)
        paths = [line.split("│")[-1].strip() for line in rows]  # the path is the last column of both
        assert all(Path(p).is_file() for p in paths), (name, paths)  # each row holds its path, whole
    code, shown = in_a_terminal("asm3", "files", "--db", db, env_extra={"COLUMNS": "80"})
    assert code == 0 and "…".encode() not in shown and b"2024-06" not in shown  # only the ASM3 file's path
    code, shown = in_a_terminal("similar", "A1026", "--db", db, *model, env_extra={"COLUMNS": "80"})
    assert code == 0 and "…".encode() not in shown
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown.decode()).replace("\r", "")
    folded = "".join(line.split("│")[-1].strip() for line in text.split("\n") if "│" in line)
    first = pages["similar"].stdout.splitlines()[2].split("│")[-1].strip()
    assert first.replace(" ", "") in folded.replace(" ", ""), (first, text)  # whole, if folded over lines


@pytest.mark.parametrize("command", all_commands(), ids=" ".join)
def test_usage_lines_name_arguments_plainly(command):
    """Issue 36: `Usage: dogcat classify [OPTIONS] PATHS...`, not typer's `{paths}...` or `{into} {other}`."""
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "300"})
    usage = next(line for line in result.stdout.splitlines() if "Usage:" in line).strip()
    assert "{" not in usage and "}" not in usage, usage
    arguments = [p for p in get_command(app).commands[command[0]].params if p.param_type_name == "argument"] \
        if len(command) == 1 else []
    for argument in arguments:
        assert argument.name.upper() in usage, usage


def test_messages_and_the_command_list_read_plainly(tmp_path):
    """Issue 36: a refused choice says what was wrong and nothing of pydantic; a pattern is echoed as typed;
    `dogcat --help` lists a shelter's commands first and model work (evaluate, train) last."""
    done = dogcat("classify", "--device", "gpu", "x.jpg", env_extra={"COLUMNS": "200"})
    assert done.returncode == 2
    said = " ".join(done.stderr.split())
    assert "Invalid value for '--device': 'gpu' is not one of 'auto', 'cpu', 'cuda'." in said, said
    assert "Value error" not in said and "Usage: dogcat classify [OPTIONS] PATHS..." in said
    (tmp_path / "A1_1.jpg").write_bytes(b"")
    for option, pattern in (("--pattern", r"A(\d+"), ("--folder-pattern", r"A\d+")):
        mode = "pattern" if option == "--pattern" else "folder"
        done = dogcat("catalog", str(tmp_path), "--db", str(tmp_path / "s.db"), "--animals", mode, option, pattern)
        assert done.returncode == 2 and f"{option} '{pattern}':" in done.stderr, done.stderr
        assert "\\\\" not in done.stderr
    listed = re.findall(r"^│ (\w+) ", runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).stdout, re.M)
    assert listed[:2] == ["catalog", "animals"] and listed[-2:] == ["evaluate", "train"], listed
    assert set(listed) == set(get_command(app).commands)


def test_one_rule_for_exit_codes_and_summaries(crops, model_path, tmp_path):
    """Issue 36: a photo that cannot be read is exit 1 in `similar` as in `classify` (not 2: the command line
    was right); `export -o FILE` says in one line on stderr what it wrote, as `report -o` does."""
    intake = tmp_path / "intake" / "A1-Rex"
    intake.mkdir(parents=True)
    shutil.copy(sorted((crops / "n02088364-beagle").glob("*.jpg"))[0], intake / "rex.jpg")
    db = str(tmp_path / "shelter.db")
    model = ["--model", str(model_path)] if model_path else []
    assert dogcat("catalog", str(intake.parent), "--db", db, "--quiet", *model).returncode == 0
    bad = tmp_path / "found-dog.jpg"
    bad.write_text("not a photo")
    classified = dogcat("classify", str(bad), *model)
    compared = dogcat("similar", str(bad), "--db", db, *model)
    assert classified.returncode == compared.returncode == 1, (classified.stderr, compared.stderr)
    assert compared.stderr.count("\n") == 1 and "found-dog.jpg" in compared.stderr
    for command in (["export"], ["export", "--per", "animal", "--format", "jsonl"], ["report"]):
        written = tmp_path / f"{command[0]}-{len(command)}.out"
        done = dogcat(*command, "--db", db, "-o", str(written))
        assert done.returncode == 0 and done.stdout == "" and written.stat().st_size > 0, done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{written}: "), (command, done.stderr)
    assert "1 animal record, jsonl" in dogcat("export", "--per", "animal", "--format", "jsonl", "--db", db, "-o",
                                               str(tmp_path / "a.jsonl")).stderr
    assert dogcat("export", "--db", db).stderr == ""  # to stdout: only the data
