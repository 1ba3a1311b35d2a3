"""paths.py - where the benchmark finds the source tree, the build tree and
the programs it runs; importing it also makes the tests' modules
(tests/tplib.py, tests/webserver.py, tests/fcgi_client.py) importable.

make bench sets TP_SRCDIR and TP_BUILDDIR; run by hand from the source
tree, both default to the directory above this one."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.abspath(os.environ.get("TP_SRCDIR") or os.path.join(HERE, ".."))
BUILDDIR = os.path.abspath(os.environ.get("TP_BUILDDIR") or SRCDIR)
os.environ["TP_SRCDIR"] = SRCDIR
os.environ["TP_BUILDDIR"] = BUILDDIR
if os.path.join(SRCDIR, "tests") not in sys.path:
    sys.path.insert(0, os.path.join(SRCDIR, "tests"))

# The programs the run starts.  bench.py replaces these paths with copies
# made at the start of the run (runner.snapshot_programs), so that a
# rebuild while the run goes on cannot mix two versions in one report.
PROGRAMS = {
    "trackpixel": os.path.join(BUILDDIR, "src", "trackpixel"),
    "bare_pixel": os.path.join(BUILDDIR, "bench", "bare_pixel"),
    "es_fast": os.path.join(BUILDDIR, "bench", "es_fast"),
}
LIB_FLOOR = os.path.join(BUILDDIR, "bench", "lib_floor")
REPORT_LUA = os.path.join(SRCDIR, "bench", "report.lua")
BASELINE = os.path.join(SRCDIR, "bench", "baseline.json")
