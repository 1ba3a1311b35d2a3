#!/usr/bin/python3
"""The Debian package, as an administrator meets it: built from a clean copy
of the checkout (git archive of HEAD: what is committed) with
dpkg-buildpackage, its Build-Depends checked with dpkg-checkbuilddeps,
lintian-clean (errors none, warnings none that are not overridden), installed
with `apt-get install ./trackpixel_*.deb` into THIS system, then served by a
private Apache and a private lighttpd (tests/webserver.py, on free loopback
ports; the system's services are never started) that include the installed
snippets from /etc/*/conf-available unchanged and run /usr/sbin/trackpixel
with the settings written into /etc/trackpixel/trackpixel.conf, once with the
embedded default (a file) and once posting to the Elasticsearch stand-in
(SigV4, keys in that file).  Then `apt-get purge` leaves nothing of the
package, and a second install whose spool holds an undelivered hit is purged
with the spool kept and said so.

It needs root, dpkg-buildpackage (debhelper), lintian, apt-get, Apache with
mod_fcgid and lighttpd, and a git checkout; without them it says SKIP.  It
also says SKIP when trackpixel is already installed, or /etc/trackpixel
exists: it does not take over what it did not install.  `dpkg -L trackpixel`
and lintian's output go into the log as TAP comments.
"""
import grp
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import eq, AWS_KEYS  # noqa: E402
import webserver  # noqa: E402
from webserver import Apache, Lighttpd, send, check_response, expected_document  # noqa: E402

SBIN = "/usr/sbin/trackpixel"
CONF = "/etc/trackpixel/trackpixel.conf"
SPOOL = "/var/spool/trackpixel"
APACHE_SNIPPET = "/etc/apache2/conf-available/trackpixel.conf"
LIGHTTPD_SNIPPET = "/etc/lighttpd/conf-available/50-trackpixel.conf"
LIGHTTPD_RUNDIR = "/run/lighttpd"          # the installed snippet's socket directory
EXAMPLES = "/usr/share/doc/trackpixel/examples"
TOOLS = ("git", "dpkg-buildpackage", "dpkg-checkbuilddeps", "dpkg-source", "dh", "lintian",
         "apt-get", "apache2", "lighttpd")
HEADERS = [("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) tp-deb"), ("Accept", "image/*")]


def comment(text):
    for line in text.rstrip("\n").splitlines():
        print("# " + line, flush=True)


def run(cmd, cwd=None, check=True, timeout=900, env=None):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, env=env)
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d:\n%s%s" % (" ".join(cmd), p.returncode,
                                                      p.stdout[-4000:], p.stderr[-4000:]))
    return p


def apt_env():
    return dict(clean_env(), DEBIAN_FRONTEND="noninteractive")


def clean_env():
    """An administrator's shell, not make check's (its MAKEFLAGS name a
    job server whose descriptors the build would not have)."""
    return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root", "LANG": "C"}


def installed():
    p = run(["dpkg-query", "-W", "-f=${db:Status-Status}", "trackpixel"], check=False)
    return p.returncode == 0 and p.stdout.strip() not in ("", "not-installed", "config-files")


def holds_hits(spool):
    """Any file of spool that may hold hits (a journal, dead letters, a
    damaged region): not ours to take over."""
    try:
        names = os.listdir(spool)
    except FileNotFoundError:
        return []
    return [n for n in names if n.startswith(("journal.", "deadletter", "damaged."))]


def missing_precondition():
    if os.geteuid() != 0:
        return "not root: the test installs the package into the system"
    for tool in TOOLS:
        if not shutil.which(tool):
            return "no %s (apt-get install debhelper devscripts lintian dpkg-dev fakeroot)" % tool
    if not os.path.exists(os.path.join(webserver.APACHE_MODULES, "mod_fcgid.so")):
        return "no mod_fcgid (libapache2-mod-fcgid)"
    if "yes" in (os.environ.get("TP_SANITIZERS"), os.environ.get("TP_TSAN")):
        return "a sanitizer build: the package is built from the checkout, not from this build"
    top = run(["git", "-C", tplib.SRCDIR, "rev-parse", "--show-toplevel"], check=False)
    if top.returncode != 0 or os.path.realpath(top.stdout.strip()) != os.path.realpath(tplib.SRCDIR):
        # make distcheck's tree is not one (even inside a checkout).
        return "%s is not a git checkout: the package is built from one" % tplib.SRCDIR
    if installed():
        return "trackpixel is installed on this machine: the test does not replace it"
    if os.path.exists("/etc/trackpixel"):
        return "/etc/trackpixel exists and is not the package's: the test does not take it over"
    if holds_hits(SPOOL):
        return "%s holds journals or dead letters that are not the test's" % SPOOL
    if run(["dpkg-statoverride", "--list", SPOOL], check=False).returncode == 0:
        return "a dpkg-statoverride for %s that is not the test's" % SPOOL
    return None


