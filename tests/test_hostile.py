"""Hostile input, end to end: whatever a request carries, the pixel is served
and the document the worker builds is one that Elasticsearch accepts (the
stand-in parses strict UTF-8 JSON like Elasticsearch and checks every SigV4
signature), holding exactly the repaired values below.

Each class of hostile input is a table, input -> expected field values, sent
through the real cgi-fcgi client to one worker (env values as bytes where the
bytes are not UTF-8, as Apache passes them).  Then the raw-byte rows again
through a real Apache (the shipped configuration, tests/webserver.py), which
hands raw bytes through; lighttpd refuses some such URLs itself.

The expected values follow the README ("The document" and "Limits"): invalid
UTF-8 -> U+FFFD (one per maximal invalid subsequence), names repaired the same
way, at most 100 parameters / 100 headers, 4096 bytes per name or value (cut
on a character boundary), 64 KiB per body, "truncated" listing what was cut.
"""
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
import fcgi_client  # noqa: E402
from tplib import eq, cgi_fcgi, pixel_env, wait_for, PIXEL, AWS_KEYS, CONTEXT_KEYS  # noqa: E402
from es_standin import Standin  # noqa: E402

R = "\ufffd"                      # U+FFFD REPLACEMENT CHARACTER
EMOJI = "\U0001F600"              # 4 bytes in UTF-8
MAX_PARAMS, MAX_HEADERS, MAX_VALUE, MAX_BODY = 100, 100, 4096, 65536


def worker_env(es, **extra):
    return tplib.worker_env(es, **dict(
        {"TRACKPIXEL_SPOOL_DIR": tempfile.mkdtemp(prefix="tp-hostile-spool-")}, **extra))


def setup():
    return tplib.standin_and_worker(worker_env)


teardown = tplib.stop_standin_and_worker


# ------------------------------------------------------------------ helpers

def check_pixel(status, headers, body):
    eq(status, 200, "status")
    eq(headers.get("Content-Type"), "image/bmp", "Content-Type")
    eq(headers.get("Content-Length"), "60", "Content-Length")
    eq(len(body), 60, "pixel length")
    eq(body, PIXEL, "pixel")


def accepted(es, rid):
    """The stand-in's copy of document rid, after checking it was created
    with 201 by a correctly signed request."""
    doc = wait_for(lambda: next((d for d in es.docs() if d["id"] == rid), None),
                   what="document %s" % rid)
    reqs = wait_for(lambda: tplib.carriers(es, rid), what="the request that carried %s" % rid)
    eq(len(reqs), 1, "requests that carried %s" % rid)
    eq((reqs[0]["status"], reqs[0]["sig_ok"]),
       (200 if reqs[0]["path"] == "/_bulk" else 201, True), "create of %s" % rid)
    return doc["source"]


def hit(c, env, body=b"", port=None):
    """One request through cgi-fcgi: (document as stored, response headers)."""
    status, headers, data = cgi_fcgi(port or c.worker.port, env, body)
    check_pixel(status, headers, data)
    return accepted(c.es, headers["X-Request-Id"]), headers


def context(method="GET", source_ip="127.0.0.1", user_agent="", resource_path="/pixel",
            request_id=None):
    ctx = {k: "" for k in CONTEXT_KEYS}
    ctx.update({"http-method": method, "stage": "prod", "source-ip": source_ip,
                "user-agent": user_agent, "resource-path": resource_path,
                "request-id": request_id})
    return ctx


def run_table(rows, one):
    """Run one(row) for every row; fail once, naming every failed row."""
    failures = []
    for row in rows:
        try:
            one(row)
        except Exception as e:          # noqa: BLE001 - reported below
            failures.append("%s: %s" % (row[0], str(e)[:600]))
    if failures:
        raise AssertionError("%d of %d rows failed:\n  " % (len(failures), len(rows)) +
                             "\n  ".join(failures))


# ------------------------------------------------------------- query string
# (name, QUERY_STRING, expected params.querystring, expected "truncated")

MANY = "&".join("p%d=%d" % (i, i) for i in range(3000))
EURO_6000 = "%E2%82%AC" * 2000                    # 6000 bytes of U+20AC

