"""The configuration file, Elasticsearch's own authentication (API key,
basic) and TLS (a CA of the test's own, client certificates), and OpenSearch
Serverless without document ids: the real binary, cgi-fcgi, and the
Elasticsearch stand-in serving HTTPS with Python's ssl module (OpenSSL),
proved faithful with curl."""
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import eq, cgi_fcgi, pixel_env, wait_for, AWS_KEYS  # noqa: E402
from es_standin import Standin  # noqa: E402

API_KEY = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
PASSWORD = "pw-for-config-test-4k9"
SECRETS = (API_KEY, PASSWORD, AWS_KEYS["AWS_SECRET_ACCESS_KEY"], AWS_KEYS["AWS_SESSION_TOKEN"])


def no_secrets(text, what):
    for s in SECRETS:
        assert s not in text, "a secret appeared in " + what


def openssl(*args, cwd):
    p = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError("openssl %s: %s" % (args[0], p.stderr[-500:]))


def make_ca(d, name):
    """A CA (d/name.pem, d/name.key) valid for two days."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", name + ".key", "-out", name + ".pem", "-days", "2",
            "-subj", "/CN=%s" % name,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    return os.path.join(d, name + ".pem")


def make_cert(d, ca, name, usage, san=None):
    """A certificate issued by CA ca for usage (serverAuth, clientAuth):
    (d/name.pem, d/name.key)."""
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=%s\n" % usage)
        if san:
            f.write("subjectAltName=%s\n" % san)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=%s" % name, cwd=d)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
            "-set_serial", str(abs(hash(name)) % 1000000 + 2), "-out", name + ".pem",
            "-days", "2", "-extfile", ext, cwd=d)
    return os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")


def setup():
    c = tplib.Ctx()
    c.dir = tempfile.mkdtemp(prefix="tp-config-auth-")
    c.ca = None
    if not shutil.which("openssl"):
        return c                   # the TLS tests say SKIP
    c.ca = make_ca(c.dir, "test-ca")
    c.other_ca = make_ca(c.dir, "other-ca")
    c.server_cert, c.server_key = make_cert(c.dir, "test-ca", "server", "serverAuth",
                                            "IP:127.0.0.1")
    c.client_cert, c.client_key = make_cert(c.dir, "test-ca", "client", "clientAuth")
    return c


def teardown(c):
    shutil.rmtree(c.dir, ignore_errors=True)


def tls_standin(c, **kw):
    if c.ca is None:
        raise tplib.Skip("no openssl command to make certificates with")
    # The test's own requests (the control API) present the client
    # certificate too, for a stand-in that requires one.
    return Standin(tls_cert=c.server_cert, tls_key=c.server_key, tls_ca=c.ca,
                   client_cert=c.client_cert, client_key=c.client_key, **kw).start()


def env_for(es, **extra):
    env = {"PATH": "/usr/bin:/bin", "TRACKPIXEL_ES_URL": es.url, "TRACKPIXEL_CONFIG": "",
           "TRACKPIXEL_SLOW_MS": "60000", "TRACKPIXEL_SHUTDOWN_MS": "300",
           "TRACKPIXEL_CONNECT_TIMEOUT_MS": "1000", "TRACKPIXEL_TIMEOUT_MS": "2000"}
    env.update(extra)
    return env


def pixels(w, n):
    """n pixels; their request ids."""
    ids = []
    for i in range(n):
        status, headers, _ = cgi_fcgi(w.port, pixel_env(QUERY_STRING="i=%d" % i))
        eq(status, 200, "pixel status")
        ids.append(headers["X-Request-Id"])
    return ids


def check(env):
    p = subprocess.run([tplib.TRACKPIXEL, "--check"], env=env, capture_output=True, text=True,
                       timeout=30)
    no_secrets(p.stdout + p.stderr, "--check")
    return p.returncode, p.stdout


def curl(*args):
    return subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}"] + list(args),
                          capture_output=True, text=True, timeout=30)


def delivered_once(es, ids):
    docs = wait_for(lambda: len(es.docs()) >= len(ids) and es.docs(), what="%d documents"
                    % len(ids))
    eq(sorted(d["id"] for d in docs), sorted(ids), "documents, each once")


# ------------------------------------------------------------- the stand-in

def test_standin_tls_is_what_curl_sees(c):
    """curl agrees with the stand-in's HTTPS: verified with the test's CA,
    refused without it (curl's exit 60), and a required client certificate
    is required."""
    if not shutil.which("curl"):
        raise tplib.Skip("no curl command")
    es = tls_standin(c)
    try:
        p = curl("--cacert", c.ca, es.url + "/")
        eq((p.returncode, p.stdout), (0, "200"), "curl with the CA: " + p.stderr)
        p = curl(es.url + "/")
        eq(p.returncode, 60, "curl without the CA: " + p.stderr)
        p = curl("--cacert", c.other_ca, es.url + "/")
        eq(p.returncode, 60, "curl with another CA: " + p.stderr)
    finally:
        es.stop()
    es = tls_standin(c, tls_client_ca=c.ca)
    try:
        p = curl("--cacert", c.ca, es.url + "/")
        assert p.returncode != 0 and p.stdout in ("", "000"), (p.returncode, p.stdout)
        p = curl("--cacert", c.ca, "--cert", c.client_cert, "--key", c.client_key, es.url + "/")
        eq((p.returncode, p.stdout), (0, "200"), "curl with a client certificate: " + p.stderr)
    finally:
        es.stop()


def test_standin_api_key_answers_as_elasticsearch(c):
    """401 security_exception with Elasticsearch's reasons and challenges."""
    with Standin(api_key=API_KEY) as es:
        r = es.request("GET", "/", headers={"Authorization": "ApiKey " + API_KEY})
        eq(r.status, 200, "right key")
        r = es.request("GET", "/", headers={"Authorization": "ApiKey d3Jvbmc="})
        eq(r.status, 401, "wrong key")
        eq(r.json()["error"]["reason"], "unable to authenticate with provided credentials and "
           "anonymous access is not allowed for this request", "reason")
        r = es.request("GET", "/")
        eq((r.status, r.json()["error"]["type"]), (401, "security_exception"), "no key")
        eq(sorted(v for k, v in r.headers if k.lower() == "www-authenticate"),
           ['ApiKey', 'Basic realm="security" charset="UTF-8"'], "challenges")


# -------------------------------------------------------------------- TLS

def test_https_with_own_ca(c):
    """TRACKPIXEL_ES_CA_FILE: every hit delivered over verified HTTPS;
    --check says so, with the cluster's name and version."""
    es = tls_standin(c)
    try:
        env = env_for(es, TRACKPIXEL_ES_CA_FILE=c.ca)
        rc, out = check(env)
        eq(rc, 0, "--check: " + out)
        assert "tls: certificates and host names verified with %s\n" % c.ca in out, out
        assert "auth: none\n" in out, out
        assert "(cluster_name standin, version 7.10.2)" in out, out
        with tplib.Worker(env) as w:
            ids = pixels(w, 5)
            delivered_once(es, ids)
            eq(w.stop(), 0, "exit status")
    finally:
        es.stop()


def test_wrong_ca_logged_nothing_lost(c):
    """A certificate that does not verify: libcurl's reason in the log, the
    pixels served, the hits kept; a worker with the right CA delivers them
    all, once."""
    es = tls_standin(c)
    spool = os.path.join(c.dir, "spool-wrong-ca")
    try:
        env = env_for(es, TRACKPIXEL_ES_CA_FILE=c.other_ca, TRACKPIXEL_SPOOL_DIR=spool)
        rc, out = check(env)
        eq(rc, 1, "--check exit")
        assert "is unreachable: no answer: SSL certificate problem" in out, out
        w = tplib.Worker(env).start()
        ids = pixels(w, 4)
        wait_for(lambda: "SSL certificate problem" in w.stderr(), what="the TLS error logged")
        eq(w.stop(), 0, "exit status")
        eq(es.docs(), [], "nothing delivered")
        w = tplib.Worker(env_for(es, TRACKPIXEL_ES_CA_FILE=c.ca,
                                 TRACKPIXEL_SPOOL_DIR=spool)).start()
        try:
            delivered_once(es, ids)
        finally:
            eq(w.stop(), 0, "exit status")
    finally:
        es.stop()


def test_client_certificate(c):
    """A cluster that requires a client certificate: refused without one
    (logged), delivered with TRACKPIXEL_ES_CERT_FILE and _KEY_FILE."""
    es = tls_standin(c, tls_client_ca=c.ca)
    spool = os.path.join(c.dir, "spool-client-cert")
    try:
        env = env_for(es, TRACKPIXEL_ES_CA_FILE=c.ca, TRACKPIXEL_SPOOL_DIR=spool)
        w = tplib.Worker(env).start()
        ids = pixels(w, 2)
        wait_for(lambda: "no answer:" in w.stderr(), what="the refusal logged")
        eq(w.stop(), 0, "exit status")
        eq(es.docs(), [], "nothing delivered without a certificate")
        env.update(TRACKPIXEL_ES_CERT_FILE=c.client_cert, TRACKPIXEL_ES_KEY_FILE=c.client_key)
        rc, out = check(env)
        eq(rc, 0, "--check: " + out)
        assert "; client certificate %s\n" % c.client_cert in out, out
        with tplib.Worker(env) as w:
            ids += pixels(w, 2)
            delivered_once(es, ids)
            eq(w.stop(), 0, "exit status")
    finally:
        es.stop()


# ------------------------------------------------------------------- auth

def test_api_key_accepted_and_refused(c):
    """TRACKPIXEL_ES_API_KEY_FILE: accepted; a wrong key is a 401 in the log
    (never the key), and the hits wait for the right one."""
    key_file = os.path.join(c.dir, "api-key")
    with open(key_file, "w") as f:
        f.write("d3Jvbmc6a2V5\n")
    os.chmod(key_file, 0o600)
    spool = os.path.join(c.dir, "spool-api-key")
    with Standin(api_key=API_KEY) as es:
        env = env_for(es, TRACKPIXEL_ES_API_KEY_FILE=key_file, TRACKPIXEL_SPOOL_DIR=spool)
        w = tplib.Worker(env).start()
        ids = pixels(w, 3)
        wait_for(lambda: "HTTP 401: security_exception: unable to authenticate with provided "
                 "credentials" in w.stderr(), what="the 401 logged")
        eq(w.stop(), 0, "exit status")
        eq(es.docs(), [], "nothing delivered with a wrong key")
        with open(key_file, "w") as f:
            f.write(API_KEY + "\n")
        rc, out = check(env)
        eq(rc, 0, "--check: " + out)
        assert "auth: API key (TRACKPIXEL_ES_API_KEY)\n" in out, out
        assert "TRACKPIXEL_ES_API_KEY=(set, hidden)\n" in out, out
        with tplib.Worker(env) as w:
            ids += pixels(w, 2)
            delivered_once(es, ids)
            eq(w.stop(), 0, "exit status")
            no_secrets(w.stderr(), "the worker's log")
        eq({r["signed"] for r in es.requests()}, {False}, "not signed")


def test_basic_auth_accepted_and_refused(c):
    """TRACKPIXEL_ES_USER + TRACKPIXEL_ES_PASSWORD: a wrong password is a
    401 naming the user, never the password; the right one delivers all."""
    spool = os.path.join(c.dir, "spool-basic")
    with Standin(basic_user="elastic", basic_password=PASSWORD) as es:
        env = env_for(es, TRACKPIXEL_ES_USER="elastic", TRACKPIXEL_ES_PASSWORD="wrong-pw-123",
                      TRACKPIXEL_SPOOL_DIR=spool)
        w = tplib.Worker(env).start()
        ids = pixels(w, 2)
        wait_for(lambda: "HTTP 401: security_exception: unable to authenticate user [elastic]"
                 in w.stderr(), what="the 401 logged")
        eq(w.stop(), 0, "exit status")
        assert "wrong-pw-123" not in w.stderr(), "the password in the log"
        env["TRACKPIXEL_ES_PASSWORD"] = PASSWORD
        rc, out = check(env)
        eq(rc, 0, "--check: " + out)
        assert "auth: basic (TRACKPIXEL_ES_USER)\n" in out, out
        with tplib.Worker(env) as w:
            ids += pixels(w, 2)
            delivered_once(es, ids)
            eq(w.stop(), 0, "exit status")
            no_secrets(w.stderr(), "the worker's log")
        eq({r["basic_ok"] for r in es.requests()[-2:]}, {True}, "accepted")


def test_two_auths_refused(c):
    """An API key and AWS keys: a start error naming both."""
    with Standin() as es:
        env = env_for(es, TRACKPIXEL_ES_API_KEY=API_KEY, **AWS_KEYS)
        rc, out = check(env)
        eq((rc, out), (1, "configuration: error: more than one authentication is set "
                          "( AWS_ACCESS_KEY_ID TRACKPIXEL_ES_API_KEY): keep one\n"), "--check")


# ------------------------------------------------------------ aoss, _bulk

def test_aoss_ids_auto(c):
    """OpenSearch Serverless time-series collection: TRACKPIXEL_ES_IDS=auto
    creates documents without ids, by the loop's post and in _bulk; the
    request-id field still names each hit; --check works without GET /."""
    es = tplib.signed_standin(service="aoss", aoss_time_series=True)
    try:
        env = env_for(es, TRACKPIXEL_AWS_SERVICE="aoss", TRACKPIXEL_ES_IDS="auto", **AWS_KEYS)
        rc, out = check(env)
        eq(rc, 0, "--check: " + out)
        assert "answered HTTP 404 to GET /events (OpenSearch Serverless: no cluster name or " \
               "version; the index does not exist yet)\n" in out, out
        # GET /events, then the template's check (--setup's); never GET /.
        paths = [r["path"] for r in es.requests()]
        eq(paths[0], "/events", "the first request")
        assert "/" not in paths, paths
        es.reset()
        with tplib.Worker(env) as w:
            ids = pixels(w, 2)
            wait_for(lambda: len(es.docs()) == 2, what="2 documents")
            es.mode(status=503, count=1)         # the next post fails: _bulk delivers it
            ids += pixels(w, 2)
            docs = wait_for(lambda: len(es.docs()) == 4 and es.docs(), what="4 documents")
            eq(w.stop(), 0, "exit status")
        eq(sorted(d["source"]["context"]["request-id"] for d in docs), sorted(ids),
           "request-id fields, each once")
        assert not set(d["id"] for d in docs) & set(ids), "ids chosen by the cluster"
        reqs = es.requests()
        bulks = [r for r in reqs if r["path"] == "/_bulk" and r["status"] == 200]
        assert bulks, [(r["method"], r["path"], r["status"]) for r in reqs]
        assert all('"_id"' not in r["body"] for r in bulks), bulks[0]["body"][:300]
        eq({r["sig_ok"] for r in reqs if r["status"] != 503}, {True}, "signatures")
        eq({r["path"] for r in reqs if r["method"] == "POST" and r["path"] != "/_bulk"},
           {"/events/_doc"}, "the loop's posts")
    finally:
        es.stop()


def test_bulk_answer_without_filter_path(c):
    """A cluster that ignores filter_path (Amazon OpenSearch Service on
    signed POSTs): the full _bulk answers are read, every hit delivered once."""
    es = tplib.signed_standin()
    try:
        es.mode(ignore_filter_path=True, delay_ms=5)
        env = env_for(es, TRACKPIXEL_SLOW_MS="1", **AWS_KEYS)
        with tplib.Worker(env) as w:
            ids = pixels(w, 12)
            delivered_once(es, ids)
            eq(w.stop(), 0, "exit status")
            assert "not a _bulk answer" not in w.stderr(), w.stderr()
        bulks = [r for r in es.requests() if r["path"] == "/_bulk"]
        assert bulks, "no _bulk request"
        assert all("filter_path=" in r["query"] for r in bulks), bulks[0]["query"]
    finally:
        es.stop()


# ---------------------------------------------------- the configuration file

def write_conf(c, name, text, mode):
    path = os.path.join(c.dir, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def test_file_writable_by_others_refused(c):
    path = write_conf(c, "group-writable.conf", "TRACKPIXEL_STAGE=x\n", 0o664)
    env = {"PATH": "/usr/bin:/bin", "TRACKPIXEL_CONFIG": path}
    want = ("TRACKPIXEL_CONFIG: %s is writable by its group or others (mode 0664): refused "
            "(chmod go-w %s)" % (path, path))
    rc, out = check(env)
    eq((rc, out), (1, "configuration: error: %s\n" % want), "--check")
    w = tplib.Worker(env).start()
    eq(w.proc.wait(10), 1, "the worker's exit status")
    w.proc = None
    assert want in w.stderr(), w.stderr()


def test_file_secret_readable_by_everyone_warned(c):
    path = write_conf(c, "readable.conf", "TRACKPIXEL_ES_API_KEY=%s\n" % API_KEY, 0o644)
    env = {"PATH": "/usr/bin:/bin", "TRACKPIXEL_CONFIG": path}
    want = ("warning: TRACKPIXEL_CONFIG: %s holds secrets and is readable by everyone "
            "(mode 0644): chmod o-r %s" % (path, path))
    rc, out = check(env)
    eq(rc, 0, "--check: " + out)
    assert want + "\n" in out, out
    with tplib.Worker(env) as w:
        wait_for(lambda: want in w.stderr(), what="the warning at start")
        eq(w.stop(), 0, "exit status")
        no_secrets(w.stderr(), "the worker's log")
    os.chmod(path, 0o640)
    rc, out = check(env)
    assert "warning:" not in out, out


def test_file_under_the_environment(c):
    """Everything from the file (the cluster, AWS keys and a long session
    token), but what the environment sets wins."""
    es = tplib.signed_standin()
    try:
        text = "# trackpixel\n\nTRACKPIXEL_ES_URL=%s\nTRACKPIXEL_ES_INDEX=from-file\n" \
               "TRACKPIXEL_STAGE = 'file stage'\nTRACKPIXEL_SLOW_MS=60000\n" % es.url
        text += "".join("%s=%s\n" % kv for kv in AWS_KEYS.items())
        path = write_conf(c, "full.conf", text, 0o600)
        env = {"PATH": "/usr/bin:/bin", "TRACKPIXEL_CONFIG": path,
               "TRACKPIXEL_ES_INDEX": "from-env"}
        rc, out = check(env)
        eq(rc, 0, "--check: " + out)
        assert "configuration file: %s\n" % path in out, out
        assert "  TRACKPIXEL_ES_INDEX=from-env\n" in out, out
        with tplib.Worker(env) as w:
            ids = pixels(w, 1)
            docs = wait_for(lambda: es.docs(), what="the document")
            eq(w.stop(), 0, "exit status")
        eq([(d["index"], d["id"], d["source"]["context"]["stage"]) for d in docs],
           [("from-env", ids[0], "file stage")], "index from the environment, stage from the file")
        eq(es.requests()[-1]["sig_ok"], True, "signed with the file's keys")
    finally:
        es.stop()


def test_file_errors_name_the_line(c):
    path = write_conf(c, "typo.conf", "TRACKPIXEL_STAGE=x\nTRACKPIXEL_ES_INDX=y\n", 0o600)
    rc, out = check({"PATH": "/usr/bin:/bin", "TRACKPIXEL_CONFIG": path})
    eq((rc, out), (1, "configuration: error: TRACKPIXEL_CONFIG: %s: line 2: unknown variable "
                      "TRACKPIXEL_ES_INDX (see trackpixel --help)\n" % path), "--check")


def test_example_file_names_every_variable(c):
    """trackpixel.conf.example: each variable of --help as a commented
    NAME= line; as shipped (all commented) it loads, and each line
    uncommented alone is a valid setting for the parser."""
    out = subprocess.run([tplib.TRACKPIXEL, "--help"], capture_output=True, text=True).stdout
    names = re.findall(r"^  ((?:TRACKPIXEL|AWS)_[A-Z_<>a-z]+)\s", out, re.M)
    assert len(names) >= 20, names
    with open(os.path.join(tplib.SRCDIR, "trackpixel.conf.example")) as f:
        text = f.read()
    settings = [m.group(1) for m in re.finditer(r"^#([A-Z][A-Z0-9_]*(?:_VAR_[a-z]+)?=.*)$",
                                                text, re.M)]
    given = {s.split("=")[0] for s in settings}
    missing = [n for n in names if n.replace("<name>", "site") not in given and
               n != "TRACKPIXEL_CONFIG"]
    eq(missing, [], "variables of --help missing from trackpixel.conf.example")
    assert "TRACKPIXEL_CONFIG" in text
    path = write_conf(c, "example.conf", text, 0o600)
    rc, out = check({"PATH": "/usr/bin:/bin", "TRACKPIXEL_CONFIG": path})
    eq(rc, 0, "--check with the example: " + out)
    for s in settings:
        path = write_conf(c, "one.conf", s + "\n", 0o600)
        rc, out = check({"PATH": "/usr/bin:/bin", "TRACKPIXEL_CONFIG": path})
        assert "TRACKPIXEL_CONFIG:" not in out, (s, out)


if __name__ == "__main__":
    tplib.run_groups([(None, tplib.collect(globals()), setup, teardown)])
