"""The mutation run (benchmarks/mutations.py) stays applicable as the code moves: each mutation's
code is found exactly once where it says, and the tests it names exist."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_mutation_applies_to_the_code_as_it_is():
    spec = importlib.util.spec_from_file_location("mutations", ROOT / "benchmarks" / "mutations.py")
    mutations = importlib.util.module_from_spec(spec)
    sys.modules["mutations"] = mutations  # its dataclass looks itself up there
    spec.loader.exec_module(mutations)
    assert len(mutations.MUTATIONS) >= 20
    for mutation in mutations.MUTATIONS:
        code = (ROOT / mutation.path).read_text()
        assert code.count(mutation.old) == 1, f"{mutation.name}: not found once in {mutation.path}"
        for test in mutation.tests:
            path, _, name = test.partition("::")
            assert (ROOT / path).exists(), test
            assert not name or f"def {name}(" in (ROOT / path).read_text(), test
