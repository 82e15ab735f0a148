"""Runs every black-box test (tests/blackbox/test_*.py); exit status 1 on any
failure.  make check runs this after the unit tests."""
import os
import sys
import unittest

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
suite = unittest.defaultTestLoader.discover(here, pattern="test_*.py")
result = unittest.TextTestRunner(verbosity=2).run(suite)
ok = result.wasSuccessful()
import harness  # noqa: E402 (the tests' own, found through sys.path)
left = harness.stop_leftovers()
if left:
    print("%d deye-mitm process(es) left running by the tests (stopped now)"
          % left)
    ok = False
print("%d%%: Checks: %d, Failures: %d, Errors: %d" % (
    100 * (result.testsRun - len(result.failures) - len(result.errors))
    // max(result.testsRun, 1), result.testsRun, len(result.failures),
    len(result.errors)))
sys.exit(0 if ok else 1)
