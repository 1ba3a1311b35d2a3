#!/usr/bin/python3
"""webserver - run the SHIPPED web server configurations around trackpixel.

The tests must run exactly what users install: apache/trackpixel.conf and
lighttpd/50-trackpixel*.conf.  This module renders those files for a test
without keeping a copy of them, the way an administrator would edit them:

  * well-known default strings are replaced: the install path of the program
    (/usr/local/sbin), trackpixel's configuration file
    (/etc/trackpixel/trackpixel.conf, the shipped files' TRACKPIXEL_CONFIG),
    lighttpd's socket, the paths in the ExecStart= of
    lighttpd/trackpixel.service;
  * settings and secrets go where an administrator puts them: in that
    configuration file (NAME=value lines, owner root, group of the server's
    user, mode 0640; the test's own user and 0600 when not root), with the
    output file and the spool moved into the test's directory.

Each substitution must find what it looks for (a line exactly once), so a
change to a shipped file that the tests do not follow fails loudly
(ConfigDrift) instead of silently testing something else.  Around the rendered
file the test writes a minimal top-level apache2.conf / lighttpd.conf (listen
address, modules, logs, pid file) that Includes it, as Debian's own top-level
files include conf-enabled/.

Servers listen on 127.0.0.1 only, on free ports.  Every process they start
carries a tag in its environment (TP_WEBSERVER_TAG), so a test can list the
processes that are its own (and only those: other tests may run trackpixel at
the same time) and check that none survives a stop.  The test process makes
itself a child subreaper, so trackpixel processes orphaned by a stopping
server are reparented to it and their exit statuses can be read.

Also a command, for trying the pixel by hand with the shipped configuration:

    /usr/bin/python3 tests/webserver.py lighttpd|apache [--port N] [--dir DIR]

serves http://127.0.0.1:N/pixel in the foreground (Ctrl-C stops it) with the
embedded default: documents go to DIR/run/events.ndjson.  (lighttpd/demo.sh is
the same for lighttpd, in plain sh.)
"""
import calendar
import ctypes
import grp
import http.client
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402

SRCDIR = tplib.SRCDIR
BINARY = os.path.join(tplib.BUILDDIR, "src", "trackpixel")
APACHE_CONF = os.path.join(SRCDIR, "apache", "trackpixel.conf")
LIGHTTPD_CONF = os.path.join(SRCDIR, "lighttpd", "50-trackpixel.conf")
LIGHTTPD_SOCKET_CONF = os.path.join(SRCDIR, "lighttpd", "50-trackpixel-socket.conf")
APACHE_MODULES = "/usr/lib/apache2/modules"
TAG_VAR = "TP_WEBSERVER_TAG"

# The defaults the shipped files use for what a test must move.
INSTALL_DIR = "/usr/local/sbin"
CONFIG_FILE = "/etc/trackpixel/trackpixel.conf"
LIGHTTPD_SOCKET = "/run/lighttpd/trackpixel.socket"
SPAWN_SOCKET = "/run/trackpixel/trackpixel.sock"
SPAWN_LOG = "/var/log/trackpixel/error.log"
SPAWN_UNIT = os.path.join(SRCDIR, "lighttpd", "trackpixel.service")


class ConfigDrift(AssertionError):
    """A shipped configuration no longer has what the tests substitute."""


# ------------------------------------------------------------- rendering

def replace_all(text, old, new, what):
    """Replace every occurrence of old (there must be at least one)."""
    if old not in text:
        raise ConfigDrift("%s: %r not found in the shipped configuration" % (what, old))
    return text.replace(old, new)


def apache_quote(value):
    if value and not re.search(r'[\s"\\]', value):
        return value
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')


def render_apache(binary, config_path):
    """apache/trackpixel.conf with the program at binary and trackpixel's
    configuration file at config_path."""
    if os.path.basename(binary) != "trackpixel":
        raise ValueError("the shipped configuration serves a file named trackpixel")
    with open(APACHE_CONF) as f:
        text = f.read()
    text = replace_all(text, INSTALL_DIR, os.path.dirname(binary), "install directory")
    return replace_all(text, CONFIG_FILE, config_path, "configuration file")


def render_lighttpd(binary, socket_path, config_path):
    """lighttpd/50-trackpixel.conf, the same way."""
    if os.path.basename(binary) != "trackpixel":
        raise ValueError("the shipped configuration runs a file named trackpixel")
    with open(LIGHTTPD_CONF) as f:
        text = f.read()
    text = replace_all(text, INSTALL_DIR, os.path.dirname(binary), "install directory")
    text = replace_all(text, LIGHTTPD_SOCKET, socket_path, "socket")
    return replace_all(text, CONFIG_FILE, config_path, "configuration file")


def render_lighttpd_socket(socket_path):
    with open(LIGHTTPD_SOCKET_CONF) as f:
        text = f.read()
    return replace_all(text, SPAWN_SOCKET, socket_path, "socket")


# ------------------------------------------------------------- processes

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    """Orphaned descendants (trackpixel processes a stopping server leaves
    behind) become children of this process, so reap_orphans() sees how
    they ended.  Best effort: False where prctl is unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def proc_stat(pid):
    """(comm, state, ppid) of pid, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    comm = data[data.index("(") + 1:data.rindex(")")]
    rest = data[data.rindex(")") + 2:].split()
    return comm, rest[0], int(rest[1])


