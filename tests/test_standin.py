#!/usr/bin/python3
"""Tests of the Elasticsearch stand-in (tests/es_standin.py) itself.

The other integration tests trust the stand-in to answer like Elasticsearch
7.10 behind Amazon's SigV4 front door; these tests pin that down.  Requests are
signed here with botocore's SigV4Auth (a valid client), then broken on purpose.
The AWS SigV4 test-suite vectors check the verifier against a second,
independent reference.  No secret is ever printed.
"""
import glob
import http.client
import io
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import eq  # noqa: E402
import es_standin  # noqa: E402
from es_standin import Standin  # noqa: E402

# Made-up credentials; never printed (eq() is never given them).
AK = "AKIDSTANDINTEST0001"
SK = "standin/Secret+Key0123456789abcdefEXAMPLE"
TOKEN = "standin-session//token+example=="
JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/x-ndjson"}
SHARDS = {"total": 2, "successful": 1, "failed": 0}
SUITE = os.environ.get("TP_SIGV4_SUITE") or os.path.join(
    tplib.SRCDIR, "tests", "aws-sigv4-testsuite", "v4")
SUITE_CASES = 38


def setup():
    return Standin(access_key=AK, secret_key=SK, session_token=TOKEN).start()


def teardown(es):
    es.stop()


def put(es, path, body, headers=JSON, method="PUT", **sign):
    """A request signed with the stand-in's credentials (sign: overrides)."""
    return es.request(method, path, body, headers, sign=sign or True)


def tamper(headers, name, change):
    return [(k, change(v) if k.lower() == name else v) for k, v in headers]


def last_request(es):
    return es.requests()[-1]


def conflict(index, doc_id, uuid):
    err = {"type": "version_conflict_engine_exception",
           "reason": "[%s]: version conflict, document already exists (current version [1])" % doc_id,
           "index_uuid": uuid, "shard": "0", "index": index}
    return err


# ------------------------------------------------------- Elasticsearch API

def test_cluster_info(es):
    es.reset()
    r = put(es, "/", b"", {}, method="GET")
    eq(r.status, 200, "status")
    info = r.json()
    eq(info["version"]["number"], "7.10.2", "version")
    eq(info["tagline"], "You Know, for Search", "tagline")
    eq(sorted(info), ["cluster_name", "cluster_uuid", "name", "tagline", "version"], "fields")
    eq(r.header("Content-Type"), "application/json; charset=UTF-8", "content type")


def test_create_then_conflict(es):
    es.reset()
    r = put(es, "/events/_create/a1", b'{"n":1}')
    eq(r.status, 201, "first create")
    eq(r.json(), {"_index": "events", "_type": "_doc", "_id": "a1", "_version": 1,
                  "result": "created", "_shards": SHARDS, "_seq_no": 0, "_primary_term": 1},
       "created body")
    eq(r.header("Location"), "/events/_doc/a1", "Location")
    r = put(es, "/events/_create/a1", b'{"n":2}', method="POST")
    eq(r.status, 409, "second create")
    body = r.json()
    uuid = body["error"]["index_uuid"]
    err = conflict("events", "a1", uuid)
    eq(body, {"error": dict(root_cause=[err], **err), "status": 409}, "conflict body")
    eq(len(uuid), 22, "index_uuid length")
    docs = es.docs()
    eq([(d["index"], d["type"], d["id"], d["source"], d["via"]) for d in docs],
       [("events", "_doc", "a1", {"n": 1}, "create")], "stored docs")
    eq([q["status"] for q in es.requests()], [201, 409], "logged statuses")


def test_get_doc(es):
    es.reset()
    put(es, "/events/_create/g1", b'{"k":"v\xc3\xa9"}')
    r = put(es, "/events/_doc/g1", b"", {}, method="GET")
    eq(r.status, 200, "found status")
    eq(r.json(), {"_index": "events", "_type": "_doc", "_id": "g1", "_version": 1, "_seq_no": 0,
                  "_primary_term": 1, "found": True, "_source": {"k": "v\u00e9"}}, "found body")
    r = put(es, "/events/_doc/nope", b"", {}, method="GET")
    eq((r.status, r.json()), (404, {"_index": "events", "_type": "_doc", "_id": "nope",
                                    "found": False}), "missing doc")
    r = put(es, "/other/_doc/g1", b"", {}, method="GET")
    eq(r.status, 404, "missing index status")
    eq(r.json()["error"]["type"], "index_not_found_exception", "missing index type")


