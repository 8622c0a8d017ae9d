"""Quiet C++ logs: ScaNN's index builds print no INFO lines, the commands no TF start-up lines."""

import json
import os
import re
import subprocess
import sys
import textwrap

from tfrs_negatives import _native_logs
from tfrs_negatives._native_logs import filter_log_lines, is_package_command, quiet_native_logs

import pytest

AH_LINE = "Single-machine AH training"
# A TensorFlow (tsl) or absl log line, e.g. "2026-12-01 22:09:57.080180: I path.cc:51] ..."
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \S+: [IWEF] |[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ )", re.M)

ABSL_INFO = "I0000 00:00:1796163016.057056    5385 single_machine_factory_impl.h:178] AH\n"
ABSL_WARNING = "W0000 00:00:1796162996.905194    4901 gmm_utils.cc:1026] zero norm\n"
TSL_ERROR = "2026-12-01 22:09:57.080180: E external/cuda_platform.cc:51] cuInit\n"
PREAMBLE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
)


def test_filter_keeps_lines_at_or_above_the_level():
    text = PREAMBLE + ABSL_INFO + "  continued info\n" + ABSL_WARNING + TSL_ERROR + "plain\n"
    assert filter_log_lines(text, 0) == text.replace(PREAMBLE, "")
    assert filter_log_lines(text, 1) == ABSL_WARNING + TSL_ERROR + "plain\n"
    assert filter_log_lines(text, 2) == TSL_ERROR + "plain\n"
    assert filter_log_lines(text, 3) == ""  # "plain" continues the error message


def test_min_level_reads_tf_cpp_min_log_level(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert _native_logs.min_level() == 1
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    assert _native_logs.min_level() == 3
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "not a number")
    assert _native_logs.min_level() == 1


def test_quiet_native_logs_writes_back_only_kept_lines(capfd):
    capfd.readouterr()
    with quiet_native_logs(level=1):
        os.write(2, ABSL_INFO.encode())
        with quiet_native_logs(level=1):  # nested: one capture
            os.write(2, ABSL_WARNING.encode())
        os.write(2, TSL_ERROR.encode())
        assert capfd.readouterr().err == ""  # held until the block ends
    assert capfd.readouterr().err == ABSL_WARNING + TSL_ERROR
    os.write(2, b"after\n")  # stderr is back
    assert capfd.readouterr().err == "after\n"


def test_quiet_native_logs_at_level_0_captures_nothing(capfd):
    capfd.readouterr()
    with quiet_native_logs(level=0):
        os.write(2, ABSL_INFO.encode())
        assert capfd.readouterr().err == ABSL_INFO


def test_quiet_native_logs_writes_back_when_the_block_raises(capfd):
    capfd.readouterr()
    with pytest.raises(RuntimeError, match="build failed"):
        with quiet_native_logs(level=1):
            os.write(2, ABSL_INFO.encode() + TSL_ERROR.encode())
            raise RuntimeError("build failed")
    assert capfd.readouterr().err == TSL_ERROR


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["python", "-m", "tfrs_negatives", "compare"], True),
        (["python", "-mtfrs_negatives", "compare"], True),
        (["python", "-u", "-m", "tfrs_negatives.export.query", "path"], True),
        (["python", "-m", "pytest", "-m", "tfrs_negatives"], False),
        (["python", "script.py", "-m", "tfrs_negatives"], False),
        (["python", "-c", "pass", "-m", "tfrs_negatives"], False),
    ],
)
def test_is_package_command(argv, expected):
    assert is_package_command(argv) is expected


def test_console_script_is_a_package_command(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/venv/bin/tfrs-negatives", "--help"])
    assert is_package_command(["/venv/bin/python3", "/venv/bin/tfrs-negatives", "--help"])
    monkeypatch.setattr(sys, "argv", ["/venv/bin/other-tool"])
    assert not is_package_command(["/venv/bin/python3", "/venv/bin/other-tool"])


# ---- in fresh processes ----

BUILDS = """
import json
import numpy as np
import tfrs_negatives
import tensorflow as tf
from tfrs_negatives.export.scann_index import ScaNNIndex
from tfrs_negatives.mining.search import ExactSearch, ScaNNSearch
from tfrs_negatives.scann_config import scann_options

# 1,000 points: no tree, asymmetric hashing (which logs its training at INFO).
points = np.random.default_rng(0).normal(size=(1000, 16)).astype(np.float32)
queries = points[:50]
exact, _ = ExactSearch().build(points).search(queries, 10)
mined, _ = ScaNNSearch().build(points, k=10).search(queries, 10)
layer = ScaNNIndex(k=10, **scann_options(1000, 10))
layer.index(tf.constant(points))
_, served = layer(tf.constant(queries))
overlap = lambda got: float(np.mean([len(set(g) & set(e)) / 10 for g, e in zip(got, exact)]))
print(json.dumps({"mined": overlap(mined), "served": overlap(served.numpy())}))
"""


def _python(args, level):
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    return subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


@pytest.fixture(scope="module")
def runs():
    """Fresh processes, all at once: ScaNN builds and the commands' --help."""
    procs = {
        "builds/unset": _python(["-c", textwrap.dedent(BUILDS)], None),
        "builds/2": _python(["-c", textwrap.dedent(BUILDS)], "2"),
        "builds/0": _python(["-c", textwrap.dedent(BUILDS)], "0"),
        "compare -m": _python(["-m", "tfrs_negatives", "compare", "--help"], None),
        "compare script": _python(
            [
                "-c",
                "import sys; sys.argv[0] = 'tfrs-negatives'\n"
                "from tfrs_negatives.experiments.compare import main_exit; main_exit()",
                "--help",
            ],
            None,
        ),
    }
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name}:\n{stderr[-3000:]}"
        out[name] = (stdout, stderr)
    return out


@pytest.mark.parametrize("level", ["unset", "2"])
def test_scann_builds_print_no_info_lines(runs, level):
    stdout, stderr = runs[f"builds/{level}"]
    assert AH_LINE not in stdout and AH_LINE not in stderr
    overlap = json.loads(stdout.strip().splitlines()[-1])
    assert overlap["mined"] >= 0.9 and overlap["served"] >= 0.9  # the builds worked


def test_scann_builds_keep_info_lines_when_asked(runs):
    _, stderr = runs["builds/0"]  # TF_CPP_MIN_LOG_LEVEL=0: the user wants everything
    assert stderr.count(AH_LINE) == 2


@pytest.mark.parametrize("name", ["compare -m", "compare script"])
def test_compare_help_prints_no_tensorflow_log_lines(runs, name):
    stdout, stderr = runs[name]
    assert stdout.startswith("usage: tfrs-negatives compare")
    assert not LOG_LINE.search(stdout + stderr), stderr
    assert "oneDNN" not in stderr
