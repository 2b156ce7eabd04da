"""The scoring path must not need torch: a worker image ships without it."""

import subprocess
import sys

from tests.conftest import ROOT


def test_scoring_modules_do_not_import_torch():
    code = (
        "import sys\n"
        "import models.detector, models.scorer, models.detection, commands.evaluate, logkeys.vocabulary\n"
        "import sequences.readers, evaluation.metrics\n"
        "assert 'torch' not in sys.modules, 'torch was imported on the scoring path'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
