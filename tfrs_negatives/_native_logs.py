"""Quieting what C++ libraries print to stderr: ScaNN's index builds, TF's start-up lines.

ScaNN logs through its own copies of absl (one per ScaNN library), which
`TF_CPP_MIN_LOG_LEVEL` does not reach: every build prints e.g. "Single-machine AH
training with dataset size = ..." at INFO. `quiet_native_logs` captures the process's
stderr (file descriptor 2) during a block and writes back only the lines at or above
the level asked for. `quiet_tensorflow_for_commands` sets `TF_CPP_MIN_LOG_LEVEL=2`
(when unset) before TensorFlow loads, in the package's own commands only.

Stdlib only: imported by `tfrs_negatives/__init__.py` before TensorFlow.
"""

import contextlib
import os
import re
import sys
import tempfile
import threading
from typing import Iterator, List, Optional

LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
DEFAULT_MIN_LEVEL = 1  # unset: hide INFO, keep warnings and errors
COMMAND_MIN_LEVEL = "2"  # the package's commands: errors only
# The package's commands: the console script and the `python -m` modules.
COMMAND_SCRIPTS = ("tfrs-negatives",)
COMMAND_MODULES = ("tfrs_negatives", "tfrs_negatives.export.query")

_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
# absl: "I0000 00:00:1796163016.057056    5385 file.h:178] ..." (before absl is initialised
# the time is seconds since the epoch) or "I1201 22:09:57.080180 ..."; TF (tsl):
# "2026-12-01 22:09:57.080180: E path/file.cc:51] ...".
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] ")
_TSL_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: ([IWEF]) \S+:\d+\] ")
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called"

_lock = threading.Lock()
_depth = 0
_saved_fd: Optional[int] = None
_capture = None


def min_level() -> int:
    """The lowest severity shown (0 INFO .. 3 FATAL): `TF_CPP_MIN_LOG_LEVEL`, else 1."""
    value = os.environ.get(LEVEL_VARIABLE, "").strip()
    return int(value) if value.isdigit() else DEFAULT_MIN_LEVEL


def filter_log_lines(text: str, level: int) -> str:
    """`text` without the log lines (and their continuation lines) below `level`.

    Lines that are not log lines are kept, except absl's notice that it was not
    initialised; a multi-line message follows the fate of its first line.
    """
    kept: List[str] = []
    keep = True
    for line in text.splitlines(keepends=True):
        match = _ABSL_LINE.match(line) or _TSL_LINE.match(line)
        if match:
            keep = _SEVERITY[match.group(1)] >= level
        elif line.startswith(_ABSL_PREAMBLE):
            continue
        if keep:
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def quiet_native_logs(level: Optional[int] = None) -> Iterator[None]:
    """Hides what C/C++ code writes to stderr below `level` during the block.

    Stderr (file descriptor 2, which C++ logging writes to) goes to a temporary file
    inside the block; at its end the captured text is written back to stderr without
    the log lines below `level`. Python's own writes to stderr inside the block are
    written back too (after the block). Nested and concurrent blocks share one capture.

    Args:
      level: Lowest severity kept (0 INFO, 1 WARNING, 2 ERROR, 3 FATAL); None:
        `min_level()` (`TF_CPP_MIN_LOG_LEVEL`, or 1 when unset). 0 captures nothing.
    """
    level = min_level() if level is None else int(level)
    if level <= 0 or not _enter():
        yield
        return
    try:
        yield
    finally:
        _leave(level)


def _enter() -> bool:
    """Starts (or joins) the capture of fd 2; False when fd 2 cannot be captured."""
    global _depth, _saved_fd, _capture  # noqa: PLW0603 - one capture per process
    with _lock:
        if _depth == 0:
            try:
                sys.stderr.flush()
                capture = tempfile.TemporaryFile()
                saved = os.dup(2)
                os.dup2(capture.fileno(), 2)
            except (OSError, ValueError, AttributeError):
                return False
            _saved_fd, _capture = saved, capture
        _depth += 1
        return True


def _leave(level: int) -> None:
    """Ends the capture when the last block leaves; writes back the kept lines."""
    global _depth, _saved_fd, _capture  # noqa: PLW0603
    with _lock:
        _depth -= 1
        if _depth > 0:
            return
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.flush()
        os.dup2(_saved_fd, 2)
        os.close(_saved_fd)
        capture, _saved_fd, _capture = _capture, None, None
    with capture:
        capture.seek(0)
        text = filter_log_lines(capture.read().decode("utf-8", "replace"), level)
    if text:
        os.write(2, text.encode("utf-8"))


def is_package_command(argv: Optional[List[str]] = None) -> bool:
    """Whether this process runs one of the package's commands (`COMMAND_*`).

    Args:
      argv: The interpreter's command line; None: `sys.orig_argv` (which keeps
        `-m module` while the module's package is imported).
    """
    argv = list(getattr(sys, "orig_argv", sys.argv) if argv is None else argv)
    for i, arg in enumerate(argv[1:], start=1):
        if arg == "-m":
            return i + 1 < len(argv) and argv[i + 1] in COMMAND_MODULES
        if arg.startswith("-m"):
            return arg[2:] in COMMAND_MODULES
        if arg == "-c" or not arg.startswith("-"):  # code, or a script: its own arguments follow
            break
    script = os.path.basename(sys.argv[0] if sys.argv else "")
    return script.removesuffix(".exe") in COMMAND_SCRIPTS


def quiet_tensorflow_for_commands() -> None:
    """In the package's commands, `TF_CPP_MIN_LOG_LEVEL=2` unless set, before TF loads.

    TensorFlow reads the variable when it is first imported; a library must not
    change it for its users, so this acts only in the package's own commands.
    """
    if "tensorflow" not in sys.modules and is_package_command():
        os.environ.setdefault(LEVEL_VARIABLE, COMMAND_MIN_LEVEL)
