#!/usr/bin/python3
"""trackpixel under the real web servers with their shipped configurations,
posting to the Elasticsearch stand-in, which checks every SigV4 signature
(and the session token) with botocore.  Each test runs for lighttpd 1.4 and
then for Apache 2.4 (event MPM, mod_fcgid); a few only apply to one of them.
The TAP names say which server: "test_head (lighttpd)".

The configurations are rendered from the shipped files by tests/webserver.py
(paths and settings edited on their lines, nothing copied):
apache/trackpixel.conf, lighttpd/50-trackpixel.conf (lighttpd spawns
trackpixel) and lighttpd/50-trackpixel-socket.conf (trackpixel started by
spawn-fcgi exactly as lighttpd/README.md says); lighttpd/demo.sh (the
README's first command) is run as it is.  Everything listens on 127.0.0.1.
As root the servers drop to www-data as Debian's do; as an ordinary user
they stay.
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
from webserver import Apache, Lighttpd, Load, send, check_response, expected_document  # noqa: E402

STAGE_VARS = {"site": "www.example.com"}
SETTINGS = {"AWS_REGION": AWS_KEYS["AWS_REGION"], "TRACKPIXEL_STAGE": "staging",
            "TRACKPIXEL_API_ID": "pixel-test", "TRACKPIXEL_STAGE_VAR_site": STAGE_VARS["site"],
            "TRACKPIXEL_REDIRECT_ALLOW": "example.com,*.example.org",
            "TRACKPIXEL_ADMIN_ALLOW": "127.0.0.1/32,::1"}
GET_HEADERS = [("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) tp-test"),
               ("Referer", "https://example.com/page?a=1"),
               ("Accept", "image/avif,image/webp,*/*"),
               ("Accept-Language", "en-GB,en;q=0.8"),
               ("X-Forwarded-For", "203.0.113.9"),
               ("Cookie", "session=abc"),
               ("DNT", "1"),
               ("Authorization", "Basic c2VjcmV0")]
# As trackpixel names them; Authorization is never recorded, nor Cookie
# (TRACKPIXEL_DROP_HEADERS's default).
GET_RECORDED = {"Host": None, "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) tp-test",
                "Referer": "https://example.com/page?a=1", "Accept": "image/avif,image/webp,*/*",
                "Accept-Language": "en-GB,en;q=0.8", "X-Forwarded-For": "203.0.113.9",
                "Dnt": "1"}

# Apache: mod_fcgid 2.3 cuts FcgidInitialEnv values to 127 bytes
# (apache/trackpixel.conf says so, and why AWS_SESSION_TOKEN cannot come
# that way): pinned with a 200-byte stage variable.
CLEAN_EXIT = "terminated by calling exit(), return code: 0"   # mod_fcgid's words
LONG_VALUE = "v" * 200
# lighttpd has no length limit: a session token as long as AWS's real ones
# (hundreds of bytes) goes through whole.
LONG_TOKEN = AWS_KEYS["AWS_SESSION_TOKEN"] + "/" + "Q" * 700 + "=="


# ------------------------------------------------------------------ setup

def setup_lighttpd():
    c = tplib.Ctx()
    c.server = "lighttpd"
    c.secrets = {"AWS_ACCESS_KEY_ID": AWS_KEYS["AWS_ACCESS_KEY_ID"],
                 "AWS_SECRET_ACCESS_KEY": AWS_KEYS["AWS_SECRET_ACCESS_KEY"],
                 "AWS_SESSION_TOKEN": LONG_TOKEN}
    c.stage_vars = STAGE_VARS
    c.shipped = webserver.LIGHTTPD_CONF
    c.es = tplib.signed_standin(session_token=LONG_TOKEN)
    c.srv = Lighttpd(settings=dict(SETTINGS, TRACKPIXEL_ES_URL=c.es.url), secrets=c.secrets)
    return started(c)


def setup_apache():
    c = tplib.Ctx()
    c.server = "apache"
    c.secrets = {k: v for k, v in AWS_KEYS.items() if k != "AWS_REGION"}
    c.stage_vars = dict(STAGE_VARS, long=LONG_VALUE[:127])
    c.shipped = webserver.APACHE_CONF
    c.es = tplib.signed_standin()
    c.srv = Apache(settings=dict(SETTINGS, TRACKPIXEL_ES_URL=c.es.url), secrets=c.secrets,
                   extra_env={"TRACKPIXEL_STAGE_VAR_long": LONG_VALUE})
    return started(c)


def started(c):
    try:
        c.srv.start()
    except Exception:
        teardown(c)
        raise
    return c


teardown = webserver.teardown
recorded = webserver.recorded


def only(server):
    """A test that applies to one server only."""
    def mark(fn):
        fn.server = server
        return fn
    return mark


def tests_for(server):
    return [(name, fn) for name, fn in tplib.collect(globals())
            if getattr(fn, "server", server) == server]


# ---------------------------------------------------------------- helpers

def one_doc(c, rid, only_this=False):
    """The one document of hit rid, and (unless only_this) the only
    document: journals left by the workers of an earlier test (a restart
    under a slow cluster) may still be delivered by their successors, as
    they should be, so later tests look at rid's alone."""
    mine = (lambda: [d for d in c.es.docs() if d["id"] == rid]) if only_this else c.es.docs
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