QUERY_ROWS = [
    ("invalid escapes kept as they stand", "a=%zz&b=%4&c=%&d=%%41&%zz=n",
     {"a": "%zz", "b": "%4", "c": "%", "d": "%A", "%zz": "n"}, None),
    ("%00 and control characters kept", "a=x%00y&b=%01%1F%7F&c=%0D%0A&d=%09",
     {"a": "x\x00y", "b": "\x01\x1f\x7f", "c": "\r\n", "d": "\t"}, None),
    ("%00 in a name is U+FFFD", "%00=nul&a%00b=1",
     {R: "nul", "a" + R + "b": "1"}, None),
    ("invalid UTF-8 (latin-1, lone bytes)", "q=caf%E9&b=%FF%FE&c=%80",
     {"q": "caf" + R, "b": R + R, "c": R}, None),
    ("truncated UTF-8 is one U+FFFD each", "t=%F0%9F%98&u=%E2%82z&v=a%C3",
     {"t": R, "u": R + "z", "v": "a" + R}, None),
    ("overlong UTF-8", "o=%C0%AF&p=%E0%80%AF&q=%F0%80%80%AF",
     {"o": R * 2, "p": R * 3, "q": R * 4}, None),
    ("encoded surrogates", "s=%ED%A0%80&t=%ED%BF%BF&u=%ED%A0%BD%ED%B8%80",
     {"s": R * 3, "t": R * 3, "u": R * 6}, None),
    ("past U+10FFFF", "p=%F4%90%80%80&f=%F5%80%80%80&m=%F4%8F%BF%BF",
     {"p": R * 4, "f": R * 4, "m": "\U0010FFFF"}, None),
    ("invalid UTF-8 in names", "%FF=1&n%C3=2&%ED%A0%80=3",
     {R: "1", "n" + R: "2", R * 3: "3"}, None),
    ("emoji survive intact", "e=%F0%9F%98%80&%F0%9F%8E%89=party&m=a%F0%9F%98%80b",
     {"e": EMOJI, "\U0001F389": "party", "m": "a" + EMOJI + "b"}, None),
    ("'+' is a space, %2B a plus", "q=winter+sale&a+b=c+d&p=%2B&s=+",
     {"q": "winter sale", "a b": "c d", "p": "+", "s": " "}, None),
    ("empty names skipped, empty values kept", "=v&&a=&b&=&c==&&",
     {"a": "", "b": "", "c": "="}, None),
    ("a repeated name keeps its last value", "a=1&a=2&b=x&a=3",
     {"a": "3", "b": "x"}, None),
    ("thousands of parameters: the first 100", MANY + "&p5=again&new=1",
     dict({"p%d" % i: str(i) for i in range(MAX_PARAMS)}, p5="again"),
     ["params.querystring"]),
    ("a 64 KiB value is cut to 4096 bytes", "big=" + "x" * 65536 + "&after=1",
     {"big": "x" * MAX_VALUE, "after": "1"}, ["params.querystring.big"]),
    ("a value is cut on a character boundary", "euro=" + EURO_6000,
     {"euro": "\u20ac" * (MAX_VALUE // 3)}, ["params.querystring.euro"]),
    ("a long name is cut and listed", "n" * 5000 + "=1",
     {"n" * MAX_VALUE: "1"}, ["params.querystring." + "n" * MAX_VALUE]),
]


def test_query_strings(c):
    c.es.reset()

    def one(row):
        name, qs, expected, truncated = row
        doc, headers = hit(c, pixel_env(QUERY_STRING=qs))
        eq(doc["params"]["querystring"], expected, "querystring")
        eq(doc.get("truncated"), truncated, "truncated")
        eq(doc["params"]["header"], {}, "header")
        eq(doc["body-json"], {}, "body-json")
        eq(doc["context"], context(request_id=headers["X-Request-Id"]), "context")
    run_table(QUERY_ROWS, one)


def test_raw_bytes_in_query_string(c):
    """Apache hands the query string over as it came, bytes >= 0x80 and all."""
    c.es.reset()
    rows = [
        ("raw latin-1", b"q=caf\xe9&r=\xff", {"q": "caf" + R, "r": R}),
        ("raw emoji", b"e=\xf0\x9f\x98\x80", {"e": EMOJI}),
        ("raw control characters", b"c=a\x01b\x7f", {"c": "a\x01b\x7f"}),
        ("raw surrogate", b"s=\xed\xa0\x80", {"s": R * 3}),
    ]

    def one(row):
        name, qs, expected = row
        env = pixel_env()
        del env["QUERY_STRING"]
        env[b"QUERY_STRING"] = qs
        doc, _ = hit(c, env)
        eq(doc["params"]["querystring"], expected, "querystring")
        eq(doc.get("truncated"), None, "truncated")
    run_table(rows, one)


# ------------------------------------------------------------------ headers
# (name, extra CGI variables (list of pairs: repeats allowed), expected
#  params.header, expected context.user-agent, expected "truncated")

HUNDREDS = [("HTTP_X_H%03d" % i, "v%d" % i) for i in range(300)]

HEADER_ROWS = [
    ("raw non-UTF-8 bytes", [(b"HTTP_USER_AGENT", b"bot\xff\xfe/1.0 caf\xe9"),
                             (b"HTTP_X_BYTES", b"\xc0\xaf\xed\xa0\x80ok")],
     {"User-Agent": "bot" + R + R + "/1.0 caf" + R, "X-Bytes": R * 5 + "ok"},
     "bot" + R + R + "/1.0 caf" + R, None),
    ("raw bytes in a header name", [(b"HTTP_X_\xff\xfe", b"v")],
     {"X-" + R + R: "v"}, "", None),
    ("control characters", [("HTTP_X_CTRL", "a\x01b\x1fc\x7fd\te"), ("HTTP_X_NL", "a\r\nb")],
     {"X-Ctrl": "a\x01b\x1fc\x7fd\te", "X-Nl": "a\r\nb"}, "", None),
    ("emoji", [("HTTP_USER_AGENT", "pixel " + EMOJI)],
     {"User-Agent": "pixel " + EMOJI}, "pixel " + EMOJI, None),
    ("a very long value is cut", [("HTTP_X_LONG", "L" * 20000)],
     {"X-Long": "L" * MAX_VALUE}, "", ["params.header.X-Long"]),
    ("a very long user agent: header and context cut",
     [("HTTP_USER_AGENT", "U" * 10000)],
     {"User-Agent": "U" * MAX_VALUE}, "U" * MAX_VALUE,
     ["params.header.User-Agent", "context.user-agent"]),
    ("hundreds of headers: the first 100", HUNDREDS + [("HTTP_X_H005", "again")],
     dict({"X-H%03d" % i: "v%d" % i for i in range(MAX_HEADERS)}, **{"X-H005": "again"}),
     "", ["params.header"]),
    ("names differing in case or -/_ are one header, the last value wins",
     [("HTTP_X_DUP", "1"), ("HTTP_x_dup", "2"), ("HTTP_X-DUP", "3"), ("HTTP_X_dUP", "4")],
     {"X-Dup": "4"}, "", None),
    ("the same variable twice: the last value wins",
     [("HTTP_X_TWICE", "first"), (b"HTTP_X_TWICE", b"second")],
     {"X-Twice": "second"}, "", None),
    ("credentials never recorded, in any spelling",
     [("HTTP_AUTHORIZATION", "Basic c2VjcmV0"), ("HTTP_proxy_authorization", "Basic eA=="),
      ("HTTP_Authorization", "Bearer x"), ("HTTP_X_OK", "1")],
     {"X-Ok": "1"}, "", None),
    ("an empty header value", [("HTTP_X_EMPTY", "")], {"X-Empty": ""}, "", None),
]


def env_with(pairs):
    """pixel_env() plus pairs, in order, repeats kept (cgi-fcgi passes its
    whole environment, so a str and a bytes key of the same name are two
    variables)."""
    env = pixel_env()
    for k, v in pairs:
        while k in env:                # a repeat: the other type keeps both
            k = k.encode() if isinstance(k, str) else k.decode()
            v = v.encode() if isinstance(v, str) else v
            if k in env:
                raise AssertionError("cannot repeat %r three times" % k)
        env[k] = v
    return env


def test_headers(c):
    c.es.reset()

    def one(row):
        name, pairs, expected, user_agent, truncated = row
        doc, headers = hit(c, env_with(pairs))
        eq(doc["params"]["header"], expected, "header")
        eq(doc.get("truncated"), truncated, "truncated")
        eq(doc["context"], context(user_agent=user_agent, request_id=headers["X-Request-Id"]),
           "context")
    run_table(HEADER_ROWS, one)


# --------------------------------------------------------------- POST bodies
# (name, body bytes, extra CGI variables, expected body-json, expected
#  "truncated").  cgi-fcgi gets CONTENT_LENGTH = len(body) unless given.

def padded(total):
    """A JSON object of exactly total bytes."""
    return b'{"pad":"' + b"x" * (total - 10) + b'"}'


POST_ROWS = [
    ("a JSON object", b'{"event":"click","n":[1,2.5,null],"b":true}', {},
     {"event": "click", "n": [1, 2.5, None], "b": True}, None),
    ("exactly the limit (65536 bytes)", padded(MAX_BODY), {},
     {"pad": "x" * (MAX_BODY - 10)}, None),
    ("one byte over the limit", padded(MAX_BODY + 1), {}, {}, ["body-json"]),
    ("much larger than the limit (1 MiB)", padded(1 << 20), {}, {}, ["body-json"]),
    ("Content-Length larger than what arrives", b'{"a":1}', {"CONTENT_LENGTH": "1000"},
     {}, ["body-json"]),
    ("Content-Length smaller than what arrives", b'{"a":1}', {"CONTENT_LENGTH": "3"},
     {}, ["body-json"]),
    ("an array", b"[1,2]", {}, {}, None),
    ("a string", b'"click"', {}, {}, None),
    ("a number", b"42", {}, {}, None),
    ("null", b"null", {}, {}, None),
    ("form-encoded", b"a=1&b=2", {"CONTENT_TYPE": "application/x-www-form-urlencoded"},
     {}, None),
    ("deeply nested arrays (20000)", b"[" * 20000 + b"]" * 20000, {}, {}, None),
    ("deeply nested objects (5000)", b'{"a":' * 5000 + b"1" + b"}" * 5000, {}, {}, None),
    ("19 nested objects: Elasticsearch's mapping depth 20",
     b'{"a":' * 19 + b"1" + b"}" * 19, {},
     json.loads('{"a":' * 19 + "1" + "}" * 19), None),
    ("20 nested objects: past the mapping depth", b'{"a":' * 20 + b"1" + b"}" * 20, {},
     {}, None),
    ("invalid JSON: missing value", b'{"a":}', {}, {}, None),
    ("invalid JSON: trailing comma", b'{"a":1,}', {}, {}, None),
    ("invalid JSON: single quotes", b"{'a':1}", {}, {}, None),
    ("invalid JSON: unterminated", b'{"a":1', {}, {}, None),
    ("invalid JSON: garbage after", b'{"a":1} x', {}, {}, None),
    ("invalid JSON: bad escape", b'{"a":"\\x"}', {}, {}, None),
    ("invalid JSON: '1.' (json-c reads it and writes it back)", b'{"a":1.}', {}, {}, None),
    ("invalid JSON: a raw tab in a string", b'{"a":"x\ty"}', {}, {}, None),
    ("invalid JSON: NaN", b'{"a":NaN}', {}, {}, None),
    ("invalid JSON: Infinity", b'{"a":-Infinity}', {}, {}, None),
    ("a number no double holds", b'{"a":1e999}', {}, {}, None),
    ("an integer past 2^63-1", b'{"a":9223372036854775808}', {}, {}, None),
    ("2^63-1 is kept", b'{"a":9223372036854775807}', {}, {"a": 9223372036854775807}, None),
    ("an empty field name", b'{"":1}', {}, {}, None),
    ("a field name Elasticsearch refuses (dots)", b'{"a..b":1}', {}, {}, None),
    ("invalid UTF-8 inside strings and names", b'{"a":"x\xffy","k\xfe":"v","e":"\xed\xa0\x80"}',
     {}, {"a": "x" + R + "y", "k" + R: "v", "e": R * 3}, None),
    ("escaped lone surrogates", b'{"a":"\\ud800","b":"\\udc00x","c":"\\ud800\\u0041",'
     b'"d":"\\ud83d\\ude00"}', {}, {"a": R, "b": R + "x", "c": R + "A", "d": EMOJI}, None),
    ("escaped NUL and control characters", b'{"a":"x\\u0000y\\u001f"}', {},
     {"a": "x\x00y\x1f"}, None),
    ("emoji in a body", '{"e":"%s"}' % EMOJI, {}, {"e": EMOJI}, None),
]


def test_post_bodies(c):
    def one(row):
        name, body, extra, expected, truncated = row
        # Each row in a fresh index: the bodies reuse names with other
        # types ("a" an object, then a number), which one index's mapping
        # refuses, as a cluster's does.
        c.es.reset()
        body = body if isinstance(body, bytes) else body.encode()
        env = pixel_env(REQUEST_METHOD="POST", CONTENT_TYPE="application/json")
        env.update(extra)
        doc, headers = hit(c, env, body)
        eq(doc["body-json"], expected, "body-json")
        eq(doc.get("truncated"), truncated, "truncated")
        cl = extra.get("CONTENT_LENGTH", str(len(body)))
        eq(doc["params"]["header"], {"Content-Type": extra.get("CONTENT_TYPE", "application/json"),
                                     "Content-Length": cl}, "header")
        eq(doc["context"]["http-method"], "POST", "http-method")
    run_table(POST_ROWS, one)


def test_empty_post_body(c):
    c.es.reset()
    doc, _ = hit(c, pixel_env(REQUEST_METHOD="POST"))
    eq(doc["body-json"], {}, "body-json")
    eq(doc.get("truncated"), None, "truncated")
    eq(doc["params"]["header"], {}, "header")


def test_body_sent_slowly_or_never(c):
    """A body that never ends does not hold the worker: the read deadline
    (TRACKPIXEL_BODY_TIMEOUT_MS) ends it, the pixel is served and the hit is
    recorded with body-json cut.  A slow body within the deadline is whole."""
    with tplib.Worker(worker_env(c.es, TRACKPIXEL_BODY_TIMEOUT_MS="800")) as w:
        c.es.reset()
        env = pixel_env(REQUEST_METHOD="POST", CONTENT_TYPE="application/json",
                        CONTENT_LENGTH="16")
        status, headers, body, took = fcgi_client.slow_body_request(
            w.port, env, [(0, b'{"a":')], end=False)
        check_pixel(status, headers, body)
        assert took < 5, "the pixel took %.1f s" % took
        doc = accepted(c.es, headers["X-Request-Id"])
        eq((doc["body-json"], doc.get("truncated")), ({}, ["body-json"]), "never-ending body")

        env["CONTENT_LENGTH"] = "14"
        status, headers, body, took = fcgi_client.slow_body_request(
            w.port, env, [(0.1, b'{"a":'), (0.1, b'"slow'), (0.1, b'ly"}')])
        check_pixel(status, headers, body)
        doc = accepted(c.es, headers["X-Request-Id"])
        eq((doc["body-json"], doc.get("truncated")), ({"a": "slowly"}, None), "slow body")
        # The worker is still serving.
        status, headers, body = cgi_fcgi(w.port, pixel_env())
        check_pixel(status, headers, body)
        eq(w.stop(), 0, "exit status")


# ------------------------------------------------- the web server's variables

ENV_ROWS = [
    # (name, variables to drop, variables to set, expected context, expected path)
    ("no REMOTE_ADDR", ["REMOTE_ADDR"], {}, {"source-ip": ""}, {}),
    ("empty REMOTE_ADDR", [], {"REMOTE_ADDR": ""}, {"source-ip": ""}, {}),
    ("no SCRIPT_NAME", ["SCRIPT_NAME"], {}, {"resource-path": ""}, {}),
    ("empty SCRIPT_NAME", [], {"SCRIPT_NAME": ""}, {"resource-path": ""}, {}),
    ("no QUERY_STRING", ["QUERY_STRING"], {}, {}, {}),
    ("raw bytes in SCRIPT_NAME and PATH_INFO", [],
     {b"SCRIPT_NAME": b"/p\xff", b"PATH_INFO": b"/a\xed\xa0\x80b"},
     {"resource-path": "/p" + R}, {"proxy": "a" + R * 3 + "b"}),
    ("REMOTE_USER with control characters", [], {"REMOTE_USER": "al\x01ce"},
     {"user": "al\x01ce"}, {}),
]


def test_missing_and_empty_variables(c):
    c.es.reset()

    def one(row):
        name, drop, add, ctx, path = row
        env = pixel_env()
        for k in drop:
            del env[k]
        for k, v in add.items():
            env.pop(k.decode() if isinstance(k, bytes) else k, None)
            env[k] = v
        doc, headers = hit(c, env)
        expected = context(request_id=headers["X-Request-Id"])
        expected.update(ctx)
        eq(doc["context"], expected, "context")
        eq(doc["params"]["path"], path, "path")
    run_table(ENV_ROWS, one)


def test_no_or_bad_request_method_is_405_not_recorded(c):
    c.es.reset()
    for label, change in (("missing", None), ("empty", ""), ("lower case", "get"),
                          ("raw bytes", b"G\xffT"), ("TRACE", "TRACE")):
        env = pixel_env()
        del env["REQUEST_METHOD"]
        if change is not None:
            env[b"REQUEST_METHOD" if isinstance(change, bytes) else "REQUEST_METHOD"] = change
        status, headers, body = cgi_fcgi(c.worker.port, env)
        eq(status, 405, "%s: status" % label)
        eq(headers.get("Allow"), "GET, HEAD, POST", "%s: Allow" % label)
        eq(body, b"method not allowed\n", "%s: body" % label)
        eq("X-Request-Id" in headers, False, "%s: no request id" % label)
    # A GET afterwards is recorded, and is the only document.
    doc, headers = hit(c, pixel_env())
    time.sleep(0.3)
    eq([d["id"] for d in c.es.docs()], [headers["X-Request-Id"]], "documents")
    eq(len(tplib.settled_requests(c.es)), 1, "requests to the cluster")


def test_worker_survives_it_all(c):
    """After everything above the same worker still serves, and said nothing
    worse than dropped bodies on stderr."""
    status, headers, body = cgi_fcgi(c.worker.port, pixel_env(QUERY_STRING="after=1"))
    check_pixel(status, headers, body)
    accepted(c.es, headers["X-Request-Id"])
    eq(c.worker.proc.poll(), None, "worker still running")
    for line in c.worker.stderr().splitlines():
        assert "not recorded" not in line and "rejected" not in line, line
        # configure --enable-sanitizers: nothing from ASan or UBSan either
        assert "Sanitizer" not in line and "runtime error:" not in line, line


# ------------------------------------------------------------------- Apache

APACHE_QUERY_ROWS = [
    # (name, request target after /pixel?, expected querystring)
    ("raw latin-1 byte", b"q=caf\xe9", {"q": "caf" + R}),
    ("raw emoji", b"e=\xf0\x9f\x98\x80", {"e": EMOJI}),
    ("raw surrogate and past U+10FFFF", b"s=\xed\xa0\x80&p=\xf4\x90\x80\x80",
     {"s": R * 3, "p": R * 4}),
    ("escaped invalid UTF-8 and %00", b"a=%FF%C0%AF&n=%00&%zz=1",
     {"a": R * 3, "n": "\x00", "%zz": "1"}),
]
APACHE_HEADER_ROWS = [
    # (name, header lines, expected params.header subset, expected user-agent)
    ("raw bytes in User-Agent", [("User-Agent", b"bot\xff\xfe caf\xe9")],
     {"User-Agent": "bot" + R + R + " caf" + R}, "bot" + R + R + " caf" + R),
    ("raw surrogate in a header", [("X-Bytes", b"\xed\xa0\x80ok")],
     {"X-Bytes": R * 3 + "ok"}, ""),
]


def test_apache_raw_bytes(c):
    """The raw-byte rows through a real Apache with the shipped configuration
    (mod_fcgid starts the workers): Apache passes the bytes through."""
    try:
        import webserver
    except ImportError:
        raise AssertionError("tests/webserver.py is missing")
    import http.client
    settings = {"TRACKPIXEL_ES_URL": c.es.url, "AWS_REGION": AWS_KEYS["AWS_REGION"]}
    secrets = {k: v for k, v in AWS_KEYS.items() if k != "AWS_REGION"}
    srv = webserver.Apache(settings=settings, secrets=secrets)
    c.es.reset()
    try:
        srv.start()

        def get(target, headers):
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
            try:
                conn.putrequest("GET", "/pixel", skip_accept_encoding=True)
                conn._buffer[0] = b"GET /pixel?" + target + b" HTTP/1.1"  # raw bytes
                for name, value in headers:
                    conn.putheader(name, value)
                conn.endheaders()
                resp = conn.getresponse()
                return resp.status, dict(resp.getheaders()), resp.read()
            finally:
                conn.close()

        def one_query(row):
            name, target, expected = row
            status, headers, body = get(target, [])
            check_pixel(status, headers, body)
            doc = accepted(c.es, headers["X-Request-Id"])
            eq(doc["params"]["querystring"], expected, "querystring")
            eq(doc.get("truncated"), None, "truncated")

        def one_header(row):
            name, lines, expected, ua = row
            status, headers, body = get(b"h=1", lines)
            check_pixel(status, headers, body)
            doc = accepted(c.es, headers["X-Request-Id"])
            got = {k: v for k, v in doc["params"]["header"].items() if k in expected}
            eq(got, expected, "header")
            eq(doc["context"]["user-agent"], ua, "user-agent")
        run_table(APACHE_QUERY_ROWS, one_query)
        run_table(APACHE_HEADER_ROWS, one_header)
    finally:
        webserver.stop_server(srv)


if __name__ == "__main__":
    tplib.run_tests(globals(), setup=setup, teardown=teardown)