handles_sigterm = tplib.handles_sigterm


def unclean(exits, ready, clean):
    """The processes of exits ({pid: how}) that did not end cleanly.  A
    process killed by SIGTERM's default action had not installed its handler
    yet - trackpixel does that before it takes any request, so it was
    starting and lost nothing; that is clean too, unless it was once seen
    ready (then its handler was lost: a bug)."""
    return {pid: how for pid, how in exits.items()
            if how != clean and (pid in ready or not re.search(r"\bsignal 15$", how))}


def all_procs():
    """{pid: (comm, state, ppid)} of every process."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st:
                out[int(name)] = st
    return out


def tagged_pids(tag, procs=None):
    """Live (non-zombie) processes whose environment carries TAG_VAR=tag,
    and their live descendants: {pid: comm}."""
    procs = all_procs() if procs is None else procs
    needle = ("%s=%s" % (TAG_VAR, tag)).encode()
    found = {}
    for pid, (comm, state, _) in procs.items():
        if state == "Z":
            continue
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if needle in env:
            found[pid] = comm
    children = {}
    for pid, (_, state, ppid) in procs.items():
        if state != "Z":
            children.setdefault(ppid, []).append(pid)
    stack = list(found)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found[child] = procs[child][0]
                stack.append(child)
    return found


REAPABLE = ("trackpixel", "apache2", "lighttpd", "spawn-fcgi")


def reap_orphans(exits, skip=()):
    """Reap zombie children of this process that a web server left behind
    (by name: never a child some Popen object owns); record
    exits[pid] = (comm, how) with how "exit N" or "signal N"."""
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in skip:
            continue
        pid = int(name)
        st = proc_stat(pid)
        if not st or st[2] != me or st[1] != "Z" or st[0] not in REAPABLE:
            continue
        try:
            _, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        if os.WIFEXITED(status):
            exits[pid] = (st[0], "exit %d" % os.WEXITSTATUS(status))
        elif os.WIFSIGNALED(status):
            exits[pid] = (st[0], "signal %d" % os.WTERMSIG(status))


def free_port():
    return tplib.free_port()


def _can_exec(path, pw, groups):
    st = os.stat(path)
    if st.st_uid == pw.pw_uid:
        return bool(st.st_mode & 0o100)
    if st.st_gid in groups:
        return bool(st.st_mode & 0o010)
    return bool(st.st_mode & 0o001)


def program_for(user, workdir):
    """The trackpixel the servers run: the build's, or, when the user the
    servers run as cannot reach it (a build under a 0700 home directory,
    say), an identical copy in workdir/sbin."""
    pw = pwd.getpwnam(user)
    groups = {g.gr_gid for g in grp.getgrall() if user in g.gr_mem} | {pw.pw_gid}
    path, ok = BINARY, True
    while ok and path != "/":
        ok = _can_exec(path, pw, groups)
        path = os.path.dirname(path)
    if ok:
        return BINARY
    sbin = os.path.join(workdir, "sbin")
    os.makedirs(sbin, exist_ok=True)
    os.chmod(sbin, 0o755)
    copy = os.path.join(sbin, "trackpixel")
    shutil.copy2(BINARY, copy)
    os.chmod(copy, 0o755)
    return copy


def run_user():
    """(user, group) the servers run as: www-data when we are root (as
    Debian's packages do), else whoever we are."""
    if os.geteuid() == 0:
        for user in ("www-data", "nobody"):
            try:
                pw = pwd.getpwnam(user)
            except KeyError:
                continue
            return pw.pw_name, grp.getgrgid(pw.pw_gid).gr_name
        raise RuntimeError("running as root, but there is no www-data or nobody user")
    pw = pwd.getpwuid(os.getuid())
    return pw.pw_name, grp.getgrgid(os.getgid()).gr_name


def http_get(port, path, timeout=2.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


class Server:
    """What Apache and Lighttpd have in common: a work directory, a port, a
    tag, start/stop, and a look at the processes."""

    name = "server"

    def __init__(self, workdir=None, port=None, settings=None, secrets=None, installed=None):
        # installed: a package's files instead of the build's program and the
        # rendered shipped file: {"snippet": the server's snippet as the
        # package installed it, included unchanged; "binary": the program it
        # names; "config": trackpixel's configuration file it names;
        # "spool": the default TRACKPIXEL_SPOOL_DIR, left to the program}.
        self.installed = installed
        self.tag = uuid.uuid4().hex
        self.port = port or free_port()
        self.settings = dict(settings or {})
        self.secrets = dict(secrets or {})
        self.user, self.group = run_user()
        self.own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="tp-%s-" % self.name)
        # Writable by the server's user: logs, sockets, the pid file, output.
        self.rundir = os.path.join(self.dir, "run")
        os.makedirs(self.rundir, exist_ok=True)
        pw = pwd.getpwnam(self.user)
        if os.geteuid() == 0:
            os.chmod(self.dir, 0o755)
            os.chown(self.rundir, pw.pw_uid, pw.pw_gid)
        self.output = os.path.join(self.rundir, "events.ndjson")
        self.settings.setdefault("TRACKPIXEL_OUTPUT", self.output)
        if installed:
            self.binary = installed["binary"]
            self.spool = installed["spool"]
            self.config_path = installed["config"]
        else:
            self.binary = program_for(self.user, self.dir)
            self.spool = os.path.join(self.rundir, "spool")
            os.makedirs(self.spool, exist_ok=True)
            if os.geteuid() == 0:
                os.chown(self.spool, pw.pw_uid, pw.pw_gid)
            # The shipped files' system paths, moved into the work directory.
            self.settings.setdefault("TRACKPIXEL_SPOOL_DIR", self.spool)
            # /etc/trackpixel/trackpixel.conf of the shipped files.
            self.config_path = os.path.join(self.dir, "etc-trackpixel.conf")
        self.exits = {}              # pid -> (comm, "exit N" | "signal N")
        self.known = {}              # pid -> comm, every process of ours seen
        self.ready = set()           # trackpixel pids seen with their SIGTERM handler
        self.subreaper = become_subreaper()
        self.started = False

    # -- addresses
    def url(self, path="/pixel"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def connection(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    # -- waiting
    def wait_ready(self, timeout=15.0):
        """Until the server answers a request that is not the pixel (so that
        waiting records no hit)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                http_get(self.port, "/tp-ready-probe")
                return
            except OSError:
                pass
            self.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError("%s did not answer on port %d within %.0f s; its log:\n%s"
                                     % (self.name, self.port, timeout, self.error_log()[-3000:]))
            time.sleep(0.05)

    def check_alive(self):
        pass

    # -- processes
    def pids(self):
        """Our live processes: {pid: comm}: those started with our tag, their
        descendants, and those seen before that are still alive (a
        trackpixel whose server exited is reparented to this process)."""
        procs = all_procs()
        found = tagged_pids(self.tag, procs)
        for pid, comm in self.known.items():
            st = procs.get(pid)
            if pid not in found and st and st[0] == comm and st[1] != "Z":
                found[pid] = comm
        self.known.update(found)
        for pid, comm in found.items():
            if comm == "trackpixel" and pid not in self.ready and handles_sigterm(pid):
                self.ready.add(pid)
        return found

    def wait_trackpixels_ready(self, count, timeout=15.0):
        """Until count trackpixel processes of ours run and all of them are
        past their start (a SIGTERM handler)."""
        def ready():
            pids = self.trackpixel_pids()
            return len(pids) >= count and all(p in self.ready for p in pids) and pids
        return tplib.wait_for(ready, timeout, "%d trackpixel processes, ready" % count)

    def trackpixel_pids(self):
        return sorted(p for p, comm in self.pids().items() if comm == "trackpixel")

    def wait_gone(self, timeout=15.0):
        """Until none of our processes is left (reaping orphans as they end);
        returns what is left after timeout (empty when all went)."""
        deadline = time.monotonic() + timeout
        while True:
            self.reap()
            left = self.pids()
            if not left or time.monotonic() > deadline:
                self.reap()          # those that ended since the first reap
                return left
            time.sleep(0.05)

    def reap(self):
        reap_orphans(self.exits)

    def kill_leftovers(self):
        """Last resort in teardown: SIGKILL whatever of ours is still there."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.wait_gone(5)

    # -- files
    def error_log(self):
        try:
            with open(self.error_log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def documents_in_output(self):
        """The embedded default's file, as (action, document) pairs."""
        try:
            with open(self.output, "rb") as f:
                lines = f.read().decode("utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [(json.loads(lines[i]), json.loads(lines[i + 1])) for i in range(0, len(lines), 2)]

    def spool_files(self):
        """What is left in the journal directory (journals still holding
        undelivered documents, dead letters)."""
        out = []
        for root, _, files in os.walk(self.spool):
            out += [os.path.relpath(os.path.join(root, f), self.spool) for f in files]
        return sorted(out)

    def cleanup(self):
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def write_config(self):
        """trackpixel's configuration file, settings and secrets, as
        apache/README.md and lighttpd/README.md say: readable by the
        server's user through its group, writable by root only."""
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("# Written by tests/webserver.py\n")
            for k, v in list(self.settings.items()) + list(self.secrets.items()):
                f.write("%s=%s\n" % (k, v))
        if os.geteuid() == 0:
            os.chown(self.config_path, 0, grp.getgrnam(self.group).gr_gid)
            os.chmod(self.config_path, 0o640)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            if self.started:
                self.stop()
        finally:
            self.kill_leftovers()
        return False


# ------------------------------------------------------------------ Apache

class Apache(Server):
    """apache2 (event MPM, mod_fcgid) with apache/trackpixel.conf.

    settings, secrets: lines of trackpixel's configuration file.
    """

    name = "apache"
    server_header = r"^Apache/2\.4\."

    def __init__(self, extra_env=None, **kw):
        super().__init__(**kw)
        self.conf_path = os.path.join(self.dir, "apache2.conf")
        self.rendered_path = os.path.join(self.dir, "trackpixel.conf")
        self.error_log_path = os.path.join(self.rundir, "error.log")
        self.pid_file = os.path.join(self.rundir, "apache2.pid")
        self.parent_pid = None
        # FcgidInitialEnv lines of the test's own top-level file (what an
        # administrator might set in another file of the server).
        self.extra_env = dict(extra_env or {})

    @staticmethod
    def extra_response_headers(method, status):
        return {}

    @staticmethod
    def document_headers(method):
        """What the document records of Apache's own CGI variables: mod_fcgid
        says HTTP_CONNECTION=close whatever the browser sent.  (Apache also
        sets CONTENT_LENGTH=0 for a request without a body; the document
        records Content-Length only for a request that carries one.)"""
        return {"Connection": "close"}

    def render(self):
        if self.installed:
            self.rendered_path = self.installed["snippet"]
        else:
            with open(self.rendered_path, "w") as f:
                f.write(render_apache(self.binary, self.config_path))
        self.write_config()
        htdocs = os.path.join(self.dir, "htdocs")
        os.makedirs(htdocs, exist_ok=True)
        mods = ["mpm_event", "authz_core", "alias", "fcgid"]
        lines = ["# Written by tests/webserver.py; the tested file is %s." % self.rendered_path,
                 "ServerRoot %s" % self.dir,
                 "DefaultRuntimeDir %s" % self.rundir,
                 "PidFile %s" % self.pid_file,
                 "Mutex file:%s default" % self.rundir,
                 "ErrorLog %s" % self.error_log_path,
                 # info: mod_fcgid says how each trackpixel process ended.
                 "LogLevel warn fcgid:info",
                 "Listen 127.0.0.1:%d" % self.port,
                 "ServerName 127.0.0.1",
                 "User %s" % self.user,
                 "Group %s" % self.group,
                 "KeepAlive On",
                 "MaxKeepAliveRequests 100",
                 "KeepAliveTimeout 5",
                 "StartServers 1",
                 "ServerLimit 2",
                 "ThreadsPerChild 32",
                 "MaxRequestWorkers 64",
                 "MinSpareThreads 16",
                 "MaxSpareThreads 64"]
        lines += ["LoadModule %s_module %s/mod_%s.so" % (m, APACHE_MODULES, m) for m in mods]
        lines += ["FcgidIPCDir %s" % os.path.join(self.rundir, "fcgid-sock"),
                  "FcgidProcessTableFile %s" % os.path.join(self.rundir, "fcgid-shm"),
                  "FcgidInitialEnv %s %s" % (TAG_VAR, self.tag)]
        lines += ["FcgidInitialEnv %s %s" % (k, apache_quote(v)) for k, v in self.extra_env.items()]
        lines += ["DocumentRoot %s" % htdocs,
                  "<Directory />",
                  "    AllowOverride None",
                  "    Require all denied",
                  "</Directory>",
                  # As Debian's /var/www: readable (mod_fcgid's PATH_TRANSLATED
                  # look-up for /pixel/<path> lands here).
                  "<Directory %s>" % htdocs,
                  "    Require all granted",
                  "</Directory>",
                  # Where conf-enabled/ is included on Debian: server level.
                  "Include %s" % self.rendered_path,
                  # A site, as Debian's sites-enabled/000-default.conf is one.
                  "<VirtualHost 127.0.0.1:%d>" % self.port,
                  "    ServerName localhost",
                  "    DocumentRoot %s" % htdocs,
                  "</VirtualHost>"]
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _ctl(self, action, timeout=30):
        # A clean environment, as systemd gives apache2ctl.
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C",
               TAG_VAR: self.tag}
        return subprocess.run(["apache2", "-f", self.conf_path, "-k", action], env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)

    def start(self):
        self.render()
        tplib.watch_log(self.error_log_path)
        p = self._ctl("start")
        if p.returncode != 0:
            raise AssertionError("apache2 -k start failed (%d): %s\n%s" % (
                p.returncode, p.stderr.decode("utf-8", "replace"), self.error_log()[-3000:]))
        self.started = True
        self.parent_pid = tplib.wait_for(self._read_pid, 10, "apache2's pid file")
        self.wait_ready()
        return self

    def _read_pid(self):
        try:
            with open(self.pid_file) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def check_alive(self):
        st = self.parent_pid and proc_stat(self.parent_pid)
        if self.parent_pid and (st is None or st[1] == "Z"):
            raise AssertionError("apache2 exited; its log:\n" + self.error_log()[-3000:])

    def graceful(self):
        """apache2 -k graceful: what `systemctl reload apache2` does."""
        p = self._ctl("graceful")
        if p.returncode != 0:
            raise AssertionError("apache2 -k graceful failed: %s" % p.stderr.decode())

    def stop(self, action="graceful-stop", timeout=30):
        """apache2 -k graceful-stop (what `systemctl stop apache2` runs on
        Debian) or -k stop; then wait until every process of ours is gone.
        Returns what is left ({} when all went)."""
        self.started = False
        p = self._ctl(action)
        if p.returncode != 0:
            raise AssertionError("apache2 -k %s failed: %s" % (action, p.stderr.decode()))
        return self.wait_gone(timeout)

    def fcgid_exits(self):
        """mod_fcgid's lines on how each trackpixel process ended:
        [(pid, reason, how)]; how is e.g. "terminated by calling exit(),
        return code: 0" or "get stop signal 9"."""
        out = []
        for m in re.finditer(r"mod_fcgid: process (\S+)\((\d+)\) exit\(([^)]*)\), (.*)$",
                             self.error_log(), re.M):
            if m.group(1) == self.binary:
                out.append((int(m.group(2)), m.group(3), m.group(4).strip()))
        return out


# ----------------------------------------------------------------- lighttpd

class Lighttpd(Server):
    """lighttpd -D with lighttpd/50-trackpixel.conf (variant "spawn"), or
    with lighttpd/50-trackpixel-socket.conf (variant "socket": trackpixel is
    started separately, see SpawnFcgi).

    settings, secrets: lines of trackpixel's configuration file.  lighttpd
    gets a clean environment: PATH and the tag.
    """

    name = "lighttpd"
    server_header = r"^lighttpd/1\.4\."

    @staticmethod
    def extra_response_headers(method, status):
        """lighttpd adds Accept-Ranges to a 200 answer to GET or HEAD."""
        return {"Accept-Ranges": "bytes"} if status == 200 and method in ("GET", "HEAD") else {}

    @staticmethod
    def document_headers(method):
        """None: lighttpd sets CONTENT_LENGTH=0 for a request without a body,
        but the document records Content-Length only for a request that
        carries one."""
        return {}

    def __init__(self, variant="spawn", socket_path=None, **kw):
        super().__init__(**kw)
        self.variant = variant
        self.conf_path = os.path.join(self.dir, "lighttpd.conf")
        self.rendered_path = os.path.join(self.dir, "50-trackpixel.conf")
        self.error_log_path = os.path.join(self.rundir, "error.log")
        self.socket_path = socket_path or os.path.join(self.rundir, "trackpixel.socket")
        self.proc = None

    def render(self):
        if self.installed:
            self.rendered_path = self.installed["snippet"]
            self.write_config()
        else:
            if self.variant == "spawn":
                text = render_lighttpd(self.binary, self.socket_path, self.config_path)
                self.write_config()
            else:
                text = render_lighttpd_socket(self.socket_path)
            with open(self.rendered_path, "w") as f:
                f.write(text)
        htdocs = os.path.join(self.dir, "htdocs")
        os.makedirs(htdocs, exist_ok=True)
        lines = ["# Written by tests/webserver.py; the tested file is %s." % self.rendered_path,
                 'server.document-root = "%s"' % htdocs,
                 'server.bind = "127.0.0.1"',
                 "server.port = %d" % self.port,
                 'server.errorlog = "%s"' % self.error_log_path,
                 # What lighty-enable-mod's "depends: fastcgi" brings in.
                 'server.modules += ( "mod_fastcgi" )']
        if os.geteuid() == 0:
            lines += ['server.username = "%s"' % self.user,
                      'server.groupname = "%s"' % self.group]
        parseopts = debian_parseopts()
        if parseopts:
            lines.append("# Debian's /etc/lighttpd/lighttpd.conf sets:")
            lines.append(parseopts)
        lines.append('include "%s"' % self.rendered_path)
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self):
        self.render()
        tplib.watch_log(self.error_log_path)
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), TAG_VAR: self.tag}
        with open(os.path.join(self.dir, "lighttpd.stderr"), "ab") as err:
            self.proc = subprocess.Popen(["lighttpd", "-D", "-f", self.conf_path], env=env,
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        self.started = True
        self.wait_ready()
        if self.variant == "spawn":
            self.wait_trackpixels_ready(self.procs())
        return self

    def procs(self):
        """min-procs of the shipped file: how many processes lighttpd starts."""
        with open(LIGHTTPD_CONF) as f:
            m = re.search(r'"min-procs"\s*=>\s*(\d+)', f.read())
        return int(m.group(1)) if m else 1

    def check_alive(self):
        if self.proc is not None and self.proc.poll() is not None:
            with open(os.path.join(self.dir, "lighttpd.stderr"), "rb") as f:
                err = f.read().decode("utf-8", "replace")
            raise AssertionError("lighttpd exited with %d: %s\n%s" % (
                self.proc.returncode, err, self.error_log()[-3000:]))

    def graceful(self):
        """SIGUSR1: lighttpd's graceful restart (1.4.46 and later): finish
        the requests in flight, re-read the configuration, go on."""
        self.proc.send_signal(signal.SIGUSR1)

    def stop(self, sig=signal.SIGINT, timeout=20):
        """SIGINT: graceful shutdown (finish requests in flight, up to
        server.graceful-shutdown-timeout); SIGTERM: at once.  Then wait until
        every process of ours is gone; returns what is left."""
        self.started = False
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        return self.wait_gone(timeout)

    def kill_leftovers(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        super().kill_leftovers()


def debian_parseopts(path="/etc/lighttpd/lighttpd.conf"):
    """What Debian's lighttpd.conf says about parsing requests and about
    restarts (the server.http-parseopts block and the server.feature-flags
    lines: graceful-shutdown-timeout), or None without that file."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    m = re.search(r"^server\.http-parseopts\s*=\s*\(.*?^\)", text, re.M | re.S)
    flags = re.findall(r"^server\.feature-flags\s*\+=.*$", text, re.M)
    return "\n".join(flags + ([m.group(0)] if m else [])) or None


class SpawnFcgi:
    """trackpixel started by spawn-fcgi on a unix socket with the command
    line of the shipped lighttpd/trackpixel.service (its ExecStart=, paths
    moved; as an ordinary user without the -u/-g/-U/-G options, which need
    root), env being its whole environment (the settings the unit's
    configuration file gives, as variables)."""

    def __init__(self, socket_path, env, workdir, tag=None):
        self.socket_path = socket_path
        self.log_path = os.path.join(workdir, "error.log")
        self.env = dict(env)
        self.tag = tag or uuid.uuid4().hex
        self.env[TAG_VAR] = self.tag
        self.cwd = workdir
        self.exits = {}
        self.binary = program_for(run_user()[0], workdir)
        become_subreaper()

    def argv(self):
        import shlex
        with open(SPAWN_UNIT) as f:
            lines = [l for l in f.read().splitlines() if l.startswith("ExecStart=")]
        if len(lines) != 1:
            raise ConfigDrift("%d ExecStart= lines in %s, expected 1" % (len(lines), SPAWN_UNIT))
        cmd = lines[0][len("ExecStart="):]
        cmd = replace_all(cmd, SPAWN_SOCKET, self.socket_path, "socket")
        cmd = replace_all(cmd, SPAWN_LOG, self.log_path, "error log")
        cmd = replace_all(cmd, INSTALL_DIR, os.path.dirname(self.binary), "install directory")
        user, group = run_user()
        ids = " -U www-data -G www-data -u trackpixel -g trackpixel"
        cmd = replace_all(cmd, ids, (" -U %s -G %s -u %s -g %s" % (user, group, user, group))
                          if os.geteuid() == 0 else "", "user and group options")
        return shlex.split(cmd)

    def children(self):
        m = re.search(r"-F (\d+)", " ".join(self.argv()))
        return int(m.group(1)) if m else 1

    def start(self):
        tplib.watch_log(self.log_path)
        if os.geteuid() == 0:
            pw = pwd.getpwnam(run_user()[0])
            with open(self.log_path, "a"):
                pass
            os.chown(self.log_path, pw.pw_uid, pw.pw_gid)
        p = subprocess.run(self.argv(), env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=20)
        if p.returncode != 0:
            raise AssertionError("spawn-fcgi failed (%d): %s" % (
                p.returncode, (p.stderr + p.stdout).decode("utf-8", "replace")))
        n = self.children()
        tplib.wait_for(lambda: len(self.pids()) >= n and all(handles_sigterm(p)
                                                             for p in self.pids()),
                       10, "spawn-fcgi's %d children, ready" % n)
        return self

    def pids(self):
        return sorted(p for p, comm in tagged_pids(self.tag).items() if comm == "trackpixel")

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """What systemd's stop does (KillMode=control-group): the signal to
        every process; then wait.  Returns the pids left."""
        signalled = self.pids()
        for pid in signalled:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        while True:
            reap_orphans(self.exits)
            left = self.pids()
            # A process whose environment is gone may not be a zombie yet:
            # wait until each one signalled is reaped (or gone elsewhere).
            unreaped = [p for p in signalled if p not in self.exits and os.path.exists(
                "/proc/%d" % p)]
            if (not left and not unreaped) or time.monotonic() > deadline:
                reap_orphans(self.exits)
                return left
            time.sleep(0.05)


# ------------------------------------------------------- driving the pixel

PIXEL = tplib.PIXEL
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
HTTP_DATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|"
                       r"Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$")


def send(conn, method, target, headers, body=None):
    """One request with exactly these headers (http.client adds Host unless
    given, and Content-Length when there is a body; nothing else).  Returns
    (status, reason, [(name, value)...], body bytes)."""
    conn.putrequest(method, target, skip_accept_encoding=True,
                    skip_host=any(name.lower() == "host" for name, _ in headers))
    for name, value in headers:
        conn.putheader(name, value)
    if body is not None:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, resp.reason, resp.getheaders(), data


class Load:
    """GET the pixel over conns keep-alive connections, one thread each
    (http.client), the way a busy page does.

    run(total): exactly total attempts, spread over the connections.
    start() ... stop(): until stopped (for restarts under load).

    Each attempt ends as a pixel (200, the 60 bytes, a request id: kept in
    .pixels) or a failure (kept in .failures as a short reason).  A
    connection the server closed is reopened for the next attempt; the
    attempt that found it closed counts as a failure (it may or may not have
    reached trackpixel)."""

    def __init__(self, port, conns=16, tag="load"):
        self.port = port
        self.conns = conns
        self.tag = tag
        self.pixels = []            # request ids, from X-Request-Id
        self.targets = {}           # request id -> the "n-i" of its query string
        self.failures = []          # (thread, attempt, reason)
        self.attempts = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []

    def _worker(self, n, quota):
        conn = None
        i = 0
        while (quota is None and not self._stop.is_set()) or (quota is not None and i < quota):
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            target = "/pixel?%s=%d-%d" % (self.tag, n, i)
            i += 1
            try:
                status, _, headers, body = send(conn, "GET", target,
                                                [("User-Agent", "tp-load/1")])
            except (OSError, http.client.HTTPException) as e:
                with self._lock:
                    self.attempts += 1
                    self.failures.append((n, i, type(e).__name__))
                conn.close()
                conn = None
                time.sleep(0.01)        # a server that is down: do not spin
                continue
            rid = dict((k.lower(), v) for k, v in headers).get("x-request-id", "")
            with self._lock:
                self.attempts += 1
                if status == 200 and body == PIXEL and UUID.match(rid):
                    self.pixels.append(rid)
                    self.targets[rid] = "%d-%d" % (n, i - 1)
                else:
                    self.failures.append((n, i, "HTTP %d" % status))
            if any(k.lower() == "connection" and v.lower() == "close" for k, v in headers):
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def _spawn(self, quotas):
        self._threads = [threading.Thread(target=self._worker, args=(n, q), daemon=True)
                         for n, q in enumerate(quotas)]
        for t in self._threads:
            t.start()

    def run(self, total):
        base, extra = divmod(total, self.conns)
        self._spawn([base + (1 if n < extra else 0) for n in range(self.conns)])
        for t in self._threads:
            t.join()
        return self

    def start(self):
        self._spawn([None] * self.conns)
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(60)
        return self


NO_CACHE = {"Cache-Control": "no-cache, no-store, must-revalidate, private",
            "Pragma": "no-cache", "Expires": "0"}
PIXEL_HEADERS = dict(NO_CACHE, **{"Content-Type": "image/bmp", "Content-Length": "60"})
NOT_ALLOWED_HEADERS = dict(NO_CACHE, **{"Allow": "GET, HEAD, POST",
                                        "Content-Type": "text/plain; charset=utf-8",
                                        "Content-Length": "19"})
CONTEXT_KEYS = tplib.CONTEXT_KEYS


def check_response(srv, result, method, status):
    """The whole response, exactly: status, every header (trackpixel's
    values exactly; the server's own Date and Server by form, and whatever
    else srv.extra_response_headers() says), and the body.  Returns the
    X-Request-Id (None for 405)."""
    got_status, reason, headers, body = result
    tplib.eq((got_status, reason), (status, "OK" if status == 200 else "Method Not Allowed"),
             "%s status" % method)
    names = [k.lower() for k, _ in headers]
    tplib.eq(len(names), len(set(names)), "%s: no header twice (%r)" % (method, headers))
    got = dict(headers)
    expected = dict(PIXEL_HEADERS if status == 200 else NOT_ALLOWED_HEADERS)
    expected.update(srv.extra_response_headers(method, status))
    want_names = set(expected) | {"Date", "Server"} | ({"X-Request-Id"} if status == 200 else set())
    tplib.eq(sorted(got), sorted(want_names), "%s: header names" % method)
    for name, value in expected.items():
        tplib.eq(got[name], value, "%s: %s" % (method, name))
    if not HTTP_DATE.match(got["Date"]):
        raise AssertionError("%s: Date %r" % (method, got["Date"]))
    sent = calendar.timegm(time.strptime(got["Date"], "%a, %d %b %Y %H:%M:%S GMT"))
    if abs(sent - time.time()) > 30:
        raise AssertionError("%s: Date %r is not now" % (method, got["Date"]))
    if not re.match(srv.server_header, got["Server"]):
        raise AssertionError("%s: Server %r" % (method, got["Server"]))
    if status == 200:
        tplib.eq(body, b"" if method == "HEAD" else PIXEL, "%s body" % method)
        rid = got["X-Request-Id"]
        if not UUID.match(rid):
            raise AssertionError("%s: X-Request-Id %r is not a UUID v4" % (method, rid))
        return rid
    tplib.eq(body, b"method not allowed\n", "%s body" % method)
    return None


def check_dates(doc, before_ms, after_ms):
    """date (ms since the epoch) within the request, @timestamp the same instant."""
    ms = doc["date"]
    if not (isinstance(ms, int) and before_ms <= ms <= after_ms):
        raise AssertionError("date %r not within the request [%d, %d]" % (ms, before_ms, after_ms))
    tplib.eq(doc["@timestamp"], time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) +
             ".%03dZ" % (ms % 1000), "@timestamp")


def expected_document(srv, method, rid, querystring, headers, body_json=None, proxy=None,
                      stage="prod", stage_vars=None, api_id="", user_agent=""):
    """The whole document trackpixel must build for a request, but for the
    two timestamps (check_dates).  headers: what the client sent, in the
    spelling trackpixel gives them; the web server's own additions
    (srv.document_headers) are added here."""
    header = dict(headers)
    header.update(srv.document_headers(method))
    return {
        "body-json": body_json or {},
        "params": {"path": {"proxy": proxy} if proxy is not None else {},
                   "querystring": querystring, "header": header},
        "stage-variables": stage_vars or {},
        "context": {k: {"http-method": method, "stage": stage, "source-ip": "127.0.0.1",
                        "user-agent": user_agent, "request-id": rid, "resource-path": "/pixel",
                        "api-id": api_id}.get(k, "") for k in CONTEXT_KEYS},
    }


def check_document(source, expected, before_ms, after_ms):
    tplib.eq(list(source), ["body-json", "params", "stage-variables", "context", "agent",
                            "date", "@timestamp"], "document keys, in order")
    tplib.eq(list(source["context"]), CONTEXT_KEYS, "context keys, in order")
    for key in ("body-json", "params", "stage-variables", "context"):
        tplib.eq(source[key], expected[key], key)
    check_dates(source, before_ms, after_ms)


def failure_summary(load):
    counts = {}
    for _, _, why in load.failures:
        counts[why] = counts.get(why, 0) + 1
    return ", ".join("%s x%d" % kv for kv in sorted(counts.items())) or "none"


def check_load_documents(es, load, exact):
    """After a load: wait until the documents settle, then every hit that
    got a pixel has its document, with the query string it was sent with,
    and every request the stand-in saw was correctly signed.  exact: also
    no document without a pixel.  Returns a one-line summary."""
    pixels = set(load.pixels)
    tplib.eq(len(pixels), len(load.pixels), "distinct X-Request-Ids")
    settle(lambda: len(es.docs()), len(pixels))
    docs = es.docs()
    ids = [d["id"] for d in docs]
    tplib.eq(len(set(ids)), len(ids), "distinct document ids")
    missing = sorted(pixels - set(ids))
    if missing:
        raise AssertionError("%d of %d hits got a pixel but have no document (e.g. %s)"
                             % (len(missing), len(pixels), ", ".join(missing[:3])))
    for d in docs:
        src = d["source"]
        tplib.eq(src["context"]["request-id"], d["id"], "request-id = _id")
        if d["id"] in pixels:
            tplib.eq(src["params"]["querystring"], {load.tag: load.targets[d["id"]]},
                     "query string of %s" % d["id"])
    extra = len(ids) - len(pixels)
    if exact:
        tplib.eq(extra, 0, "documents without a pixel")
    reqs = es.requests()
    bad = [r for r in reqs if not (r["sig_ok"] and r["token_ok"])]
    tplib.eq(len(bad), 0, "requests whose signature or token the stand-in refused")
    vias = {}
    for d in docs:
        vias[d["via"]] = vias.get(d["via"], 0) + 1
    return ("%d attempts, %d pixels, %d documents (%s), %d without a pixel; %d cluster "
            "requests, all signatures verified; failed attempts: %s"
            % (load.attempts, len(pixels), len(docs),
               ", ".join("%s %d" % kv for kv in sorted(vias.items())), extra, len(reqs),
               failure_summary(load)))


def restart_with_slow_cluster(srv, es, delay_ms=4000, conns=8):
    """A graceful restart while every post takes delay_ms (the stand-in's
    delay mode) and conns connections hit the pixel: the processes get their
    SIGTERM in the middle of a post.  Returns (load, seconds from the
    restart until the server answered again)."""
    es.reset()
    es.mode(delay_ms=delay_ms)
    load = Load(srv.port, conns=conns, tag="slow").start()
    try:
        wait_pixels(load, conns, timeout=20)
        time.sleep(delay_ms / 2000.0)          # every process is now mid-post
        start = time.monotonic()
        srv.graceful()
        tplib.wait_for(lambda: answers(srv.port), 30, "the server after the restart")
        stalled = time.monotonic() - start
        es.mode()                               # the cluster is fast again
        at_restart = len(load.pixels)
        wait_pixels(load, at_restart + conns, what="pixels after the restart")
    finally:
        load.stop()
        es.mode()
    return load, stalled


def answers(port):
    try:
        return http_get(port, "/tp-ready-probe", timeout=1.0) > 0
    except OSError:
        return False


def wait_pixels(load, count, timeout=30.0, what="pixels"):
    return tplib.wait_for(lambda: len(load.pixels) >= count, timeout,
                          "%d %s (have %d)" % (count, what, len(load.pixels)))


def settle(count_fn, at_least, timeout=20.0, quiet=1.0):
    """Documents are posted after the pixel: poll count_fn() until it reaches
    at_least and then stays the same for quiet seconds (bounded by timeout).
    Returns the last count."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while True:
        n = count_fn()
        if n != last:
            last, since = n, time.monotonic()
        if n >= at_least and time.monotonic() - since >= quiet:
            return n
        if time.monotonic() > deadline:
            return n
        time.sleep(0.1)


# ------------------------------------------------------------------ by hand

def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="Serve the pixel with a shipped configuration "
                                             "(embedded default: documents to a file).")
    ap.add_argument("server", choices=("lighttpd", "apache"))
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--dir", default=None,
                    help="work directory (default: a new one in $TMPDIR); documents go "
                         "to DIR/run/events.ndjson")
    args = ap.parse_args(argv)
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    cls = Lighttpd if args.server == "lighttpd" else Apache
    srv = cls(workdir=os.path.abspath(args.dir) if args.dir else None, port=args.port)
    def interrupted(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupted)
    srv.start()
    print("serving http://127.0.0.1:%d/pixel; documents go to %s; Ctrl-C stops"
          % (srv.port, srv.output), flush=True)
    try:
        while True:
            time.sleep(1)
            srv.check_alive()
    except KeyboardInterrupt:
        pass
    finally:
        left = srv.stop()
        if left:
            srv.kill_leftovers()
    return 0

# ---------------------------------------------------------------- test helpers
# For test_webservers.py: its context c has .srv (a started Apache or
# Lighttpd) and .es (the stand-in).

def stop_server(srv):
    """Stop srv if it runs, kill whatever of it is left, remove its
    folder (when it made one)."""
    try:
        if srv.started:
            srv.stop()
    finally:
        try:
            srv.kill_leftovers()
        finally:
            srv.cleanup()


def teardown(c):
    """Stop the server and the stand-in; nothing of ours survives."""
    try:
        stop_server(c.srv)
    finally:
        c.es.stop()


def recorded(c, headers):
    """The headers as the document records them: Host is the server's."""
    out = dict(headers)
    if "Host" in out:
        out["Host"] = "127.0.0.1:%d" % c.srv.port
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