def test_typed_create(es):
    es.reset()
    r = put(es, "/legacy/hit/t1?op_type=create", b'{"a":1}', method="POST")
    eq(r.status, 201, "typed create")
    eq((r.json()["_type"], r.json()["result"]), ("hit", "created"), "typed body")
    eq("[types removal]" in (r.header("Warning") or ""), True, "deprecation warning")
    r = put(es, "/legacy/hit/t1?op_type=create", b'{"a":1}')
    eq(r.status, 409, "typed duplicate")
    eq(r.json()["error"]["type"], "version_conflict_engine_exception", "typed conflict type")
    r = put(es, "/legacy/other/t2?op_type=create", b'{"a":1}')
    eq(r.status, 400, "second type")
    eq(r.json()["error"]["type"], "illegal_argument_exception", "second type error")
    eq([(d["type"], d["id"], d["via"], d["op"]) for d in es.docs()],
       [("hit", "t1", "create", "create")], "typed docs")
    r = put(es, "/legacy/hit/t3", b'{"a":3}')
    eq((r.status, r.json()["result"]), (201, "created"), "typed index op")
    r = put(es, "/legacy/hit/t3", b'{"a":4}')
    eq((r.status, r.json()["result"], r.json()["_version"]), (200, "updated", 2), "typed overwrite")


def test_content_type(es):
    es.reset()
    r = put(es, "/events/_create/c1", b'{"a":1}', {"Content-Type": "text/plain"})
    eq((r.status, r.json()), (406, {"error": "Content-Type header [text/plain] is not supported",
                                    "status": 406}), "text/plain")
    r = put(es, "/events/_create/c1", b'{"a":1}', {})
    eq((r.status, r.json()), (406, {"error": "Content-Type header is missing", "status": 406}),
       "no content type")
    r = put(es, "/events/_create/c1", b'{"a":1}', {"Content-Type": "application/json; charset=UTF-8"})
    eq(r.status, 201, "json with charset")
    r = put(es, "/_bulk", b'{"create":{"_index":"events","_id":"c2"}}\n{"a":2}\n',
            {"Content-Type": "text/plain"}, method="POST")
    eq(r.status, 406, "bulk text/plain")
    eq(len(es.docs()), 1, "nothing stored by 406s")


def test_invalid_utf8_body(es):
    es.reset()
    r = put(es, "/events/_create/u1", b'{"a":"\xff"}')
    eq(r.status, 400, "status")
    body = r.json()
    root = {"type": "mapper_parsing_exception", "reason": "failed to parse"}
    eq(body["error"]["root_cause"], [root], "root_cause")
    eq((body["error"]["type"], body["error"]["reason"], body["status"]),
       ("mapper_parsing_exception", "failed to parse", 400), "error")
    cause = body["error"]["caused_by"]
    eq(cause["type"], "json_parse_exception", "caused_by type")
    eq(cause["reason"].startswith("Invalid UTF-8 start byte 0xff\n at [Source: "), True,
       "caused_by reason " + cause["reason"])
    r = put(es, "/events/_create/u2", b'{"a":"\xc3("}')
    eq(r.json()["error"]["caused_by"]["reason"].split("\n")[0], "Invalid UTF-8 middle byte 0x28",
       "middle byte")
    r = put(es, "/events/_create/u3", b'{"a":"\xed\xa0\x80"}')      # a UTF-16 surrogate
    eq(r.status, 400, "surrogate")
    eq(es.docs(), [], "nothing stored")


