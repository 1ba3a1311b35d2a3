"""Network faults from what stands between trackpixel and the cluster: a
real nginx that refuses large bodies (413), redirects (301), answers 200
with a web page, echoes the request's secret headers in an error page, and
keeps FastCGI connections open (fastcgi_keep_conn); and a cluster answering
_bulk with 200 and an answer that does not account for the batch.

Real workers under cgi-fcgi or nginx, the Elasticsearch stand-in behind
nginx; every case counts documents exactly: N hits, N documents."""
import http.client
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import eq, wait_for, PIXEL, AWS_KEYS  # noqa: E402
from es_standin import Standin  # noqa: E402
import faultlib as fl  # noqa: E402
from faultlib import hits, exactly, env_for, start_worker, lines_with  # noqa: E402

REDIRECT_ALL = "location / { return 301 http://elsewhere.invalid$request_uri; }"
PORTAL_PAGE = 'location / { return 200 "<html><body>Captive portal: please log in</body></html>"; }'
ECHO_SECRETS = ('location / { return 400 "echo $http_x_amz_security_token '
                '$http_authorization"; }')


def seen(nginx, method, path_part, status):
    """nginx's access log lines for method, a path holding path_part, status."""
    return [a for a in nginx.access()
            if a[0] == method and path_part in a[1] and a[2] == str(status)]


def backlog_behind(stack, es, nginx, n, query="i=%d", **extra):
    """A worker posting through nginx takes n hits while the cluster
    answers 503: they wait in its journal.  Returns (worker, ids)."""
    es.mode(status=503)
    w = start_worker(stack, env_for(nginx.url, **extra))
    ids = hits(w, n, query=query)
    wait_for(lambda: seen(nginx, "POST", "/_create/" + ids[0], 503), timeout=10,
             what="the first hit's 503")
    return w, ids


def orphaned_backlog(stack, es, env, n, query="i=%d"):
    """As backlog_behind, then the worker is killed (-9): the next worker
    starts with this backlog to deliver, and its log starts clean (its
    first delivery failure is not hidden by the rate limit of the outage's
    lines).  Returns the ids."""
    es.mode(status=503)
    w = start_worker(stack, env)
    ids = hits(w, n, query=query)
    fl.kill9(w)
    eq(len(fl.journals(w.spool)), 1, "the orphaned journal")
    return ids


# ---------------------------------------------------------------- 3: 413

def big_backlog_through_a_body_limit(**extra):
    """~3 MiB of backlog behind nginx's default 1 MiB body limit: every
    document arrives exactly once."""
    with fl.everything() as stack:
        es = stack.enter_context(Standin())
        nginx = stack.enter_context(fl.Nginx()).start(
            fl.proxy_to(es.port, "client_max_body_size 1m;"))
        value = "v" * 60000                       # ~61 KB a document
        w, ids = backlog_behind(stack, es, nginx, 50, query="blob=" + value + "&i=%d",
                                TRACKPIXEL_MAX_VALUE="65536", **extra)
        es.mode()
        exactly(es, ids, timeout=40, what="documents of a 3 MiB backlog")
        eq(w.stop(), 0, "exit status")
        eq(fl.deadletters(w.spool), b"", "dead letters")
        return w.stderr(), nginx


def test_413_default_bulk_size_fits_a_1m_proxy():
    log, nginx = big_backlog_through_a_body_limit()
    eq(seen(nginx, "POST", "/_bulk", 413), [], "_bulk requests refused with 413")


