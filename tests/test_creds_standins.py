"""The credential stand-ins are faithful: botocore's own credential resolver
(botocore.session and botocore.credentials) obtains credentials from each of
them, and the Elasticsearch stand-in accepts exactly the valid issued ones."""
import contextlib
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import eq  # noqa: E402
import aws_standins as aws  # noqa: E402
from es_standin import Standin  # noqa: E402

import botocore.credentials  # noqa: E402
import botocore.session  # noqa: E402


@contextlib.contextmanager
def environment(**env):
    """os.environ with no AWS_ variable but env, HOME in an empty directory."""
    saved = dict(os.environ)
    try:
        for k in list(os.environ):
            if k.startswith("AWS_"):
                del os.environ[k]
        os.environ["HOME"] = tempfile.mkdtemp(prefix="tp-home-")
        os.environ.update(env)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def resolved(**env):
    """What botocore's default chain resolves in env: (method, frozen creds)."""
    with environment(**env):
        creds = botocore.session.Session().get_credentials()
        assert creds is not None, "botocore found no credentials"
        return creds.method, creds.get_frozen_credentials()


def sts_creator(sts):
    """A client creator for botocore's STS-based providers, at the stand-in
    (this botocore predates AWS_ENDPOINT_URL_STS)."""
    session = botocore.session.Session()

    def create(service, **kw):
        kw["endpoint_url"] = sts.url
        kw.setdefault("region_name", "us-east-1")
        return session.create_client(service, **kw)
    return create


def test_imds_botocore_session():
    issuer = aws.Issuer()
    with aws.Imds(issuer) as imds:
        method, c = resolved(AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url + "/",
                             AWS_EC2_METADATA_V1_DISABLED="true")
        eq(method, "iam-role", "provider")
        eq((c.access_key, c.secret_key, c.token),
           (issuer.issued[-1]["AccessKeyId"], issuer.issued[-1]["SecretAccessKey"],
            issuer.issued[-1]["Token"]), "credentials")
        eq(imds.count("PUT", "/latest/api/token"), 1, "token requests")


def test_imds_refuses_v1():
    issuer = aws.Issuer()
    with aws.Imds(issuer) as imds:
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", imds.port, timeout=5)
        conn.request("GET", "/latest/meta-data/iam/security-credentials/")
        eq(conn.getresponse().status, 401, "GET without a token")
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", imds.port, timeout=5)
        conn.request("PUT", "/latest/api/token")
        eq(conn.getresponse().status, 400, "PUT without a TTL")
        conn.close()


def test_imds_v1_fallback_botocore_session():
    """An IMDS that refuses the token PUT (403) but answers v1: botocore falls
    back to v1.  (This botocore predates AWS_EC2_METADATA_V1_DISABLED; test_creds
    checks that trackpixel then refuses.)"""
    issuer = aws.Issuer()
    with aws.Imds(issuer, allow_v1=True, token_status=403) as imds:
        method, c = resolved(AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url)
        eq(method, "iam-role", "provider")
        eq(c.access_key, issuer.issued[-1]["AccessKeyId"], "access key")
        eq(imds.count("PUT", "/latest/api/token"), 1, "token requests")


def test_container_botocore_session():
    issuer = aws.Issuer()
    with aws.Container(issuer, token="Bearer pod-identity-token") as cont:
        # This botocore reads the token from AWS_CONTAINER_AUTHORIZATION_TOKEN
        # (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE came later).
        method, c = resolved(AWS_CONTAINER_CREDENTIALS_FULL_URI=cont.url + cont.PATH,
                             AWS_CONTAINER_AUTHORIZATION_TOKEN="Bearer pod-identity-token")
        eq(method, "container-role", "provider")
        eq(c.access_key, issuer.issued[-1]["AccessKeyId"], "access key")
        eq(c.token, issuer.issued[-1]["Token"], "token")