def version():
    with open(os.path.join(tplib.SRCDIR, "configure.ac")) as f:
        return re.search(r"AC_INIT\(\[trackpixel\], \[([^]]+)\]", f.read()).group(1)


# ------------------------------------------------------------------ setup

def setup():
    """Build once: the source package first (from the clean tree, for
    lintian), then the binary package."""
    c = tplib.Ctx()
    c.dir = tempfile.mkdtemp(prefix="tp-deb-")
    os.chmod(c.dir, 0o755)
    c.made_rundir = False
    c.override = False
    c.es = None
    c.start = time.monotonic()
    src = os.path.join(c.dir, "trackpixel")
    os.makedirs(src)
    archive = subprocess.Popen(["git", "-C", tplib.SRCDIR, "archive", "--format=tar", "HEAD"],
                               stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", src], stdin=archive.stdout, check=True)
    eq(archive.wait(), 0, "git archive HEAD")
    c.builddeps = run(["dpkg-checkbuilddeps"], cwd=src, check=False, env=clean_env())
    run(["dpkg-source", "--build", "trackpixel"], cwd=c.dir, env=clean_env())
    t = time.monotonic()
    p = run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, check=False, env=clean_env())
    c.build_seconds = time.monotonic() - t
    with open(os.path.join(c.dir, "build.log"), "w") as f:
        f.write(p.stdout + p.stderr)
    c.build_rc = p.returncode
    c.build_tail = (p.stdout + p.stderr)[-3000:]
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    c.version = version()
    c.deb = os.path.join(c.dir, "trackpixel_%s_%s.deb" % (c.version, arch))
    c.changes = os.path.join(c.dir, "trackpixel_%s_%s.changes" % (c.version, arch))
    c.dsc = os.path.join(c.dir, "trackpixel_%s.dsc" % c.version)
    c.src = src
    return c


def teardown(c):
    try:
        if c.es is not None:
            c.es.stop()
        if installed():
            run(["apt-get", "purge", "-y", "trackpixel"], env=apt_env(), check=False)
        # It held no hits when the test began (missing_precondition): what
        # it holds now is the test's.
        shutil.rmtree(SPOOL, ignore_errors=True)
        if c.override:
            run(["dpkg-statoverride", "--remove", SPOOL], check=False)
        if c.made_rundir:
            shutil.rmtree(LIGHTTPD_RUNDIR, ignore_errors=True)
    finally:
        shutil.rmtree(c.dir, ignore_errors=True)


# ----------------------------------------------------------------- helpers

def install(c, again=False):
    p = run(["apt-get", "install", "-y"] + (["--reinstall"] if again else []) + [c.deb],
            env=apt_env())
    return p.stdout + p.stderr


def purge():
    p = run(["apt-get", "purge", "-y", "trackpixel"], env=apt_env())
    return p.stdout + p.stderr


def mode_of(path):
    st = os.stat(path)
    return (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name,
            "%04o" % stat.S_IMODE(st.st_mode))


def expected_snippet(shipped):
    """The shipped file with the package's paths: what the package must
    install (the build makes it from the same file)."""
    with open(os.path.join(tplib.SRCDIR, shipped)) as f:
        return f.read().replace("/usr/local/sbin", "/usr/sbin")


def server(cls, snippet, settings, secrets=None):
    return cls(settings=settings, secrets=secrets,
               installed={"snippet": snippet, "binary": SBIN, "config": CONF, "spool": SPOOL})


def one_hit(srv, query):
    """GET /pixel?query: the whole response checked; (rid, before, after)."""
    conn = srv.connection()
    try:
        before = int(time.time() * 1000)
        result = send(conn, "GET", "/pixel?" + query, HEADERS)
        after = int(time.time() * 1000)
    finally:
        conn.close()
    return check_response(srv, result, "GET", 200), before, after