def test_bad_json_bodies(es):
    es.reset()
    cases = [
        (b"[1]", "mapper_parsing_exception", "Malformed content, must start with an object", None),
        (b'"text"', "mapper_parsing_exception", "Malformed content, must start with an object", None),
        (b"   ", "mapper_parsing_exception", "Malformed content, must start with an object", None),
        (b'{"a":1} x', "mapper_parsing_exception", "failed to parse", "json_parse_exception"),
        (b'{"a":1}{"b":2}', "mapper_parsing_exception", "failed to parse", "json_parse_exception"),
        (b'{"a":1,"a":2}', "mapper_parsing_exception", "failed to parse", "json_parse_exception"),
        (b'{"a":NaN}', "mapper_parsing_exception", "failed to parse", "json_parse_exception"),
        (b'{"a":1', "mapper_parsing_exception", "failed to parse", "json_parse_exception"),
        (b"hello", "mapper_parsing_exception", "failed to parse", "json_parse_exception"),
    ]
    for n, (body, etype, reason, cause) in enumerate(cases):
        r = put(es, "/events/_create/b%d" % n, body)
        err = r.json()["error"]
        eq((r.status, err["type"], err["reason"], err.get("caused_by", {}).get("type")),
           (400, etype, reason, cause), "body %r" % body)
    r = put(es, "/events/_create/dup", b'{"a":1,"a":2}')
    eq(r.json()["error"]["caused_by"]["reason"].split("\n")[0], "Duplicate field 'a'", "duplicate")
    r = put(es, "/events/_create/empty", b"")
    eq((r.status, r.json()["error"]["type"], r.json()["error"]["reason"]),
       (400, "parse_exception", "request body is required"), "empty body")
    eq(es.docs(), [], "nothing stored")
    # (One type per array: a cluster maps a field by its first value.)
    r = put(es, "/events/_create/ok", b'\n {"a" : [1, 2.5, null], "b" : true, "c" : "\\u00e9"}\n')
    eq(r.status, 201, "valid JSON with whitespace")


def test_names_and_params(es):
    es.reset()
    r = put(es, "/Events/_create/x", b'{"a":1}')
    eq((r.status, r.json()["error"]["type"], r.json()["error"]["reason"]),
       (400, "invalid_index_name_exception", "Invalid index name [Events], must be lowercase"),
       "uppercase index")
    r = put(es, "/events/_create/x?bogus=1", b'{"a":1}')
    eq((r.status, r.json()["error"]["reason"]),
       (400, "request [/events/_create/x] contains unrecognized parameter: [bogus]"), "bad param")
    r = put(es, "/events/_create/x", b"", {}, method="GET")
    eq(r.status, 405, "GET on _create")
    r = put(es, "/events/_create/x?refresh=wait_for&timeout=1m", b'{"a":1}')
    eq(r.status, 201, "known params")
    r = put(es, "/events/_create/a%2Fb", b'{"a":1}')
    eq((r.status, r.json()["_id"]), (201, "a/b"), "percent-encoded id")


# ------------------------------------------------------------- signatures

def test_missing_signature(es):
    es.reset()
    r = es.request("PUT", "/events/_create/m1", b'{"a":1}', JSON)
    eq((r.status, r.json()), (403, {"message": "Missing Authentication Token"}), "unsigned")
    q = last_request(es)
    eq((q["signed"], q["sig_ok"], q["status"]), (False, False, 403), "log")
    eq(es.docs(), [], "nothing stored")


def test_good_signature_logged(es):
    es.reset()
    r = put(es, "/events/_create/s1", b'{"a":1}', content_sha256=True)
    eq(r.status, 201, "status")
    q = last_request(es)
    eq((q["signed"], q["sig_ok"], q["sig_error"], q["token_ok"], q["token_signed"],
        q["content_sha256_header"], q["content_sha256_ok"], q["content_type"]),
       (True, True, "", True, True, True, True, "application/json"), "log")
    eq(q["signed_headers"], ["content-type", "host", "x-amz-content-sha256", "x-amz-date",
                             "x-amz-security-token"], "signed headers")
    eq((q["method"], q["path"], q["query"]), ("PUT", "/events/_create/s1", ""), "request")


def test_wrong_signature(es):
    es.reset()
    body = b'{"a":1}'
    headers = es.sign("PUT", "/events/_create/w1", body, JSON)

    def flip_last_hex(value):
        last = value[-1]
        return value[:-1] + ("0" if last != "0" else "1")
    r = es.request("PUT", "/events/_create/w1", body, tamper(headers, "authorization", flip_last_hex))
    eq(r.status, 403, "status")
    eq(r.json()["message"].startswith("The request signature we calculated does not match the "
                                      "signature you provided."), True, "message")
    q = last_request(es)
    eq((q["signed"], q["sig_ok"], q["status"]), (True, False, 403), "log")
    eq("signature does not match" in q["sig_error"], True, "sig_error " + q["sig_error"])
    r = es.request("PUT", "/events/_create/w1", body, headers)
    eq(r.status, 201, "untampered request still good")


