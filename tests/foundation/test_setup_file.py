"""``setup.py`` doubles as Beam's ``--setup_file``: its sdist must carry every package to remote workers."""

import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["schemas", "parsers", "alerts", "retention", "pipelines"]


def test_sdist_ships_every_package_and_the_console_script(tmp_path):
    # Beam runs exactly this on the submitting machine, then pip-installs the result on each worker.
    done = subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    [archive] = tmp_path.glob("logwarden-*.tar.gz")
    with tarfile.open(archive) as sdist:
        names = sdist.getnames()
        entry_points = sdist.extractfile(next(n for n in names if n.endswith("entry_points.txt"))).read().decode()
    for package in PACKAGES:
        assert any(n.endswith(f"/{package}/__init__.py") for n in names), package
    modules = {Path(n).name for n in names}
    assert {"batch.py", "regex_format.py", "parquet_files.py", "config.py"} <= modules
    assert "logwarden = pipelines.cli:entry_point" in entry_points
    assert any(n.endswith("pipelines/reports/report.html.j2") for n in names), "the report template must ship"
    assert any(n.endswith("pipelines/reports/vendor/uPlot.iife.min.js") for n in names), "the chart library must ship"
