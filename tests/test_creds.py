"""AWS credentials from the default chain, end to end: the real worker (a
FastCGI process driven by cgi-fcgi, as under lighttpd) signs with credentials
from loopback stand-ins of IMDSv2, the container endpoint, STS and a
credential_process; the Elasticsearch stand-in accepts only the currently
valid issued ones.  Credentials live seconds here, so refreshes happen within
the test (the refresh comes half-way through a lifetime shorter than 10
minutes).  Every scenario counts exactly: N pixels, N documents, no
duplicate, nothing dead-lettered, no secret in the log."""
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import eq, cgi_fcgi, pixel_env, wait_for  # noqa: E402
import aws_standins as aws  # noqa: E402
from es_standin import Standin  # noqa: E402

ROLE_ARN = "arn:aws:iam::123456789012:role/trackpixel"
WEB_TOKEN = "eyJhbGciOiJSUzI1NiJ9.web-identity-token.signature"


class Run:
    """One scenario: the cluster, an issuer, a work directory, a worker."""

    def __init__(self, lifetime, token_bytes=600, es_lifetime=None, region="us-east-1"):
        self.es = Standin(issued=True, max_skew=300, region=region).start()
        self.issuer = aws.Issuer(self.es, lifetime=lifetime, token_bytes=token_bytes,
                                 es_lifetime=es_lifetime)
        self.dir = tempfile.mkdtemp(prefix="tp-creds-")
        self.apps = []
        self.worker = None
        self.ids = []

    def env(self, **extra):
        env = {"PATH": "/usr/bin:/bin", "HOME": self.dir, "TRACKPIXEL_ES_URL": self.es.url,
               "TRACKPIXEL_AWS_SERVICE": "es", "AWS_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true"}
        env.update(extra)
        return {k: v for k, v in env.items() if v is not None}

    def start(self, program=None, **extra):
        self.worker = tplib.Worker(self.env(**extra), program=program).start()
        return self

    def hit(self):
        status, headers, body = cgi_fcgi(self.worker.port, pixel_env(QUERY_STRING="n=%d"
                                                                      % len(self.ids)))
        eq(status, 200, "pixel status")
        eq(len(body), 60, "pixel size")
        self.ids.append(headers["X-Request-Id"])

    def hits_for(self, seconds, every=0.2):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.hit()
            time.sleep(every)

    def delivered(self, timeout=30):
        """All hits are documents, each once; nothing dead-lettered."""
        want = sorted(self.ids)
        wait_for(lambda: len(self.es.docs()) >= len(want), timeout=timeout,
                 what="%d documents" % len(want))
        time.sleep(0.5)
        got = sorted(d["id"] for d in self.es.docs())
        eq(len(got), len(want), "documents")
        eq(len(set(got)), len(got), "distinct documents")
        eq(got, want, "the hits' documents")
        dead = [f for f in os.listdir(self.worker.spool) if f.startswith("dead")]
        eq(dead, [], "dead letters")

    def log(self):
        return self.worker.stderr()

    def no_secrets(self):
        text = self.log()
        for s in self.issuer.secrets():
            if s in text:
                raise AssertionError("a secret appeared in the worker's log")

    def close(self):
        try:
            if self.worker is not None and self.worker.proc is not None:
                self.worker.stop()
        finally:
            for a in self.apps:
                a.stop()
            self.es.stop()


def scenario(fn):
    """Runs fn(run) and always cleans up."""
    def wrapped():
        runs = []

        def make(*a, **kw):
            r = Run(*a, **kw)
            runs.append(r)
            return r
        try:
            fn(make)
        finally:
            for r in runs:
                r.close()
    wrapped.__name__ = fn.__name__
    return wrapped


def refreshed_for(run, seconds, max_fetches):
    """Hits for seconds with short-lived credentials: all delivered, and the
    credentials fetched far less often than hits were made."""
    run.hits_for(seconds)
    run.delivered()
    fetches = len(run.issuer.issued)
    assert 2 <= fetches <= max_fetches, "%d credential fetches for %d hits" % (
        fetches, len(run.ids))
    assert fetches * 10 <= len(run.ids), (fetches, len(run.ids))
    run.no_secrets()