def test_wrong_secret_and_scope(es):
    es.reset()
    body = b'{"a":1}'
    stale = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 3600))
    cases = [
        (dict(secret_key=SK + "x"), "The request signature we calculated", "signature does not match"),
        (dict(access_key="AKIDSOMEONEELSE"), "The security token included in the request is invalid.",
         "access key"),
        (dict(region="us-west-2"), "Credential should be scoped to a valid region", "region"),
        (dict(service="aoss"), "Credential should be scoped to correct service: 'es'", "service"),
        (dict(amz_date=stale), "Signature expired: " + stale, "too old"),
    ]
    for kw, message, why in cases:
        r = put(es, "/events/_create/x1", body, **kw)
        eq(r.status, 403, "status for %s" % sorted(kw))
        eq(r.json()["message"].startswith(message), True, "message for %s" % sorted(kw))
        q = last_request(es)
        eq((q["sig_ok"], why in q["sig_error"]), (False, True),
           "log for %s: %s" % (sorted(kw), q["sig_error"]))
    eq(es.docs(), [], "nothing stored")


def test_wrong_session_token(es):
    es.reset()
    r = put(es, "/events/_create/t1", b'{"a":1}', session_token=TOKEN + "x")
    eq((r.status, r.json()), (403, {"message": "The security token included in the request is invalid."}),
       "wrong token")
    eq((last_request(es)["token_ok"], last_request(es)["sig_ok"]), (False, False), "log wrong token")
    r = put(es, "/events/_create/t1", b'{"a":1}', session_token=None)
    eq(r.status, 403, "no token")
    eq(last_request(es)["sig_error"], "session token missing", "log no token")
    # A token sent but not signed (as some clients do) is accepted when it is right.
    headers = es.sign("PUT", "/events/_create/t1", b'{"a":1}', JSON, session_token=None)
    r = es.request("PUT", "/events/_create/t1", b'{"a":1}', headers + [("X-Amz-Security-Token", TOKEN)])
    eq(r.status, 201, "unsigned but correct token")
    eq((last_request(es)["token_ok"], last_request(es)["token_signed"]), (True, False), "log")


def test_body_altered_after_signing(es):
    es.reset()
    headers = es.sign("PUT", "/events/_create/b1", b'{"a":1}', JSON)
    r = es.request("PUT", "/events/_create/b1", b'{"a":2}', headers)
    eq(r.status, 403, "altered body")
    eq("signature does not match" in last_request(es)["sig_error"], True, "log altered body")
    # With a signed x-amz-content-sha256 the signature itself still holds: the hash check catches it.
    headers = es.sign("PUT", "/events/_create/b1", b'{"a":1}', JSON, content_sha256=True)
    r = es.request("PUT", "/events/_create/b1", b'{"a":2}', headers)
    eq(r.status, 403, "altered body with content hash")
    q = last_request(es)
    eq((q["content_sha256_header"], q["content_sha256_ok"], q["sig_error"]),
       (True, False, "x-amz-content-sha256 is not the SHA-256 of the body"), "log content hash")
    eq(es.docs(), [], "nothing stored")


def test_signed_query_and_chunked_body(es):
    es.reset()
    path = "/events/_create/q1?refresh=true&timeout=1m"
    r = put(es, path, b'{"a":1}')
    eq(r.status, 201, "signed query string")
    # A chunked body is verified over its decoded bytes.
    body = b'{"create":{"_index":"events","_id":"q2"}}\n{"b":2}\n'
    headers = es.sign("POST", "/_bulk", body, NDJSON)
    conn = es.connection()
    try:
        conn.request("POST", "/_bulk", body=iter([body[:10], body[10:]]),
                     headers=dict(headers, **{"Transfer-Encoding": "chunked"}), encode_chunked=True)
        resp = conn.getresponse()
        data = json.loads(resp.read())
    finally:
        conn.close()
    eq((resp.status, data["errors"], data["items"][0]["create"]["status"]), (200, False, 201),
       "chunked bulk")
    eq(last_request(es)["sig_ok"], True, "chunked body signature")


