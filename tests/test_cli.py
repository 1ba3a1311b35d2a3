"""trackpixel --help, --version and --check, run for real."""
import os
import re
import shutil
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import eq, AWS_KEYS  # noqa: E402


def run(args, env):
    return tplib.run_trackpixel(args, env, timeout=30)


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


def journal_entry(doc_id, doc):
    """One format-2 journal entry: the frame, the _bulk action, the document."""
    pair = ('{"create":{"_index":"events","_id":"%s"}}\n%s\n' % (doc_id, doc)).encode()
    return b"#%d %08x\n" % (len(pair), zlib.crc32(pair)) + pair


def test_spool_status_destinations_damaged_and_oldest(es):
    """--spool-status: the journals' destination (never credentials), the
    oldest pending hit from the document's own "date" (not one inside
    body-json, not confused by a document over 64 KiB), damaged files."""
    spool = tempfile.mkdtemp(prefix="tp-spool-")
    port = es.url.rsplit(":", 1)[1]
    url = "http://elastic:hunter2-secret@127.0.0.1:%s/" % port
    date_ms = (int(time.time()) - 3600) * 1000
    doc = ('{"body-json":{"date":1,"pad":"%s"},"context":{"request-id":"r1"},"date":%d,'
           '"@timestamp":"x"}' % ("x" * 100000, date_ms))
    with open(os.path.join(spool, "journal.1.a.ndjson"), "wb") as f:
        f.write(b"#trackpixel-journal 2 http://127.0.0.1:%s events\n" % port.encode())
        f.write(journal_entry("r1", doc))
    damaged = os.path.join(spool, "damaged.journal.1.a.ndjson")
    with open(damaged, "w") as f:
        for i in (1, 2):
            f.write('{"create":{"_index":"events","_id":"dmg-%d"}}\n{"n":%d}\n' % (i, i))
    env = dict(TRACKPIXEL_ES_URL=url, TRACKPIXEL_SPOOL_DIR=spool)
    rc, out, err = run(["--spool-status"], env)
    eq(rc, 0, "exit status (" + err + ")")
    assert "hunter2" not in out + err and "elastic" not in out, out
    lines = out.splitlines()
    eq(lines[1:3], ["journals: 1 (1 without a live worker)",
                    "  for http://127.0.0.1:%s events: 1 entries" % port], "journals")
    m = re.match(r"pending: 1 entries, (\d+) bytes, oldest (\d+) s \(a hit of (.*)\)$", lines[3])
    assert m, lines[3]
    eq(int(m.group(1)), os.path.getsize(os.path.join(spool, "journal.1.a.ndjson")) - len(
        "#trackpixel-journal 2 http://127.0.0.1:%s events\n" % port), "pending bytes")
    assert 3600 <= int(m.group(2)) <= 3660, lines[3]
    eq(m.group(3), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(date_ms // 1000)), "oldest")
    eq(lines[4], "damaged: 1 files (%s/damaged.*, send with --replay)" % spool, "damaged")
    # A damaged file is a _bulk file: --replay sends it (signed: one
    # authentication per configuration, the URL without user:password@).
    rc, out, err = run(["--replay", damaged], dict(AWS_KEYS, TRACKPIXEL_ES_URL=es.url,
                                                   TRACKPIXEL_SPOOL_DIR=spool))
    eq((rc, out), (0, "replayed %s: 2 accepted, 0 rejected, 0 not sent, 0 malformed lines\n"
                   % damaged), "--replay")
    got = {d["id"]: d["source"] for d in es.docs()}
    eq((got.get("dmg-1"), got.get("dmg-2")), ({"n": 1}, {"n": 2}), "replayed documents")
    shutil.rmtree(spool)


if __name__ == "__main__":
    tplib.run_tests(globals(), setup=setup, teardown=teardown)