@scenario
def test_imds_refreshed(make):
    r = make(lifetime=12)
    imds = aws.Imds(r.issuer)
    r.apps.append(imds)
    r.start(AWS_EC2_METADATA_DISABLED=None, AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url,
            AWS_EC2_METADATA_V1_DISABLED="true")
    refreshed_for(r, 15, 5)
    assert "AWS credentials from iam-role, valid until " in r.log(), r.log()
    # One token per fetch, never a GET without one.
    eq(imds.count("PUT", "/latest/api/token"), len(r.issuer.issued), "tokens")


@scenario
def test_container_refreshed_token_file_reread(make):
    r = make(lifetime=12)
    cont = aws.Container(r.issuer, token="Bearer first")
    r.apps.append(cont)
    tok = os.path.join(r.dir, "token")
    with open(tok, "w") as f:
        f.write("Bearer first\n")
    r.start(AWS_CONTAINER_CREDENTIALS_FULL_URI=cont.url + cont.PATH,
            AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=tok)
    r.hits_for(5)
    # The token rotates: the next fetch must read the file again.
    cont.token = "Bearer second"
    with open(tok, "w") as f:
        f.write("Bearer second\n")
    refreshed_for(r, 10, 5)


@scenario
def test_web_identity_refreshed(make):
    r = make(lifetime=12)
    sts = aws.Sts(r.issuer, web_token=WEB_TOKEN)
    r.apps.append(sts)
    tok = os.path.join(r.dir, "web-token")
    with open(tok, "w") as f:
        f.write(WEB_TOKEN)
    r.start(AWS_WEB_IDENTITY_TOKEN_FILE=tok, AWS_ROLE_ARN=ROLE_ARN,
            AWS_ENDPOINT_URL_STS=sts.url)
    refreshed_for(r, 15, 5)
    assert "AWS credentials from web-identity" in r.log(), r.log()