def _suite_request(case):
    """Parse header-signed-request.txt like http.server would."""
    with open(os.path.join(case, "header-signed-request.txt"), "rb") as f:
        raw = f.read()
    head, _, body = raw.partition(b"\n\n")
    line, _, rest = head.partition(b"\n")
    method, target = line[:line.index(b" ")], line[line.index(b" ") + 1:line.rindex(b" ")]
    msg = http.client.parse_headers(io.BytesIO(rest.replace(b"\n", b"\r\n") + b"\r\n\r\n"))
    path, _, query = target.decode("latin-1").partition("?")
    return method.decode(), path, query, list(msg.items()), body


def test_verifier_matches_aws_suite(es):
    """Every header-mode vector of the AWS SigV4 suite verifies, with the exact canonical request."""
    cases = sorted(glob.glob(os.path.join(SUITE, "*", "context.json")))
    # The vectors ship in the source tree: fewer cases is a broken tree.
    eq(len(cases), SUITE_CASES, "cases of the SigV4 suite in %s" % SUITE)
    checked = rejected = 0
    for ctx_file in cases:
        case = os.path.dirname(ctx_file)
        name = os.path.basename(case)
        with open(ctx_file) as f:
            ctx = json.load(f)
        creds = ctx["credentials"]

        class Cfg:
            access_key = creds["access_key_id"]
            secret_key = creds["secret_access_key"]
            session_token = creds.get("token")
            region = ctx["region"]
            service = ctx["service"]
            require_signature = True
        method, path, query, headers, body = _suite_request(case)
        now = time.mktime(time.strptime("20150830T123600", "%Y%m%dT%H%M%S")) - time.timezone
        res = es_standin.verify_sigv4(Cfg, method, path, query, headers, body, now=now)
        with open(os.path.join(case, "header-canonical-request.txt")) as f:
            want_cr = f.read()
        if Cfg.session_token:
            want_cr = want_cr.replace(Cfg.session_token, "<redacted>")
        with open(os.path.join(case, "header-string-to-sign.txt")) as f:
            want_sts = f.read()
        signer = es_standin._botocore().auth.SigV4Auth(None, "service", "us-east-1")
        if not ctx["normalize"] and want_cr.split("\n")[1] != signer._normalize_url_path(path):
            # botocore (like AWS for every service but S3) normalizes the path, so a
            # client that signed the unnormalized path is refused.
            eq((res["sig_ok"], res["fail"][0]), (False, 403), "%s: unnormalized path refused" % name)
            rejected += 1
            continue
        eq(res["sig_error"], "", "%s: sig_error" % name)
        eq(res["sig_ok"], True, "%s: sig_ok" % name)
        eq(res["canonical_request"], want_cr, "%s: canonical request" % name)
        eq(res["string_to_sign"], want_sts, "%s: string to sign" % name)
        checked += 1
    eq(checked + rejected, len(cases), "cases")
    print("# SigV4 suite: %d vectors verified, %d unnormalized paths refused" % (checked, rejected))
    eq(checked >= 31, True, "verified %d vectors" % checked)


# -------------------------------------------------------------------- _bulk

