"""The report folder on a full disk and read-only: one line, and what an earlier run wrote is
kept whole (analysis/output.py). Real small file systems (tmpfs), mounted where this process may."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import mounted_tmpfs, run_analysis, shared_sweep

pytestmark = pytest.mark.integration
TINY = ["reg.lam=0,0.1", "seed=0", "trainer.steps=30", "trainer.eval_every=10", "model.depth=1", "model.width=16"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """Two jobs on the default data (regression1d); shared with test_groups.py."""
    return shared_sweep(tmp_path_factory, "analysis-tiny", TINY)


def earlier_report(out: Path) -> dict:
    """What an earlier, successful analysis left in `out` (its files' bytes by name)."""
    out.mkdir()
    (out / "report.md").write_text("# Regularization sweep report\n\nthe earlier run's\n")
    (out / "runs.csv").write_text("sweep,job,status\nS,a,completed\n")
    (out / "test_error_vs_lambda.png").write_bytes(b"\x89PNG earlier" * 100)
    return files_in(out)


def files_in(out: Path) -> dict:
    """Every entry below `out`, hidden ones too: a file's bytes, a folder's None."""
    return {str(p.relative_to(out)): p.read_bytes() if p.is_file() else None for p in out.rglob("*")}


def test_a_full_disk_is_one_line_and_leaves_the_earlier_report_whole(tiny, tmp_path):
    """Room for runs.csv, not for the first figure: the run fails at the write that does not
    fit, with one line naming the folder and the reason; the earlier run's files are byte for
    byte as they were, and no half-written file is left (a hidden one neither)."""
    with mounted_tmpfs(tmp_path / "small", "2m") as disk:
        out = disk / "report"
        before = earlier_report(out)
        stats = os.statvfs(disk)
        (disk / "filler").write_bytes(b"\0" * (stats.f_bavail * stats.f_frsize - 20_000))
        proc = run_analysis(tiny, "--out", out)
        assert proc.returncode == 1, proc.stdout
        assert proc.stderr.strip().splitlines() == [
            f"analysis: cannot write the report into {out}: No space left on device; nothing there was changed"]
        assert files_in(out) == before


def test_a_read_only_folder_is_one_line_and_nothing_in_it_changes(tiny, tmp_path):
    """A read-only file system (the tests may run as root, whom chmod does not stop: a remount
    does): for an existing report folder, one to be made in it, and a read-only sweep's own
    (the default, which names --out), one line each."""
    with mounted_tmpfs(tmp_path / "ro", "1m") as disk:
        out = disk / "report"
        before = earlier_report(out)
        shutil.copytree(tiny, disk / "sweep")
        remount = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True, text=True)
        assert remount.returncode == 0, remount.stderr
        for folder in (out, disk / "new" / "report"):
            proc = run_analysis(tiny, "--out", folder)
            assert proc.returncode == 1, proc.stdout
            assert proc.stderr.strip().splitlines() == [
                f"analysis: cannot write the report into {folder}: Read-only file system; nothing there was changed"]
        proc = run_analysis(disk / "sweep")
        assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
            f"analysis: cannot write the report into {disk / 'sweep' / 'analysis'}: Read-only file system; "
            "nothing there was changed (name another folder with --out DIR)"]
        assert files_in(out) == before and sorted(p.name for p in disk.iterdir()) == ["report", "sweep"]
        assert not (disk / "sweep" / "analysis").exists()
