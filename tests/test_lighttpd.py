#!/usr/bin/python3
"""trackpixel under a real lighttpd 1.4 with the shipped lighttpd/ files,
posting to the Elasticsearch stand-in, which checks every SigV4 signature
(and the session token) with botocore.

lighttpd/50-trackpixel.conf (lighttpd spawns trackpixel) is rendered from
the shipped file by tests/webserver.py, nothing copied; so is
lighttpd/50-trackpixel-socket.conf, with trackpixel started by spawn-fcgi
exactly as lighttpd/README.md says; and lighttpd/demo.sh (the README's first
command) is run as it is.  Everything listens on 127.0.0.1.  As root,
lighttpd drops to www-data as Debian's does; as an ordinary user it stays.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import eq, AWS_KEYS  # noqa: E402
import webserver  # noqa: E402
from webserver import Lighttpd, Load, send, check_response, expected_document  # noqa: E402
from es_standin import Standin  # noqa: E402

STAGE_VARS = {"site": "www.example.com"}
SETTINGS = {"AWS_REGION": AWS_KEYS["AWS_REGION"], "TRACKPIXEL_STAGE": "staging",
            "TRACKPIXEL_API_ID": "pixel-test", "TRACKPIXEL_STAGE_VAR_site": STAGE_VARS["site"]}
# lighttpd has no length limit: a session token as long as AWS's real ones
# (hundreds of bytes) goes through whole.
LONG_TOKEN = AWS_KEYS["AWS_SESSION_TOKEN"] + "/" + "Q" * 700 + "=="
SECRETS = {"AWS_ACCESS_KEY_ID": AWS_KEYS["AWS_ACCESS_KEY_ID"],
           "AWS_SECRET_ACCESS_KEY": AWS_KEYS["AWS_SECRET_ACCESS_KEY"],
           "AWS_SESSION_TOKEN": LONG_TOKEN}
GET_HEADERS = [("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) tp-test"),
               ("Referer", "https://example.com/page?a=1"),
               ("Accept", "image/avif,image/webp,*/*"),
               ("Accept-Language", "en-GB,en;q=0.8"),
               ("X-Forwarded-For", "203.0.113.9"),
               ("Cookie", "session=abc"),
               ("DNT", "1"),
               ("Authorization", "Basic c2VjcmV0")]
GET_RECORDED = {"Host": None, "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) tp-test",
                "Referer": "https://example.com/page?a=1", "Accept": "image/avif,image/webp,*/*",
                "Accept-Language": "en-GB,en;q=0.8", "X-Forwarded-For": "203.0.113.9",
                "Cookie": "session=abc", "Dnt": "1"}


class Ctx:
    pass


def setup():
    c = Ctx()
    c.es = Standin(access_key=AWS_KEYS["AWS_ACCESS_KEY_ID"],
                   secret_key=AWS_KEYS["AWS_SECRET_ACCESS_KEY"],
                   session_token=LONG_TOKEN, require_signature=True).start()
    c.srv = Lighttpd(settings=dict(SETTINGS, TRACKPIXEL_ES_URL=c.es.url), secrets=SECRETS)
    try:
        c.srv.start()
    except Exception:
        teardown(c)
        raise
    return c


teardown = webserver.teardown
recorded = webserver.recorded


def one_doc(c, rid):
    """The one document of hit rid.  Only rid's: journals left by the
    workers of an earlier test (a restart under a slow cluster) may still be
    delivered by their successors meanwhile, as they should be."""
    mine = lambda: [d for d in c.es.docs() if d["id"] == rid]
    tplib.wait_for(lambda: mine() or None, 20, "the document")
    time.sleep(0.2)                     # anything else would be a second one
    docs = mine()
    eq([(d["index"], d["id"]) for d in docs], [("events", rid)], "documents")
    return docs[0]["source"]


def ms():
    return int(time.time() * 1000)


def raw_status(port, request):
    """Send request bytes as they are; the status line's code."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


# ------------------------------------------------------------------ shipped

def test_shipped_files_name_every_variable(c):
    out = subprocess.run([webserver.BINARY, "--help"], capture_output=True, text=True).stdout
    names = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    with open(webserver.LIGHTTPD_CONF) as f:
        text = f.read()
    missing = [n for n in names if n.replace("<name>", "") not in text]
    eq(missing, [], "variables of --help missing from lighttpd/50-trackpixel.conf")