@scenario
def test_assume_role_refreshed(make):
    r = make(lifetime=12)
    src = ("AKIDSOURCEEXAMPLE1", "source-secret-key-example-0123456789abcd")
    sts = aws.Sts(r.issuer, source_keys={src[0]: (src[1], None)})
    r.apps.append(sts)
    with open(os.path.join(r.dir, "credentials"), "w") as f:
        f.write("[base]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % src)
    with open(os.path.join(r.dir, "config"), "w") as f:
        f.write("[profile app]\nrole_arn = %s\nsource_profile = base\n" % ROLE_ARN)
    r.start(AWS_PROFILE="app", AWS_SHARED_CREDENTIALS_FILE=os.path.join(r.dir, "credentials"),
            AWS_CONFIG_FILE=os.path.join(r.dir, "config"), AWS_ENDPOINT_URL_STS=sts.url)
    refreshed_for(r, 15, 5)
    eq(sts.sig_errors, [], "AssumeRole signature errors")
    assert src[1] not in r.log()


@scenario
def test_credential_process_refreshed(make):
    r = make(lifetime=12)
    cont = aws.Container(r.issuer)
    r.apps.append(cont)
    script = os.path.join(r.dir, "creds.sh")
    aws.process_script(script, cont.url)
    with open(os.path.join(r.dir, "config"), "w") as f:
        f.write("[default]\ncredential_process = %s\n" % script)
    r.start(AWS_CONFIG_FILE=os.path.join(r.dir, "config"))
    refreshed_for(r, 15, 5)
    assert "AWS credentials from custom-process" in r.log(), r.log()


@scenario
def test_long_session_token_in_a_credentials_file(make):
    """Only a credentials file, with a session token of about 1,000 characters
    (what mod_fcgid could never pass through FcgidInitialEnv)."""
    r = make(lifetime=3600, token_bytes=750)
    c = r.issuer.mint()
    assert len(c["Token"]) >= 1000
    os.mkdir(os.path.join(r.dir, ".aws"))
    with open(os.path.join(r.dir, ".aws", "credentials"), "w") as f:
        f.write("[default]\naws_access_key_id=%s\naws_secret_access_key=%s\n"
                "aws_session_token=%s\n" % (c["AccessKeyId"], c["SecretAccessKey"], c["Token"]))
    with open(os.path.join(r.dir, ".aws", "config"), "w") as f:
        f.write("[default]\nregion = us-east-1\n")
    # ~/.aws only: signing because the profile has keys, the profile's region.
    r.start(TRACKPIXEL_AWS_SERVICE=None, AWS_REGION=None)
    for _ in range(20):
        r.hit()
    r.delivered()
    r.no_secrets()


@scenario
def test_cluster_refuses_before_expiration(make):
    """The cluster calls the credentials expired long before their announced
    Expiration: the 403 makes the thread fetch new ones; the documents are
    tried again, never dead-lettered."""
    r = make(lifetime=3600, es_lifetime=5)
    cont = aws.Container(r.issuer)
    r.apps.append(cont)
    r.start(AWS_CONTAINER_CREDENTIALS_FULL_URI=cont.url + cont.PATH)
    r.hits_for(14, every=0.25)
    r.delivered()
    fetches = len(r.issuer.issued)
    assert 2 <= fetches <= 6, fetches
    refused = [q for q in r.es.requests() if q["status"] == 403]
    assert refused, "no request was refused"
    eq({q["sig_error"] for q in refused}, {"credentials expired"}, "refusals")
    r.no_secrets()


@scenario
def test_check_names_provider_expiry_region(make):
    r = make(lifetime=3600, region="eu-west-3")
    imds = aws.Imds(r.issuer, region="eu-west-3")
    r.apps.append(imds)
    env = r.env(AWS_EC2_METADATA_DISABLED=None, AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url,
                AWS_REGION=None)
    p = subprocess.run([tplib.TRACKPIXEL, "--check"], env=env, capture_output=True, text=True,
                       timeout=30)
    exp = r.issuer.issued[-1]["Expiration"]
    line = [l for l in p.stdout.splitlines() if l.startswith("credentials: ")]
    eq(line, ["credentials: from iam-role, expire %s; region eu-west-3 (from instance "
              "metadata)" % exp], "credentials line")
    assert "answered HTTP 200" in p.stdout, p.stdout
    eq(p.returncode, 0, "exit status")
    for s in r.issuer.secrets():
        assert s not in p.stdout + p.stderr


def check_output(r, **env):
    p = subprocess.run([tplib.TRACKPIXEL, "--check"], env=r.env(**env), capture_output=True,
                       text=True, timeout=60)
    for s in r.issuer.secrets():
        assert s not in p.stdout + p.stderr
    return p.returncode, [l for l in p.stdout.splitlines() if l.startswith("credentials: ")]


@scenario
def test_check_imds_v1_fallback_as_botocore(make):
    r = make(lifetime=3600)
    imds = aws.Imds(r.issuer, allow_v1=True, token_status=403)
    r.apps.append(imds)
    rc, line = check_output(r, AWS_EC2_METADATA_DISABLED=None,
                            AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url)
    eq((rc, line), (0, ["credentials: from iam-role, expire %s; region us-east-1 (from "
                        "AWS_REGION)" % r.issuer.issued[-1]["Expiration"]]), "v1 fallback")
    rc, line = check_output(r, AWS_EC2_METADATA_DISABLED=None,
                            AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url,
                            AWS_EC2_METADATA_V1_DISABLED="true")
    eq((rc, line), (1, ["credentials: error: iam-role: no IMDSv2 token (HTTP 403) and "
                        "AWS_EC2_METADATA_V1_DISABLED=true"]), "v1 disabled")
    # A 400 to the token request is not a reason to fall back.
    imds.token_status = 400
    rc, line = check_output(r, AWS_EC2_METADATA_DISABLED=None,
                            AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url)
    eq((rc, line), (1, ["credentials: error: iam-role: instance metadata refused the token "
                        "request (HTTP 400)"]), "400")


@scenario
def test_check_container_hosts(make):
    r = make(lifetime=3600)
    rc, line = check_output(r, AWS_CONTAINER_CREDENTIALS_FULL_URI="http://192.0.2.1/creds")
    eq((rc, line), (1, ["credentials: error: container-role: AWS_CONTAINER_CREDENTIALS_FULL_URI "
                        "must be https, or http to loopback, 169.254.170.2, 169.254.170.23 or "
                        "fd00:ec2::23"]), "a host not allowed")
    rc, line = check_output(r, AWS_CONTAINER_CREDENTIALS_FULL_URI="http://127.0.0.1:%d/creds"
                            % tplib.free_port())
    assert rc == 1 and line[0].startswith("credentials: error: container-role: http://127.0.0.1:"),\
        line


@scenario
def test_stop_while_process_hangs(make):
    """SIGTERM while a credential_process hangs: the worker exits within its
    shutdown time, the hits stay in the journal for the next worker."""
    r = make(lifetime=3600)
    script = os.path.join(r.dir, "creds.sh")
    aws.process_script(script, "http://127.0.0.1:1", mode="hang")
    with open(os.path.join(r.dir, "config"), "w") as f:
        f.write("[default]\ncredential_process = %s\n" % script)
    r.start(AWS_CONFIG_FILE=os.path.join(r.dir, "config"))
    for _ in range(3):
        r.hit()
    time.sleep(1)
    t0 = time.monotonic()
    eq(r.worker.stop(), 0, "exit status")
    assert time.monotonic() - t0 < 4, time.monotonic() - t0
    cont = aws.Container(r.issuer)
    r.apps.append(cont)
    aws.process_script(script, cont.url)
    r.start(AWS_CONFIG_FILE=os.path.join(r.dir, "config"),
            TRACKPIXEL_SPOOL_DIR=r.worker.spool)
    r.delivered()


@scenario
def test_imds_down_while_valid(make):
    """IMDS answers 503 while the credentials are still valid: nothing waits."""
    r = make(lifetime=24)
    imds = aws.Imds(r.issuer)
    r.apps.append(imds)
    r.start(AWS_EC2_METADATA_DISABLED=None, AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url)
    r.hit()
    r.delivered()
    imds.fault(status=503, body="Service Unavailable")
    t_end = time.monotonic() + 10
    while time.monotonic() < t_end:
        r.hit()
        n = len(r.ids)
        t0 = time.monotonic()
        wait_for(lambda: len(r.es.docs()) >= n, timeout=3, what="a document within 3 s")
        assert time.monotonic() - t0 < 3
        time.sleep(0.3)
    imds.fault()
    r.delivered()
    r.no_secrets()


@scenario
def test_expired_and_provider_down_then_back(make):
    """The credentials expire while the provider is down: hits wait in the
    journal, pixels are served, and all are delivered once it is back."""
    r = make(lifetime=8)
    cont = aws.Container(r.issuer)
    r.apps.append(cont)
    r.start(AWS_CONTAINER_CREDENTIALS_FULL_URI=cont.url + cont.PATH)
    r.hit()
    r.delivered()
    cont.fault(status=500, body='{"message":"internal"}', content_type="application/json")
    r.hits_for(12, every=0.3)        # the credentials expire meanwhile
    assert len(r.es.docs()) < len(r.ids), "hits after expiry were not held back"
    assert "AWS credentials unavailable (container-role: " in r.log(), r.log()
    cont.fault()
    r.delivered(timeout=30)
    r.no_secrets()


@scenario
def test_clock_ten_minutes_off(make):
    """The worker's clock is 10 minutes ahead (a test-build offset): the
    first answer is "Signature not yet current"; the offset comes from the
    answer's Date header and everything is delivered, logged once."""
    if not os.path.exists(tplib.TRACKPIXEL_HOOKS):
        raise tplib.Skip("no test build (tests/trackpixel-hooks)")
    r = make(lifetime=3600)
    c = r.issuer.mint()
    r.start(program=tplib.TRACKPIXEL_HOOKS, TRACKPIXEL_TEST_CLOCK_OFFSET_S="600",
            AWS_ACCESS_KEY_ID=c["AccessKeyId"], AWS_SECRET_ACCESS_KEY=c["SecretAccessKey"],
            AWS_SESSION_TOKEN=c["Token"])
    for _ in range(10):
        r.hit()
    r.delivered()
    wait_for(lambda: "clock: the cluster's Date" in r.log(), what="the clock line")
    for _ in range(5):
        r.hit()
    r.delivered()
    log = r.log()
    eq(log.count("clock: the cluster's Date differs from ours by "), 1, "clock lines")
    assert "differs from ours by -60" in log, log
    r.no_secrets()


def bad_input(make, setup, fix, expect):
    """A broken source: pixels served, a clear log line, nothing delivered
    and nothing lost; after fix(), all delivered."""
    r = make(lifetime=3600)
    env = setup(r)
    r.start(**env)
    for _ in range(5):
        r.hit()
    wait_for(lambda: expect in r.log(), timeout=20, what="the log line %r" % expect)
    eq(len(r.es.docs()), 0, "documents before the fix")
    fix(r)
    r.hit()
    r.delivered(timeout=30)
    r.no_secrets()
    return r


@scenario
def test_bad_credentials_file(make):
    def setup(r):
        with open(os.path.join(r.dir, "credentials"), "w") as f:
            f.write("[default]\naws_access_key_id AKID\n")
        return dict(AWS_SHARED_CREDENTIALS_FILE=os.path.join(r.dir, "credentials"))

    def fix(r):
        c = r.issuer.mint()
        with open(os.path.join(r.dir, "credentials"), "w") as f:
            f.write("[default]\naws_access_key_id=%s\naws_secret_access_key=%s\n"
                    "aws_session_token=%s\n" % (c["AccessKeyId"], c["SecretAccessKey"],
                                                c["Token"]))
    bad_input(make, setup, fix, "credentials line 2: not [section], name = value or a comment")


@scenario
def test_process_hangs_then_garbage(make):
    def setup(r):
        r.script = os.path.join(r.dir, "creds.sh")
        aws.process_script(r.script, "http://127.0.0.1:1", mode="hang")
        with open(os.path.join(r.dir, "config"), "w") as f:
            f.write("[default]\ncredential_process = %s\n" % r.script)
        return dict(AWS_CONFIG_FILE=os.path.join(r.dir, "config"))

    def fix(r):
        aws.process_script(r.script, "http://127.0.0.1:1", mode="garbage")
        wait_for(lambda: "custom-process: the output is not JSON" in r.log(), timeout=30,
                 what="the garbage line")
        cont = aws.Container(r.issuer)
        r.apps.append(cont)
        aws.process_script(r.script, cont.url)
    bad_input(make, setup, fix, "credential_process: no answer within 10 s (killed)")


@scenario
def test_imds_answers_html(make):
    def setup(r):
        r.imds = aws.Imds(r.issuer)
        r.apps.append(r.imds)
        r.imds.fault(status=200, content_type="text/html",
                     body="<html><body>Captive portal</body></html>")
        return dict(AWS_EC2_METADATA_DISABLED=None,
                    AWS_EC2_METADATA_SERVICE_ENDPOINT=r.imds.url)

    def fix(r):
        r.imds.fault()
    bad_input(make, setup, fix, "iam-role: the instance profile's role name is not one")


@scenario
def test_sts_error_then_missing_token_file(make):
    def setup(r):
        r.sts = aws.Sts(r.issuer, web_token=WEB_TOKEN)
        r.apps.append(r.sts)
        r.tok = os.path.join(r.dir, "web-token")
        with open(r.tok, "w") as f:
            f.write("not-the-token")
        return dict(AWS_WEB_IDENTITY_TOKEN_FILE=r.tok, AWS_ROLE_ARN=ROLE_ARN,
                    AWS_ENDPOINT_URL_STS=r.sts.url)

    def fix(r):
        os.unlink(r.tok)
        wait_for(lambda: "No such file or directory (AWS_WEB_IDENTITY_TOKEN_FILE)" in r.log(),
                 timeout=20, what="the missing file line")
        with open(r.tok, "w") as f:
            f.write(WEB_TOKEN)
    bad_input(make, setup, fix,
              "STS AssumeRoleWithWebIdentity: HTTP 400: InvalidIdentityToken: Couldn't")


if __name__ == "__main__":
    tplib.run_tests(globals())
