import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import pytest  # noqa: E402

from agentkd.sandbox.isolation import bwrap_problem  # noqa: E402

if bwrap_problem() and "AGENTKD_SANDBOX" not in os.environ:
    # Without bubblewrap every episode would be refused; run the rest of the suite unsandboxed and
    # say so loudly. The sandbox's own isolation tests are skipped with the reason.
    os.environ["AGENTKD_SANDBOX"] = "none"
    print(f"\nWARNING: {bwrap_problem()}; tests run the Python worker WITHOUT isolation", file=sys.stderr)


@pytest.fixture(scope="session")
def factqa():
    from agentkd import load_environment

    return load_environment("factqa")