def test_web_identity_botocore_provider():
    issuer = aws.Issuer()
    with aws.Sts(issuer, web_token="eyJhbGciOi.web.identity") as sts:
        d = tempfile.mkdtemp()
        tok = os.path.join(d, "token")
        with open(tok, "w") as f:
            f.write("eyJhbGciOi.web.identity")
        with environment(AWS_WEB_IDENTITY_TOKEN_FILE=tok,
                         AWS_ROLE_ARN="arn:aws:iam::123456789012:role/trackpixel",
                         AWS_ROLE_SESSION_NAME="tp-test"):
            prov = botocore.credentials.AssumeRoleWithWebIdentityProvider(
                load_config=lambda: {"profiles": {}}, client_creator=sts_creator(sts),
                profile_name="default", cache={})
            creds = prov.load()
            c = creds.get_frozen_credentials()
        eq(creds.method, "assume-role-with-web-identity", "provider")
        eq((c.access_key, c.secret_key, c.token),
           (issuer.issued[-1]["AccessKeyId"], issuer.issued[-1]["SecretAccessKey"],
            issuer.issued[-1]["Token"]), "credentials")


def test_assume_role_botocore_provider():
    issuer = aws.Issuer()
    src = ("AKIDSOURCEEXAMPLE", "source-secret-key-example-0123456789abcd")
    with aws.Sts(issuer, source_keys={src[0]: (src[1], None)}) as sts:
        profiles = {"profiles": {
            "app": {"role_arn": "arn:aws:iam::123456789012:role/trackpixel",
                    "source_profile": "base"},
            "base": {"aws_access_key_id": src[0], "aws_secret_access_key": src[1]}}}
        with environment():
            prov = botocore.credentials.AssumeRoleProvider(
                load_config=lambda: profiles, client_creator=sts_creator(sts), cache={},
                profile_name="app")
            creds = prov.load()
            c = creds.get_frozen_credentials()
        eq(creds.method, "assume-role", "provider")
        eq(c.access_key, issuer.issued[-1]["AccessKeyId"], "access key")
        eq(sts.sig_errors, [], "signature errors")
        # A wrong source secret: STS refuses with SignatureDoesNotMatch.
        profiles["profiles"]["base"]["aws_secret_access_key"] = "wrong" * 8
        with environment():
            prov = botocore.credentials.AssumeRoleProvider(
                load_config=lambda: profiles, client_creator=sts_creator(sts), cache={},
                profile_name="app")
            try:
                prov.load().get_frozen_credentials()
                raise AssertionError("a wrong signature was accepted")
            except botocore.exceptions.ClientError as e:
                eq(e.response["Error"]["Code"], "SignatureDoesNotMatch", "error code")


def test_credential_process_botocore_session():
    issuer = aws.Issuer()
    with aws.Container(issuer) as cont:
        d = tempfile.mkdtemp()
        script = os.path.join(d, "creds.sh")
        aws.process_script(script, cont.url)
        cfg = os.path.join(d, "config")
        with open(cfg, "w") as f:
            f.write("[profile proc]\ncredential_process = %s\n" % script)
        method, c = resolved(AWS_CONFIG_FILE=cfg, AWS_PROFILE="proc",
                             AWS_SHARED_CREDENTIALS_FILE=os.path.join(d, "none"))
        eq(method, "custom-process", "provider")
        eq(c.access_key, issuer.issued[-1]["AccessKeyId"], "access key")


def test_es_accepts_only_valid_issued():
    with Standin(issued=True, max_skew=300).start() as es:
        issuer = aws.Issuer(es, lifetime=2)
        c = issuer.mint()
        sign = dict(access_key=c["AccessKeyId"], secret_key=c["SecretAccessKey"],
                    session_token=c["Token"])
        eq(es.request("GET", "/", sign=sign).status, 200, "valid issued credentials")
        r = es.request("GET", "/", sign=dict(sign, access_key="ASIANOTISSUED0000000"))
        eq((r.status, r.body), (403, b'{"message":"The security token included in the '
                                     b'request is invalid."}'), "unknown key")
        r = es.request("GET", "/", sign=dict(sign, amz_date=time.strftime(
            "%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 600))))
        eq(r.status, 403, "old signature")
        assert r.body.startswith(b'{"message":"Signature expired: '), r.body
        assert r.body.endswith(b' - 5 min.)"}'), r.body
        time.sleep(2.2)
        r = es.request("GET", "/", sign=sign)
        eq((r.status, r.body), (403, b'{"message":"The security token included in the '
                                     b'request is expired"}'), "expired")


if __name__ == "__main__":
    tplib.run_tests(globals())