def test_shipped_files_as_is_pass_configtest(c):
    """Each file exactly as shipped, after what lighty-enable-mod's
    "depends: fastcgi" brings in: lighttpd -t says Syntax OK."""
    for shipped in (webserver.LIGHTTPD_CONF, webserver.LIGHTTPD_SOCKET_CONF):
        conf = os.path.join(c.srv.dir, "configtest.conf")
        with open(conf, "w") as f:
            f.write('server.document-root = "%s"\nserver.bind = "127.0.0.1"\n'
                    'server.port = %d\nserver.modules += ( "mod_fastcgi" )\ninclude "%s"\n'
                    % (c.srv.dir, tplib.free_port(), shipped))
        p = subprocess.run(["lighttpd", "-t", "-f", conf], capture_output=True, text=True)
        eq((p.returncode, (p.stdout + p.stderr).strip()), (0, "Syntax OK"),
           "lighttpd -t with " + os.path.basename(shipped))


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
        recorded(c, GET_RECORDED), proxy="campaigns/7", stage="staging", stage_vars=STAGE_VARS,
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
        stage_vars=STAGE_VARS, api_id="pixel-test", user_agent="tp-test-head"), before, after)


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
        stage="staging", stage_vars=STAGE_VARS, api_id="pixel-test",
        user_agent="tp-test-beacon"), before, after)


def test_put_is_405_without_document(c):
    c.es.reset()
    conn = c.srv.connection()
    r = send(conn, "PUT", "/pixel?x=1", [("User-Agent", "tp-test-put"),
                                        ("Content-Type", "application/json")], b'{"a":1}')
    check_response(c.srv, r, "PUT", 405)
    rid = check_response(c.srv, send(conn, "GET", "/pixel?after=put", []), "GET", 200)
    conn.close()
    src = one_doc(c, rid)
    eq(src["params"]["querystring"], {"after": "put"}, "the GET's document")


def test_every_request_signed_with_the_long_session_token(c):
    reqs = c.es.requests()
    assert reqs, "no request reached the stand-in"
    # 201 for the loop's own _create, 200 for the deliverer's _bulk.
    eq([(r["method"], r["sig_ok"], r["token_ok"], r["status"]) for r in reqs],
       [("POST", True, True, 200 if r["path"] == "/_bulk" else 201) for r in reqs],
       "cluster requests")


def test_what_lighttpd_refuses_before_trackpixel(c):
    """lighttpd/README.md's list, line by line: these never reach
    trackpixel (a 400, 404 or 431 from lighttpd: no pixel, no document);
    the last ones do, changed as the README says."""
    c.es.reset()
    refused = [
        (b"GET /pixel?x=%00 HTTP/1.1\r\nHost: a\r\n\r\n", 400),      # url-ctrls-reject
        (b"GET /pixel?x=%1F HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /pixel?x=%0A HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /pixel?x=%7F HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /pixel/%00 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /pixel?x=%FF HTTP/1.1\r\nHost: a\r\n\r\n", 400),      # never UTF-8
        (b"GET /pixel?x=%C0%80 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /pixel?x=%F5 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /pixel?x=1 HTTP/1.1\r\nHost: a\r\nX-A: a\x01b\r\n\r\n", 400),  # header-strict
        (b"GET /pixel?x=1 HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n", 400),
        (b"GET /pixel?x=1 HTTP/1.1\r\nHost: a_b\r\n\r\n", 400),                # host-strict
        (b"GET /pixel?x=1 HTTP/1.1\r\nHost: a:99999\r\n\r\n", 400),
        (b"GET /pixel/%E9 HTTP/1.1\r\nHost: a\r\n\r\n", 404),          # not UTF-8
        (b"GET /pixelfoo?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", 404),       # not the pixel
        (b"GET /pixel?x=1 HTTP/1.1\r\nHost: a\r\nX-L: " + b"a" * 9000 + b"\r\n\r\n", 431),
    ]
    got = [raw_status(c.srv.port, req) for req, _ in refused]
    eq(got, [code for _, code in refused], "statuses")
    passed = [("/pixel%2Fa?n=1", {"n": "1"}, {"proxy": "a"}),
              ("/x/../pixel?n=2", {"n": "2"}, {}),
              ("/pixel?n=3&x=%C3%28&y=%E9", {"n": "3", "x": "\ufffd(", "y": "\ufffd"}, {})]
    rids = {}
    conn = c.srv.connection()
    for target, query, path in passed:
        rids[check_response(c.srv, send(conn, "GET", target, []), "GET", 200)] = (query, path)
    rid = check_response(c.srv, send(conn, "GET", "/pixel?n=4", [("Host", "A.Example.COM.")]),
                         "GET", 200)
    rids[rid] = ({"n": "4"}, {})
    conn.close()
    docs = tplib.wait_for(lambda: len(c.es.docs()) >= len(rids) and c.es.docs(), 20,
                          "the documents")
    time.sleep(0.2)
    docs = c.es.docs()
    eq(sorted(d["id"] for d in docs), sorted(rids), "documents: those that passed, only")
    for d in docs:
        query, path = rids[d["id"]]
        eq((d["source"]["params"]["querystring"], d["source"]["params"]["path"]), (query, path),
           "query string and path of %s" % d["id"])
    eq(next(d for d in docs if d["id"] == rid)["source"]["params"]["header"]["Host"],
       "a.example.com", "Host, as host-normalize leaves it")


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
    """SIGUSR1 (lighttpd 1.4.46+: graceful restart; Debian's `systemctl
    reload lighttpd`) while 16 connections hit the pixel: lighttpd finishes
    the requests in flight, sends SIGTERM to every trackpixel and starts new
    ones.  No hit that got a pixel may lose its document; the old processes
    must all go."""
    c.es.reset()
    load = Load(c.srv.port, conns=16, tag="restart").start()
    try:
        webserver.wait_pixels(load, 300)
        old = set(c.srv.trackpixel_pids())
        c.srv.graceful()
        tplib.wait_for(lambda: not (old & set(c.srv.trackpixel_pids())), 20,
                       "the old trackpixel processes to exit")
        at_restart = len(load.pixels)
        webserver.wait_pixels(load, at_restart + 300, what="pixels after the restart")
    finally:
        load.stop()
    new = set(c.srv.trackpixel_pids())
    assert new and not (new & old), (old, new)
    eq(c.srv.proc.poll(), None, "lighttpd still running")
    summary = webserver.check_load_documents(c.es, load, exact=False)
    print("# graceful restart: %d old processes gone, %d new; %s"
          % (len(old), len(new), summary), flush=True)