def test_413_halves_the_batch_until_it_passes():
    with fl.everything() as stack:
        es = stack.enter_context(Standin())
        nginx = stack.enter_context(fl.Nginx()).start(
            fl.proxy_to(es.port, "client_max_body_size 1m;"))
        spool = os.path.join(stack.enter_context(fl.TempDir()), "spool")
        env = env_for(nginx.url, TRACKPIXEL_SPOOL_DIR=spool, TRACKPIXEL_MAX_VALUE="65536",
                      TRACKPIXEL_BULK_MAX_KB="4096")
        ids = orphaned_backlog(stack, es, env, 50, query="blob=" + "v" * 60000 + "&i=%d")
        es.mode()
        w = start_worker(stack, env)
        exactly(es, ids, timeout=40, what="documents of a 3 MiB backlog")
        assert seen(nginx, "POST", "/_bulk", 413), "the proxy refused a batch"
        eq(w.stop(), 0, "exit status")
        eq(fl.deadletters(spool), b"", "dead letters")
        assert "HTTP 413" in w.stderr(), w.stderr()[-1500:]


def test_413_single_document_larger_than_the_proxy_limit_is_a_dead_letter():
    with fl.everything() as stack:
        es = stack.enter_context(Standin())
        nginx = stack.enter_context(fl.Nginx()).start(
            fl.proxy_to(es.port, "client_max_body_size 1m;"))
        limits = dict(TRACKPIXEL_MAX_BODY=str(2 << 20), TRACKPIXEL_MAX_DOC=str(4 << 20))
        w, ids = backlog_behind(stack, es, nginx, 3, **limits)
        body = json.dumps({"blob": "b" * (1536 * 1024)}).encode()
        big = hits(w, 1, body=body, start=3)[0]
        ids += hits(w, 3, start=4)
        es.mode()
        exactly(es, ids, timeout=40, what="the documents that fit")
        dl = os.path.join(w.spool, "deadletter.ndjson")
        wait_for(lambda: os.path.exists(dl), timeout=20, what="the dead letter")
        got = fl.all_json_lines(fl.deadletters(w.spool), "deadletter.ndjson")
        eq([(d["_id"], d["status"]) for d in got], [(big, 413)], "dead letters")
        eq(len(got[0]["document"]["body-json"]["blob"]), 1536 * 1024, "the document is kept")
        eq(w.stop(), 0, "exit status")


def create_answered_by_proxy(location, n, status, log_word, log_detail, what):
    """A worker (posting each hit itself) through nginx configured with
    location takes n hits; nginx answers the first _create with status and
    the log has a line with log_word and log_detail; nothing is a dead
    letter.  Once nginx proxies to the cluster, every hit arrives once.
    Returns the worker's log after a clean stop."""
    with fl.everything() as stack:
        es = stack.enter_context(Standin())
        nginx = stack.enter_context(fl.Nginx()).start(location)
        w = start_worker(stack, env_for(nginx.url, TRACKPIXEL_SLOW_MS="60000"))
        ids = hits(w, n)
        wait_for(lambda: seen(nginx, "POST", "/_create/" + ids[0], status), timeout=10,
                 what="the _create answered %d" % status)
        wait_for(lambda: [l for l in lines_with(w.stderr(), log_word)
                          if log_detail in l], timeout=10,
                 what="a log line with %r and %r: %r" % (log_word, log_detail,
                                                         w.stderr()[-800:]))
        eq(fl.deadletters(w.spool), b"", "dead letters")
        nginx.restart(fl.proxy_to(es.port))
        exactly(es, ids, timeout=40, what=what)
        eq(fl.deadletters(w.spool), b"", "dead letters")
        eq(w.stop(), 0, "exit status")
        return w.stderr()


# ---------------------------------------------------------------- 6: 3xx

def test_redirect_on_create_keeps_the_hit():
    """The log names the redirect's Location."""
    create_answered_by_proxy(REDIRECT_ALL, 1, 301, "redirect", "elsewhere.invalid",
                             "the redirected hit")


