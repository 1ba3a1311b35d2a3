"""aws_standins - loopback stand-ins for the AWS credential endpoints, for tests.

Each is an HTTP server on 127.0.0.1 in a thread of the test process, speaking
the protocol as AWS documents it:

  Imds       EC2 instance metadata, IMDSv2: PUT /latest/api/token with
             X-aws-ec2-metadata-token-ttl-seconds (1..21600) answers a token;
             GET /latest/meta-data/iam/security-credentials/ (the role name),
             .../<role> (the credentials JSON) and
             /latest/meta-data/placement/region need X-aws-ec2-metadata-token
             (401 without or with a wrong one) unless allow_v1.
  Container  the ECS/EKS container endpoint: GET <path> with Authorization
             equal to the expected token answers the credentials JSON.
  Sts        POST / form: AssumeRoleWithWebIdentity (unsigned, the token must
             be the expected one) and AssumeRole (SigV4 for service sts,
             verified with botocore against the source keys it knows);
             XML answers and ErrorResponse documents as STS sends them.

Every set of credentials comes from an Issuer, which registers it with an
Elasticsearch stand-in started with issued=True (es_standin.Standin.issue),
so the cluster accepts exactly the currently valid issued credentials.
fault(status=..., body=..., content_type=..., delay=...) makes a stand-in
answer every request that way until fault() is called without arguments.
Nothing secret is printed.
"""
import base64
import datetime
import http.server
import json
import os
import secrets
import threading
import time
import urllib.parse
from xml.sax.saxutils import escape

import es_standin

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


