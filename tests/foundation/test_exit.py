"""The command ends without the interpreter's teardown, and without losing what that teardown would do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.operator.helpers import env, logwarden

#: A process that leaves everything the ordinary exit takes care of: buffered output on a pipe, a thread
#: still working, a thread pool, an exit handler, a temporary directory to remove.
PENDING = """\
import atexit, concurrent.futures, sys, tempfile, threading, time
from pathlib import Path
out = Path(sys.argv[1])
sys.stdout.write("buffered, not flushed")
threading.Thread(target=lambda: (time.sleep(0.5), (out / "thread").write_text("done"))).start()
concurrent.futures.ThreadPoolExecutor(1).submit(lambda: (time.sleep(0.5), (out / "pool").write_text("done")))
atexit.register(lambda: (out / "atexit").write_text("ran"))
kept = tempfile.TemporaryDirectory()
(out / "tmpdir").write_text(kept.name)
from pipelines.cli import exit_without_teardown
exit_without_teardown(3)
"""


def test_exit_keeps_threads_handlers_output_and_the_exit_code(tmp_path):
    done = subprocess.run([sys.executable, "-c", PENDING, str(tmp_path)], capture_output=True, text=True, env=env())
    assert done.returncode == 3, done.stderr
    assert done.stdout == "buffered, not flushed"
    assert (tmp_path / "thread").read_text() == (tmp_path / "pool").read_text() == "done"
    assert (tmp_path / "atexit").read_text() == "ran"
    assert not Path((tmp_path / "tmpdir").read_text()).exists()


def test_the_command_exit_codes_are_kept():
    assert logwarden("version").returncode == 0
    assert logwarden("bach").returncode == 2  # argparse's own exit
    assert logwarden("parse", "/no/such/file.log").returncode == 2
