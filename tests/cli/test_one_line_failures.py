"""Every ``obol`` command fails with one line and its documented exit code, whatever the
plumbing around it does: closed stdin, closed or full stdout, a FIFO nobody writes to.

Test design notes:
- Real processes (``python -c "from hooks.cli.main import main; main()"``, the console
  script's entry point) with real descriptors: ``/dev/full`` as stdout (every write fails with
  ENOSPC), descriptors 0 or 1 closed by the shell (``<&-``, ``>&-``). In-process runners
  cannot show these: they replace the streams.
- The oracle: exit code from hooks/cli/errors.py (3 input, 10 output, 9 internal), stderr is
  exactly one ``Error:`` line and never a traceback or Python's "Exception ignored".
- The FIFO cases run in-process with a short read timeout (the real one is 30 s): a FIFO
  nobody opens for writing ends with one line in bounded time; one written later is read.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hooks.cli import inputs
from hooks.cli.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OUTPUT
from hooks.cli.main import run
from tests.support.one_validation import GOOD

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "http-weather-api.yaml"
REQUEST = ROOT / "tests" / "fixtures" / "sync" / "01-full-envelope-new-offer.json"
OBOL = [sys.executable, "-c", "from hooks.cli.main import main; main()"]
DRY_RUN = [
    "sell", "inference", "qwen", "-n", "llm", "--upstream", "vllm", "--port", "8000",
    "--network", "base-sepolia", "--price", "0.001", "--pay-to", GOOD, "--dry-run",
]  # fmt: skip
# Every command that prints, with what it reads on stdin.
PRINTING = [
    pytest.param(["hook", "sync"], REQUEST, id="hook-sync"),
    pytest.param(["hook", "render", "-f", "-"], EXAMPLE, id="hook-render-stdin"),
    pytest.param(["hook", "render", "-f", str(EXAMPLE)], None, id="hook-render-file"),
    pytest.param(DRY_RUN, None, id="sell-dry-run"),
    pytest.param([*DRY_RUN, "-o", "json"], None, id="sell-dry-run-json"),
    pytest.param(["sell", "presets"], None, id="sell-presets"),
    pytest.param(["crd", "print"], None, id="crd-print"),
    pytest.param(["--help"], None, id="help"),
    pytest.param(["--version"], None, id="version"),
]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OBOL_", "X402_"))}


def obol_shell(args: list[str], redirect: str, stdin: Path | None = None) -> tuple[int, str]:
    """Run obol with a shell redirection (``<&-``, ``>&-``, ``>/dev/full``); exit code, stderr."""
    command = " ".join(f"'{a}'" for a in [*OBOL, *args]) + f" {redirect}"
    with open(stdin or os.devnull, "rb") as source:
        done = subprocess.run(
            ["bash", "-c", command],
            stdin=source,
            capture_output=True,
            env=clean_env(),
            timeout=60,
            check=False,
        )
    return done.returncode, done.stderr.decode()


def assert_one_error_line(stderr: str, fragment: str) -> None:
    # What a command says before it fails (Note:, Warning:, Quote:) may precede the error.
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr
    assert all(line.startswith(("Note: ", "Warning: ", "Quote: ", "Error: ")) for line in lines)
    assert fragment in errors[0], stderr


@pytest.mark.parametrize(("args", "stdin"), PRINTING)
def test_a_full_stdout_is_one_line_and_exit_10(args: list[str], stdin: Path | None) -> None:
    code, stderr = obol_shell(args, "> /dev/full", stdin)
    assert code == EXIT_OUTPUT, stderr
    assert_one_error_line(stderr, "cannot write the output: No space left on device")


@pytest.mark.parametrize(("args", "stdin"), PRINTING)
def test_a_closed_stdout_is_one_line_and_exit_10(args: list[str], stdin: Path | None) -> None:
    code, stderr = obol_shell(args, ">&-", stdin)
    assert code == EXIT_OUTPUT, stderr
    assert_one_error_line(stderr, "cannot write the output: stdout is closed")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(["hook", "sync"], "stdin is closed", id="hook-sync"),
        pytest.param(["hook", "render", "-f", "-"], "stdin is closed", id="hook-render"),
        pytest.param(
            ["sell", "http", "w", "-n", "llm", "--from-json", "-", "--dry-run"],
            "--from-json stdin is closed",
            id="sell-from-json",
        ),
    ],
)
def test_a_closed_stdin_is_one_line_and_exit_3(args: list[str], fragment: str) -> None:
    code, stderr = obol_shell(args, "<&-")
    assert code == EXIT_INVALID, stderr
    assert_one_error_line(stderr, fragment)


def test_the_same_commands_succeed_with_working_streams() -> None:
    # The oracle's other side: the failures above come from the streams, not the commands.
    for param in PRINTING:
        args, stdin = param.values
        code, stderr = obol_shell(list(args), "> /dev/null", stdin)  # type: ignore[arg-type]
        assert code == 0, (args, stderr)


@pytest.fixture
def fifo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(inputs, "READ_TIMEOUT_SECONDS", 0.5)
    path = tmp_path / "offer.fifo"
    os.mkfifo(path)
    return path


def test_a_fifo_nobody_writes_to_ends_with_one_line_in_bounded_time(
    fifo: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    assert run(["hook", "render", "-f", str(fifo)]) == EXIT_INVALID
    assert time.monotonic() - started < 5
    assert_one_error_line(capfd.readouterr().err, f"{fifo}: no data for 0.5 s")


def test_a_fifo_that_is_written_is_rendered(fifo: Path, capfd: pytest.CaptureFixture[str]) -> None:
    def write() -> None:
        with open(fifo, "wb") as writer:  # blocks until the reader has opened it
            writer.write(EXAMPLE.read_bytes())

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    assert run(["hook", "render", "-f", str(fifo)]) == 0
    writer.join(timeout=5)
    assert "kind: HTTPRoute" in capfd.readouterr().out


def test_a_bug_is_one_line_and_exit_9(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    def broken(*_: object, **__: object) -> str:
        raise KeyError("children")

    monkeypatch.setattr("hooks.cli.hook.format_children", broken)
    assert run(["hook", "render", "-f", str(EXAMPLE)]) == EXIT_INTERNAL
    assert_one_error_line(capfd.readouterr().err, "internal error: KeyError: 'children'")


def test_an_interrupt_is_one_line_and_exit_130(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*_: object, **__: object) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr("hooks.cli.hook.format_children", interrupted)
    assert run(["hook", "render", "-f", str(EXAMPLE)]) == EXIT_INTERRUPTED
    assert_one_error_line(capfd.readouterr().err, "interrupted")