def test_bulk_mixed_items(es):
    es.reset()
    eq(put(es, "/events/_create/old", b'{"n":0}').status, 201, "pre-existing doc")
    body = (b'{"create":{"_index":"events","_id":"old"}}\n{"n":1}\n'
            b'{"create":{"_index":"events","_id":"new1"}}\n{"n":2}\n'
            b'{"create":{"_index":"events","_id":"new1"}}\n{"n":3}\n'
            b'{"create":{"_id":"bad"}}\n{"n":"\xff"}\n'
            b'{"index":{"_index":"events","_id":"idx1"}}\n{"n":5}\n')
    r = put(es, "/events/_bulk", body, NDJSON, method="POST")
    eq(r.status, 200, "status")
    out = r.json()
    eq(sorted(out), ["errors", "items", "took"], "fields")
    eq(out["errors"], True, "errors")
    eq([(list(it)[0], it[list(it)[0]]["_id"], it[list(it)[0]]["status"]) for it in out["items"]],
       [("create", "old", 409), ("create", "new1", 201), ("create", "new1", 409),
        ("create", "bad", 400), ("index", "idx1", 201)], "items")
    uuid = out["items"][0]["create"]["error"]["index_uuid"]
    eq(out["items"][0]["create"], {"_index": "events", "_type": "_doc", "_id": "old", "status": 409,
                                   "error": conflict("events", "old", uuid)}, "conflict item")
    eq(out["items"][1]["create"], {"_index": "events", "_type": "_doc", "_id": "new1", "_version": 1,
                                   "result": "created", "_shards": SHARDS, "_seq_no": 1,
                                   "_primary_term": 1, "status": 201}, "created item")
    bad = out["items"][3]["create"]["error"]
    eq((bad["type"], bad["reason"], bad["caused_by"]["type"]),
       ("mapper_parsing_exception", "failed to parse", "json_parse_exception"), "bad item")
    eq([(d["id"], d["source"], d["via"]) for d in es.docs()],
       [("old", {"n": 0}, "create"), ("new1", {"n": 2}, "bulk"), ("idx1", {"n": 5}, "bulk")], "docs")
    r = put(es, "/_bulk", b'{"create":{"_index":"events","_id":"new2"}}\n{"n":6}\n',
            {"Content-Type": "application/json"}, method="POST")
    eq((r.status, r.json()["errors"]), (200, False), "all good, application/json")


def test_bulk_filter_path(es):
    """Response filtering as trackpixel asks for it: each item keeps its
    status, and its error when it failed; "errors" stays; the rest goes."""
    es.reset()
    es.mode(reject_items=1, count=1)
    body = (b'{"create":{"_index":"events","_id":"f1"}}\n{"n":1}\n'
            b'{"create":{"_index":"events","_id":"f2"}}\n{"n":2}\n')
    r = put(es, "/_bulk?filter_path=errors%2Citems.%2A.status%2Citems.%2A.error", body, NDJSON,
            method="POST")
    eq(r.status, 200, "status")
    eq(r.json(), {"errors": True, "items": [
        {"create": {"status": 400, "error": {
            "type": "mapper_parsing_exception",
            "reason": "failed to parse field [date] of type [date] in document with id 'f1'"}}},
        {"create": {"status": 201}}]}, "filtered answer")
    eq([d["id"] for d in es.docs()], ["f2"], "stored")
    # Wildcards, '**', and nothing matched.
    r = put(es, "/_bulk?filter_path=%2A%2A.status", body, NDJSON, method="POST")
    eq(r.json(), {"items": [{"create": {"status": 201}}, {"create": {"status": 409}}]}, "**")
    r = put(es, "/_bulk?filter_path=nothing", body, NDJSON, method="POST")
    eq(r.json(), {}, "nothing left")
    eq(es.request("GET", "/?filter_path=version.number", None, {}, sign=True).json(),
       {"version": {"number": "7.10.2"}}, "any answer of Elasticsearch's")
    r = es.request("POST", "/_bulk?filter_path=errors", body, NDJSON, sign=False)
    eq((r.status, sorted(r.json())), (403, ["message"]), "not the signature layer's")


def test_bulk_request_errors(es):
    es.reset()
    cases = [
        (b'{"create":{"_index":"e","_id":"1"}}\n{"n":1}', "illegal_argument_exception",
         "The bulk request must be terminated by a newline [\\n]"),
        (b'{"frob":{"_index":"e","_id":"1"}}\n{"n":1}\n', "illegal_argument_exception",
         "Malformed action/metadata line [1], expected one of [create, delete, index, update] but "
         "found [frob]"),
        (b'{"create":{"_id":"1"}}\n{"n":1}\n', "action_request_validation_exception",
         "Validation Failed: 1: index is missing;"),
        (b'{"create":{"_index":"e","_id":"1","color":"red"}}\n{"n":1}\n', "illegal_argument_exception",
         "Action/metadata line [1] contains an unknown parameter [color]"),
        (b"", "parse_exception", "request body is required"),
    ]
    for body, etype, reason in cases:
        r = put(es, "/_bulk", body, NDJSON, method="POST")
        err = r.json()["error"]
        eq((r.status, err["type"], err["reason"]), (400, etype, reason), "bulk %r" % body[:30])
    eq(es.docs(), [], "nothing stored")


