#!/usr/bin/python3
"""es_standin - an Elasticsearch 7.10 / OpenSearch stand-in for trackpixel's tests.

Elasticsearch cannot be installed where the tests run, so this small server
answers the few APIs trackpixel uses the way Elasticsearch 7.10.2 does (errors
included), and, like Amazon Elasticsearch/OpenSearch, verifies every AWS
Signature Version 4 with botocore - an implementation nobody on the team wrote.

Run it with Debian's python3 (it has python3-botocore):

    /usr/bin/python3 tests/es_standin.py --port 0 --port-file FILE
        [--region us-east-1] [--service es]
        [--access-key AK --secret-key SK] [--session-token TOKEN]
        [--require-signature] [--basic-user U --basic-password P] [--api-key KEY]
        [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]] [--aoss-time-series]
        [--issued] [--max-skew SECONDS] [--verbose]

With --issued, as Amazon's clusters do with temporary credentials, only the
credentials registered through POST /_standin/credentials are accepted, each
until its expiry: an unknown key id is refused with "The security token
included in the request is invalid.", an expired one with "The security token
included in the request is expired".  --max-skew (default 900; AWS's services
allow 300) is how far X-Amz-Date may be from the stand-in's clock.

It binds 127.0.0.1 only.  --secret-key, --session-token, --basic-password and
--api-key may instead come from ES_STANDIN_SECRET_KEY, ES_STANDIN_SESSION_TOKEN,
ES_STANDIN_BASIC_PASSWORD and ES_STANDIN_API_KEY so they stay out of `ps`.

Elasticsearch 8's security: --basic-user/--basic-password and --api-key (the
encoded value, `Authorization: ApiKey <value>`) are the accepted credentials
(either one; 401 security_exception otherwise, as Elasticsearch answers);
--tls-cert/--tls-key serve HTTPS (Python's ssl module, OpenSSL), and
--tls-client-ca requires a client certificate issued by that CA.
--aoss-time-series answers as an OpenSearch Serverless time-series
collection: no GET / (404), and a create with an _id (_create/{id}, a _bulk
create with _id) is refused with 400.  Nothing secret is ever
printed or returned: no keys, tokens, Authorization values or signatures.

Elasticsearch APIs (7.x paths; the typed 6.x forms too):
    GET|HEAD /                                  cluster info
    PUT|POST /{index}/_create/{id}              create (201, or 409 if it exists)
    PUT|POST /{index}/{type}/{id}/_create       typed create
    PUT|POST /{index}/{type}/{id}?op_type=create  typed create ({type} may be _doc)
    PUT|POST /{index}/{type}/{id}               index (201 created / 200 updated)
    POST     /{index}/{type}                    index with a generated id
    GET|HEAD /{index}/{type}/{id}               get ({type} may be _doc)
    DELETE   /{index}/{type}/{id}               delete
    POST|PUT /_bulk, /{index}/_bulk, /{index}/{type}/_bulk   NDJSON bulk
    GET|HEAD|PUT|DELETE /{index}, GET /{index}/_mapping, GET /_cluster/health
    GET|PUT|DELETE /_index_template/{name}      composable index templates
    GET|PUT  /_ilm/policy/{name}                (Elasticsearch only)
    GET|PUT  /_plugins/_ism/policies/{id}       (OpenSearch only; an update needs
                                                if_seq_no and if_primary_term)
    GET|PUT  /_ingest/pipeline/{id}             (processors: user_agent only)

Every write goes through a model of dynamic mapping (es_mapping.py, which
cites the documentation each rule follows): a new index takes the mapping of
the highest-priority index template matching its name, and a document that
does not fit it, or that would take the index past 1,000 fields or a depth of
20, is refused with Elasticsearch's error (a per-item 400 in _bulk).
--distribution elasticsearch|opensearch and --version-number say what the
cluster is (GET /, and which field types and APIs it has: flattened and ILM
on Elasticsearch, flat_object from OpenSearch 2.7 and ISM on OpenSearch);
--no-user-agent: the cluster has no user_agent ingest processor.

Control API (never signed, never recorded, never faulted):
    GET  /_standin/docs[?index=I]  {"docs": [{index, type, id, source, raw, via,
                                   op, version, seq_no}, ...]} in creation order
    GET  /_standin/requests        {"requests": [...]} (see RequestLog below)
    POST /_standin/reset           forget all indices, documents, requests and the mode
    GET  /_standin/mode            {"mode": {...}}
    POST /_standin/mode  {...}     set the fault mode ({} = normal), answers {"mode": ...}
    POST /_standin/credentials {"access_key", "secret_key", "session_token", "expires"}
                                   with --issued: accept these (until expires, epoch
                                   seconds; null: for ever) besides any others issued;
                                   answers {"issued": N}
        delay_ms: int     sleep this long before answering
        status: int       answer this status with an Elasticsearch-like error body
        body: any JSON    with status: answer this body instead
        retry_after: int  with status: send Retry-After
        close: bool       close the connection without any answer
        fail_items: int   in _bulk, answer the first N items 429 es_rejected_execution_exception
        reject_items: int in _bulk, answer the first N items 400 mapper_parsing_exception
                          (as a mapping conflict is: that document is refused for good)
        ignore_filter_path: bool  answer in full whatever filter_path says (as
                          Amazon OpenSearch Service does on signed POSTs)
        count: int        apply the mode to the next N non-control requests only
                          (absent: until changed)

A Python class for tests, Standin, is at the end of this file; it needs only the
standard library (botocore only when it is asked to sign).
"""
import argparse
import base64
import binascii
import datetime
import email.utils
import fnmatch
import hashlib
import hmac
import http
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import zlib
from collections import namedtuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import es_mapping                                   # noqa: E402 (beside this file)

TYPES_WARNING = ('299 Elasticsearch-7.10.2-747e1cc71def077253878a59143c1f785afa92b9 '
                 '"[types removal] Specifying types in document index requests is '
                 'deprecated, use the typed endpoints instead."')
JSON_CT = "application/json; charset=UTF-8"
SHARDS = {"total": 2, "successful": 1, "failed": 0}
MAX_BODY = 100 * 1024 * 1024          # Elasticsearch's http.max_content_length
MAX_ID_BYTES = 512
MAX_SKEW = 15 * 60                    # AWS: X-Amz-Date within 15 minutes
LOG_BODY_MAX = 8192                   # bytes of each body kept in the request log
LOG_MAX = 100000                      # request log entries kept (oldest dropped)
JACKSON_SOURCE = "(org.elasticsearch.common.bytes.AbstractBytesReference$MarkSupportingStreamInputWrapper)"

MSG_MISSING_TOKEN = "Missing Authentication Token"
MSG_BAD_SIGNATURE = ("The request signature we calculated does not match the signature you "
                     "provided. Check your AWS Secret Access Key and signing method. Consult "
                     "the service documentation for details.")
MSG_BAD_TOKEN = "The security token included in the request is invalid."
MSG_EXPIRED_TOKEN = "The security token included in the request is expired"
MSG_INCOMPLETE = ("Authorization header requires 'Credential' parameter. Authorization header "
                  "requires 'Signature' parameter. Authorization header requires "
                  "'SignedHeaders' parameter. Authorization header requires existence of "
                  "either a 'X-Amz-Date' or a 'Date' header.")
MSG_HOST_UNSIGNED = "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."

SECRET_HEADERS = ("authorization", "x-amz-security-token", "proxy-authorization", "cookie")


# ----------------------------------------------------------------- errors

class EsError(Exception):
    """An Elasticsearch exception: type, reason, metadata, optional cause."""

    def __init__(self, status, etype, reason, extra=None, caused_by=None):
        super().__init__(reason)
        self.status = status
        self.etype = etype
        self.reason = reason
        self.extra = extra or {}
        self.caused_by = caused_by

    def item(self):
        """The error object of a _bulk item (no root_cause)."""
        err = {"type": self.etype, "reason": self.reason}
        err.update(self.extra)
        if self.caused_by:
            err["caused_by"] = self.caused_by
        return err

    def body(self):
        """A whole error answer, as Elasticsearch's REST layer renders one."""
        root = {"type": self.etype, "reason": self.reason}
        root.update(self.extra)
        err = {"root_cause": [root]}
        err.update(self.item())
        return {"error": err, "status": self.status}


def simple_error(status, message):
    """Elasticsearch's createSimpleErrorResponse: {"error": "...", "status": N}."""
    return {"error": message, "status": status}


def bad_request_no_handler(raw_path, method):
    return {"error": "no handler found for uri [%s] and method [%s]" % (raw_path, method)}


def index_meta(idx):
    return {"index_uuid": idx["uuid"], "shard": "0", "index": idx["name"]}


def no_index_meta(name):
    return {"index_uuid": "_na_", "index": name}


def index_not_found(name):
    return EsError(404, "index_not_found_exception", "no such index [%s]" % name,
                   {"resource.type": "index_expression", "resource.id": name,
                    "index_uuid": "_na_", "index": name})


def rejected_execution(nbytes):
    return EsError(429, "es_rejected_execution_exception",
                   "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, "
                   "replica_bytes=0, all_bytes=%d, coordinating_operation_bytes=%d, "
                   "max_coordinating_and_primary_bytes=0]" % (nbytes, nbytes))


def fault_error(status):
    """The error an injected status answers with."""
    if status == 429:
        return rejected_execution(0)
    if status == 503:
        return EsError(503, "cluster_block_exception",
                       "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];")
    if status == 500:
        return EsError(500, "exception", "stand-in fault mode: internal error")
    if status == 404:
        return EsError(404, "resource_not_found_exception", "stand-in fault mode: not found")
    return EsError(status, "status_exception", "stand-in fault mode: HTTP %d" % status)


# ------------------------------------------------------- JSON like Jackson

def _line_col(text, pos):
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _at(text, pos):
    line, col = _line_col(text, pos)
    return "\n at [Source: %s; line: %d, column: %d]" % (JACKSON_SOURCE, line, col)


def _char_desc(ch):
    code = ord(ch)
    if code < 32:
        return "(CTRL-CHAR, code %d)" % code
    return "('%s' (code %d))" % (ch, code)