def test_redirect_on_bulk_keeps_the_backlog():
    with fl.everything() as stack:
        es = stack.enter_context(Standin())
        nginx = stack.enter_context(fl.Nginx()).start(fl.proxy_to(es.port))
        spool = os.path.join(stack.enter_context(fl.TempDir()), "spool")
        env = env_for(nginx.url, TRACKPIXEL_SPOOL_DIR=spool)
        ids = orphaned_backlog(stack, es, env, 5)
        es.mode()
        nginx.restart(REDIRECT_ALL)
        w = start_worker(stack, env)              # takes the backlog over
        wait_for(lambda: seen(nginx, "POST", "/_bulk", 301), timeout=20,
                 what="a redirected _bulk")
        wait_for(lambda: [l for l in lines_with(w.stderr(), "redirect")
                          if "elsewhere.invalid" in l], timeout=10,
                 what="a log line naming the redirect's Location: %r" % w.stderr()[-800:])
        nginx.restart(fl.proxy_to(es.port))
        exactly(es, ids, timeout=40, what="the backlog")
        eq(fl.deadletters(spool), b"", "dead letters")
        eq(w.stop(), 0, "exit status")


# ---------------------------------------------- 7: 200 that is not an answer

def bulk_answered(body, window=3.0):
    """_bulk answered 200 with body: nothing is taken as delivered, the
    deliverer backs off, the worker lives; then everything arrives once."""
    with fl.everything() as stack:
        es = stack.enter_context(Standin())
        spool = os.path.join(stack.enter_context(fl.TempDir()), "spool")
        env = env_for(es.url, TRACKPIXEL_SPOOL_DIR=spool)
        ids = orphaned_backlog(stack, es, env, 10)
        es.mode(status=200, body=body)
        t0 = len(es.requests())
        w = start_worker(stack, env)              # takes the backlog over
        pid = w.proc.pid
        time.sleep(window)
        bulks = [r for r in es.requests()[t0:] if r["path"] == "/_bulk"]
        assert 1 <= len(bulks) < 15, "%d _bulk requests in %.0f s: retried with backoff" % (
            len(bulks), window)
        assert w.proc.poll() is None, "the worker is alive: %r" % w.stderr()[-800:]
        eq(es.docs(), [], "documents")
        log = w.stderr()
        assert "not a _bulk answer" in log, log[-1500:]
        es.mode()
        exactly(es, ids, timeout=40, what="the backlog")
        more = hits(w, 2, start=10)               # the same process serves on
        exactly(es, ids + more, what="documents after")
        eq(w.proc.pid, pid, "the same worker")
        eq(w.stop(), 0, "exit status")
        eq(fl.stopping_counts(w.stderr())[:4], (2, 12, 0, 0),
           "hits, delivered (its own and the backlog), dead, dropped")


def test_bulk_200_with_no_items_is_retried_with_backoff():
    bulk_answered({"errors": False, "items": []})


def test_bulk_200_with_an_item_that_is_not_an_object():
    bulk_answered({"items": [1]})


def test_bulk_200_errors_with_an_item_that_is_not_an_object():
    bulk_answered({"errors": True, "items": [1]})


def test_create_200_with_a_web_page_is_not_delivered():
    """The log shows what came back."""
    log = create_answered_by_proxy(PORTAL_PAGE, 3, 200, "not a create answer", "<html>",
                                   "the hits answered with a page")
    eq(fl.stopping_counts(log)[:4], (3, 3, 0, 0), "hits, delivered, dead, dropped")


# ------------------------------------------- 9: secrets in an error page