# ------------------------------------------------------------- fault modes

def test_fault_status_count(es):
    es.reset()
    eq(es.mode(status=503, count=2), {"status": 503, "count": 2}, "mode set")
    for n in (1, 2):
        r = put(es, "/events/_create/f1", b'{"a":1}')
        eq(r.status, 503, "faulted request %d" % n)
        eq(r.json()["error"]["type"], "cluster_block_exception", "503 error type")
    eq(es.get_mode(), {}, "mode used up")
    r = put(es, "/events/_create/f1", b'{"a":1}')
    eq(r.status, 201, "then normal")
    eq([q["status"] for q in es.requests()], [503, 503, 201], "log")
    eq([q["fault"] for q in es.requests()], [["status"], ["status"], []], "log faults")
    eq(len(es.docs()), 1, "one doc")


def test_fault_429_until_changed(es):
    es.reset()
    es.mode(status=429, retry_after=3)
    for _ in range(3):
        r = put(es, "/events/_create/r1", b'{"a":1}')
        eq((r.status, r.header("Retry-After")), (429, "3"), "429")
    eq(r.json()["error"]["type"], "es_rejected_execution_exception", "429 type")
    eq(es.mode(), {}, "back to normal")
    eq(put(es, "/events/_create/r1", b'{"a":1}').status, 201, "normal")


def test_fault_delay(es):
    es.reset()
    es.mode(delay_ms=300, count=1)
    t0 = time.monotonic()
    r = put(es, "/events/_create/d1", b'{"a":1}')
    took = time.monotonic() - t0
    eq(r.status, 201, "delayed answer")
    eq(0.3 <= took < 5, True, "delay %.3f s" % took)
    t0 = time.monotonic()
    put(es, "/events/_create/d2", b'{"a":1}')
    eq(time.monotonic() - t0 < 0.3, True, "no delay after count")


def test_fault_close(es):
    es.reset()
    es.mode(close=True, count=1)
    conn = es.connection()
    headers = es.sign("PUT", "/events/_create/c1", b'{"a":1}', JSON)
    try:
        conn.request("PUT", "/events/_create/c1", body=b'{"a":1}', headers=dict(headers))
        try:
            resp = conn.getresponse()
            got = "answer %d" % resp.status
        except (http.client.RemoteDisconnected, ConnectionResetError, http.client.BadStatusLine):
            got = "closed"
    finally:
        conn.close()
    eq(got, "closed", "client sees")
    q = last_request(es)
    eq((q["closed"], q["status"], q["fault"]), (True, None, ["close"]), "log")
    eq(es.docs(), [], "nothing stored")
    eq(put(es, "/events/_create/c1", b'{"a":1}').status, 201, "next request normal")


def test_fault_fail_items(es):
    es.reset()
    es.mode(fail_items=2, count=1)
    body = b"".join(b'{"create":{"_index":"events","_id":"i%d"}}\n{"n":%d}\n' % (n, n) for n in range(3))
    r = put(es, "/_bulk", body, NDJSON, method="POST")
    out = r.json()
    eq((r.status, out["errors"]), (200, True), "bulk answer")
    eq([it["create"]["status"] for it in out["items"]], [429, 429, 201], "item statuses")
    eq(out["items"][0]["create"]["error"]["type"], "es_rejected_execution_exception", "item error")
    eq([d["id"] for d in es.docs()], ["i2"], "stored")
    r = put(es, "/_bulk", body, NDJSON, method="POST")
    eq([it["create"]["status"] for it in r.json()["items"]], [201, 201, 409], "after count")


def test_mode_validation(es):
    es.reset()
    for bad in ({"colour": 1}, {"status": "503"}, {"delay_ms": -1}, {"close": 1}, {"count": 0},
                {"body": {}}):
        try:
            es.mode(**bad)
            got = "accepted"
        except es_standin.StandinError:
            got = "refused"
        eq(got, "refused", "mode %r" % bad)
    eq(es.get_mode(), {}, "unchanged")


# ---------------------------------------------------------- connections