def _utf8_error(data, err):
    """Jackson's message for the first invalid UTF-8 sequence in data."""
    pos = err.start
    lead = data[pos]
    text = data[:pos].decode("utf-8")
    at = _at(text, len(text))
    if 0x80 <= lead <= 0xBF or lead in (0xC0, 0xC1) or lead >= 0xF5:
        return "Invalid UTF-8 start byte 0x%x" % lead + at
    need = 1 if lead < 0xE0 else 2 if lead < 0xF0 else 3
    for k in range(1, need + 1):
        if pos + k >= len(data):
            return "Unexpected end-of-input in VALUE_STRING" + at
        if not 0x80 <= data[pos + k] <= 0xBF:
            return "Invalid UTF-8 middle byte 0x%x" % data[pos + k] + at
    # Well-formed continuation bytes, yet an overlong form, a surrogate or
    # beyond U+10FFFF: strict UTF-8 refuses it; blame the second byte.
    return "Invalid UTF-8 middle byte 0x%x" % data[pos + 1] + at


class _JsonProblem(Exception):
    pass


def _no_duplicates(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise _JsonProblem("Duplicate field '%s'" % key)
        obj[key] = value
    return obj


def _no_constants(name):
    raise _JsonProblem("Non-standard token '%s': enable JsonParser.Feature.ALLOW_NON_NUMERIC_NUMBERS"
                       " to allow" % name)


_VALUE_EXPECTED = ("expected a valid value (JSON String, Number, Array, Object or token "
                   "'null', 'true' or 'false')")


def parse_json_text(data):
    """Strictly parse UTF-8 JSON bytes like Jackson with ES's settings.

    Returns the value, or raises _JsonProblem(message).  Stricter than ES 7.10
    in one way: content after the root value is refused (ES 7.10 ignores it).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _JsonProblem(_utf8_error(data, e))
    if text.startswith("\ufeff"):          # Jackson skips a UTF-8 BOM
        text = text[1:]
    decoder = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    try:
        start = len(text) - len(text.lstrip(" \t\r\n"))
        value, end = decoder.raw_decode(text, start)
    except json.JSONDecodeError as e:
        raise _JsonProblem(_jackson_message(text, e.msg, e.pos))
    rest = len(text) - len(text[end:].lstrip(" \t\r\n"))
    if rest < len(text):
        raise _JsonProblem("Unexpected character %s: expected end-of-input after the root value"
                           % _char_desc(text[rest]) + _at(text, rest))
    return value


def _jackson_message(text, msg, pos):
    if pos >= len(text):
        return "Unexpected end-of-input" + _at(text, pos)
    ch = text[pos]
    if msg.startswith("Invalid control character"):
        return ("Illegal unquoted character %s: has to be escaped using backslash to be "
                "included in string value" % _char_desc(ch) + _at(text, pos))
    if msg.startswith("Expecting value"):
        if ch.isalpha():
            word = ch
            for c in text[pos + 1:pos + 40]:
                if not c.isalnum():
                    break
                word += c
            return ("Unrecognized token '%s': was expecting (JSON String, Number, Array, Object "
                    "or token 'null', 'true' or 'false')" % word + _at(text, pos))
        return "Unexpected character %s: %s" % (_char_desc(ch), _VALUE_EXPECTED) + _at(text, pos)
    return "Unexpected character %s: %s" % (_char_desc(ch), msg.lower()) + _at(text, pos)


def parse_source(data):
    """Parse a document source as DocumentParser would; returns the object or raises EsError."""
    if not data:
        raise EsError(400, "mapper_parsing_exception", "failed to parse, document is empty")
    rest = data.lstrip(b" \t\r\n")
    if rest.startswith(b"\xef\xbb\xbf"):
        rest = rest[3:].lstrip(b" \t\r\n")
    first = rest[:1]
    if not first or first in b'["-0123456789':
        # No token, or a first token that is a value but not an object.
        raise EsError(400, "mapper_parsing_exception", "Malformed content, must start with an object")
    try:
        value = parse_json_text(data)
    except _JsonProblem as e:
        raise EsError(400, "mapper_parsing_exception", "failed to parse",
                      caused_by={"type": "json_parse_exception", "reason": str(e)})
    if not isinstance(value, dict):
        raise EsError(400, "mapper_parsing_exception", "Malformed content, must start with an object")
    return value


# --------------------------------------------------------------- the cluster

def _b64id(nbytes):
    return base64.urlsafe_b64encode(os.urandom(nbytes)).decode("ascii").rstrip("=")


INVALID_INDEX_CHARS = '\\/*?"<>| ,#'


def validate_index_name(name):
    """MetadataCreateIndexService.validateIndexOrAliasName, as EsError."""
    def bad(why):
        return EsError(400, "invalid_index_name_exception",
                       "Invalid index name [%s], %s" % (name, why), no_index_meta(name))
    if not name:
        raise bad("must not be empty")
    if any(c in INVALID_INDEX_CHARS for c in name):
        raise bad("must not contain the following characters [ , \", *, \\, <, |, ,, >, /, ?]")
    if ":" in name:
        raise bad("must not contain ':'")
    if name[0] in "_-+":
        raise bad("must not start with '_', '-', or '+'")
    if name in (".", ".."):
        raise bad("must not be '.' or '..'")
    if name.lower() != name:
        raise bad("must be lowercase")
    if len(name.encode("utf-8")) > 255:
        raise EsError(400, "invalid_index_name_exception",
                      "Invalid index name [%s], index name is too long, (%d > 255)"
                      % (name, len(name.encode("utf-8"))), no_index_meta(name))


class Cluster:
    """All state, behind one lock: indices, documents, the request log, the mode."""

    def __init__(self, flavor=None):
        self.lock = threading.RLock()
        self.cluster_uuid = _b64id(16)
        self.flavor = flavor or es_mapping.Flavor()
        self.reset()

    def reset(self):
        with self.lock:
            self.indices = {}      # name -> {"name","uuid","type","docs":{id:doc},"seq"}
            self.docs = []         # every live document, in creation order
            self.requests = []
            self.req_seq = 0
            self.mode = {}
            self.mode_left = None
            self.templates = es_mapping.Templates(self.flavor)
            self.ilm = {}          # name -> {"version", "modified_date", "policy"}
            self.ism = {}          # id -> {"_version", "_seq_no", "policy"}
            self.pipelines = {}    # id -> the body as PUT

    # -- mode
    def set_mode(self, mode):
        with self.lock:
            self.mode = dict(mode)
            self.mode_left = self.mode.pop("count", None)

    def get_mode(self):
        with self.lock:
            out = dict(self.mode)
            if self.mode and self.mode_left is not None:
                out["count"] = self.mode_left
            return out

    def take_mode(self):
        """The mode for this request; counts it down."""
        with self.lock:
            mode = dict(self.mode)
            if mode and self.mode_left is not None:
                self.mode_left -= 1
                if self.mode_left <= 0:
                    self.mode = {}
                    self.mode_left = None
            return mode

    # -- request log
    def log(self, entry):
        with self.lock:
            self.req_seq += 1
            entry["seq"] = self.req_seq
            self.requests.append(entry)
            if len(self.requests) > LOG_MAX:
                del self.requests[:len(self.requests) - LOG_MAX]

    # -- indices and documents (callers hold self.lock)
    def index(self, name, create):
        idx = self.indices.get(name)
        if idx is None and create:
            validate_index_name(name)
            idx = {"name": name, "uuid": _b64id(16), "type": None, "docs": {}, "seq": 0,
                   "mapping": self.templates.new_mapping(name)}
            self.indices[name] = idx
        return idx

    @staticmethod
    def check_type(idx, type_):
        """The mapping type a write to idx uses; ES 7 allows one per index."""
        want = type_ or idx["type"] or "_doc"
        if idx["type"] is None:
            return want
        if idx["type"] != want and type_ is not None:
            raise EsError(400, "illegal_argument_exception",
                          "Rejecting mapping update to [%s] as the final mapping would have more "
                          "than 1 type: [%s, %s]" % (idx["name"], idx["type"], want))
        return idx["type"]

    def write(self, index, type_, id_, raw, op, via):
        """Create or index one document.  Returns (status, result) or raises EsError.

        result is the item body Elasticsearch answers (without "status").
        """
        with self.lock:
            # Like ES, the index is created even when the document then fails.
            idx = self.index(index, create=True)
            type_ = self.check_type(idx, type_)
            source = parse_source(raw)
            if id_ is None:
                id_ = _b64id(15)
            mapping = idx["mapping"]
            if mapping.default_pipeline:
                source = self.run_pipeline(mapping.default_pipeline, source)
                raw = json.dumps(source, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            try:
                mapping.apply(source, id_)
            except es_mapping.MappingError as e:
                raise EsError(e.status, e.etype, e.reason, caused_by=e.caused_by)
            old = idx["docs"].get(id_)
            if old is not None and op == "create":
                raise EsError(409, "version_conflict_engine_exception",
                              "[%s]: version conflict, document already exists (current version [%d])"
                              % (id_, old["version"]), index_meta(idx))
            idx["type"] = type_
            seq = idx["seq"]
            idx["seq"] += 1
            text = raw.decode("utf-8")
            if old is None:
                doc = {"index": index, "type": type_, "id": id_, "source": source, "raw": text,
                       "via": via, "op": op, "version": 1, "seq_no": seq}
                idx["docs"][id_] = doc
                self.docs.append(doc)
                status, result = 201, "created"
            else:
                old.update(source=source, raw=text, via=via, op=op,
                           version=old["version"] + 1, seq_no=seq)
                doc = old
                status, result = 200, "updated"
            return status, {"_index": index, "_type": type_, "_id": id_, "_version": doc["version"],
                            "result": result, "_shards": dict(SHARDS), "_seq_no": seq,
                            "_primary_term": 1}

    def delete(self, index, type_, id_):
        with self.lock:
            idx = self.index(index, create=True)
            type_ = self.check_type(idx, type_)
            idx["type"] = type_
            seq = idx["seq"]
            idx["seq"] += 1
            doc = idx["docs"].pop(id_, None)
            if doc is not None:
                self.docs.remove(doc)
            return (200 if doc else 404), {
                "_index": index, "_type": type_, "_id": id_,
                "_version": doc["version"] + 1 if doc else 1,
                "result": "deleted" if doc else "not_found",
                "_shards": dict(SHARDS), "_seq_no": seq, "_primary_term": 1}

    def doc_list(self, index=None):
        with self.lock:
            keys = ("index", "type", "id", "source", "raw", "via", "op", "version", "seq_no")
            return [{k: d[k] for k in keys} for d in self.docs
                    if index is None or d["index"] == index]


    def run_pipeline(self, name, source):
        """Run an ingest pipeline's processors on source (only user_agent is modelled:
        https://www.elastic.co/guide/en/elasticsearch/reference/7.10/user-agent-processor.html).
        A missing pipeline fails the document as Elasticsearch does."""
        pipeline = self.pipelines.get(name)
        if pipeline is None:
            raise EsError(400, "illegal_argument_exception",
                          "pipeline with id [%s] does not exist" % name)
        source = json.loads(json.dumps(source))
        for proc in pipeline.get("processors", []):
            (ptype, conf), = proc.items()
            if ptype != "user_agent":
                continue
            node = source
            for part in conf["field"].split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, str) or not node:
                if conf.get("ignore_missing"):
                    continue
                raise EsError(400, "illegal_argument_exception",
                              "field [%s] not present as part of path [%s]"
                              % (conf["field"].split(".")[-1], conf["field"]))
            source[conf.get("target_field", "user_agent")] = parse_user_agent(node)
        return source


def parse_user_agent(text):
    """A small stand-in for the uap-core regexes: browser and OS names."""
    name = "Other"
    for key, label in (("Edg/", "Edge"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
                       ("Safari/", "Safari"), ("curl/", "curl")):
        if key in text:
            name = label
            break
    os_name = "Other"
    for key, label in (("Windows", "Windows"), ("Android", "Android"), ("iPhone", "iOS"),
                       ("Mac OS X", "Mac OS X"), ("Linux", "Linux")):
        if key in text:
            os_name = label
            break
    return {"original": text, "name": name, "os": {"name": os_name}, "device": {"name": "Other"}}


# ------------------------------------------------------------- SigV4 check

def _botocore():
    """Import botocore lazily: only signature checks and signing need it."""
    import botocore.auth
    import botocore.awsrequest
    import botocore.compat
    import botocore.credentials
    return botocore


def _wire_text(value):
    """http.server decodes the request line and headers as ISO-8859-1; give back
    the UTF-8 text those bytes spell when they are UTF-8 (else the text as is)."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _redact_canonical(text):
    lines = []
    for line in text.split("\n"):
        name = line.split(":", 1)[0]
        if ":" in line and name in SECRET_HEADERS:
            line = name + ":<redacted>"
        lines.append(line)
    return "\n".join(lines)


def _iso(ts):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ts))