def iso(ts):
    return datetime.datetime.fromtimestamp(int(ts), datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


class Issuer:
    """Mints credentials living lifetime seconds; registers them with es."""

    def __init__(self, es=None, lifetime=3600, token_bytes=600, es_lifetime=None):
        self.es = es
        self.lifetime = lifetime
        # The cluster may stop accepting credentials before their announced
        # Expiration (revoked, or a clock that differs): es_lifetime.
        self.es_lifetime = es_lifetime
        self.token_bytes = token_bytes
        self.issued = []
        self.lock = threading.Lock()

    def mint(self):
        ak = "ASIA" + secrets.token_hex(8).upper()
        sk = base64.b64encode(secrets.token_bytes(30)).decode()
        token = base64.b64encode(secrets.token_bytes(self.token_bytes)).decode()
        exp = int(time.time()) + self.lifetime
        if self.es is not None:
            self.es.issue(ak, sk, token, exp if self.es_lifetime is None
                          else int(time.time()) + self.es_lifetime)
        c = dict(AccessKeyId=ak, SecretAccessKey=sk, Token=token, Expiration=iso(exp),
                 expires=exp)
        with self.lock:
            self.issued.append(c)
        return c

    def secrets(self):
        with self.lock:
            return [c["SecretAccessKey"] for c in self.issued] + \
                   [c["Token"] for c in self.issued]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _go(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        app = self.server.app
        with app.lock:
            app.requests.append((self.command, self.path, dict(self.headers.items())))
            fault = dict(app.fault_mode)
        if fault.get("delay"):
            time.sleep(fault["delay"])
        if fault.get("status"):
            status, ctype, data = (fault["status"], fault.get("content_type", "text/plain"),
                                   fault.get("body", "").encode())
        else:
            status, ctype, data = app.handle(self.command, self.path, self.headers, body)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = _go


class _App:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.fault_mode = {}
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.app = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def fault(self, **mode):
        with self.lock:
            self.fault_mode = mode

    def count(self, method=None, path_prefix=""):
        with self.lock:
            return sum(1 for m, p, _ in self.requests
                       if (method is None or m == method) and p.startswith(path_prefix))

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Imds(_App):
    ROLE = "trackpixel-role"

    def __init__(self, issuer, region="us-east-1", allow_v1=False, token_status=None):
        """allow_v1: GETs without a token are answered (HttpTokens=optional);
        token_status: the token PUT answers this status instead (an IMDS
        without v2, or a proxy that refuses PUT)."""
        super().__init__()
        self.issuer, self.region, self.allow_v1 = issuer, region, allow_v1
        self.token_status = token_status
        self.tokens = {}

    def handle(self, method, path, headers, body):
        if path == "/latest/api/token":
            if method != "PUT":
                return 405, "text/plain", b""
            if self.token_status:
                return self.token_status, "text/plain", b""
            ttl = headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                return 400, "text/plain", b""
            tok = base64.b64encode(secrets.token_bytes(42)).decode()
            with self.lock:
                self.tokens[tok] = time.time() + int(ttl)
            return 200, "text/plain", tok.encode()
        if method != "GET":
            return 405, "text/plain", b""
        tok = headers.get("X-aws-ec2-metadata-token")
        with self.lock:
            valid = tok is not None and self.tokens.get(tok, 0) > time.time()
        if not valid and (tok is not None or not self.allow_v1):
            return 401, "text/plain", b""
        base = "/latest/meta-data/iam/security-credentials/"
        if path == base:
            return 200, "text/plain", self.ROLE.encode()
        if path == base + self.ROLE:
            c = self.issuer.mint()
            doc = {"Code": "Success", "LastUpdated": iso(time.time()), "Type": "AWS-HMAC",
                   "AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
                   "Token": c["Token"], "Expiration": c["Expiration"]}
            return 200, "text/plain", json.dumps(doc, indent=2).encode()
        if path == "/latest/meta-data/placement/region":
            return 200, "text/plain", self.region.encode()
        return 404, "text/html", b"<html><body>404 - Not Found</body></html>"


class Container(_App):
    PATH = "/v2/credentials/trackpixel"

    def __init__(self, issuer, token=None):
        super().__init__()
        self.issuer, self.token = issuer, token

    def handle(self, method, path, headers, body):
        if method != "GET" or path != self.PATH:
            return 404, "application/json", b'{"message":"not found"}'
        if self.token is not None and headers.get("Authorization") != self.token:
            return 401, "application/json", b'{"message":"unauthorized"}'
        c = self.issuer.mint()
        doc = {"AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
               "Token": c["Token"], "Expiration": c["Expiration"],
               "RoleArn": "arn:aws:iam::123456789012:role/trackpixel"}
        return 200, "application/json", json.dumps(doc).encode()


class _StsKeys:
    """What verify_sigv4 needs to check an AssumeRole signature."""
    require_signature = True
    max_skew = 300
    service = "sts"

    def __init__(self, region, ak, sk, token):
        self.region, self.access_key, self.secret_key, self.session_token = region, ak, sk, token


class Sts(_App):
    def __init__(self, issuer, web_token=None, source_keys=None, region="us-east-1"):
        super().__init__()
        self.issuer, self.web_token, self.region = issuer, web_token, region
        self.source_keys = dict(source_keys or {})   # access key id -> (secret, token)
        self.sig_errors = []

    @staticmethod
    def error(status, etype, code, message):
        return status, "text/xml", (
            '<ErrorResponse xmlns="%s">\n  <Error>\n    <Type>%s</Type>\n    <Code>%s</Code>\n'
            '    <Message>%s</Message>\n  </Error>\n  <RequestId>%s</RequestId>\n'
            '</ErrorResponse>\n' % (STS_NS, etype, code, escape(message),
                                    secrets.token_hex(16))).encode()

    def answer(self, action, form, extra=""):
        c = self.issuer.mint()
        session = form.get("RoleSessionName", "s")
        arn = form.get("RoleArn", "")
        role = arn.rsplit("/", 1)[-1]
        return 200, "text/xml", (
            '<%sResponse xmlns="%s">\n  <%sResult>\n%s'
            '    <AssumedRoleUser>\n      <AssumedRoleId>AROA3XFRBF535PLBIFPI4:%s</AssumedRoleId>\n'
            '      <Arn>arn:aws:sts::123456789012:assumed-role/%s/%s</Arn>\n'
            '    </AssumedRoleUser>\n    <Credentials>\n'
            '      <AccessKeyId>%s</AccessKeyId>\n      <SecretAccessKey>%s</SecretAccessKey>\n'
            '      <SessionToken>%s</SessionToken>\n      <Expiration>%s</Expiration>\n'
            '    </Credentials>\n  </%sResult>\n  <ResponseMetadata>\n'
            '    <RequestId>%s</RequestId>\n  </ResponseMetadata>\n</%sResponse>\n'
            % (action, STS_NS, action, extra, escape(session), escape(role), escape(session),
               c["AccessKeyId"], escape(c["SecretAccessKey"]), escape(c["Token"]),
               c["Expiration"], action, secrets.token_hex(16), action)).encode()

    def handle(self, method, path, headers, body):
        if method != "POST":
            return self.error(400, "Sender", "InvalidAction", "Could not find operation")
        form = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
        action = form.get("Action")
        if form.get("Version") != "2011-06-15":
            return self.error(400, "Sender", "InvalidAction", "bad Version")
        if action == "AssumeRoleWithWebIdentity":
            if not form.get("RoleArn") or not form.get("RoleSessionName"):
                return self.error(400, "Sender", "ValidationError", "RoleArn and "
                                  "RoleSessionName are required")
            if form.get("WebIdentityToken") != self.web_token:
                return self.error(400, "Sender", "InvalidIdentityToken",
                                  "Couldn't retrieve verification key from your identity provider,  "
                                  "please reference AssumeRoleWithWebIdentity documentation for "
                                  "requirements")
            extra = ('    <SubjectFromWebIdentityToken>system:serviceaccount:default:trackpixel'
                     '</SubjectFromWebIdentityToken>\n    <Audience>sts.amazonaws.com</Audience>\n'
                     '    <Provider>arn:aws:iam::123456789012:oidc-provider/example</Provider>\n')
            return self.answer(action, form, extra)
        if action == "AssumeRole":
            hdrs = list(headers.items())
            auth = [v for k, v in hdrs if k.lower() == "authorization"]
            ak = auth[0].split("Credential=", 1)[1].split("/", 1)[0] if auth and \
                "Credential=" in auth[0] else None
            if ak not in self.source_keys:
                return self.error(403, "Sender", "InvalidClientTokenId",
                                  "The security token included in the request is invalid.")
            sk, tok = self.source_keys[ak]
            raw_path, _, raw_query = path.partition("?")
            res = es_standin.verify_sigv4(_StsKeys(self.region, ak, sk, tok), method, raw_path,
                                          raw_query, hdrs, body)
            if not res["sig_ok"]:
                with self.lock:
                    self.sig_errors.append(res["sig_error"])
                return self.error(403, "Sender", "SignatureDoesNotMatch",
                                  res["fail"][1]["message"] if res["fail"] else "bad signature")
            return self.answer(action, form)
        return self.error(400, "Sender", "InvalidAction", "Could not find operation %s" % action)


def process_script(path, url, mode="ok"):
    """A credential_process script at path that prints (Version 1) the
    credentials a Container stand-in at url (no authorization token) mints,
    or misbehaves: mode "hang" sleeps, "garbage" prints what is not JSON,
    "fail" exits 1."""
    body = {
        "ok": ("exec /usr/bin/python3 -c 'import json, urllib.request\n"
               "c = json.load(urllib.request.urlopen(\"%s\"))\n"
               "print(json.dumps({\"Version\": 1, \"AccessKeyId\": c[\"AccessKeyId\"], "
               "\"SecretAccessKey\": c[\"SecretAccessKey\"], \"SessionToken\": c[\"Token\"], "
               "\"Expiration\": c[\"Expiration\"]}))'\n" % (url + Container.PATH)),
        "hang": "sleep 60\n",
        "garbage": "echo 'Traceback (most recent call last): oops'\n",
        "fail": "echo 'token expired, run login' >&2\nexit 1\n",
    }[mode]
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)