def expected(srv, rid, querystring):
    headers = dict(HEADERS, Host="127.0.0.1:%d" % srv.port)
    return expected_document(srv, "GET", rid, querystring, headers, user_agent=HEADERS[0][1])


def serve_file(srv):
    """The embedded default: the document in TRACKPIXEL_OUTPUT."""
    try:
        srv.start()
        rid, before, after = one_hit(srv, "campaign=deb-file")
        tplib.wait_for(lambda: srv.documents_in_output() or None, 20, "the document in the file")
        docs = srv.documents_in_output()
        eq([a for a, _ in docs], [{"create": {"_index": "events", "_id": rid}}], "actions")
        webserver.check_document(docs[0][1], expected(srv, rid, {"campaign": "deb-file"}),
                                 before, after)
    finally:
        stop(srv)


def serve_es(c, srv):
    """Posting to the stand-in, signed with the keys of the configuration file."""
    c.es.reset()
    try:
        srv.start()
        rid, before, after = one_hit(srv, "campaign=deb-es")
        tplib.wait_for(lambda: c.es.docs() or None, 20, "the document in the stand-in")
        time.sleep(0.2)
        docs = c.es.docs()
        eq([(d["index"], d["id"]) for d in docs], [("events", rid)], "documents")
        webserver.check_document(docs[0]["source"], expected(srv, rid, {"campaign": "deb-es"}),
                                 before, after)
        reqs = tplib.settled_requests(c.es)
        eq([r["sig_ok"] and r["token_ok"] for r in reqs], [True] * len(reqs),
           "every request signed with the file's keys")
        journals = [n for n in os.listdir(SPOOL) if n.startswith("journal.")]
        if not journals:
            raise AssertionError("no journal in %s: %r" % (SPOOL, os.listdir(SPOOL)))
        eq(mode_of(os.path.join(SPOOL, journals[0]))[:2], ("www-data", "www-data"),
           "a journal's owner")
    finally:
        stop(srv)


def stop(srv):
    try:
        if srv.started:
            left = srv.stop()
            eq(left, {}, "processes left after the stop")
    finally:
        srv.kill_leftovers()
        srv.cleanup()


def es_settings(c):
    return ({"TRACKPIXEL_ES_URL": c.es.url, "AWS_REGION": AWS_KEYS["AWS_REGION"]},
            {k: v for k, v in AWS_KEYS.items() if k != "AWS_REGION"})


def left_of_package(paths):
    """What of the package's files is still there: files, and directories
    no other package owns."""
    left = []
    for path in paths:
        if path == "/." or not os.path.lexists(path):
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            if run(["dpkg-query", "-S", path], check=False).returncode == 0:
                continue
        left.append(path)
    return left


# ------------------------------------------------------------------ tests

def test_build_depends_complete(c):
    """dpkg-checkbuilddeps passes: the build needs nothing it does not name."""
    eq((c.builddeps.returncode, c.builddeps.stdout + c.builddeps.stderr), (0, ""),
       "dpkg-checkbuilddeps")


def test_package_builds(c):
    """dpkg-buildpackage -us -uc -b makes trackpixel_<version>_<arch>.deb."""
    comment("dpkg-buildpackage -us -uc -b: %.0f s" % c.build_seconds)
    if c.build_rc != 0:
        raise AssertionError("dpkg-buildpackage exited %d:\n%s" % (c.build_rc, c.build_tail))
    eq(c.version, "0.1.0", "configure.ac's version")
    assert os.path.isfile(c.deb), "no %s in %s" % (os.path.basename(c.deb), os.listdir(c.dir))
    with open(os.path.join(c.src, "debian", "changelog")) as f:
        eq(f.readline().split()[1], "(%s)" % c.version, "debian/changelog's version")


def test_lintian_clean(c):
    """lintian on the binary build (.changes: the .deb and .buildinfo) and on
    the source package: no error, no warning that is not overridden (the
    overrides show as O:)."""
    bad = []
    for what in (c.changes, c.dsc):
        p = run(["lintian", "--display-info", "--pedantic", "--show-overrides", what],
                check=False, env=clean_env())
        out = p.stdout.strip()
        comment("lintian %s:\n%s" % (os.path.basename(what), out or "(nothing)"))
        bad += [line for line in out.splitlines() if line.startswith(("E:", "W:"))]
    eq(bad, [], "lintian errors and warnings")