def verify_sigv4(cfg, method, raw_path, raw_query, headers, body, now=None):
    """Check one request's SigV4 signature with botocore.

    headers: [(name, value), ...] as received.  Returns a dict:
      signed, sig_ok, sig_error, token_ok, token_signed, signed_headers,
      content_sha256_header, content_sha256_ok, canonical_request, string_to_sign,
      fail: None or (status, body) to answer.
    Never puts a key, token, Authorization value or signature into the result.
    """
    now = time.time() if now is None else now
    res = {"signed": False, "sig_ok": False, "sig_error": "", "token_ok": None,
           "token_signed": False, "signed_headers": None, "content_sha256_header": False,
           "content_sha256_ok": None, "canonical_request": None, "string_to_sign": None,
           "fail": None}

    def hdr_all(name):
        return [v for k, v in headers if k.lower() == name]

    def fail(message, why, status=403):
        res["sig_error"] = why
        if res["fail"] is None:
            res["fail"] = (status, {"message": message})
        return res

    sha_vals = hdr_all("x-amz-content-sha256")
    if sha_vals:
        res["content_sha256_header"] = True
        res["content_sha256_ok"] = (len(sha_vals) == 1 and
                                    sha_vals[0].strip() == hashlib.sha256(body).hexdigest())

    auths = hdr_all("authorization")
    keyed = cfg.access_key is not None
    if not auths:
        if keyed or cfg.require_signature:
            return fail(MSG_MISSING_TOKEN, "no Authorization header")
        res["sig_error"] = "unsigned"
        return res
    if len(auths) > 1:
        return fail(MSG_INCOMPLETE, "more than one Authorization header")
    auth = auths[0].strip()
    scheme, _, rest = auth.partition(" ")
    res["signed"] = scheme == "AWS4-HMAC-SHA256"
    if not keyed:
        res["sig_error"] = "not verified: the stand-in has no keys"
        return res
    if not res["signed"]:
        return fail(MSG_INCOMPLETE, "Authorization is not AWS4-HMAC-SHA256")

    parts = {}
    for piece in rest.split(","):
        piece = piece.strip()
        if not piece:
            continue
        key, eq, value = piece.partition("=")
        if not eq or key.strip() in parts:
            return fail(MSG_INCOMPLETE, "malformed Authorization parameters")
        parts[key.strip()] = value.strip()
    if set(parts) != {"Credential", "SignedHeaders", "Signature"}:
        return fail(MSG_INCOMPLETE, "Authorization needs exactly Credential, SignedHeaders, Signature")
    cred = parts["Credential"].split("/")
    if len(cred) != 5:
        return fail(MSG_INCOMPLETE, "Credential is not AK/DATE/REGION/SERVICE/aws4_request")
    signed_list = parts["SignedHeaders"].split(";")
    res["signed_headers"] = signed_list

    # The request time: X-Amz-Date, else Date (botocore signs with either).
    amz = hdr_all("x-amz-date")
    if amz:
        try:
            if len(amz) != 1:
                raise ValueError
            stamp = amz[0].strip()
            when = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(
                tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            return fail(MSG_INCOMPLETE, "X-Amz-Date is not one YYYYMMDDTHHMMSSZ value")
        date_header = "x-amz-date"
    else:
        dates = hdr_all("date")
        try:
            when = email.utils.parsedate_to_datetime(dates[0]).timestamp()
            stamp = _iso(when)
        except (IndexError, TypeError, ValueError):
            return fail(MSG_INCOMPLETE, "no X-Amz-Date or Date header")
        date_header = "date"

    if not hmac.compare_digest(cred[0].encode(), cfg.access_key.encode()):
        return fail(MSG_BAD_TOKEN, "access key id does not match")

    tokens = hdr_all("x-amz-security-token")
    res["token_signed"] = "x-amz-security-token" in signed_list
    if cfg.session_token is not None:
        res["token_ok"] = len(tokens) == 1 and hmac.compare_digest(
            tokens[0].strip().encode(), cfg.session_token.encode())
        if not res["token_ok"]:
            return fail(MSG_BAD_TOKEN, "session token missing" if not tokens
                        else "session token does not match")
    elif tokens:
        res["token_ok"] = False
        return fail(MSG_BAD_TOKEN, "a session token was sent but none is configured")

    if cred[1] != stamp[:8]:
        return fail("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                    "date from HTTP: '%s' != '%s', from '%s'." % (cred[1], stamp[:8], stamp),
                    "credential scope date does not match the request date")
    if cred[2] != cfg.region:
        return fail("Credential should be scoped to a valid region. ",
                    "credential scope region %r is not %r" % (cred[2], cfg.region))
    if cred[3] != cfg.service:
        return fail("Credential should be scoped to correct service: '%s'. " % cfg.service,
                    "credential scope service %r is not %r" % (cred[3], cfg.service))
    if cred[4] != "aws4_request":
        return fail("Credential should be scoped with a valid terminator: 'aws4_request', not "
                    "'%s'. " % cred[4], "credential scope does not end in aws4_request")
    skew = getattr(cfg, "max_skew", None) or MAX_SKEW
    if when < now - skew:
        return fail("Signature expired: %s is now earlier than %s (%s - %d min.)"
                    % (stamp, _iso(now - skew), _iso(now), skew // 60), "X-Amz-Date is too old")
    if when > now + skew:
        return fail("Signature not yet current: %s is still later than %s (%s + %d min.)"
                    % (stamp, _iso(now + skew), _iso(now), skew // 60),
                    "X-Amz-Date is in the future")

    if "host" not in signed_list:
        return fail(MSG_HOST_UNSIGNED, "host is not a signed header")
    if date_header not in signed_list:
        return fail(MSG_BAD_SIGNATURE, "%s is not a signed header" % date_header)
    present = {k.lower() for k, _ in headers}
    missing = [h for h in signed_list if h not in present]
    if missing:
        return fail(MSG_BAD_SIGNATURE, "SignedHeaders lists %s, not in the request" % ";".join(missing))

    bc = _botocore()
    hosts = hdr_all("host")
    url = "http://%s%s" % (hosts[0].strip(), _wire_text(raw_path))
    # botocore canonicalises the query from decoded (key, value) pairs, as AWS
    # does on its side: percent-decode here ('+' stays a plus), it re-encodes.
    params = []
    for pair in _wire_text(raw_query).split("&") if raw_query else []:
        if pair:
            k, _, v = pair.partition("=")
            params.append((urllib.parse.unquote(k), urllib.parse.unquote(v)))
    request = bc.awsrequest.AWSRequest(method=method, url=url, data=body, params=params)
    for name, value in headers:
        if name.lower() in signed_list:
            request.headers[name] = _wire_text(value)      # keeps repeated headers
    request.context["timestamp"] = stamp
    creds = bc.credentials.Credentials(cfg.access_key, cfg.secret_key, cfg.session_token)
    signer = bc.auth.SigV4Auth(creds, cfg.service, cfg.region)
    if any(h in bc.auth.SIGNED_HEADERS_BLACKLIST for h in signed_list):
        # botocore never signs these three itself, but a SigV4 server signs
        # whatever SignedHeaders names: select them all, canonicalise with botocore.
        signer = _AllHeadersSigV4(creds, cfg.service, cfg.region)
    # No add_auth(): it would stamp the current time and add headers.  The
    # same steps it runs, on the request as received.
    canonical = signer.canonical_request(request)
    sts = signer.string_to_sign(request, canonical)
    expected = signer.signature(sts, request)
    res["canonical_request"] = _redact_canonical(canonical)
    res["string_to_sign"] = sts
    ours = signer.signed_headers(signer.headers_to_sign(request))
    if ours != parts["SignedHeaders"]:
        return fail(MSG_BAD_SIGNATURE, "SignedHeaders %r is not in canonical form %r"
                    % (parts["SignedHeaders"], ours))
    if not hmac.compare_digest(expected.encode(), parts["Signature"].encode()):
        return fail(MSG_BAD_SIGNATURE, "signature does not match the one botocore computes")
    if res["content_sha256_header"] and not res["content_sha256_ok"]:
        return fail(MSG_BAD_SIGNATURE, "x-amz-content-sha256 is not the SHA-256 of the body")
    res["sig_ok"] = True
    return res


def _all_headers_class():
    bc = _botocore()

    class AllHeadersSigV4(bc.auth.SigV4Auth):
        def headers_to_sign(self, request):
            header_map = bc.compat.HTTPHeaders()
            for name, value in request.headers.items():
                header_map[name.lower()] = value
            return header_map
    return AllHeadersSigV4


def _AllHeadersSigV4(*args):
    return _all_headers_class()(*args)


def check_basic(cfg, headers, raw_path):
    """Returns (ok, fail) for --basic-user and --api-key; fail is (status,
    body, extra headers): Elasticsearch 8's 401 answers."""
    auths = [v for k, v in headers if k.lower() == "authorization"]
    user = None
    challenges = [("WWW-Authenticate", 'Basic realm="security" charset="UTF-8"'),
                  ("WWW-Authenticate", "ApiKey")]
    if len(auths) == 1 and auths[0].strip()[:7].lower() == "apikey ":
        if cfg.api_key is not None and hmac.compare_digest(
                auths[0].strip()[7:].strip().encode(), cfg.api_key.encode()):
            return True, None
        reason = ("unable to authenticate with provided credentials and anonymous access is "
                  "not allowed for this request")
        err = EsError(401, "security_exception", reason,
                      {"additional_unsuccessful_credentials": "API key: invalid ApiKey value",
                       "header": {"WWW-Authenticate": [v for _, v in challenges]}})
        return False, (401, err.body(), challenges)
    if cfg.basic_user is None:
        user = None
    elif len(auths) == 1 and auths[0].strip()[:6].lower() == "basic ":
        try:
            user, _, password = base64.b64decode(auths[0].strip()[6:].strip(), validate=True) \
                .decode("utf-8").partition(":")
            if (hmac.compare_digest(user.encode(), cfg.basic_user.encode()) and
                    hmac.compare_digest(password.encode(), cfg.basic_password.encode())):
                return True, None
        except (binascii.Error, UnicodeDecodeError):
            user = None
    if user is None:
        reason = "missing authentication credentials for REST request [%s]" % raw_path
    else:
        reason = "unable to authenticate user [%s] for REST request [%s]" % (user, raw_path)
    err = EsError(401, "security_exception", reason,
                  {"header": {"WWW-Authenticate": [v for _, v in challenges]}})
    return False, (401, err.body(), challenges)


def aoss_refusal(segs, method, body):
    """What an OpenSearch Serverless time-series collection refuses (a
    Reply), or None: GET / does not exist, and documents get no chosen id."""
    refused = Reply(400, {"error": {"root_cause": [{
        "type": "illegal_argument_exception",
        "reason": "Document ID is not supported in create/index operation request"}],
        "type": "illegal_argument_exception",
        "reason": "Document ID is not supported in create/index operation request"},
        "status": 400}, [])
    if not segs:
        return Reply(404, {"error": {"type": "resource_not_found_exception",
                                     "reason": "no such API on OpenSearch Serverless"},
                           "status": 404}, [])
    if len(segs) >= 2 and "_create" in segs:
        return refused
    if segs[-1] == "_bulk":
        for line in body.split(b"\n"):
            try:
                meta = json.loads(line)
            except ValueError:
                continue
            if isinstance(meta, dict) and len(meta) == 1:
                inner = next(iter(meta.values()))
                if isinstance(inner, dict) and "_id" in inner and \
                        next(iter(meta)) in ("create", "index"):
                    return refused
    return None


# ---------------------------------------------------- Elasticsearch routing

Reply = namedtuple("Reply", "status body headers")   # body: object, bytes or None

COMMON_PARAMS = {"pretty", "human", "error_trace", "filter_path", "format"}
WRITE_PARAMS = COMMON_PARAMS | {"refresh", "routing", "timeout", "version", "version_type",
                                "op_type", "pipeline", "wait_for_active_shards", "if_seq_no",
                                "if_primary_term", "require_alias"}
GET_PARAMS = COMMON_PARAMS | {"refresh", "routing", "preference", "realtime", "stored_fields",
                              "_source", "_source_includes", "_source_excludes", "version",
                              "version_type"}
BULK_PARAMS = COMMON_PARAMS | {"refresh", "routing", "timeout", "pipeline", "wait_for_active_shards",
                               "_source", "_source_includes", "_source_excludes", "type",
                               "require_alias"}
BULK_META = {"_index", "_type", "_id", "routing", "version", "version_type", "if_seq_no",
             "if_primary_term", "pipeline", "retry_on_conflict", "require_alias", "_source",
             "op_type", "dynamic_templates"}


def check_params(params, allowed, raw_path):
    unknown = sorted(k for k in params if k not in allowed)
    if unknown:
        reason = "request [%s] contains unrecognized parameter%s: %s" % (
            raw_path, "s" if len(unknown) > 1 else "", ", ".join("[%s]" % k for k in unknown))
        raise EsError(400, "illegal_argument_exception", reason)
    refresh = params.get("refresh")
    if refresh not in (None, "", "true", "false", "wait_for"):
        raise EsError(400, "illegal_argument_exception", "Unknown value for refresh: [%s]." % refresh)


def content_type_error(headers, body):
    """406 body when a request with content has no acceptable Content-Type, else None.

    Like ES 7.10, application/x-ndjson is JSON everywhere, the document API included."""
    if not body:
        return None
    values = [v for k, v in headers if k.lower() == "content-type"]
    if not values:
        return simple_error(406, "Content-Type header is missing")
    media = values[0].split(";", 1)[0].strip().lower()
    if media in ("application/json", "application/x-ndjson"):
        return None
    return simple_error(406, "Content-Type header [%s] is not supported" % ", ".join(values))


def method_not_allowed(raw_path, method, allowed):
    return Reply(405, simple_error(405, "Incorrect HTTP method for uri [%s] and method [%s], "
                                        "allowed: [%s]" % (raw_path, method, ", ".join(allowed))),
                 [("Allow", ",".join(allowed))])


def handle_es(cluster, method, segs, params, raw_path, headers, body, mode):
    """Route one Elasticsearch request.  Returns a Reply."""
    n = len(segs)
    try:
        if n == 0:
            if method not in ("GET", "HEAD"):
                return method_not_allowed(raw_path, method, ["GET", "HEAD"])
            check_params(params, COMMON_PARAMS, raw_path)
            return Reply(200, cluster.flavor.root_info(cluster.cluster_uuid), [])
        if segs[-1] == "_bulk" and n <= 3 and not (n > 1 and segs[0].startswith("_")) and \
                not (n == 3 and segs[1].startswith("_") and segs[1] != "_doc"):
            if method not in ("POST", "PUT"):
                return method_not_allowed(raw_path, method, ["POST", "PUT"])
            return bulk(cluster, segs[:-1], params, raw_path, headers, body, mode)
        if segs == ["_cluster", "health"] and method in ("GET", "HEAD"):
            return Reply(200, {"cluster_name": "standin", "status": "green", "timed_out": False,
                               "number_of_nodes": 1, "number_of_data_nodes": 1,
                               "active_primary_shards": len(cluster.indices),
                               "active_shards": len(cluster.indices), "relocating_shards": 0,
                               "initializing_shards": 0, "unassigned_shards": 0}, [])
        if segs[0] in ("_index_template", "_ilm", "_plugins", "_ingest"):
            reply = admin_api(cluster, method, segs, params, raw_path, headers, body)
            if reply is not None:
                return reply
        if n == 2 and segs[1] == "_mapping" and method == "GET" and not segs[0].startswith("_"):
            with cluster.lock:
                idx = cluster.index(segs[0], create=False)
                if idx is None:
                    raise index_not_found(segs[0])
                return Reply(200, {segs[0]: {"mappings": idx["mapping"].as_json()}}, [])
        if segs[0].startswith("_"):
            if n == 1 or segs[0] == "_cluster":
                return Reply(400, bad_request_no_handler(raw_path, method), [])
            validate_index_name(segs[0])
        index = segs[0]
        if n == 1:
            return index_api(cluster, method, index, params, raw_path)
        if n == 3 and segs[1] == "_create":
            if method not in ("PUT", "POST"):
                return method_not_allowed(raw_path, method, ["POST", "PUT"])
            return doc_write(cluster, index, None, segs[2], params, raw_path, headers, body,
                             "create", "create", typed=False)
        if n == 4 and segs[3] == "_create" and not segs[1].startswith("_"):
            if method not in ("PUT", "POST"):
                return method_not_allowed(raw_path, method, ["POST", "PUT"])
            return doc_write(cluster, index, segs[1], segs[2], params, raw_path, headers, body,
                             "create", "create", typed=True)
        if n in (2, 3) and (segs[1] == "_doc" or not segs[1].startswith("_")):
            typed = segs[1] != "_doc"
            type_ = segs[1] if typed else None
            if n == 2:
                if method != "POST":
                    return method_not_allowed(raw_path, method, ["POST"])
                return doc_write(cluster, index, type_, None, params, raw_path, headers, body,
                                 None, None, typed)
            if method in ("PUT", "POST"):
                return doc_write(cluster, index, type_, segs[2], params, raw_path, headers, body,
                                 None, None, typed)
            if method in ("GET", "HEAD"):
                return doc_get(cluster, index, type_, segs[2], params, raw_path)
            if method == "DELETE":
                check_params(params, WRITE_PARAMS, raw_path)
                status, result = cluster.delete(index, type_, segs[2])
                return Reply(status, result, [("Warning", TYPES_WARNING)] if typed else [])
            return method_not_allowed(raw_path, method, ["DELETE", "GET", "HEAD", "POST", "PUT"])
        if n in (2, 3) and segs[1].startswith("_"):
            if segs[1] in ("_search", "_count", "_refresh", "_flush", "_mapping", "_settings",
                           "_stats", "_alias", "_aliases"):
                return Reply(400, bad_request_no_handler(raw_path, method), [])
            raise EsError(400, "invalid_type_name_exception",
                          "Document mapping type name can't start with '_', found: [%s]" % segs[1])
        return Reply(400, bad_request_no_handler(raw_path, method), [])
    except EsError as e:
        return Reply(e.status, e.body(), [])


def index_api(cluster, method, index, params, raw_path):
    check_params(params, COMMON_PARAMS | {"timeout", "master_timeout", "wait_for_active_shards",
                                          "include_type_name"}, raw_path)
    with cluster.lock:
        idx = cluster.index(index, create=False)
        if method in ("GET", "HEAD"):
            if idx is None:
                raise index_not_found(index)
            return Reply(200, {index: {"aliases": {}, "mappings": {}, "settings": {"index": {
                "number_of_shards": "1", "number_of_replicas": "1", "uuid": idx["uuid"],
                "provided_name": index}}}}, [])
        if method == "PUT":
            if idx is not None:
                raise EsError(400, "resource_already_exists_exception",
                              "index [%s/%s] already exists" % (index, idx["uuid"]),
                              {"index_uuid": idx["uuid"], "index": index})
            cluster.index(index, create=True)
            return Reply(200, {"acknowledged": True, "shards_acknowledged": True, "index": index}, [])
        if method == "DELETE":
            if idx is None:
                raise index_not_found(index)
            del cluster.indices[index]
            cluster.docs = [d for d in cluster.docs if d["index"] != index]
            return Reply(200, {"acknowledged": True}, [])
    return method_not_allowed(raw_path, method, ["DELETE", "GET", "HEAD", "PUT"])


def _json_body(body):
    if not body:
        raise EsError(400, "parse_exception", "request body is required")
    try:
        return parse_json_text(body)
    except _JsonProblem as e:
        raise EsError(400, "json_parse_exception", str(e))


def _now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def admin_api(cluster, method, segs, params, raw_path, headers, body):
    """Index templates, ILM and ISM policies, ingest pipelines; None: not one of them."""
    n = len(segs)
    fl = cluster.flavor
    with cluster.lock:
        if segs[0] == "_index_template" and n == 2:
            name = segs[1]
            if method == "PUT" or method == "POST":
                try:
                    cluster.templates.put(name, _json_body(body))
                except es_mapping.MappingError as e:
                    raise EsError(e.status, e.etype, e.reason, caused_by=e.caused_by)
                return Reply(200, {"acknowledged": True}, [])
            if method == "GET":
                if cluster.templates.get(name) is None:
                    raise EsError(404, "resource_not_found_exception",
                                  "index template matching [%s] not found" % name)
                return Reply(200, cluster.templates.answer(name), [])
            if method == "DELETE":
                if cluster.templates.by_name.pop(name, None) is None:
                    raise EsError(404, "index_template_missing_exception",
                                  "index_template [%s] missing" % name)
                return Reply(200, {"acknowledged": True}, [])
        if segs[:2] == ["_ilm", "policy"] and n == 3 and fl.has_ilm():
            name = segs[2]
            if method == "PUT":
                obj = _json_body(body)
                if not isinstance(obj.get("policy"), dict) or set(obj) != {"policy"}:
                    raise EsError(400, "x_content_parse_exception",
                                  "[1:2] [put_lifecycle_request] unknown field")
                old = cluster.ilm.get(name)
                cluster.ilm[name] = {"version": old["version"] + 1 if old else 1,
                                     "modified_date": _now_iso(), "policy": obj["policy"]}
                return Reply(200, {"acknowledged": True}, [])
            if method == "GET":
                if name not in cluster.ilm:
                    raise EsError(404, "resource_not_found_exception",
                                  "Lifecycle policy not found: %s" % name)
                return Reply(200, {name: cluster.ilm[name]}, [])
        if segs[:3] == ["_plugins", "_ism", "policies"] and n == 4 and fl.has_ism():
            pid = segs[3]
            if method == "PUT":
                obj = _json_body(body)
                old = cluster.ism.get(pid)
                if old is not None:
                    if params.get("if_seq_no") != str(old["_seq_no"]) or \
                            params.get("if_primary_term") != "1":
                        raise EsError(409, "version_conflict_engine_exception",
                                      "[%s]: version conflict, document already exists (current "
                                      "version [%d])" % (pid, old["_version"]),
                                      {"index_uuid": "standin-ism", "shard": "0",
                                       "index": ".opendistro-ism-config"})
                policy = dict(obj.get("policy") or {})
                policy.update(policy_id=pid, last_updated_time=int(time.time() * 1000),
                              schema_version=17, error_notification=None)
                seq = max([p["_seq_no"] for p in cluster.ism.values()] or [-1]) + 1
                cluster.ism[pid] = {"_id": pid, "_version": old["_version"] + 1 if old else 1,
                                    "_primary_term": 1, "_seq_no": seq, "policy": policy}
                return Reply(200 if old else 201, {"_id": pid,
                                                   "_version": cluster.ism[pid]["_version"],
                                                   "_primary_term": 1, "_seq_no": seq,
                                                   "policy": {"policy": policy}}, [])
            if method == "GET":
                if pid not in cluster.ism:
                    raise EsError(404, "status_exception", "Policy not found")
                return Reply(200, cluster.ism[pid], [])
        if segs[:2] == ["_ingest", "pipeline"] and n == 3:
            pid = segs[2]
            if method == "PUT":
                obj = _json_body(body)
                for proc in obj.get("processors", []):
                    (ptype, _conf), = proc.items()
                    if ptype != "user_agent" or not fl.user_agent:
                        raise EsError(400, "parse_exception",
                                      "No processor type exists with name [%s]" % ptype,
                                      {"processor_type": ptype})
                cluster.pipelines[pid] = obj
                return Reply(200, {"acknowledged": True}, [])
            if method == "GET":
                if pid not in cluster.pipelines:
                    return Reply(404, {}, [])
                return Reply(200, {pid: cluster.pipelines[pid]}, [])
    return None


def doc_write(cluster, index, type_, id_, params, raw_path, headers, body, op, via, typed):
    """PUT|POST a document; op None means "index unless ?op_type=create"."""
    ct = content_type_error(headers, body)
    if ct:
        return Reply(406, ct, [])
    check_params(params, WRITE_PARAMS, raw_path)
    op_type = params.get("op_type")
    if op == "create":
        if op_type not in (None, "create"):
            raise EsError(400, "illegal_argument_exception",
                          "opType must be 'create', found: [%s]" % op_type)
    elif op_type in (None, "index"):
        op = "index"
    elif op_type == "create":
        op = "create"
    else:
        raise EsError(400, "illegal_argument_exception",
                      "opType must be 'create' or 'index', found: [%s]" % op_type)
    via = via or op
    if not body:
        raise EsError(400, "parse_exception", "request body is required")
    if id_ is not None and len(id_.encode("utf-8")) > MAX_ID_BYTES:
        raise EsError(400, "action_request_validation_exception",
                      "Validation Failed: 1: id [%s] is too long, must be no longer than 512 bytes "
                      "but was: %d;" % (id_, len(id_.encode("utf-8"))))
    status, result = cluster.write(index, type_, id_, body, op, via)
    extra = [("Location", "/%s/%s/%s" % (index, result["_type"],
                                        urllib.parse.quote(result["_id"], safe="")))]
    if typed:
        extra.append(("Warning", TYPES_WARNING))
    return Reply(status, result, extra)


def doc_get(cluster, index, type_, id_, params, raw_path):
    check_params(params, GET_PARAMS, raw_path)
    with cluster.lock:
        idx = cluster.index(index, create=False)
        if idx is None:
            raise index_not_found(index)
        doc = idx["docs"].get(id_)
        shown = type_ or idx["type"] or "_doc"
        if doc is None or (type_ is not None and doc["type"] != type_):
            return Reply(404, {"_index": index, "_type": shown, "_id": id_, "found": False}, [])
        head = {"_index": index, "_type": doc["type"], "_id": id_, "_version": doc["version"],
                "_seq_no": doc["seq_no"], "_primary_term": 1, "found": True}
        # Elasticsearch answers _source with the bytes it was given.
        text = json.dumps(head, separators=(",", ":"), ensure_ascii=False)
        out = (text[:-1] + ',"_source":').encode("utf-8") + doc["raw"].encode("utf-8") + b"}"
        return Reply(200, out, [])


def _meta_str(value, field, line):
    if isinstance(value, bool) or isinstance(value, (dict, list)) or value is None:
        kind = "START_OBJECT" if isinstance(value, dict) else "START_ARRAY" if isinstance(
            value, list) else "VALUE_BOOLEAN" if isinstance(value, bool) else "VALUE_NULL"
        raise EsError(400, "illegal_argument_exception",
                      "Malformed action/metadata line [%d], expected a simple value for field [%s] "
                      "but found [%s]" % (line, field, kind))
    return str(value)


def bulk(cluster, path_segs, params, raw_path, headers, body, mode):
    """POST /_bulk: NDJSON actions, answered per item as Elasticsearch 7.10 does."""
    t0 = time.monotonic()
    ct = content_type_error(headers, body)
    if ct:
        return Reply(406, ct, [])
    check_params(params, BULK_PARAMS, raw_path)
    if not body:
        raise EsError(400, "parse_exception", "request body is required")
    if not body.endswith(b"\n"):
        raise EsError(400, "illegal_argument_exception",
                      "The bulk request must be terminated by a newline [\\n]")
    default_index = path_segs[0] if path_segs else None
    default_type = path_segs[1] if len(path_segs) > 1 else params.get("type")
    if default_type == "_doc":
        default_type = None
    lines = body.split(b"\n")[:-1]
    actions = []                 # (action, index, type, id, source bytes or None, typed)
    i = 0
    while i < len(lines):
        lineno = i + 1
        line = lines[i]
        if not line.strip(b" \t\r"):
            i += 1
            continue
        try:
            meta_line = parse_json_text(line)
        except _JsonProblem as e:
            raise EsError(400, "json_parse_exception", str(e))
        if not isinstance(meta_line, dict):
            raise EsError(400, "illegal_argument_exception",
                          "Malformed action/metadata line [%d], expected START_OBJECT or "
                          "END_OBJECT but found [%s]" % (lineno, _token_name(meta_line)))
        if len(meta_line) != 1:
            raise EsError(400, "illegal_argument_exception",
                          "Malformed action/metadata line [%d], expected FIELD_NAME but found "
                          "[%s]" % (lineno, "END_OBJECT" if not meta_line else "FIELD_NAME"))
        action, meta = next(iter(meta_line.items()))
        if action not in ("create", "index", "delete", "update"):
            raise EsError(400, "illegal_argument_exception",
                          "Malformed action/metadata line [%d], expected one of [create, delete, "
                          "index, update] but found [%s]" % (lineno, action))
        if not isinstance(meta, dict):
            raise EsError(400, "illegal_argument_exception",
                          "Malformed action/metadata line [%d], expected START_OBJECT but found "
                          "[%s]" % (lineno, _token_name(meta)))
        for key in meta:
            if key not in BULK_META:
                raise EsError(400, "illegal_argument_exception",
                              "Action/metadata line [%d] contains an unknown parameter [%s]"
                              % (lineno, key))
        index = _meta_str(meta["_index"], "_index", lineno) if "_index" in meta else default_index
        type_ = _meta_str(meta["_type"], "_type", lineno) if "_type" in meta else default_type
        id_ = _meta_str(meta["_id"], "_id", lineno) if "_id" in meta else None
        if type_ == "_doc":
            type_ = None
        source = None
        if action != "delete":
            if i + 1 >= len(lines):
                break            # ES 7.10 drops an action whose source line is missing
            source = lines[i + 1]
            if source.endswith(b"\r"):
                source = source[:-1]
            i += 2
        else:
            i += 1
        actions.append((action, index, type_, id_, source))
    problems = []
    for action, index, type_, id_, source in actions:
        if index is None:
            problems.append("index is missing")
        if id_ is not None and id_ == "":
            problems.append("if _id is specified it must not be empty")
        elif id_ is not None and len(id_.encode("utf-8")) > MAX_ID_BYTES:
            problems.append("id [%s] is too long, must be no longer than 512 bytes but was: %d"
                            % (id_, len(id_.encode("utf-8"))))
        if action == "delete" and id_ is None:
            problems.append("id is missing")
    if not actions:
        problems.append("no requests added")
    if problems:
        raise EsError(400, "action_request_validation_exception", "Validation Failed: " + "".join(
            "%d: %s;" % (k, p) for k, p in enumerate(problems, 1)))

    fail_items = int(mode.get("fail_items") or 0)
    reject_items = int(mode.get("reject_items") or 0)
    items = []
    typed_any = False
    with cluster.lock:
        for n, (action, index, type_, id_, source) in enumerate(actions):
            typed_any = typed_any or type_ is not None
            head = {"_index": index, "_type": type_ or "_doc", "_id": id_}
            try:
                if n < fail_items:
                    raise rejected_execution(len(body))
                if n < reject_items:
                    raise EsError(400, "mapper_parsing_exception",
                                  "failed to parse field [date] of type [date] in document "
                                  "with id '%s'" % id_)
                validate_index_name(index)
                if action in ("create", "index"):
                    status, result = cluster.write(index, type_, id_, source, action, "bulk")
                elif action == "delete":
                    status, result = cluster.delete(index, type_, id_)
                else:
                    raise EsError(400, "illegal_argument_exception",
                                  "the stand-in does not implement bulk update")
                result["status"] = status
                items.append({action: result})
            except EsError as e:
                if e.etype != "invalid_index_name_exception":
                    idx = cluster.indices.get(index)
                    if idx is not None:
                        head["_type"] = type_ or idx["type"] or "_doc"
                head["status"] = e.status
                head["error"] = e.item()
                items.append({action: head})
    out = {"took": int((time.monotonic() - t0) * 1000),
           "errors": any("error" in next(iter(it.values())) for it in items),
           "items": items}
    return Reply(200, out, [("Warning", TYPES_WARNING)] if typed_any else [])


def _untyped(body):
    """Elasticsearch 8 answers without "_type" (mapping types are gone):
    https://www.elastic.co/guide/en/elasticsearch/reference/8.0/removal-of-types.html"""
    body = dict(body)
    body.pop("_type", None)
    if isinstance(body.get("items"), list):
        body["items"] = [{k: _untyped(v) for k, v in it.items()} for it in body["items"]]
    return body


def _token_name(value):
    if isinstance(value, dict):
        return "START_OBJECT"
    if isinstance(value, list):
        return "START_ARRAY"
    if isinstance(value, str):
        return "VALUE_STRING"
    if isinstance(value, bool):
        return "VALUE_BOOLEAN"
    if value is None:
        return "VALUE_NULL"
    return "VALUE_NUMBER"


# -------------------------------------------------------------- the server

class Config:
    def __init__(self, args):
        self.region = args.region
        self.service = args.service
        self.access_key = args.access_key
        self.secret_key = args.secret_key
        self.session_token = args.session_token
        self.require_signature = args.require_signature
        self.basic_user = args.basic_user
        self.basic_password = args.basic_password
        self.api_key = args.api_key
        self.aoss_time_series = args.aoss_time_series
        self.verbose = args.verbose
        self.issued = {} if getattr(args, "issued", False) else None
        self.issued_lock = threading.Lock()
        self.max_skew = getattr(args, "max_skew", None) or MAX_SKEW


class _IssuedView:
    """One request's view of a Config with --issued: the credentials of the
    key id the request names."""
    def __init__(self, cfg, access_key, secret_key, session_token):
        self.region, self.service = cfg.region, cfg.service
        self.require_signature, self.max_skew = True, cfg.max_skew
        self.access_key, self.secret_key, self.session_token = (access_key, secret_key,
                                                                session_token)


def verify_issued(cfg, method, raw_path, raw_query, headers, body):
    """verify_sigv4 against the issued credentials the Authorization names."""
    auth = [v for k, v in headers if k.lower() == "authorization"]
    key_id = None
    if len(auth) == 1 and "Credential=" in auth[0]:
        key_id = auth[0].split("Credential=", 1)[1].split("/", 1)[0]
    with cfg.issued_lock:
        found = cfg.issued.get(key_id)
    if found is None:
        view = _IssuedView(cfg, None, None, None)
        if not auth:
            view.access_key = ""
            return verify_sigv4(view, method, raw_path, raw_query, headers, body)
        res = verify_sigv4(_NO_KEYS, method, raw_path, raw_query, headers, body)
        res["sig_error"], res["fail"] = "key id not issued", (403, {"message": MSG_BAD_TOKEN})
        return res
    secret, token, expires = found
    res = verify_sigv4(_IssuedView(cfg, key_id, secret, token), method, raw_path, raw_query,
                       headers, body)
    if res["fail"] is None and expires is not None and time.time() >= expires:
        res["sig_ok"], res["sig_error"] = False, "credentials expired"
        res["fail"] = (403, {"message": MSG_EXPIRED_TOKEN})
    return res


class BodyError(Exception):
    pass


def _decode_segment(seg):
    return urllib.parse.unquote(seg, errors="strict")


_MISSING = object()


def apply_filter_path(body, spec):
    """Elasticsearch's response filtering (the filter_path parameter, on
    every JSON answer): comma-separated dotted paths whose parts may hold
    '*' wildcards and may be '**' (any number of levels); arrays are looked
    through; objects and arrays left empty are dropped; nothing left is {}."""
    pats = [p.split(".") for p in spec.split(",") if p]

    def walk(value, pats):
        if any(not p for p in pats):
            return value                       # a whole path matched here
        if isinstance(value, list):
            out = [r for r in (walk(v, pats) for v in value) if r is not _MISSING]
            return out if out else _MISSING
        if not isinstance(value, dict):
            return _MISSING
        out = {}
        for key, v in value.items():
            sub = []
            for p in pats:
                if p[0] == "**":
                    sub.append(p)              # ** stays for the levels below
                    sub.append(p[1:])          # ... or matches none
                    if len(p) > 1 and fnmatch.fnmatchcase(key, p[1]):
                        sub.append(p[2:])
                elif fnmatch.fnmatchcase(key, p[0]):
                    sub.append(p[1:])
            if sub:
                r = walk(v, sub)
                if r is not _MISSING:
                    out[key] = r
        return out if out else _MISSING

    if not pats:
        return body
    result = walk(body, pats)
    return {} if result is _MISSING else result


def _parse_query(raw_query):
    params = {}
    for pair in raw_query.split("&") if raw_query else []:
        if pair:
            k, _, v = pair.partition("=")
            params[urllib.parse.unquote_plus(k)] = urllib.parse.unquote_plus(v)
    return params


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "es-standin"
    _pretty = False
    disable_nagle_algorithm = True

    # -- plumbing
    def log_message(self, fmt, *args):
        # http.server's own complaints (bad request lines, timeouts); they hold
        # no header values.
        sys.stderr.write("es_standin: %s\n" % (fmt % args))

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").strip().lower()
        if te:
            if te != "chunked":
                raise BodyError("unsupported Transfer-Encoding")
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                if not line.endswith(b"\n"):
                    raise BodyError("bad chunk size line")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise BodyError("bad chunk size")
                if size == 0:
                    while True:           # trailers
                        line = self.rfile.readline(8192)
                        if line in (b"\r\n", b"\n", b""):
                            break
                    break
                total += size
                if total > MAX_BODY:
                    raise BodyError("body too large")
                data = self.rfile.read(size)
                if len(data) != size:
                    raise BodyError("short chunk")
                chunks.append(data)
                self.rfile.readline(3)    # CRLF after the chunk
            body = b"".join(chunks)
        else:
            lengths = self.headers.get_all("Content-Length") or []
            if not lengths:
                body = b""
            else:
                if len(set(v.strip() for v in lengths)) != 1 or not lengths[0].strip().isdigit():
                    raise BodyError("bad Content-Length")
                size = int(lengths[0])
                if size > MAX_BODY:
                    raise BodyError("body too large")
                body = self.rfile.read(size)
                if len(body) != size:
                    raise BodyError("short body")
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
        if encoding in ("gzip", "deflate"):
            try:
                body = zlib.decompress(body, 47 if encoding == "gzip" else 15)
            except zlib.error:
                raise BodyError("bad %s body" % encoding)
        return body

    def _send(self, status, body=None, headers=(), head=False):
        """Write one whole response (headers and body in one send)."""
        if isinstance(body, (dict, list)):
            if self._pretty:
                data = (json.dumps(body, indent=2, separators=(",", " : "),
                                   ensure_ascii=False) + "\n").encode("utf-8")
            else:
                data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        else:
            data = body or b""
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        out = ["HTTP/1.1 %d %s" % (status, reason)]
        names = {k.lower() for k, _ in headers}
        if "content-type" not in names and status not in (204, 304):
            out.append("content-type: " + JSON_CT)
        out.extend("%s: %s" % (k, v) for k, v in headers)
        cfg = self.server.cfg
        if (cfg.access_key is not None or cfg.issued is not None) and "date" not in names:
            # Amazon's front end dates its answers (Elasticsearch alone does not).
            out.append("Date: " + email.utils.formatdate(usegmt=True))
        if status not in (204, 304) and status >= 200:
            out.append("content-length: %d" % len(data))
        if self.close_connection:
            out.append("Connection: close")
        elif self.request_version == "HTTP/1.0":
            out.append("Connection: keep-alive")
        payload = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")
        if not head and status not in (204, 304):
            payload += data
        self.wfile.write(payload)
        if self.server.cfg.verbose:
            sys.stderr.write("es_standin: %s %s -> %d\n" % (self.command, self._raw_path, status))

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    # -- one request
    def _dispatch(self):
        cluster = self.server.cluster
        cfg = self.server.cfg
        target = self.path
        if target.startswith(("http://", "https://")):
            parts = urllib.parse.urlsplit(target)
            target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        raw_path, _, raw_query = target.partition("?")
        self._raw_path = raw_path
        params = _parse_query(raw_query)
        self._pretty = params.get("pretty") in ("", "true")
        head = self.command == "HEAD"
        try:
            body = self._read_body()
        except BodyError as e:
            self.close_connection = True
            self._send(400, simple_error(400, "stand-in could not read the body: %s" % e))
            return
        if raw_path == "/_standin" or raw_path.startswith("/_standin/"):
            return self._control(raw_path, params, body)

        headers = list(self.headers.items())
        ct = [v for k, v in headers if k.lower() == "content-type"]
        entry = {
            "time": time.time(), "method": self.command, "path": raw_path, "query": raw_query,
            "status": None, "conn": "%s:%d" % self.client_address[:2],
            "content_type": ct[0] if ct else None, "body_len": len(body),
            "body": body[:LOG_BODY_MAX].decode("utf-8", "backslashreplace"),
            "body_truncated": len(body) > LOG_BODY_MAX,
            "headers": [[k, "<redacted>" if k.lower() in SECRET_HEADERS else v] for k, v in headers],
            "fault": [], "closed": False, "basic_ok": None,
        }
        fail = None
        if cfg.basic_user is not None or cfg.api_key is not None:
            ok, fail = check_basic(cfg, headers, raw_path)
            entry["basic_ok"] = ok
            sig = verify_sigv4(_NO_KEYS, self.command, raw_path, raw_query, [], body)
        else:
            if cfg.issued is not None:
                sig = verify_issued(cfg, self.command, raw_path, raw_query, headers, body)
            else:
                sig = verify_sigv4(cfg, self.command, raw_path, raw_query, headers, body)
            if sig["fail"]:
                fail = sig["fail"] + ([],)
        sig.pop("fail")
        entry.update(sig)

        mode = cluster.take_mode()
        if mode.get("delay_ms"):
            entry["fault"].append("delay")
            time.sleep(mode["delay_ms"] / 1000.0)
        if mode.get("close"):
            entry["fault"].append("close")
            entry["closed"] = True
            cluster.log(entry)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if mode.get("status"):
            status = mode["status"]
            entry["fault"].append("status")
            out = mode["body"] if "body" in mode else fault_error(status).body()
            extra = [("Retry-After", str(mode["retry_after"]))] if "retry_after" in mode else []
            if not isinstance(out, (dict, list)):
                out = json.dumps(out).encode("utf-8")
            entry["status"] = status
            cluster.log(entry)
            self._send(status, out, extra, head)
            return
        if fail:
            entry["status"] = fail[0]
            cluster.log(entry)
            self._send(fail[0], fail[1], fail[2], head)
            return

        held = False
        try:
            segs = [_decode_segment(s) for s in _wire_text(raw_path).split("/") if s]
        except UnicodeDecodeError:
            reply = Reply(400, EsError(400, "illegal_argument_exception",
                                       "unable to decode the path as UTF-8").body(), [])
        else:
            if mode.get("fail_items"):
                entry["fault"].append("fail_items")
            if mode.get("reject_items"):
                entry["fault"].append("reject_items")
            # A document becomes visible with the request that carried it
            # in the log: a test that saw the one finds the other.
            cluster.lock.acquire()
            held = True
            try:
                reply = (aoss_refusal(segs, self.command, body) if cfg.aoss_time_series
                         else None) or \
                    handle_es(cluster, self.command, segs, params, raw_path, headers, body, mode)
                if cluster.flavor.typeless() and isinstance(reply.body, dict):
                    reply = reply._replace(body=_untyped(reply.body))
                if params.get("filter_path") and isinstance(reply.body, (dict, list)) and \
                        not mode.get("ignore_filter_path"):
                    # Elasticsearch's own answers only (not the signature
                    # layer's, which is AWS's front end).
                    reply = reply._replace(body=apply_filter_path(reply.body,
                                                                  params["filter_path"]))
            except Exception as e:       # a stand-in bug: say so rather than hang up
                traceback.print_exc()
                reply = Reply(500, EsError(500, "exception", "stand-in bug: %r" % e).body(), [])
        entry["status"] = reply.status
        cluster.log(entry)
        if held:
            cluster.lock.release()
        self._send(reply.status, reply.body, reply.headers, head)

    # -- control API
    def _control(self, raw_path, params, body):
        cluster = self.server.cluster
        method = self.command
        if raw_path == "/_standin/docs" and method == "GET":
            return self._send(200, {"docs": cluster.doc_list(params.get("index"))})
        if raw_path == "/_standin/requests" and method == "GET":
            with cluster.lock:
                reqs = [dict(r) for r in cluster.requests]
            return self._send(200, {"requests": reqs})
        if raw_path == "/_standin/reset" and method == "POST":
            cluster.reset()
            return self._send(200, {"acknowledged": True})
        if raw_path == "/_standin/mode" and method == "GET":
            return self._send(200, {"mode": cluster.get_mode()})
        if raw_path == "/_standin/credentials" and method == "POST" and \
                self.server.cfg.issued is not None:
            c = json.loads(body.decode("utf-8"))
            cfg = self.server.cfg
            with cfg.issued_lock:
                cfg.issued[c["access_key"]] = (c["secret_key"], c.get("session_token"),
                                               c.get("expires"))
                n = len(cfg.issued)
            return self._send(200, {"issued": n})
        if raw_path == "/_standin/mode" and method == "POST":
            try:
                mode = json.loads(body.decode("utf-8")) if body.strip() else {}
                mode = validate_mode(mode)
            except (ValueError, UnicodeDecodeError) as e:
                return self._send(400, simple_error(400, "bad mode: %s" % e))
            cluster.set_mode(mode)
            return self._send(200, {"mode": cluster.get_mode()})
        return self._send(404, simple_error(404, "no stand-in control %s %s" % (method, raw_path)))


def validate_mode(mode):
    if not isinstance(mode, dict):
        raise ValueError("the mode is a JSON object")
    ints = {"delay_ms": (0, 600000), "status": (200, 599), "fail_items": (0, 1 << 30),
            "reject_items": (0, 1 << 30),
            "count": (1, 1 << 30), "retry_after": (0, 86400)}
    out = {}
    for key, value in mode.items():
        if key in ints:
            lo, hi = ints[key]
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError("%s must be an integer in %d..%d" % (key, lo, hi))
            if value or key == "count":
                out[key] = value
        elif key in ("close", "ignore_filter_path"):
            if not isinstance(value, bool):
                raise ValueError("%s must be true or false" % key)
            if value:
                out[key] = True
        elif key == "body":
            out[key] = value
        else:
            raise ValueError("unknown key %r" % key)
    if ("body" in out or "retry_after" in out) and "status" not in out:
        raise ValueError("body and retry_after go with status")
    if set(out) == {"count"}:
        out = {}
    return out


class _NoKeys:
    access_key = None
    require_signature = False


_NO_KEYS = _NoKeys()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        """A client that fails the TLS handshake (wrong CA, no client
        certificate) is one line, as a server logs it, not a traceback."""
        err = sys.exc_info()[1]
        if isinstance(err, ssl.SSLError):
            sys.stderr.write("es_standin: TLS with %s:%d failed: %s\n"
                             % (client_address[0], client_address[1], err.reason or err))
            return
        super().handle_error(request, client_address)


def write_port_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Elasticsearch 7.10 stand-in with SigV4 checks "
                                             "(listens on 127.0.0.1 only)")
    ap.add_argument("--port", type=int, default=0, help="port, 0 picks one")
    ap.add_argument("--port-file", help="write the port here once listening")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--service", default="es")
    ap.add_argument("--access-key")
    ap.add_argument("--secret-key", help="or ES_STANDIN_SECRET_KEY")
    ap.add_argument("--session-token", help="or ES_STANDIN_SESSION_TOKEN")
    ap.add_argument("--require-signature", action="store_true",
                    help="403 Missing Authentication Token without an Authorization header")
    ap.add_argument("--basic-user")
    ap.add_argument("--basic-password", help="or ES_STANDIN_BASIC_PASSWORD")
    ap.add_argument("--api-key", help="or ES_STANDIN_API_KEY")
    ap.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (chain)")
    ap.add_argument("--tls-key", help="the PEM private key of --tls-cert")
    ap.add_argument("--tls-client-ca", help="require a client certificate issued by this CA")
    ap.add_argument("--aoss-time-series", action="store_true",
                    help="no GET /, no chosen document ids (OpenSearch Serverless)")
    ap.add_argument("--verbose", action="store_true", help="one line per request on stderr")
    ap.add_argument("--distribution", default="elasticsearch",
                    choices=("elasticsearch", "opensearch"), help="what GET / says it is")
    ap.add_argument("--version-number", default="7.10.2", help="the version GET / says")
    ap.add_argument("--no-user-agent", action="store_true",
                    help="the cluster has no user_agent ingest processor")
    ap.add_argument("--issued", action="store_true",
                    help="accept only credentials registered with POST /_standin/credentials")
    ap.add_argument("--max-skew", type=int, default=MAX_SKEW,
                    help="seconds X-Amz-Date may be off (AWS: 300)")
    args = ap.parse_args(argv)
    env = os.environ
    args.secret_key = args.secret_key or env.get("ES_STANDIN_SECRET_KEY") or None
    args.session_token = args.session_token or env.get("ES_STANDIN_SESSION_TOKEN") or None
    args.basic_password = args.basic_password or env.get("ES_STANDIN_BASIC_PASSWORD") or None
    args.api_key = args.api_key or env.get("ES_STANDIN_API_KEY") or None
    if (args.tls_cert is None) != (args.tls_key is None) or \
            (args.tls_client_ca is not None and args.tls_cert is None):
        ap.error("--tls-cert and --tls-key go together (and --tls-client-ca needs them)")
    if args.api_key is not None and (args.access_key is not None or args.require_signature):
        ap.error("API keys and SigV4 both use Authorization: pick one")
    if (args.access_key is None) != (args.secret_key is None):
        ap.error("--access-key and --secret-key go together")
    if args.session_token is not None and args.access_key is None:
        ap.error("--session-token needs --access-key and --secret-key")
    if (args.basic_user is None) != (args.basic_password is None):
        ap.error("--basic-user and --basic-password go together")
    if args.basic_user is not None and (args.access_key is not None or args.require_signature):
        ap.error("basic authentication and SigV4 both use Authorization: pick one")
    if args.access_key is not None:
        _botocore()                     # fail now, not on the first request

    server = Server(("127.0.0.1", args.port), Handler)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(args.tls_client_ca)
        # The handshake happens in the request's thread, at its first read:
        # a client that fails it never holds up accept().
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
    server.cfg = Config(args)
    server.cluster = Cluster(es_mapping.Flavor(args.distribution, args.version_number,
                                               not args.no_user_agent))
    port = server.server_address[1]

    def stop(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.port_file:
        write_port_file(args.port_file, port)
    if args.verbose:
        sys.stderr.write("es_standin: listening on 127.0.0.1:%d\n" % port)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


# ------------------------------------------------------ the class for tests

PYTHON = os.environ.get("TEST_PYTHON", "/usr/bin/python3")
SCRIPT = os.path.abspath(__file__)

Response = namedtuple("Response", "status reason headers body")


def _json_of(resp):
    return json.loads(resp.body.decode("utf-8"))


Response.json = _json_of
Response.header = lambda self, name: next(
    (v for k, v in self.headers if k.lower() == name.lower()), None)


def sigv4_headers(method, url, body=b"", headers=None, *, access_key, secret_key,
                  session_token=None, region="us-east-1", service="es", amz_date=None,
                  content_sha256=False):
    """Sign a request with botocore's SigV4Auth; returns the headers to send (a list).

    url is the full http://host:port/path?query; headers are signed as given
    (a Host header is added from url when missing).  amz_date
    ("YYYYMMDDTHHMMSSZ") signs at another time; content_sha256 adds and signs
    x-amz-content-sha256.
    """
    bc = _botocore()
    body = body or b""
    req = bc.awsrequest.AWSRequest(method=method, url=url, data=body)
    given = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    if not any(k.lower() == "host" for k, _ in given):
        given.insert(0, ("Host", urllib.parse.urlsplit(url).netloc))
    for k, v in given:
        req.headers[k] = v
    if content_sha256:
        req.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    signer = bc.auth.SigV4Auth(bc.credentials.Credentials(access_key, secret_key, session_token),
                               service, region)
    if amz_date is None:
        signer.add_auth(req)
    else:
        # add_auth() with a chosen time instead of now: the same steps.
        req.context["timestamp"] = amz_date
        signer._modify_request_before_signing(req)
        canonical = signer.canonical_request(req)
        sts = signer.string_to_sign(req, canonical)
        signer._inject_signature_to_request(req, signer.signature(sts, req))
    return list(req.headers.items())


class StandinError(Exception):
    pass


class Standin:
    """Run es_standin.py as a subprocess for one test file.

        with Standin(access_key="AK", secret_key="SK") as es:
            r = es.request("PUT", "/i/_create/1", b'{"a":1}', sign=True,
                           headers={"Content-Type": "application/json"})
            es.docs(); es.requests(); es.mode(status=503, count=2); es.reset()

    Options (to the constructor or start()): region, service, access_key,
    secret_key, session_token, require_signature, basic_user, basic_password,
    api_key, tls_cert, tls_key, tls_client_ca (HTTPS: url and connection()
    use https, verified with tls_ca when given), aoss_time_series, verbose,
    port, distribution, version_number, user_agent (False: no user_agent
    processor).  Secrets travel to the child in its environment, not argv.
    """

    def __init__(self, **opts):
        self.opts = opts
        self.proc = None
        self.port = None
        self._tmp = None

    # -- life
    def start(self, timeout=10.0, **opts):
        if self.proc is not None:
            raise StandinError("already started")
        self.opts.update(opts)
        o = self.opts
        self._tmp = tempfile.mkdtemp(prefix="es-standin-")
        port_file = os.path.join(self._tmp, "port")
        argv = [PYTHON, SCRIPT, "--port", str(o.get("port", 0)), "--port-file", port_file,
                "--region", o.get("region", "us-east-1"), "--service", o.get("service", "es")]
        env = dict(os.environ)
        for k in ("ES_STANDIN_SECRET_KEY", "ES_STANDIN_SESSION_TOKEN", "ES_STANDIN_BASIC_PASSWORD",
                  "ES_STANDIN_API_KEY"):
            env.pop(k, None)
        if o.get("access_key") is not None:
            argv += ["--access-key", o["access_key"]]
            env["ES_STANDIN_SECRET_KEY"] = o["secret_key"]
        if o.get("session_token") is not None:
            env["ES_STANDIN_SESSION_TOKEN"] = o["session_token"]
        if o.get("require_signature"):
            argv.append("--require-signature")
        if o.get("basic_user") is not None:
            argv += ["--basic-user", o["basic_user"]]
            env["ES_STANDIN_BASIC_PASSWORD"] = o["basic_password"]
        if o.get("api_key") is not None:
            env["ES_STANDIN_API_KEY"] = o["api_key"]
        for opt in ("tls_cert", "tls_key", "tls_client_ca"):
            if o.get(opt) is not None:
                argv += ["--" + opt.replace("_", "-"), o[opt]]
        if o.get("aoss_time_series"):
            argv.append("--aoss-time-series")
        if o.get("verbose"):
            argv.append("--verbose")
        if o.get("distribution"):
            argv += ["--distribution", o["distribution"]]
        if o.get("version_number"):
            argv += ["--version-number", o["version_number"]]
        if o.get("user_agent") is False:
            argv.append("--no-user-agent")
        if o.get("issued"):
            argv.append("--issued")
        if o.get("max_skew"):
            argv += ["--max-skew", str(o["max_skew"])]
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with open(port_file) as f:
                    text = f.read()
                if text.endswith("\n"):
                    self.port = int(text)
                    break
            except FileNotFoundError:
                pass
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise StandinError("es_standin exited with status %d before listening" % code)
            if time.monotonic() > deadline:
                self.stop()
                raise StandinError("es_standin did not listen within %.0f s" % timeout)
            time.sleep(0.02)
        return self

    def stop(self):
        """Terminate the server and wait for it; idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def __del__(self):
        try:
            self.stop()
        except Exception:
            pass

    # -- addresses
    @property
    def host(self):
        return "127.0.0.1:%d" % self.port

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % ("https" if self.opts.get("tls_cert") else "http", self.port)

    def connection(self, timeout=10):
        if not self.opts.get("tls_cert"):
            return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        ctx = ssl.create_default_context(cafile=self.opts.get("tls_ca"))
        if self.opts.get("client_cert"):
            ctx.load_cert_chain(self.opts["client_cert"], self.opts.get("client_key"))
        return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=ctx)

    # -- control API
    def _control(self, method, path, obj=None):
        body = None if obj is None else json.dumps(obj).encode("utf-8")
        # Generous: on a loaded machine a listing of thousands of documents
        # takes a while, and a slow answer here is not what a test tests.
        conn = self.connection(timeout=60)
        try:
            conn.request(method, path, body=body,
                         headers={"Content-Type": "application/json"} if body else {})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise StandinError("%s %s: %d %s" % (method, path, resp.status,
                                                 data.decode("utf-8", "replace")))
        return json.loads(data.decode("utf-8"))

    def docs(self, index=None):
        """Stored documents in creation order: dicts index, type, id, source, raw, via, op, ..."""
        q = "?index=" + urllib.parse.quote(index, safe="") if index is not None else ""
        return self._control("GET", "/_standin/docs" + q)["docs"]

    def requests(self):
        """The request log (control requests excluded), oldest first."""
        return self._control("GET", "/_standin/requests")["requests"]

    def reset(self):
        """Forget indices, documents, the request log and the fault mode."""
        self._control("POST", "/_standin/reset", {})

    def mode(self, **kw):
        """Set the fault mode (no arguments: back to normal); returns the mode now in force."""
        return self._control("POST", "/_standin/mode", kw)["mode"]

    def get_mode(self):
        return self._control("GET", "/_standin/mode")["mode"]

    def safe_template(self, patterns=("*",)):
        """Install an index template that maps what clients name (params.*,
        stage-variables, body-json) as one field each, as trackpixel --setup
        does, for tests that send more names or types than one index's
        dynamic mapping takes."""
        flat = "flat_object" if self.opts.get("distribution") == "opensearch" else "flattened"
        body = {"index_patterns": list(patterns), "priority": 1, "template": {"mappings": {
            "properties": {
                "params": {"properties": {k: {"type": flat}
                                          for k in ("querystring", "header", "path")}},
                "stage-variables": {"type": flat}, "body-json": {"type": flat}}}}}
        r = self.request("PUT", "/_index_template/test-safe", json.dumps(body).encode(),
                         headers={"Content-Type": "application/json"},
                         sign=self.opts.get("access_key") is not None)
        if r.status != 200:
            raise StandinError("safe_template: %d %s" % (r.status, r.body[:200]))

    def issue(self, access_key, secret_key, session_token=None, expires=None):
        """With issued=True: accept these credentials until expires (epoch seconds)."""
        return self._control("POST", "/_standin/credentials",
                             dict(access_key=access_key, secret_key=secret_key,
                                  session_token=session_token, expires=expires))["issued"]

    # -- Elasticsearch requests
    def sign(self, method, path, body=b"", headers=None, **kw):
        """Headers for a request to path signed with the stand-in's own credentials
        (kw overrides: access_key, secret_key, session_token, region, service,
        amz_date, content_sha256)."""
        o = dict(access_key=self.opts.get("access_key"), secret_key=self.opts.get("secret_key"),
                 session_token=self.opts.get("session_token"),
                 region=self.opts.get("region", "us-east-1"),
                 service=self.opts.get("service", "es"))
        o.update(kw)
        return sigv4_headers(method, self.url + path, body, headers, **o)

    def request(self, method, path, body=b"", headers=None, sign=False, conn=None, timeout=10):
        """Send one request; returns Response(status, reason, headers, body bytes).

        sign: False, True (the stand-in's credentials) or a dict of sign() overrides.
        conn: an http.client.HTTPConnection to reuse (kept open); else a new one, closed.
        """
        body = body or b""
        if sign:
            hdrs = self.sign(method, path, body, headers, **(sign if isinstance(sign, dict) else {}))
        else:
            hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        own = conn is None
        if own:
            conn = self.connection(timeout)
        try:
            conn.putrequest(method, path, skip_host=any(k.lower() == "host" for k, _ in hdrs),
                            skip_accept_encoding=True)
            for k, v in hdrs:
                conn.putheader(k, v)
            framed = any(k.lower() in ("content-length", "transfer-encoding") for k, _ in hdrs)
            if not framed and (body or method in ("POST", "PUT")):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body if body else None)
            resp = conn.getresponse()
            data = resp.read()
            return Response(resp.status, resp.reason, resp.getheaders(), data)
        finally:
            if own:
                conn.close()


if __name__ == "__main__":
    sys.exit(main())