def check_content_length(src, method, body=b""):
    """Content-Length is recorded when the request carries a body, and only
    then: whatever CONTENT_LENGTH the server sets for a GET or HEAD."""
    eq(src["params"]["header"].get("Content-Length"), str(len(body)) if body else None,
       "%s: Content-Length in params.header" % method)


# ------------------------------------------------------------------ shipped

def test_shipped_file_names_every_variable(c):
    """Every variable of `trackpixel --help` is in the shipped file (set, or
    shown commented out, or - the secrets - explained)."""
    out = subprocess.run([webserver.BINARY, "--help"], capture_output=True, text=True).stdout
    names = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert len(names) >= 20, names
    with open(c.shipped) as f:
        text = f.read()
    missing = [n for n in names if n.replace("<name>", "") not in text]
    eq(missing, [], "variables of --help missing from %s" % os.path.basename(c.shipped))


def test_shipped_file_as_is_passes_configtest(c):
    """The files exactly as shipped (no substitution at all), included the
    way the server's own configuration includes them: `-t` says Syntax OK.
    Apache: as conf-enabled/ is; lighttpd: each file after what
    lighty-enable-mod's "depends: fastcgi" brings in."""
    if c.server == "apache":
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
        return
    for shipped in (webserver.LIGHTTPD_CONF, webserver.LIGHTTPD_SOCKET_CONF):
        conf = os.path.join(c.srv.dir, "configtest.conf")
        with open(conf, "w") as f:
            f.write('server.document-root = "%s"\nserver.bind = "127.0.0.1"\n'
                    'server.port = %d\nserver.modules += ( "mod_fastcgi" )\ninclude "%s"\n'
                    % (c.srv.dir, tplib.free_port(), shipped))
        p = subprocess.run(["lighttpd", "-t", "-f", conf], capture_output=True, text=True)
        eq((p.returncode, (p.stdout + p.stderr).strip()), (0, "Syntax OK"),
           "lighttpd -t with " + os.path.basename(shipped))


@only("apache")
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
    check_content_length(src, "GET")
    webserver.check_document(src, expected_document(
        c.srv, "GET", rid, {"utm_source": "news", "utm_campaign": "winter sale", "x": "2",
                            "flag": ""},
        recorded(c, GET_RECORDED), proxy="campaigns/7", stage="staging",
        stage_vars=c.stage_vars, api_id="pixel-test", user_agent=GET_RECORDED["User-Agent"]),
        before, after)