def test_install(c):
    """apt-get install ./trackpixel_*.deb: the files where the issue says,
    the configuration a conffile (root:www-data 0640, every setting
    commented), the snippets the shipped files with the package's paths,
    the spool for www-data, and nothing enabled."""
    install(c)
    c.files = run(["dpkg", "-L", "trackpixel"]).stdout.split()
    comment("dpkg -L trackpixel:\n" + "\n".join(c.files))
    for path in (SBIN, CONF, APACHE_SNIPPET, LIGHTTPD_SNIPPET, "/usr/share/man/man8/trackpixel.8.gz",
                 EXAMPLES + "/trackpixel.service", "/usr/share/doc/trackpixel/README.Debian",
                 "/usr/share/trackpixel/agents.txt"):
        assert path in c.files, "%s is not in the package" % path
    eq(mode_of(SBIN), ("root", "root", "0755"), SBIN)
    eq(mode_of(CONF), ("root", "www-data", "0640"), CONF)
    eq(mode_of(SPOOL), ("www-data", "www-data", "0750"), SPOOL)
    conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", "trackpixel"]).stdout
    eq(sorted(line.split()[0] for line in conffiles.strip().splitlines()),
       sorted([CONF, APACHE_SNIPPET, LIGHTTPD_SNIPPET]), "conffiles")
    with open(CONF) as f:
        settings = [line for line in f if line.strip() and not line.startswith("#")]
    eq(settings, [], "lines of %s that are not comments" % CONF)
    with open(APACHE_SNIPPET) as f:
        eq(f.read(), expected_snippet("apache/trackpixel.conf"), APACHE_SNIPPET)
    with open(LIGHTTPD_SNIPPET) as f:
        eq(f.read(), expected_snippet("lighttpd/50-trackpixel.conf"), LIGHTTPD_SNIPPET)
    with open(EXAMPLES + "/trackpixel.service") as f:
        eq(f.read(), expected_snippet("lighttpd/trackpixel.service"), "the example unit")
    for link in ("/etc/apache2/conf-enabled/trackpixel.conf",
                 "/etc/lighttpd/conf-enabled/50-trackpixel.conf"):
        eq(os.path.lexists(link), False, "%s (the package enables nothing)" % link)
    # The program's own default is the package's file.
    out = run([SBIN, "--help"]).stdout
    assert CONF in out, "--help does not name %s:\n%s" % (CONF, out[:2000])
    # Installing again changes nothing (postinst is idempotent).
    install(c, again=True)
    eq(mode_of(SPOOL), ("www-data", "www-data", "0750"), SPOOL + " after a second install")


def test_apache_installed_snippet(c):
    """A private Apache including /etc/apache2/conf-available/trackpixel.conf
    as installed: the pixel, and the document in the file, then in the
    stand-in with the URL and keys from /etc/trackpixel/trackpixel.conf."""
    if not hasattr(c, "files"):
        raise AssertionError("the package is not installed")
    serve_file(server(Apache, APACHE_SNIPPET, {}))
    c.es = tplib.signed_standin()
    settings, secrets = es_settings(c)
    serve_es(c, server(Apache, APACHE_SNIPPET, settings, secrets))


def test_lighttpd_installed_snippet(c):
    """The same with a private lighttpd including
    /etc/lighttpd/conf-available/50-trackpixel.conf as installed (its
    socket in /run/lighttpd, which Debian's lighttpd makes for www-data)."""
    if not hasattr(c, "files"):
        raise AssertionError("the package is not installed")
    if not os.path.isdir(LIGHTTPD_RUNDIR):
        os.makedirs(LIGHTTPD_RUNDIR)
        c.made_rundir = True
        www = pwd.getpwnam("www-data")
        os.chown(LIGHTTPD_RUNDIR, www.pw_uid, www.pw_gid)
        os.chmod(LIGHTTPD_RUNDIR, 0o750)
    serve_file(server(Lighttpd, LIGHTTPD_SNIPPET, {}))
    if c.es is None:
        c.es = tplib.signed_standin()
    settings, secrets = es_settings(c)
    serve_es(c, server(Lighttpd, LIGHTTPD_SNIPPET, settings, secrets))