def test_graceful_restart_with_a_slow_cluster(c):
    """The same restart while every post takes 4 s: the processes get
    SIGTERM in the middle of a post.  Every hit that got a pixel has its
    document, and no hit fails: lighttpd finishes the requests in flight
    before it restarts (and answers nothing meanwhile: the stall printed)."""
    load, stalled = webserver.restart_with_slow_cluster(c.srv, c.es)
    summary = webserver.check_load_documents(c.es, load, exact=False)
    # A keep-alive connection closed by the restart just as the client
    # reuses it (RemoteDisconnected) never reached trackpixel; browsers
    # retry those.  No request may get an HTTP error.
    eq([f for f in load.failures if f[2].startswith("HTTP")], [], "requests answered with an error")
    print("# restart, 4 s per post: no answer for %.1f s; %s" % (stalled, summary), flush=True)


# ----------------------------------------------------- started separately

def test_spawn_fcgi_socket_variant(c):
    """50-trackpixel-socket.conf with trackpixel started by the command of
    the shipped lighttpd/trackpixel.service (spawn-fcgi, 4 children on one
    unix socket, stderr kept in a log).  Stopping lighttpd leaves trackpixel
    running; SIGTERM to the children (systemd's stop) ends each with
    status 0, and their last words are in the log."""
    c.es.reset()
    work = tempfile.mkdtemp(prefix="tp-spawn-")
    os.chmod(work, 0o755)
    spool = os.path.join(work, "spool")
    os.makedirs(spool)
    if os.geteuid() == 0:
        import pwd
        pw = pwd.getpwnam(webserver.run_user()[0])
        os.chown(spool, pw.pw_uid, pw.pw_gid)
    env = {"PATH": "/usr/bin:/bin", "TRACKPIXEL_ES_URL": c.es.url,
           "AWS_REGION": AWS_KEYS["AWS_REGION"], "TRACKPIXEL_SPOOL_DIR": spool}
    env.update(SECRETS)
    sock = os.path.join(work, "trackpixel.sock")
    spawn = webserver.SpawnFcgi(sock, env, work)
    lt = Lighttpd(variant="socket", socket_path=sock)
    try:
        spawn.start()
        eq(oct(os.stat(sock).st_mode & 0o777), "0o660", "socket mode")
        lt.start()
        conn = lt.connection()
        rid = check_response(lt, send(conn, "GET", "/pixel?via=spawn-fcgi", []), "GET", 200)
        eq(send(conn, "GET", "/pixelfoo?x=1", [])[0], 404, "/pixelfoo")
        conn.close()
        src = one_doc(c, rid)
        eq(src["params"]["querystring"], {"via": "spawn-fcgi"}, "query string")
        children = spawn.pids()
        eq(len(children), 4, "trackpixel processes")
        eq(lt.stop(signal.SIGTERM), {}, "lighttpd's processes left")
        eq(spawn.pids(), children, "trackpixel processes after lighttpd stopped")
        eq(spawn.stop(), [], "trackpixel processes left after SIGTERM")
        eq({p: spawn.exits.get(p) for p in children},
           {p: ("trackpixel", "exit 0") for p in children}, "how the children ended")
        assert "trackpixel[" in spawn.log(), "nothing from trackpixel in %s" % spawn.log_path
    finally:
        lt.kill_leftovers()
        for pid in spawn.pids():
            os.kill(pid, signal.SIGKILL)
        lt.cleanup()
        subprocess.run(["rm", "-rf", work])


