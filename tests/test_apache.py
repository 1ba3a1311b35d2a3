#!/usr/bin/python3
"""trackpixel under a real Apache 2.4 (event MPM, mod_fcgid) with the shipped
apache/trackpixel.conf, posting to the Elasticsearch stand-in, which checks
every SigV4 signature (and the session token) with botocore.

The configuration is rendered from the shipped file by tests/webserver.py
(paths and settings edited on their lines, nothing copied).  Everything
listens on 127.0.0.1.  Runs as root (Apache then drops to www-data, as
Debian's does) or as an ordinary user.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import eq, AWS_KEYS  # noqa: E402
import webserver  # noqa: E402
from webserver import Apache, Load, send, check_response, expected_document  # noqa: E402
from es_standin import Standin  # noqa: E402

STAGE_VARS = {"site": "www.example.com"}
CLEAN_EXIT = "terminated by calling exit(), return code: 0"   # mod_fcgid's words
# mod_fcgid 2.3 cuts FcgidInitialEnv values to 127 bytes (apache/trackpixel.conf
# says so, and why AWS_SESSION_TOKEN cannot come that way): pinned here.
LONG_VALUE = "v" * 200
SETTINGS = {"AWS_REGION": AWS_KEYS["AWS_REGION"], "TRACKPIXEL_STAGE": "staging",
            "TRACKPIXEL_API_ID": "pixel-test", "TRACKPIXEL_STAGE_VAR_site": STAGE_VARS["site"]}
SECRETS = {k: v for k, v in AWS_KEYS.items() if k != "AWS_REGION"}
GET_HEADERS = [("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) tp-test"),
               ("Referer", "https://example.com/page?a=1"),
               ("Accept", "image/avif,image/webp,*/*"),
               ("Accept-Language", "en-GB,en;q=0.8"),
               ("X-Forwarded-For", "203.0.113.9"),
               ("Cookie", "session=abc"),
               ("DNT", "1"),
               ("Authorization", "Basic c2VjcmV0")]
# As trackpixel names them; Authorization is never recorded.
GET_RECORDED = {"Host": None, "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) tp-test",
                "Referer": "https://example.com/page?a=1", "Accept": "image/avif,image/webp,*/*",
                "Accept-Language": "en-GB,en;q=0.8", "X-Forwarded-For": "203.0.113.9",
                "Cookie": "session=abc", "Dnt": "1"}


class Ctx:
    pass


def setup():
    c = Ctx()
    c.es = tplib.signed_standin()
    settings = dict(SETTINGS, TRACKPIXEL_ES_URL=c.es.url)
    c.srv = Apache(settings=settings, secrets=SECRETS,
                   extra_env={"TRACKPIXEL_STAGE_VAR_long": LONG_VALUE})
    try:
        c.srv.start()
    except Exception:
        teardown(c)
        raise
    return c


teardown = webserver.teardown
recorded = webserver.recorded


def stage_vars():
    return dict(STAGE_VARS, long=LONG_VALUE[:127])


def one_doc(c, rid):
    docs = tplib.wait_for(lambda: c.es.docs() or None, 20, "the document")
    time.sleep(0.2)                     # anything else would be a second one
    docs = c.es.docs()
    eq([(d["index"], d["id"]) for d in docs], [("events", rid)], "documents")
    return docs[0]["source"]


def ms():
    return int(time.time() * 1000)


# ------------------------------------------------------------------ shipped

def test_shipped_file_names_every_variable(c):
    """Every variable of `trackpixel --help` is in the shipped file (set, or
    shown commented out, or - the secrets - explained)."""
    out = subprocess.run([webserver.BINARY, "--help"], capture_output=True, text=True).stdout
    names = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    with open(webserver.APACHE_CONF) as f:
        text = f.read()
    missing = [n for n in names if n.replace("<name>", "") not in text]
    eq(missing, [], "variables of --help missing from apache/trackpixel.conf")


def test_shipped_file_as_is_passes_configtest(c):
    """The file exactly as shipped (no substitution at all), included the way
    conf-enabled/ is: apache2 -t says Syntax OK."""
    d = c.srv.dir
    conf = os.path.join(d, "configtest.conf")
    with open(conf, "w") as f:
        f.write("\n".join([
            "ServerRoot %s" % d, "DefaultRuntimeDir %s" % c.srv.rundir,
            "PidFile %s/configtest.pid" % c.srv.rundir, "ErrorLog /dev/null",
            "Listen 127.0.0.1:%d" % tplib.free_port(), "ServerName 127.0.0.1"] +
            ["LoadModule %s_module %s/mod_%s.so" % (m, webserver.APACHE_MODULES, m)
             for m in ("mpm_event", "authz_core", "alias", "fcgid")] +
            ["Include %s" % webserver.APACHE_CONF, ""]))
    p = subprocess.run(["apache2", "-t", "-f", conf], capture_output=True, text=True)
    eq((p.returncode, p.stderr.strip()), (0, "Syntax OK"), "apache2 -t")


def test_shipped_file_needs_mod_fcgid(c):
    """Enabled without a2enmod fcgid: a clear refusal, not a puzzle."""
    d = c.srv.dir
    conf = os.path.join(d, "nofcgid.conf")
    with open(conf, "w") as f:
        f.write("ServerRoot %s\nDefaultRuntimeDir %s\nErrorLog /dev/null\n"
                "LoadModule mpm_event_module %s/mod_mpm_event.so\nInclude %s\n"
                % (d, c.srv.rundir, webserver.APACHE_MODULES, webserver.APACHE_CONF))
    p = subprocess.run(["apache2", "-t", "-f", conf], capture_output=True, text=True)
    assert p.returncode != 0 and "run a2enmod fcgid" in p.stderr, p.stderr


# ------------------------------------------------------------ one request

def test_get_with_query_and_headers(c):
    c.es.reset()
    conn = c.srv.connection()
    before = ms()
    r = send(conn, "GET", "/pixel/campaigns/7?utm_source=news&utm_campaign=winter+sale"
             "&x=%F0%9F%98%80&x=2&flag", GET_HEADERS)
    after = ms()
    conn.close()
    rid = check_response(c.srv, r, "GET", 200)
    src = one_doc(c, rid)
    webserver.check_document(src, expected_document(
        c.srv, "GET", rid, {"utm_source": "news", "utm_campaign": "winter sale", "x": "2",
                            "flag": ""},
        recorded(c, GET_RECORDED), proxy="campaigns/7", stage="staging", stage_vars=stage_vars(),
        api_id="pixel-test", user_agent=GET_RECORDED["User-Agent"]), before, after)


def test_head(c):
    c.es.reset()
    conn = c.srv.connection()
    before = ms()
    r = send(conn, "HEAD", "/pixel?via=head", [("User-Agent", "tp-test-head")])
    after = ms()
    conn.close()
    rid = check_response(c.srv, r, "HEAD", 200)
    src = one_doc(c, rid)
    webserver.check_document(src, expected_document(
        c.srv, "HEAD", rid, {"via": "head"},
        recorded(c, {"Host": None, "User-Agent": "tp-test-head"}), stage="staging",
        stage_vars=stage_vars(), api_id="pixel-test", user_agent="tp-test-head"), before, after)


def test_post_json_body(c):
    c.es.reset()
    body = b'{"event":"click","n":2,"nested":{"list":[1,"\\u00e9",null]},"ok":true}'
    conn = c.srv.connection()
    before = ms()
    r = send(conn, "POST", "/pixel?beacon=1", [("User-Agent", "tp-test-beacon"),
                                              ("Content-Type", "application/json")], body)
    after = ms()
    conn.close()
    rid = check_response(c.srv, r, "POST", 200)
    src = one_doc(c, rid)
    webserver.check_document(src, expected_document(
        c.srv, "POST", rid, {"beacon": "1"},
        recorded(c, {"Host": None, "User-Agent": "tp-test-beacon",
                     "Content-Type": "application/json", "Content-Length": str(len(body))}),
        body_json={"event": "click", "n": 2, "nested": {"list": [1, "\u00e9", None]},
                   "ok": True},
        stage="staging", stage_vars=stage_vars(), api_id="pixel-test",
        user_agent="tp-test-beacon"), before, after)


def test_put_is_405_without_document(c):
    c.es.reset()
    conn = c.srv.connection()
    r = send(conn, "PUT", "/pixel?x=1", [("User-Agent", "tp-test-put"),
                                        ("Content-Type", "application/json")], b'{"a":1}')
    check_response(c.srv, r, "PUT", 405)
    # A GET after it, on the same connection: its document is the only one.
    rid = check_response(c.srv, send(conn, "GET", "/pixel?after=put", []), "GET", 200)
    conn.close()
    src = one_doc(c, rid)
    eq(src["params"]["querystring"], {"after": "put"}, "the GET's document")


def test_every_request_signed_with_the_session_token(c):
    reqs = c.es.requests()
    assert reqs, "no request reached the stand-in"
    eq([(r["method"], r["sig_ok"], r["token_ok"], r["status"]) for r in reqs],
       [("POST", True, True, 201)] * len(reqs), "cluster requests")


def test_initial_env_values_are_cut_at_127_bytes(c):
    """Why the Apache configuration cannot carry AWS_SESSION_TOKEN: the
    200-byte stage variable arrived as its first 127 bytes."""
    c.es.reset()
    conn = c.srv.connection()
    rid = check_response(c.srv, send(conn, "GET", "/pixel?len=1", []), "GET", 200)
    conn.close()
    eq(len(one_doc(c, rid)["stage-variables"]["long"]), 127, "length of the 200-byte value")


# ------------------------------------------------------------------- load

def test_2000_hits_16_connections(c):
    c.es.reset()
    start = time.monotonic()
    load = Load(c.srv.port, conns=16, tag="load").run(2000)
    took = time.monotonic() - start
    eq(load.failures, [], "failed attempts")
    eq(len(load.pixels), 2000, "pixels")
    summary = webserver.check_load_documents(c.es, load, exact=True)
    eq(len(c.es.docs()), 2000, "documents")
    print("# 2000 hits in %.1f s: %s" % (took, summary), flush=True)


def test_graceful_restart_under_load(c):
    """apache2 -k graceful (systemctl reload apache2) while 16 connections
    hit the pixel: mod_fcgid ends every trackpixel (SIGTERM, SIGKILL 1 s
    later), new ones take over.  No hit that got a pixel may lose its
    document, and every old process must have exited by itself, status 0."""
    c.es.reset()
    webserver.tplib.wait_for(lambda: c.srv.trackpixel_pids(), 10, "trackpixel processes")
    old = set(c.srv.trackpixel_pids())
    load = Load(c.srv.port, conns=16, tag="restart").start()
    try:
        webserver.wait_pixels(load, 300)
        old |= set(c.srv.trackpixel_pids())
        c.srv.graceful()
        tplib.wait_for(lambda: not (old & set(c.srv.trackpixel_pids())), 20,
                       "the old trackpixel processes to exit")
        at_restart = len(load.pixels)
        webserver.wait_pixels(load, at_restart + 300, what="pixels after the restart")
    finally:
        load.stop()
    new = set(c.srv.trackpixel_pids())
    assert new and not (new & old), (old, new)
    summary = webserver.check_load_documents(c.es, load, exact=False)
    exits = {pid: how for pid, _, how in c.srv.fcgid_exits() if pid in old}
    eq(sorted(exits), sorted(old), "old processes whose end mod_fcgid logged")
    eq(webserver.unclean(exits, c.srv.ready, CLEAN_EXIT), {},
       "old processes that did not exit by themselves with status 0")
    print("# graceful restart: %d old processes, %d exit(0); %s"
          % (len(old), sum(h == CLEAN_EXIT for h in exits.values()), summary), flush=True)


def test_graceful_restart_with_a_slow_cluster(c):
    """The same restart while every post takes 4 s: the processes get
    SIGTERM in the middle of a post.  None is killed (mod_fcgid's SIGKILL
    comes after 8 s, and TRACKPIXEL_TIMEOUT_MS + TRACKPIXEL_SHUTDOWN_MS stay
    under that), and every hit that got a pixel has its document.

    Hits mod_fcgid had queued on a process busy posting are answered by it
    before it exits: no request fails.  Seen, and only reported here: Apache
    serves nothing until the old processes have exited (the stall printed;
    apache/README.md)."""
    old = set(c.srv.trackpixel_pids())
    load, stalled = webserver.restart_with_slow_cluster(c.srv, c.es)
    summary = webserver.check_load_documents(c.es, load, exact=False)
    exits = {pid: how for pid, _, how in c.srv.fcgid_exits()
             if pid in old or pid in c.srv.known}
    eq(webserver.unclean(exits, c.srv.ready, CLEAN_EXIT), {},
       "processes that did not exit by themselves with status 0")
    assert "terminating forcefully" not in c.srv.error_log(), "mod_fcgid sent SIGKILL"
    # Every request that reached a trackpixel process got its pixel: no
    # HTTP error.  A keep-alive connection that Apache closes at the restart
    # just as the client reuses it (RemoteDisconnected) never reached one;
    # browsers retry those.
    eq([f for f in load.failures if f[2].startswith("HTTP")], [], "requests answered with an error")
    print("# restart, 4 s per post: no answer for %.1f s; %s" % (stalled, summary), flush=True)


def test_graceful_stop_under_load(c):
    """apache2 -k graceful-stop (what systemctl stop apache2 runs on Debian)
    while the load goes on: every hit that got a pixel has its document,
    every trackpixel process exits with status 0, nothing of ours remains,
    and the journal directory holds nothing undelivered."""
    c.es.reset()
    load = Load(c.srv.port, conns=16, tag="stop").start()
    try:
        webserver.wait_pixels(load, 300)
        procs = set(c.srv.trackpixel_pids())
        left = c.srv.stop("graceful-stop")
    finally:
        load.stop()
    eq(left, {}, "processes of ours still running after the stop")
    summary = webserver.check_load_documents(c.es, load, exact=False)
    exits = {pid: how for pid, _, how in c.srv.fcgid_exits() if pid in procs}
    eq(sorted(exits), sorted(procs), "processes whose end mod_fcgid logged")
    eq(webserver.unclean(exits, c.srv.ready, CLEAN_EXIT), {},
       "processes that did not exit by themselves with status 0")
    eq([f for f in c.srv.spool_files() if not f.startswith("dead")], [],
       "journal files left with undelivered documents")
    print("# graceful-stop: %d processes, %d exit(0); %s"
          % (len(procs), sum(h == CLEAN_EXIT for h in exits.values()), summary), flush=True)


if __name__ == "__main__":
    tplib.run_tests(globals(), setup=setup, teardown=teardown)