def test_keep_alive(es):
    es.reset()
    conn = es.connection()
    try:
        for n in range(2):
            r = es.request("PUT", "/events/_create/k%d" % n, b'{"a":1}', JSON, sign=True, conn=conn)
            eq(r.status, 201, "request %d" % n)
    finally:
        conn.close()
    put(es, "/events/_create/k9", b'{"a":1}')
    conns = [q["conn"] for q in es.requests()]
    eq(conns[0], conns[1], "one connection")
    eq(conns[0] != conns[2], True, "a new connection")
    eq(conns[0].startswith("127.0.0.1:"), True, "conn form")


def test_no_secrets_in_log(es):
    es.reset()
    headers = es.sign("PUT", "/events/_create/n1", b'{"a":1}', JSON, content_sha256=True)
    es.request("PUT", "/events/_create/n1", b'{"a":1}', headers)
    put(es, "/events/_create/n2", b'{"a":1}', session_token="wrong-token-value")
    signature = dict(headers)["Authorization"].rsplit("=", 1)[1]
    text = json.dumps(es.requests()) + json.dumps(es.docs())
    for what, secret in (("secret key", SK), ("session token", TOKEN), ("access key", AK),
                         ("wrong token", "wrong-token-value"), ("signature", signature)):
        eq(secret in text, False, "%s in the request log" % what)
    eq(len(es.requests()), 2, "both logged")


# ------------------------------------------------- other configurations

def test_unsigned_cluster():
    with Standin() as es:
        r = es.request("PUT", "/events/_create/u1", b'{"a":1}', JSON)
        eq(r.status, 201, "unsigned request")
        q = last_request(es)
        eq((q["signed"], q["sig_ok"], q["token_ok"]), (False, False, None), "log")
        r = es.request("PUT", "/events/_create/u2", b'{"a":1}', JSON,
                       sign=dict(access_key=AK, secret_key=SK))
        eq(r.status, 201, "signed request, not verified")
        eq(last_request(es)["signed"], True, "signed logged")


def test_require_signature_without_keys():
    with Standin(require_signature=True) as es:
        r = es.request("PUT", "/events/_create/u1", b'{"a":1}', JSON)
        eq((r.status, r.json()), (403, {"message": "Missing Authentication Token"}), "unsigned")
        r = es.request("PUT", "/events/_create/u1", b'{"a":1}', JSON,
                       sign=dict(access_key=AK, secret_key=SK))
        eq(r.status, 201, "signed")


def test_basic_auth():
    import base64
    with Standin(basic_user="elastic", basic_password="pw-not-printed") as es:
        r = es.request("PUT", "/events/_create/b1", b'{"a":1}', JSON)
        eq(r.status, 401, "no credentials")
        eq(r.json()["error"]["type"], "security_exception", "401 type")
        eq(r.header("WWW-Authenticate"), 'Basic realm="security" charset="UTF-8"', "challenge")
        bad = base64.b64encode(b"elastic:nope").decode()
        r = es.request("PUT", "/events/_create/b1", b'{"a":1}', dict(JSON, Authorization="Basic " + bad))
        eq(r.status, 401, "wrong password")
        good = base64.b64encode(b"elastic:pw-not-printed").decode()
        r = es.request("PUT", "/events/_create/b1", b'{"a":1}', dict(JSON, Authorization="Basic " + good))
        eq(r.status, 201, "right password")
        eq([q["basic_ok"] for q in es.requests()], [False, False, True], "log")


def test_stop_leaves_no_process():
    es = Standin().start()
    pid, port = es.pid, es.port
    es.stop()
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    eq(alive, False, "process gone")
    s = socket.socket()
    try:
        refused = s.connect_ex(("127.0.0.1", port)) != 0
    finally:
        s.close()
    eq(refused, True, "port closed")
    es.stop()                   # idempotent


def _run(fn):
    """Tests that take no stand-in ignore the shared one."""
    def wrapper(es):
        return fn()
    wrapper.__name__ = fn.__name__
    return wrapper


for _name, _fn in list(globals().items()):
    if _name.startswith("test_") and _fn.__code__.co_argcount == 0:
        globals()[_name] = _run(_fn)

if __name__ == "__main__":
    tplib.run_tests(globals(), setup=setup, teardown=teardown)
