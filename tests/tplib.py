"""Shared helpers for trackpixel's integration tests.

Tests are plain functions named test_*; run_tests() runs them in file order and
prints TAP (automake's tap-driver counts each one).  Nothing here talks to any
address but loopback.
"""
import os
import sys
import traceback

BUILDDIR = os.environ.get("TP_BUILDDIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
SRCDIR = os.environ.get("TP_SRCDIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
TESTDIR = os.path.join(SRCDIR, "tests")
PYTHON = os.environ.get("TEST_PYTHON", "/usr/bin/python3")


def run_tests(namespace, setup=None, teardown=None):
    """Run every test_* function of namespace (a module's globals()) as TAP."""
    tests = [(name, fn) for name, fn in namespace.items()
             if name.startswith("test_") and callable(fn)]
    print("1..%d" % len(tests), flush=True)
    failed = 0
    ctx = None
    try:
        if setup:
            ctx = setup()
        for i, (name, fn) in enumerate(tests, 1):
            try:
                if ctx is None:
                    fn()
                else:
                    fn(ctx)
                print("ok %d - %s" % (i, name), flush=True)
            except Exception:
                failed += 1
                print("not ok %d - %s" % (i, name), flush=True)
                for line in traceback.format_exc().splitlines():
                    print("# " + line, flush=True)
    finally:
        if teardown and ctx is not None:
            teardown(ctx)
    sys.exit(1 if failed else 0)


def eq(actual, expected, what=""):
    """assert actual == expected, with both shown on failure."""
    if actual != expected:
        raise AssertionError("%s: expected %r, got %r" % (what or "value", expected, actual))
