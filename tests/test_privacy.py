#!/usr/bin/python3
"""Privacy settings end to end: the real binary under cgi-fcgi (the embedded
default's file, or the Elasticsearch stand-in for the journal and the dead
letters) and under lighttpd with the shipped configuration.  Documents are
compared whole; outside keep mode, the visitor's raw addresses are looked for
in every file the worker wrote."""
import grp
import hashlib
import hmac
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import eq, cgi_fcgi, pixel_env, wait_for, PIXEL, CONTEXT_KEYS  # noqa: E402
import webserver  # noqa: E402

KEY = b"0123456789abcdef0123456789abcdef"
TRUSTED = "10.0.0.0/8, 2001:db8:ffff::/48"
MODES = ("keep", "truncate", "hash", "drop")

# The visitor's addresses, as the requests below carry them.
RAW = ["198.51.100.77", "2001:db8:77::5", "203.0.113.77", "192.0.2.77", "198.51.100.78",
       "203.0.113.79", "192.0.2.80", "2001:db8:77::6", "198.51.100.90", "203.0.113.81"]


def key_file(directory, data=KEY + b"\n", mode=0o600):
    path = os.path.join(directory, "ip-hash.key")
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def hashed(addr, ms, key=KEY):
    """What the hash mode stores for addr on the UTC day of ms."""
    day = time.strftime("%Y-%m-%d", time.gmtime(ms // 1000))
    day_key = hmac.new(key, ("trackpixel ip-hash " + day).encode(), hashlib.sha256).digest()
    return "hmac-sha256:" + hmac.new(day_key, addr.encode(), hashlib.sha256).hexdigest()


def kept(mode, addr, ms):
    """addr as mode keeps it (canonical text)."""
    ip = ipaddress.ip_address(addr)
    if mode == "keep":
        return str(ip)
    if mode == "truncate":
        bits = 24 if ip.version == 4 else 48
        return str(ipaddress.ip_network("%s/%d" % (ip, bits), strict=False).network_address)
    if mode == "hash":
        return hashed(str(ip), ms)
    return ""


def worker(directory, **settings):
    """A worker writing to the embedded default's file in directory."""
    env = {"PATH": "/usr/bin:/bin", "TRACKPIXEL_SLOW_MS": "60000"}
    env.update(settings)
    return tplib.Worker(env, cwd=directory).start()


def output_docs(w, count):
    """The first count documents of w's output file (waits for them)."""
    path = os.path.join(w.cwd, "events.ndjson")

    def read():
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return None
        return lines if len(lines) >= 2 * count else None
    lines = wait_for(read, what="%d documents" % count)
    eq(len(lines), 2 * count, "lines in the output file")
    return [json.loads(lines[i]) for i in range(1, len(lines), 2)]


def hit(w, remote, headers=(), query="", method="GET", body=b""):
    """One request; headers as (CGI name, value).  Returns its request-id."""
    env = pixel_env(REMOTE_ADDR=remote, QUERY_STRING=query, REQUEST_METHOD=method)
    env.update(dict(headers))
    if body:
        env["CONTENT_TYPE"] = "application/json"
    status, rh, data = cgi_fcgi(w.port, env, body)
    eq((status, data), (200, PIXEL if method != "HEAD" else b""), "the pixel")
    return rh["X-Request-Id"]


def expected_doc(doc, rid, source_ip, header, query=None, body_json=None, method="GET",
                 tail=None, agent=None):
    """The whole document a hit must give (its own date, timestamp and id)."""
    ctx = {k: "" for k in CONTEXT_KEYS}
    ctx.update({"http-method": method, "stage": "prod", "source-ip": source_ip,
                "request-id": rid, "resource-path": "/pixel"})
    out = {"body-json": body_json or {},
           "params": {"path": {}, "querystring": query or {}, "header": header},
           "stage-variables": {}, "context": ctx,
           # These requests send no User-Agent (tests/test_agents.py covers it).
           "agent": agent or {"class": "unknown", "name": ""},
           "date": doc["date"], "@timestamp": doc["@timestamp"]}
    out.update(tail or {})
    return out


def same(doc, want, what):
    eq(list(doc.keys()), list(want.keys()), what + ": keys")
    eq(doc, want, what)


def no_raw(text, what, raw=RAW):
    for addr in raw:
        if addr in text:
            raise AssertionError("%s holds the raw address %s" % (what, addr))


def files_text(directory):
    """Every file under directory, as text, by path."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            if not os.path.isfile(path):
                continue                # a socket
            with open(path, "rb") as f:
                out[path] = f.read().decode("utf-8", "replace")
    return out


# ------------------------------------------------------------------ tests

def test_default_drops_cookie_keeps_address():
    with tempfile.TemporaryDirectory() as d:
        w = worker(d)
        rid = hit(w, "203.0.113.9", [("HTTP_COOKIE", "session=abc"), ("HTTP_ACCEPT", "*/*"),
                                     ("HTTP_X_FORWARDED_FOR", "198.51.100.1")])
        doc, = output_docs(w, 1)
        same(doc, expected_doc(doc, rid, "203.0.113.9",
                               {"Accept": "*/*", "X-Forwarded-For": "198.51.100.1"}), "document")
        eq(w.stop(), 0, "exit status")


def test_drop_headers_empty_keeps_cookie():
    with tempfile.TemporaryDirectory() as d:
        w = worker(d, TRACKPIXEL_DROP_HEADERS="")
        rid = hit(w, "203.0.113.9", [("HTTP_COOKIE", "session=abc"),
                                     ("HTTP_AUTHORIZATION", "Basic c2VjcmV0")])
        doc, = output_docs(w, 1)
        same(doc, expected_doc(doc, rid, "203.0.113.9", {"Cookie": "session=abc"}), "document")
        eq(w.stop(), 0, "exit status")


def mode_cases():
    """(REMOTE_ADDR, headers, the client address, {header: [addresses]})."""
    return [
        # IPv4, untrusted: the headers do not choose the address.
        ("203.0.113.77", [("HTTP_X_FORWARDED_FOR", "198.51.100.77")], "203.0.113.77",
         {"X-Forwarded-For": ["198.51.100.77"]}),
        # IPv4 behind a trusted proxy: the rightmost untrusted entry.
        ("10.1.2.3", [("HTTP_X_FORWARDED_FOR", "192.0.2.1, 198.51.100.77, 10.1.2.4")],
         "198.51.100.77", {"X-Forwarded-For": ["192.0.2.1", "198.51.100.77", "10.1.2.4"]}),
        # IPv6 behind a trusted IPv6 proxy, from Forwarded.
        ("2001:db8:ffff::1", [("HTTP_FORWARDED", 'for="[2001:db8:77::5]:4711";proto=https'),
                              ("HTTP_X_REAL_IP", "2001:db8:77::5")],
         "2001:db8:77::5", {"Forwarded": ["2001:db8:77::5"], "X-Real-Ip": ["2001:db8:77::5"]}),
        # IPv6, untrusted.
        ("2001:db8:77::6", [], "2001:db8:77::6", {}),
    ]


def header_value(mode, name, addrs, ms, raw_value):
    if mode == "keep":
        return raw_value
    if name == "Forwarded":
        v = kept(mode, addrs[0], ms)
        return 'for="%s";proto=https' % (v if mode == "hash" else "[%s]" % v)
    return ", ".join(kept(mode, a, ms) for a in addrs)


def test_each_mode_ipv4_ipv6_trusted_untrusted():
    for mode in MODES:
        with tempfile.TemporaryDirectory() as d:
            w = worker(d, TRACKPIXEL_TRUSTED_PROXIES=TRUSTED, TRACKPIXEL_IP_MODE=mode,
                       TRACKPIXEL_IP_HASH_KEY_FILE=key_file(d))
            cases = mode_cases()
            rids = [hit(w, remote, headers) for remote, headers, _, _ in cases]
            docs = output_docs(w, len(cases))
            for (remote, headers, client, addr_headers), rid, doc in zip(cases, rids, docs):
                raw_headers = {webserver_name(n): v for n, v in headers}
                want_headers = {}
                if mode != "drop":
                    for name, addrs in addr_headers.items():
                        want_headers[name] = header_value(mode, name, addrs, doc["date"],
                                                          raw_headers[name])
                source = remote if (mode == "keep" and client == remote) else \
                    kept(mode, client, doc["date"])
                same(doc, expected_doc(doc, rid, source, want_headers),
                     "%s, REMOTE_ADDR %s" % (mode, remote))
                if mode != "keep":
                    no_raw(json.dumps(doc), "the %s document" % mode,
                           [client] + [a for a in RAW if a != "10.1.2.3"])
            eq(w.stop(), 0, "exit status")


def webserver_name(cgi):
    """HTTP_X_REAL_IP -> X-Real-Ip."""
    return "-".join(p.capitalize() for p in cgi[5:].split("_"))


def test_spoofed_and_malformed_chains():
    chain = ", ".join("1.1.%d.%d" % (i // 250, i % 250) for i in range(210))
    assert len(chain) >= 2048, len(chain)
    with tempfile.TemporaryDirectory() as d:
        w = worker(d, TRACKPIXEL_TRUSTED_PROXIES="10.0.0.0/8, ::1", TRACKPIXEL_IP_MODE="truncate")
        cases = [
            # (REMOTE_ADDR, X-Forwarded-For, source-ip, the header as recorded)
            ("10.1.2.3", "unknown, 300.1.1.1, [::1]", "10.1.2.0", None),
            ("10.1.2.3", "unknown, 300.1.1.1, [2001:db8::9]", "2001:db8::", None),
            ("203.0.113.77", "unknown, 300.1.1.1, [::1]", "203.0.113.0", None),
            ("203.0.113.77", "10.9.9.9", "203.0.113.0", "10.9.9.0"),
            ("10.1.2.3", chain + ", 198.51.100.77", "198.51.100.0", None),
            ("203.0.113.78", chain, "203.0.113.0", None),
            ("10.1.2.3", "198.51.100.77:4711, unknown", "198.51.100.0", "198.51.100.0, unknown"),
        ]
        rids = [hit(w, remote, [("HTTP_X_FORWARDED_FOR", xff)]) for remote, xff, _, _ in cases]
        docs = output_docs(w, len(cases))
        for (remote, xff, source, header), rid, doc in zip(cases, rids, docs):
            if header is None and len(xff) > 2048:
                # Every entry of the chain is an address: each is truncated.
                header = ", ".join(str(ipaddress.ip_network(a.strip() + "/24", strict=False)
                                       .network_address) for a in xff.split(","))
            want = {"X-Forwarded-For": header} if header else {}
            same(doc, expected_doc(doc, rid, source, want), "%s %.40s" % (remote, xff))
        eq(w.stop(), 0, "exit status")


def test_hash_same_in_two_workers():
    """Two workers (two machines) reading the same secret from their own
    files give the same value; the value is the day's HMAC of the document's
    UTC day (tests/check_privacy.c moves the clock across midnight)."""
    with tempfile.TemporaryDirectory() as d1, tempfile.TemporaryDirectory() as d2:
        w1 = worker(d1, TRACKPIXEL_IP_MODE="hash", TRACKPIXEL_IP_HASH_KEY_FILE=key_file(d1))
        w2 = worker(d2, TRACKPIXEL_IP_MODE="hash",
                    TRACKPIXEL_IP_HASH_KEY_FILE=key_file(d2, KEY))   # no newline: same secret
        hit(w1, "203.0.113.77")
        hit(w2, "203.0.113.77")
        hit(w2, "203.0.113.78")
        a, = output_docs(w1, 1)
        b, c = output_docs(w2, 2)
        if time.gmtime(a["date"] // 1000).tm_yday != time.gmtime(b["date"] // 1000).tm_yday:
            raise tplib.Skip("the hits fell on two UTC days")
        eq(a["context"]["source-ip"], hashed("203.0.113.77", a["date"]), "worker 1")
        eq(b["context"]["source-ip"], a["context"]["source-ip"], "worker 2, same address")
        eq(c["context"]["source-ip"], hashed("203.0.113.78", c["date"]), "another address")
        assert b["context"]["source-ip"] != c["context"]["source-ip"]
        eq(len(a["context"]["source-ip"]), len("hmac-sha256:") + 64, "fixed length")
        eq(w1.stop(), 0, "exit status")
        eq(w2.stop(), 0, "exit status")


def test_redaction_in_query_and_body():
    with tempfile.TemporaryDirectory() as d:
        w = worker(d, TRACKPIXEL_REDACT_PARAMS="email, token")
        r1 = hit(w, "203.0.113.9", query="email=a%40b.example&utm_source=x&token=abc&Email=kept")
        body = b'{"email":"a@b.example","deep":{"email":"kept"},"token":7,"n":1}'
        r2 = hit(w, "203.0.113.9", method="POST", body=body)
        d1, d2 = output_docs(w, 2)
        same(d1, expected_doc(d1, r1, "203.0.113.9", {},
                              query={"email": "[redacted]", "utm_source": "x",
                                     "token": "[redacted]", "Email": "kept"}), "GET")
        same(d2, expected_doc(d2, r2, "203.0.113.9",
                              {"Content-Length": str(len(body)),
                               "Content-Type": "application/json"},
                              body_json={"email": "[redacted]", "deep": {"email": "kept"},
                                         "token": "[redacted]", "n": 1}, method="POST"),
             "POST")
        with open(os.path.join(d, "events.ndjson")) as f:
            text = f.read()
        assert "a@b.example" not in text and '"abc"' not in text, text
        eq(w.stop(), 0, "exit status")


def test_gpc_anonymize():
    with tempfile.TemporaryDirectory() as d:
        w = worker(d, TRACKPIXEL_GPC="anonymize", TRACKPIXEL_TRUSTED_PROXIES="10.0.0.0/8")
        common = [("HTTP_COOKIE", "a=b"), ("HTTP_REFERER", "https://example.com/"),
                  ("HTTP_X_FORWARDED_FOR", "198.51.100.77"), ("HTTP_ACCEPT", "*/*")]
        r1 = hit(w, "10.1.2.3", [("HTTP_SEC_GPC", "1")] + common)
        r2 = hit(w, "10.1.2.3", [("HTTP_DNT", "1")] + common)
        r3 = hit(w, "10.1.2.3", [("HTTP_DNT", "0")] + common)
        d1, d2, d3 = output_docs(w, 3)
        same(d1, expected_doc(d1, r1, "", {"Sec-Gpc": "1", "Accept": "*/*"},
                              tail={"privacy": "gpc"}), "Sec-GPC: 1")
        same(d2, expected_doc(d2, r2, "", {"Dnt": "1", "Accept": "*/*"},
                              tail={"privacy": "gpc"}), "DNT: 1")
        same(d3, expected_doc(d3, r3, "198.51.100.77",
                              {"Dnt": "0", "Referer": "https://example.com/",
                               "X-Forwarded-For": "198.51.100.77", "Accept": "*/*"}),
             "DNT: 0")
        eq(w.stop(), 0, "exit status")


def test_gpc_skip():
    with tempfile.TemporaryDirectory() as d:
        w = worker(d, TRACKPIXEL_GPC="skip")
        hit(w, "203.0.113.77", [("HTTP_SEC_GPC", "1")])
        hit(w, "203.0.113.77", [("HTTP_DNT", "1")], method="POST", body=b'{"a":1}')
        hit(w, "203.0.113.77", [("HTTP_SEC_GPC", "1")], method="HEAD")
        rid = hit(w, "203.0.113.9", [("HTTP_SEC_GPC", "0")])
        doc, = output_docs(w, 1)
        same(doc, expected_doc(doc, rid, "203.0.113.9", {"Sec-Gpc": "0"}), "recorded hit")
        eq(w.stop(), 0, "exit status")
        stop = [line for line in w.stderr().splitlines() if "stopping:" in line]
        eq(len(stop), 1, "stop lines")
        assert stop[0].endswith("stopping: 1 hits, 1 delivered, 0 dead letters, 0 dropped, "
                                "0 journal errors, 0 damaged journal regions, "
                                "3 not recorded for Sec-GPC/DNT, 0 bots not recorded"), stop[0]
        no_raw(files_text(d).get(os.path.join(d, "events.ndjson"), ""), "the output",
               ["203.0.113.77"])


def test_start_errors_name_the_variable():
    with tempfile.TemporaryDirectory() as d:
        short = key_file(d, b"x" * 31 + b"\n")
        cases = [
            ({"TRACKPIXEL_TRUSTED_PROXIES": "10.0.0.0/8, 10.0.0.0/40"},
             'TRACKPIXEL_TRUSTED_PROXIES: "10.0.0.0/40" is not an IPv4 or IPv6 address or CIDR '
             "(e.g. 10.0.0.0/8, 2001:db8::/32)"),
            ({"TRACKPIXEL_IP_MODE": "mask"},
             'TRACKPIXEL_IP_MODE: "mask" is not one of keep, truncate, hash, drop'),
            ({"TRACKPIXEL_GPC": "honour"},
             'TRACKPIXEL_GPC: "honour" is not one of ignore, anonymize, skip'),
            ({"TRACKPIXEL_IP_MODE": "hash"},
             "TRACKPIXEL_IP_HASH_KEY_FILE: not set, and TRACKPIXEL_IP_MODE is hash "
             "(the file holds the secret, at least 32 bytes)"),
            ({"TRACKPIXEL_IP_MODE": "hash", "TRACKPIXEL_IP_HASH_KEY_FILE": d + "/missing"},
             "TRACKPIXEL_IP_HASH_KEY_FILE: cannot open %s/missing: No such file or directory" % d),
            ({"TRACKPIXEL_IP_MODE": "hash", "TRACKPIXEL_IP_HASH_KEY_FILE": short},
             "TRACKPIXEL_IP_HASH_KEY_FILE: %s holds 31 bytes, at least 32 are needed" % short),
        ]
        for env, message in cases:
            p = subprocess.run([tplib.TRACKPIXEL], env=dict(env, PATH="/usr/bin:/bin"),
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=30, cwd=d)
            err = p.stderr.decode()
            eq(p.returncode, 1, "exit status for %r" % env)
            assert err.rstrip("\n").endswith("]: " + message), (env, err)
            p = subprocess.run([tplib.TRACKPIXEL, "--check"], env=dict(env, PATH="/usr/bin:/bin"),
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=30, cwd=d)
            eq((p.returncode, p.stdout.decode()), (1, "configuration: error: %s\n" % message),
               "--check")


def cluster_hits(w):
    """Hits carrying the visitor's addresses in every address header, from a
    trusted proxy and directly; request-ids."""
    headers = [("HTTP_X_FORWARDED_FOR", "198.51.100.77, 10.1.2.4"),
               ("HTTP_X_REAL_IP", "203.0.113.77"),
               ("HTTP_FORWARDED", 'for="[2001:db8:77::5]:4711", for=192.0.2.77;proto=https'),
               ("HTTP_CF_CONNECTING_IP", "198.51.100.78"), ("HTTP_TRUE_CLIENT_IP", "203.0.113.79"),
               ("HTTP_X_CLIENT_IP", "192.0.2.80"), ("HTTP_FASTLY_CLIENT_IP", "2001:db8:77::6")]
    return [hit(w, "10.1.2.3", headers),
            hit(w, "203.0.113.81", [("HTTP_X_FORWARDED_FOR", "unknown, 198.51.100.90, 300.1.1.1")]),
            hit(w, "2001:db8:77::5", [])]


def test_no_raw_address_in_documents_journal_dead_letters():
    """Outside keep, no file the worker writes holds a raw address: the
    journal (cluster down), the dead letters (documents refused), the
    documents the cluster stored, and the worker's log."""
    for mode in ("truncate", "hash", "drop"):
        with tempfile.TemporaryDirectory() as d:
            es = tplib.signed_standin()
            try:
                w = tplib.Worker(tplib.worker_env(
                    es, TRACKPIXEL_TRUSTED_PROXIES=TRUSTED, TRACKPIXEL_IP_MODE=mode,
                    TRACKPIXEL_IP_HASH_KEY_FILE=key_file(d), TRACKPIXEL_SLOW_MS="60000"),
                    cwd=d).start()
                es.mode(status=503)
                down = cluster_hits(w)
                journals = wait_for(lambda: [t for p, t in files_text(w.spool).items()
                                             if os.path.basename(p).startswith("journal.") and
                                             all(r in t for r in down)] or None,
                                    what="the journal entries")
                no_raw("".join(journals), mode + ": the journal")
                es.mode(reject_items=1000)
                dl = os.path.join(w.spool, "deadletter.ndjson")
                wait_for(lambda: os.path.exists(dl) and
                         len(open(dl).read().splitlines()) == len(down), 30, "the dead letters")
                with open(dl) as f:
                    text = f.read()
                eq(sorted(json.loads(line)["_id"] for line in text.splitlines()), sorted(down),
                   mode + ": dead letters")
                no_raw(text, mode + ": the dead letters")
                es.mode()
                up = cluster_hits(w)
                wait_for(lambda: len([x for x in es.docs() if x["id"] in up]) == len(up) or None,
                         what="the documents")
                for x in es.docs():
                    no_raw(x["raw"], mode + ": document " + x["id"])
                eq(w.stop(), 0, "exit status")
                for path, text in files_text(w.spool).items():
                    no_raw(text, mode + ": " + path)
                no_raw(w.stderr(), mode + ": the worker's log")
            finally:
                es.stop()


# ------------------------------------------------------------ lighttpd

def test_under_lighttpd_shipped_configuration():
    """The shipped lighttpd configuration with the privacy settings set on
    its lines; lighttpd's REMOTE_ADDR is 127.0.0.1, the trusted proxy."""
    if not os.path.exists("/usr/sbin/lighttpd"):
        raise tplib.Skip("lighttpd is not installed")
    srv = webserver.Lighttpd(settings={})
    try:
        key = key_file(srv.dir, mode=0o640)
        if os.geteuid() == 0:
            os.chown(key, 0, grp.getgrnam(srv.group).gr_gid)
        srv.settings.update({"TRACKPIXEL_TRUSTED_PROXIES": "127.0.0.1/32",
                             "TRACKPIXEL_IP_MODE": "hash", "TRACKPIXEL_IP_HASH_KEY_FILE": key,
                             "TRACKPIXEL_DROP_HEADERS": "Cookie, X-Secret",
                             "TRACKPIXEL_REDACT_PARAMS": "email",
                             "TRACKPIXEL_GPC": "anonymize"})
        srv.start()
        conn = srv.connection()
        sent = []
        for target, headers, body in [
                ("/pixel?email=a%40b.example&x=1",
                 [("X-Forwarded-For", "198.51.100.77"), ("Cookie", "s=1"), ("X-Secret", "k"),
                  ("Referer", "https://example.com/")], None),
                ("/pixel", [("X-Forwarded-For", "198.51.100.77"), ("Sec-GPC", "1"),
                            ("Referer", "https://example.com/")], None),
                ("/pixel", [("X-Forwarded-For", "203.0.113.77")],
                 b'{"email":"a@b.example","n":1}')]:
            status, _, rh, data = webserver.send(conn, "POST" if body else "GET", target,
                                                 headers, body)
            eq((status, data), (200, PIXEL), "the pixel")
            sent.append(dict(rh)["X-Request-Id"])
        pairs = wait_for(lambda: len(srv.documents_in_output()) == 3 and
                         srv.documents_in_output(), what="3 documents")
        docs = {action["create"]["_id"]: doc for action, doc in pairs}
        a, b, c = (docs[r] for r in sent)
        host = "127.0.0.1:%d" % srv.port
        ms = a["date"]
        same(a, expected_doc(a, sent[0], hashed("198.51.100.77", ms),
                             {"Host": host, "X-Forwarded-For": hashed("198.51.100.77", ms),
                              "Referer": "https://example.com/"},
                             query={"email": "[redacted]", "x": "1"}), "first hit")
        same(b, expected_doc(b, sent[1], "", {"Host": host, "Sec-Gpc": "1"},
                             tail={"privacy": "gpc"}), "Sec-GPC: 1")
        eq(c["context"]["source-ip"], hashed("203.0.113.77", c["date"]), "POST source-ip")
        eq(c["body-json"], {"email": "[redacted]", "n": 1}, "POST body")
        for path, text in list(files_text(srv.rundir).items()):
            if path.endswith(".ndjson"):
                no_raw(text, path, ["198.51.100.77", "203.0.113.77", "a@b.example"])
        conn.close()
    finally:
        webserver.stop_server(srv)


if __name__ == "__main__":
    tplib.run_tests(globals())
