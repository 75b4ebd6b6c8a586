"""fkp's tests, one folder per subpackage of fkp (tests/data, tests/models, ...), the leaf
modules' and whole-package tests (layout, wheel, faults) at the top."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout
FIXTURES = Path(__file__).resolve().parent / "fixtures"