def test_purge_leaves_nothing(c):
    """apt-get purge: no file of the package left, the configuration gone,
    and the spool, whose journals were all delivered, gone too (a journal
    delivered to its end by its .done offset, one that is only its first
    line)."""
    if not hasattr(c, "files"):
        raise AssertionError("the package is not installed")
    # What a worker killed after its deliveries leaves: a journal whose
    # .done offset is its size, and one that holds only its first line.
    first = b"#trackpixel-journal 2 http://127.0.0.1:9 events\n"
    with open(os.path.join(SPOOL, "journal.1.000000000001.ndjson"), "wb") as f:
        f.write(first + b"#00000010 00000000\n{}\n{}\n")
        size = f.tell()
    with open(os.path.join(SPOOL, "journal.1.000000000001.ndjson.done"), "w") as f:
        f.write("%020d\n" % size)
    with open(os.path.join(SPOOL, "journal.2.000000000002.ndjson"), "wb") as f:
        f.write(first)
    comment("the spool before the purge: %s" % " ".join(sorted(os.listdir(SPOOL))))
    out = purge()
    comment("apt-get purge:\n" + "\n".join(l for l in out.splitlines() if "trackpixel" in l))
    eq(left_of_package(c.files), [], "files of the package left after the purge")
    eq([p for p in ("/etc/trackpixel", SPOOL) if os.path.lexists(p)], [], "left after the purge")
    eq(installed(), False, "installed after the purge")


def test_purge_keeps_undelivered_hits(c):
    """A hit the cluster never took (its URL a closed port) stays in the
    spool's journal; purge keeps the spool, names the journal, and removes
    the rest (also the snippet's link that a2enconf made).  This install
    finds a dpkg-statoverride for the spool and makes it so."""
    run(["dpkg-statoverride", "--add", "www-data", "www-data", "0700", SPOOL])
    c.override = True
    install(c)
    eq(mode_of(SPOOL), ("www-data", "www-data", "0700"), SPOOL + " with a dpkg-statoverride")
    settings = {"TRACKPIXEL_ES_URL": "http://127.0.0.1:%d" % tplib.free_port()}
    srv = server(Apache, APACHE_SNIPPET, settings)
    try:
        srv.start()
        one_hit(srv, "campaign=deb-pending")
    finally:
        stop(srv)
    status = run(["runuser", "-u", "www-data", "--", SBIN, "--spool-status"], check=False,
                 env=dict(clean_env(), TRACKPIXEL_CONFIG=CONF))
    if not re.search(r"^pending: 1 entries", status.stdout, re.M):
        raise AssertionError("--spool-status does not show the pending hit:\n%s%s"
                             % (status.stdout, status.stderr))
    journals = sorted(n for n in os.listdir(SPOOL) if re.match(r"journal\..*\.ndjson$", n))
    enabled = "/etc/apache2/conf-enabled/trackpixel.conf"
    if shutil.which("a2enconf"):
        run(["a2enconf", "-q", "trackpixel"])
        eq(os.readlink(enabled), "../conf-available/trackpixel.conf", "a2enconf's link")
    out = purge()
    comment("apt-get purge:\n" + "\n".join(l for l in out.splitlines() if "trackpixel" in l))
    if "kept %s: it holds hits not delivered yet" % SPOOL not in out:
        raise AssertionError("purge did not say it kept the spool:\n" + out[-3000:])
    pending = [j for j in journals if os.path.join(SPOOL, j) in out]
    eq(len(pending), 1, "journals named by purge (of %r)" % journals)
    eq(os.path.isfile(os.path.join(SPOOL, pending[0])), True, "the pending journal kept")
    eq(os.path.lexists(enabled), False, "the enabled snippet's link after the purge")
    eq(left_of_package(c.files), [], "files of the package left after the purge")
    eq(os.path.lexists("/etc/trackpixel"), False, "/etc/trackpixel after the purge")
    shutil.rmtree(SPOOL)
    comment("tests/test_debian.py: %.0f s in all" % (time.monotonic() - c.start))


def test_skipped():
    raise tplib.Skip(WHY)


if __name__ == "__main__":
    WHY = missing_precondition()
    if WHY:
        tplib.run_tests({"test_debian_package": test_skipped})
    else:
        tplib.run_tests({k: v for k, v in globals().items() if k != "test_skipped"},
                        setup=setup, teardown=teardown)
