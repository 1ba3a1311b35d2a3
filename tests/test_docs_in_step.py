"""README, --help and the man page name the same variables as the code's table."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import eq  # noqa: E402


def help_variables():
    out = subprocess.run([tplib.TRACKPIXEL, "--help"], capture_output=True,
                         timeout=10).stdout.decode()
    names = re.findall(r"^  ((?:TRACKPIXEL|AWS)_[A-Z_<>a-z]+)\s", out, re.M)
    assert len(names) >= 20, names
    return names


def read(path):
    with open(os.path.join(tplib.SRCDIR, path), encoding="utf-8") as f:
        return f.read()


def test_man_page_names_every_variable():
    man = read("trackpixel.8").replace("\\-", "-").replace("\\fI", "").replace("\\fR", "")
    man = man.replace(".BI TRACKPIXEL_STAGE_VAR_ name", "TRACKPIXEL_STAGE_VAR_<name>")
    missing = [v for v in help_variables() if v not in man]
    eq(missing, [], "variables missing from trackpixel.8")


def test_readme_names_every_variable():
    readme = read("README.md")
    missing = [v for v in help_variables() if v not in readme]
    eq(missing, [], "variables missing from README.md")


def test_no_stray_variables_in_docs():
    known = set(help_variables()) | {"TRACKPIXEL_STAGE_VAR_"}
    for path in ("README.md", "trackpixel.8"):
        text = read(path).replace("\\-", "-")
        found = set(re.findall(r"\bTRACKPIXEL_[A-Z_]+[A-Z]\b", text))
        stray = sorted(n for n in found
                       if n not in known and not n.startswith("TRACKPIXEL_STAGE_VAR_"))
        eq(stray, [], "variables in %s that the program does not know" % path)


def apt_packages(text):
    """The packages of the first `apt-get install` in text (up to its `&&` or
    the end of the command)."""
    m = re.search(r"apt-get install ((?:[^&|>]|\\\n)*)", text)
    assert m, "no apt-get install"
    return {w for w in m.group(1).replace("\\\n", " ").split() if not w.startswith("-")}


def test_ci_installs_what_the_readme_lists():
    """.ci/run installs every package of README's "Run the tests" line."""
    readme = read("README.md")
    section = readme[readme.index("## Run the tests"):]
    want = apt_packages(section)
    assert {"check", "valgrind", "lighttpd", "apache2"} <= want, want
    eq(sorted(want - apt_packages(read(".ci/run"))), [],
       "packages of README's test command that .ci/run does not install")


if __name__ == "__main__":
    tplib.run_tests(globals())