def test_head(c):
    c.es.reset()
    conn = c.srv.connection()
    before = ms()
    r = send(conn, "HEAD", "/pixel?via=head", [("User-Agent", "tp-test-head")])
    after = ms()
    conn.close()
    rid = check_response(c.srv, r, "HEAD", 200)
    src = one_doc(c, rid)
    check_content_length(src, "HEAD")
    webserver.check_document(src, expected_document(
        c.srv, "HEAD", rid, {"via": "head"},
        recorded(c, {"Host": None, "User-Agent": "tp-test-head"}), stage="staging",
        stage_vars=c.stage_vars, api_id="pixel-test", user_agent="tp-test-head"), before, after)


def test_post_json_body(c):
    c.es.reset()
    body = b'{"event":"click","n":2,"nested":{"list":["1","\\u00e9",null]},"ok":true}'
    conn = c.srv.connection()
    before = ms()
    r = send(conn, "POST", "/pixel?beacon=1", [("User-Agent", "tp-test-beacon"),
                                              ("Content-Type", "application/json")], body)
    after = ms()
    conn.close()
    rid = check_response(c.srv, r, "POST", 200)
    src = one_doc(c, rid)
    check_content_length(src, "POST", body)
    webserver.check_document(src, expected_document(
        c.srv, "POST", rid, {"beacon": "1"},
        recorded(c, {"Host": None, "User-Agent": "tp-test-beacon",
                     "Content-Type": "application/json", "Content-Length": str(len(body))}),
        body_json={"event": "click", "n": 2, "nested": {"list": ["1", "\u00e9", None]},
                   "ok": True},
        stage="staging", stage_vars=c.stage_vars, api_id="pixel-test",
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
    """Under lighttpd the token is 700 bytes long, as AWS's real ones are."""
    reqs = tplib.settled_requests(c.es)
    assert reqs, "no request reached the stand-in"
    # 201 for the loop's own _create, 200 for the deliverer's _bulk.
    eq([(r["method"], r["sig_ok"], r["token_ok"], r["status"]) for r in reqs],
       [("POST", True, True, 200 if r["path"] == "/_bulk" else 201) for r in reqs],
       "cluster requests")


@only("apache")
def test_initial_env_values_are_cut_at_127_bytes(c):
    """Why the Apache configuration cannot carry AWS_SESSION_TOKEN: the
    200-byte stage variable arrived as its first 127 bytes."""
    c.es.reset()
    conn = c.srv.connection()
    rid = check_response(c.srv, send(conn, "GET", "/pixel?len=1", []), "GET", 200)
    conn.close()
    eq(len(one_doc(c, rid)["stage-variables"]["long"]), 127, "length of the 200-byte value")


@only("lighttpd")
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
    tplib.wait_for(lambda: len(c.es.docs()) >= len(rids) and c.es.docs(), 20, "the documents")
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
    """A graceful restart while 16 connections hit the pixel: Apache's
    `apache2 -k graceful` (systemctl reload apache2; mod_fcgid ends every
    trackpixel with SIGTERM, SIGKILL 1 s later), lighttpd's SIGUSR1
    (1.4.46+, Debian's `systemctl reload lighttpd`: it finishes the requests
    in flight and sends SIGTERM to every trackpixel).  New processes take
    over; no hit that got a pixel may lose its document; the old processes
    must all go, under Apache each by itself with status 0."""
    c.es.reset()
    tplib.wait_for(lambda: c.srv.trackpixel_pids(), 10, "trackpixel processes")
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
    if c.server == "lighttpd":
        eq(c.srv.proc.poll(), None, "lighttpd still running")
        print("# graceful restart: %d old processes gone, %d new; %s"
              % (len(old), len(new), summary), flush=True)
        return
    exits = {pid: how for pid, _, how in c.srv.fcgid_exits() if pid in old}
    eq(sorted(exits), sorted(old), "old processes whose end mod_fcgid logged")
    eq(webserver.unclean(exits, c.srv.ready, CLEAN_EXIT), {},
       "old processes that did not exit by themselves with status 0")
    print("# graceful restart: %d old processes, %d exit(0); %s"
          % (len(old), sum(h == CLEAN_EXIT for h in exits.values()), summary), flush=True)


def test_graceful_restart_with_a_slow_cluster(c):
    """The same restart while every post takes 4 s: the processes get
    SIGTERM in the middle of a post.  Every hit that got a pixel has its
    document, and no request gets an HTTP error.

    lighttpd finishes the requests in flight before it restarts.  Under
    Apache none is killed (mod_fcgid's SIGKILL comes after 8 s, and
    TRACKPIXEL_TIMEOUT_MS + TRACKPIXEL_SHUTDOWN_MS stay under that), and the
    hits mod_fcgid had queued on a process busy posting are answered by it
    before it exits.  Both answer nothing meanwhile (the stall printed;
    apache/README.md)."""
    old = set(c.srv.trackpixel_pids())
    load, stalled = webserver.restart_with_slow_cluster(c.srv, c.es)
    summary = webserver.check_load_documents(c.es, load, exact=False)
    if c.server == "apache":
        exits = {pid: how for pid, _, how in c.srv.fcgid_exits()
                 if pid in old or pid in c.srv.known}
        eq(webserver.unclean(exits, c.srv.ready, CLEAN_EXIT), {},
           "processes that did not exit by themselves with status 0")
        assert "terminating forcefully" not in c.srv.error_log(), "mod_fcgid sent SIGKILL"
    # A keep-alive connection the server closes at the restart just as the
    # client reuses it (RemoteDisconnected) never reached trackpixel;
    # browsers retry those.  No request may get an HTTP error.
    eq([f for f in load.failures if f[2].startswith("HTTP")], [], "requests answered with an error")
    print("# restart, 4 s per post: no answer for %.1f s; %s" % (stalled, summary), flush=True)


# ----------------------------------------------------- started separately

@only("lighttpd")
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
    env.update(c.secrets)
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
        src = one_doc(c, rid, only_this=True)
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


@only("lighttpd")
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


# ------------------------------------------------- clicks, health, metrics

def get_from(c, target, source="127.0.0.1"):
    """GET target from the source address (127.0.0.2 is not an admin)."""
    conn = webserver.http.client.HTTPConnection("127.0.0.1", c.srv.port, timeout=10,
                                                source_address=(source, 0))
    try:
        return send(conn, "GET", target, [("User-Agent", "tp-test-clicks")])
    finally:
        conn.close()


def test_click_redirect(c):
    """/pixel/r through the shipped configuration: a 302 to an allowed
    target, recorded; hostile targets 400 without a Location."""
    c.es.reset()
    status, reason, headers, body = get_from(c, "/pixel/r?u=https%3A%2F%2Fwww.example.org%2Fo%3Fid%3D7")
    h = dict(headers)
    eq((status, h.get("Location"), h.get("Cache-Control")),
       (302, "https://www.example.org/o?id=7", "no-store"), "redirect")
    src = one_doc(c, h["X-Request-Id"], only_this=True)
    eq((src["params"]["path"], src["params"]["querystring"], src["context"]["resource-path"]),
       ({"proxy": "r"}, {"u": "https://www.example.org/o?id=7"}, "/pixel"), "document")
    for qs, why in [("u=//evil.test/", "not-absolute"),
                    ("u=https://example.com.evil.test/", "host-not-allowed"),
                    ("u=javascript:alert(1)", "scheme"),
                    ("u=https://evil.test%5C@example.com/", "bad-char"),
                    ("u=https://evil.test@example.com/", "userinfo"),
                    ("u=https://example.com/" + "a" * 3072, "too-long")]:
        status, reason, headers, body = get_from(c, "/pixel/r?" + qs)
        h = dict(headers)
        eq((status, "Location" in h, body), (400, False, ("redirect refused: %s\n" % why).encode()),
           qs[:60])
    # 10 KiB: the server refuses the request line itself, before trackpixel.
    status, reason, headers, body = get_from(c, "/pixel/r?u=https://example.com/" + "a" * 10240)
    eq((status, "Location" in dict(headers)), (431 if c.server == "lighttpd" else 414, False),
       "a 10 KiB target")


def test_health_and_metrics(c):
    """From an admin address: health 200, metrics that count exactly the
    pixels served since the last scrape, and every worker; from any other
    address both are the 404 of an unknown path."""
    import test_clicks
    status, _, headers, body = get_from(c, "/pixel/_health")
    eq((status, json.loads(body)["status"]), (200, "ok"), "health")
    status, _, headers, body = get_from(c, "/pixel/_metrics")
    eq((status, dict(headers)["Content-Type"]), (200, "text/plain; version=0.0.4"), "metrics")
    before = test_clicks.parse_exposition(body.decode())
    conn = webserver.http.client.HTTPConnection("127.0.0.1", c.srv.port, timeout=10)
    for i in range(20):
        eq(send(conn, "GET", "/pixel/open.gif?i=%d" % i, [])[0], 200, "pixel %d" % i)
    conn.close()
    _, _, _, body = get_from(c, "/pixel/_metrics")
    after = test_clicks.parse_exposition(body.decode())
    key = ("trackpixel_hits_total", (("method", "GET"),))
    eq(after[key] - before[key], 20, "GET hits counted")
    eq(after[("trackpixel_workers", ())], len(c.srv.trackpixel_pids()), "workers")
    unknown = get_from(c, "/pixel/_nothing")
    eq(unknown[0], 404, "unknown reserved path")
    for target in ("/pixel/_health", "/pixel/_metrics"):
        got = get_from(c, target, source="127.0.0.2")
        eq((got[0], got[3], dict(got[2]).get("Content-Type")),
           (unknown[0], unknown[3], dict(unknown[2]).get("Content-Type")),
           target + " from 127.0.0.2")


# ------------------------------------------------------------------- stop

def test_stop_under_load(c):
    """A stop while the load goes on: Apache's `apache2 -k graceful-stop`
    (what systemctl stop apache2 runs on Debian), lighttpd's SIGTERM (what
    `systemctl stop lighttpd` sends with Debian's unit: its immediate
    shutdown).  Every hit that got a pixel has its document, every
    trackpixel exits by itself with status 0, nothing of ours remains, and
    the journal directory holds nothing undelivered."""
    c.es.reset()
    load = Load(c.srv.port, conns=16, tag="stop").start()
    try:
        webserver.wait_pixels(load, 300)
        procs = set(c.srv.trackpixel_pids())
        left = c.srv.stop("graceful-stop" if c.server == "apache" else signal.SIGTERM)
    finally:
        load.stop()
    eq(left, {}, "processes of ours still running after the stop")
    summary = webserver.check_load_documents(c.es, load, exact=False)
    if c.server == "apache":
        exits = {pid: how for pid, _, how in c.srv.fcgid_exits() if pid in procs}
        eq(sorted(exits), sorted(procs), "processes whose end mod_fcgid logged")
        clean = CLEAN_EXIT
    else:
        eq(sorted(p for p in procs if p not in c.srv.exits), [], "processes not seen ending")
        exits = {p: how for p, (_, how) in c.srv.exits.items() if p in procs}
        clean = "exit 0"
    eq(webserver.unclean(exits, c.srv.ready, clean), {},
       "processes that did not exit by themselves with status 0")
    eq([f for f in c.srv.spool_files() if not f.startswith(("dead", "stats."))], [],
       "journal files left with undelivered documents")
    print("# stop: %d processes, %d ended cleanly; %s"
          % (len(procs), sum(h == clean for h in exits.values()), summary), flush=True)


if __name__ == "__main__":
    tplib.run_groups([("lighttpd", tests_for("lighttpd"), setup_lighttpd, teardown),
                      ("apache", tests_for("apache"), setup_apache, teardown)])
