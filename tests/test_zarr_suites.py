"""zarr's own pipeline-agnostic suites, run with cuzarr as the pipeline.

zarr keeps the behaviour every codec pipeline must share in `CodecPipelineTests`
(tests/test_codec_pipeline_suite.py: one subclass per pipeline, each over a sync and an
async-only store) and checks two pipelines against each other in a matrix of codecs,
layouts and write sequences (tests/test_pipeline_parity.py). Neither ships in zarr's
wheel: both come from the source distribution of the zarr version installed, fetched once
by pip into .cache/. cuzarr runs as a `CodecPipelineTests` subclass, and in the matrix in
the place of zarr's FusedCodecPipeline, with zarr's BatchedCodecPipeline the other side.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import zarr

ROOT = Path(__file__).resolve().parent.parent
SUITES = ("test_codec_pipeline_suite.py", "test_pipeline_parity.py")

#: the module pytest runs beside zarr's two: cuzarr plugged into both suites
RUNNER = '''
import test_pipeline_parity as parity
from test_codec_pipeline_suite import CodecPipelineTests

parity._FUSED = "cuzarr.PhasedCodecPipeline"  # the matrix's second pipeline is cuzarr

from test_pipeline_parity import (  # noqa: E402,F401
    test_pipeline_parity,
    test_pipeline_parity_outer_aa_bb_codecs,
    test_pipeline_parity_subchunk_write_order,
)


class TestCuzarrPipeline(CodecPipelineTests):
    pipeline_path = "cuzarr.PhasedCodecPipeline"
'''


def zarr_suites() -> Path:
    """The folder holding zarr's two suites for the installed zarr version (fetched from
    its sdist the first time; $CUZARR_ZARR_SUITES points elsewhere)."""
    version = zarr.__version__
    folder = Path(os.environ.get("CUZARR_ZARR_SUITES")
                  or ROOT / ".cache" / f"zarr-{version}-suites")
    if all((folder / name).exists() for name in SUITES):
        return folder
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--no-binary", ":all:", f"zarr=={version}", "-d", tmp],
                       check=True, timeout=900)
        (sdist,) = Path(tmp).glob("zarr-*.tar.gz")
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(sdist) as tar:
            for name in SUITES:
                member = tar.getmember(f"zarr-{version}/tests/{name}")
                source = tar.extractfile(member)
                assert source is not None
                (folder / name).write_bytes(source.read())
    return folder


def test_zarrs_pipeline_suites_pass_with_cuzarr(tmp_path: Path) -> None:
    folder = zarr_suites()
    for name in SUITES:
        shutil.copy(folder / name, tmp_path / name)
    (tmp_path / "test_cuzarr_in_zarr_suites.py").write_text(RUNNER)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "test_cuzarr_in_zarr_suites.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    tail = result.stdout[-4000:] + result.stderr[-2000:]
    assert result.returncode == 0, tail
    passed = re.search(r"(\d+) passed", result.stdout)
    # both suites ran: the CodecPipelineTests subclass (tens of tests) and the matrix
    assert passed is not None and int(passed.group(1)) >= 300, tail
    assert "TestCuzarrPipeline" in subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "test_cuzarr_in_zarr_suites.py"], cwd=tmp_path, capture_output=True,
        text=True, timeout=600).stdout
