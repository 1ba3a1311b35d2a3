"""trackpixel --help, --version and --check, run for real."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import eq, AWS_KEYS  # noqa: E402
from es_standin import Standin  # noqa: E402


def run(args, env):
    env = dict(env, PATH="/usr/bin:/bin")
    p = subprocess.run([tplib.TRACKPIXEL] + args, env=env, capture_output=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def setup():
    return tplib.signed_standin()


def teardown(es):
    es.stop()


def test_version(es):
    rc, out, _ = run(["--version"], {})
    eq((rc, out), (0, "trackpixel 0.1.0\n"), "--version")


def test_help_lists_every_variable_with_default(es):
    rc, out, _ = run(["--help"], {})
    eq(rc, 0, "exit")
    for name, default in [("TRACKPIXEL_ES_URL", None), ("TRACKPIXEL_ES_INDEX", "events"),
                          ("TRACKPIXEL_AWS_SERVICE", "es"), ("TRACKPIXEL_STAGE", "prod"),
                          ("TRACKPIXEL_CONNECT_TIMEOUT_MS", "2000"),
                          ("TRACKPIXEL_TIMEOUT_MS", "5000"),
                          ("TRACKPIXEL_OUTPUT", "events.ndjson"), ("AWS_SESSION_TOKEN", None)]:
        line = [l for l in out.splitlines() if l.split()[:1] == [name]]
        eq(len(line), 1, name + " in --help")
        if default:
            assert '(default "%s")' % default in line[0], line[0]


def test_unknown_option(es):
    rc, _, err = run(["--bogus"], {})
    eq((rc, err), (2, "trackpixel: unknown option --bogus (see --help)\n"), "usage error")


def test_check_reachable_cluster_masks_secrets(es):
    env = dict(AWS_KEYS, TRACKPIXEL_ES_URL=es.url)
    rc, out, err = run(["--check"], env)
    eq(rc, 0, "exit status (" + out + ")")
    assert "cluster: %s/ answered HTTP 200 (cluster_name " % es.url in out, out
    assert "signing: AWS SigV4" in out, out
    assert "AWS_ACCESS_KEY_ID=****MPLE" in out, out
    assert "AWS_SECRET_ACCESS_KEY=(set, hidden)" in out, out
    tplib.assert_no_secrets(out + err)
    r = [x for x in es.requests() if x["method"] == "GET" and x["path"] == "/"][-1]
    eq((r["status"], r["sig_ok"], r["token_ok"]), (200, True, True), "signed GET /")


def test_check_refused_by_cluster(es):
    env = dict(AWS_KEYS, TRACKPIXEL_ES_URL=es.url,
               AWS_SECRET_ACCESS_KEY="wrong-wrong-wrong-wrong-wrong-wrong-wron")
    rc, out, err = run(["--check"], env)
    eq(rc, 1, "exit status")
    assert "answered but refused: HTTP 403: The request signature we calculated" in out, out
    assert "wrong-wrong" not in out + err


def test_check_unreachable_cluster(es):
    url = "http://127.0.0.1:%d" % tplib.free_port()
    rc, out, _ = run(["--check"], {"TRACKPIXEL_ES_URL": url})
    eq(rc, 1, "exit status")
    assert "cluster: %s/ is unreachable: no answer: " % url in out, out
    assert "signing: off" in out, out


def test_check_password_in_url_is_masked(es):
    url = "http://elastic:hunter2-secret@127.0.0.1:%d" % tplib.free_port()
    rc, out, err = run(["--check"], {"TRACKPIXEL_ES_URL": url})
    eq(rc, 1, "exit status")
    assert "hunter2" not in out + err, out
    assert "http://elastic:****@127.0.0.1:" in out, out


def test_check_bad_configuration(es):
    rc, out, _ = run(["--check"], {"TRACKPIXEL_ES_URL": "ftp://x"})
    eq(rc, 1, "exit status")
    eq(out, "configuration: error: TRACKPIXEL_ES_URL: not an http:// or https:// URL "
            "with a host (and no query or fragment)\n", "output")


def test_check_embedded_default(es):
    rc, out, _ = run(["--check"], {"TRACKPIXEL_OUTPUT": "/nonexistent-dir/x.ndjson"})
    eq(rc, 1, "exit status")
    assert "output: error: cannot open /nonexistent-dir/x.ndjson: No such file or directory" in out, out


if __name__ == "__main__":
    tplib.run_tests(globals(), setup=setup, teardown=teardown)