def test_secrets_echoed_by_a_proxy_stay_hidden():
    with fl.everything() as stack:
        nginx = stack.enter_context(fl.Nginx()).start(ECHO_SECRETS)
        spool = os.path.join(stack.enter_context(fl.TempDir()), "spool")
        env = env_for(nginx.url, TRACKPIXEL_SPOOL_DIR=spool, TRACKPIXEL_SLOW_MS="60000",
                      **AWS_KEYS)
        w1 = start_worker(stack, env)
        hits(w1, 1)                               # its _create: 400 and the echo
        wait_for(lambda: seen(nginx, "POST", "/_create/", 400), timeout=10,
                 what="the echoed _create")
        wait_for(lambda: "HTTP 400" in w1.stderr(), timeout=10, what="the _create's log line")
        nginx.restart(fl.proxy_to(tplib.free_port()))   # down (502): a backlog
        hits(w1, 3, start=1)
        wait_for(lambda: seen(nginx, "POST", "/_create/", 502), timeout=10, what="a 502")
        fl.kill9(w1)
        nginx.restart(ECHO_SECRETS)
        w2 = start_worker(stack, env)             # takes the backlog over: _bulk, echoed
        wait_for(lambda: seen(nginx, "POST", "/_bulk", 400), timeout=20,
                 what="the echoed _bulk")
        time.sleep(0.5)
        files = sorted(os.path.join(spool, f) for f in os.listdir(spool)
                       if f.endswith(".ndjson"))  # the journal and the dead letters
        assert len(files) >= 2, "journals and the dead letters to replay: %r" % files
        outputs = []
        for path in files:
            p = subprocess.run([tplib.TRACKPIXEL, "--replay", path], env=env,
                               capture_output=True, timeout=60)
            outputs.append(p.stdout + p.stderr)
        eq(w2.stop(), 0, "exit status")
        assert len(seen(nginx, "POST", "/_create/", 400)) >= 2, "the replays were echoed too"
        tplib.assert_no_secrets(w1.stderr(), "the first worker's log")
        tplib.assert_no_secrets(w2.stderr(), "the second worker's log")
        tplib.assert_no_secrets(fl.deadletters(spool), "deadletter.ndjson")
        for path, out in zip(files, outputs):
            tplib.assert_no_secrets(out, "--replay " + os.path.basename(path))


# -------------------------------------------- 11: kept FastCGI connections

KEEP_CONN_UPSTREAM = "upstream trackpixel { server 127.0.0.1:%d; keepalive 4; }"
KEEP_CONN_SERVER = """
        location /pixel {
            fastcgi_pass trackpixel;
            fastcgi_keep_conn on;
            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
            fastcgi_param REQUEST_METHOD $request_method;
            fastcgi_param QUERY_STRING $query_string;
            fastcgi_param SCRIPT_NAME /pixel;
            fastcgi_param REMOTE_ADDR $remote_addr;
            fastcgi_param SERVER_PROTOCOL $server_protocol;
            fastcgi_param SERVER_NAME localhost;
            fastcgi_param SERVER_PORT $server_port;
            fastcgi_param CONTENT_TYPE $content_type;
            fastcgi_param CONTENT_LENGTH $content_length;
        }"""


def test_kept_connection_request_waiting_leaves_the_hit_to_the_deliverer():
    """nginx keeps the FastCGI connection (fastcgi_keep_conn): the next
    request comes on it, not on the listening socket.  One arriving while
    the worker is between a pixel and its post is waiting for the worker
    all the same: that hit goes to the deliverer (_bulk)."""
    with fl.everything() as stack:
        es = stack.enter_context(Standin())
        w = start_worker(stack, env_for(es.url, TRACKPIXEL_SLOW_MS="60000",
                                        TRACKPIXEL_TEST_PAUSE_MS="500"),
                         program=tplib.TRACKPIXEL_HOOKS)
        nginx = stack.enter_context(fl.Nginx()).start(
            KEEP_CONN_SERVER, KEEP_CONN_UPSTREAM % w.port)
        conn = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=20)
        stack.callback(conn.close)
        rids = []
        for i in range(2):
            # The second request leaves as soon as the first pixel is in:
            # the worker is then in its 500 ms pause before posting.
            conn.request("GET", "/pixel?i=%d" % i)
            resp = conn.getresponse()
            eq((resp.status, resp.read()), (200, PIXEL), "pixel %d" % i)
            rids.append(resp.getheader("X-Request-Id"))
        exactly(es, rids, what="both documents")
        first = [r["path"] for r in tplib.carriers(es, rids[0])]
        eq(first, ["/_bulk"], "the first hit went with the deliverer")
        eq(w.stop(), 0, "exit status")


if __name__ == "__main__":
    fl.run_tests(globals())