def test_demo_sh_serves_the_embedded_default(c):
    """The README's first command, lighttpd/demo.sh, as it is: the shipped
    configuration with no cluster, documents in DIR/events.ndjson."""
    work = tempfile.mkdtemp(prefix="tp-demo-")
    os.chmod(work, 0o755)
    port = tplib.free_port()
    env = dict(os.environ, TRACKPIXEL_DEMO_PORT=str(port),
               TRACKPIXEL_DEMO_DIR=os.path.join(work, "demo"),
               TRACKPIXEL_BIN=webserver.program_for(webserver.run_user()[0], work))
    webserver.become_subreaper()
    with open(os.path.join(work, "demo.log"), "wb") as log:
        demo = subprocess.Popen([os.path.join(tplib.SRCDIR, "lighttpd", "demo.sh")], env=env,
                                cwd=work, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    exits = {}
    try:
        tplib.wait_for(lambda: webserver.answers(port) or demo.poll() is not None, 15,
                       "demo.sh")
        eq(demo.poll(), None, "demo.sh still running")
        children = tplib.wait_for(lambda: _ready_children(demo.pid, 8), 15,
                                  "demo.sh's 8 trackpixel processes, ready")
        conn = webserver.http.client.HTTPConnection("localhost", port, timeout=10)
        rid = check_response(Lighttpd, send(conn, "GET", "/pixel?utm_source=news", []),
                             "GET", 200)
        conn.close()
        out = os.path.join(work, "demo", "events.ndjson")
        tplib.wait_for(lambda: os.path.exists(out) and os.path.getsize(out) > 0, 10,
                       "demo/events.ndjson")
        with open(out) as f:
            lines = f.read().splitlines()
        eq(len(lines), 2, "lines in events.ndjson")
        eq(json.loads(lines[0]), {"create": {"_index": "events", "_id": rid}}, "action line")
        doc = json.loads(lines[1])
        eq(doc["params"]["querystring"], {"utm_source": "news"}, "query string")
        eq(doc["context"]["request-id"], rid, "request-id")
        demo.send_signal(signal.SIGINT)          # Ctrl-C
        demo.wait(15)
        tplib.wait_for(lambda: (webserver.reap_orphans(exits) or True) and
                       all(p in exits for p in children), 15, "trackpixel to exit")
        eq({p: exits.get(p) for p in children}, {p: ("trackpixel", "exit 0") for p in children},
           "how the demo's trackpixel processes ended")
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        subprocess.run(["rm", "-rf", work])


def _ready_children(pid, count):
    """The trackpixel children of pid, once there are count of them and all
    have their SIGTERM handler; else None."""
    kids = [p for p, (comm, state, ppid) in webserver.all_procs().items()
            if ppid == pid and comm == "trackpixel" and state != "Z"]
    if len(kids) >= count and all(webserver.handles_sigterm(p) for p in kids):
        return sorted(kids)
    return None


# ------------------------------------------------------------------- stop

def test_stop_under_load(c):
    """SIGTERM, what `systemctl stop lighttpd` sends with Debian's unit
    (lighttpd's immediate shutdown), while the load goes on: every hit that
    got a pixel has its document, every trackpixel exits with status 0,
    nothing of ours remains, and no journal is left undelivered."""
    c.es.reset()
    load = Load(c.srv.port, conns=16, tag="stop").start()
    try:
        webserver.wait_pixels(load, 300)
        procs = set(c.srv.trackpixel_pids())
        left = c.srv.stop(signal.SIGTERM)
    finally:
        load.stop()
    eq(left, {}, "processes of ours still running after the stop")
    summary = webserver.check_load_documents(c.es, load, exact=False)
    eq(sorted(p for p in procs if p not in c.srv.exits), [], "processes not seen ending")
    exits = {p: how for p, (_, how) in c.srv.exits.items() if p in procs}
    eq(webserver.unclean(exits, c.srv.ready, "exit 0"), {},
       "processes that did not exit with status 0")
    eq([f for f in c.srv.spool_files() if not f.startswith("dead")], [],
       "journal files left with undelivered documents")
    print("# stop (SIGTERM): %d processes, %d exit 0; %s"
          % (len(procs), sum(h == "exit 0" for h in exits.values()), summary), flush=True)


if __name__ == "__main__":
    tplib.run_tests(globals(), setup=setup, teardown=teardown)
