"""Shared helpers for the Python integration tests: a real wshubd in a temp directory.

The server is started with `-c CONFIG --port-file PATH` on 127.0.0.1:0 listeners, so tests never
collide on ports. The port file is written by wshubd (temp + rename) once both listeners are
bound; we poll for it with a bounded deadline and fail early if the process dies first.

Every Server is stopped in a `finally` (use it as a context manager): SIGTERM first, then SIGKILL
if it has not exited within the bound, so no test run leaves a wshubd behind.

Runs under /usr/bin/python3 (Debian's interpreter, which has python3-websockets); this module
itself needs only the standard library.
"""

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

START_TIMEOUT = 10.0  # seconds to wait for the port file
STOP_TIMEOUT = 15.0   # seconds to wait for exit after SIGTERM (above any shutdown_timeout used)


class HarnessError(Exception):
    """The server could not be started or did something the harness cannot work with."""


def base_config(**server):
    """A minimal config dict: both listeners on free loopback ports, `server` keys merged in."""
    srv = {"listen": "127.0.0.1:0"}
    srv.update(server)
    return {"server": srv, "admin": {"enabled": True, "listen": "127.0.0.1:0"},
            "log": {"level": "info"}}


def echo_config(**server):
    """base_config plus the echo plugin on /echo."""
    cfg = base_config(**server)
    cfg["plugins"] = [{"name": "echo", "config": {"path": "/echo"}}]
    return cfg


def config_text(config):
    """YAML text for a config given as text (unchanged) or as a dict.

    A dict is written as JSON: JSON is a subset of YAML's flow style, which libyaml parses, so
    the harness needs no YAML emitter.
    """
    if isinstance(config, str):
        return config
    return json.dumps(config, indent=2) + "\n"


class Server:
    """One wshubd process. Attributes after start(): ws_host, ws_port, admin_host, admin_port."""

    def __init__(self, wshubd, config, plugin_dir=None, env=None, name="wshubd", keep_logs=False):
        self.wshubd = wshubd
        self.config = config
        self.plugin_dir = plugin_dir
        self.extra_env = env or {}
        self.name = name
        self.proc = None
        self.tmpdir = None
        self.port_file = None
        self.ws_host = self.admin_host = None
        self.ws_port = self.admin_port = None
        self.returncode = None
        # keep_logs: leave the temp dir (config, stderr.log) after __exit__, so a caller can
        # show the log of a failed test; it then calls cleanup() itself.
        self.keep_logs = keep_logs
        # check_exit: __exit__ fails when the SIGTERM stop does not end with exit code 0.
        self.check_exit = True

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, timeout=START_TIMEOUT):
        self.tmpdir = tempfile.mkdtemp(prefix="wshub-it-")
        cfg_path = os.path.join(self.tmpdir, "config.yaml")
        port_file = self.port_file = os.path.join(self.tmpdir, "ports")
        with open(cfg_path, "w", encoding="utf-8") as f:
            f.write(config_text(self.config))
        env = dict(os.environ)
        # Our own WSHUB_* settings only: a stray override in the caller's environment would
        # change the config under test (and unknown WSHUB_SERVER_* keys are fatal).
        for k in list(env):
            if k.startswith("WSHUB_"):
                del env[k]
        if self.plugin_dir:
            env["WSHUB_PLUGIN_DIR"] = self.plugin_dir
        env.update(self.extra_env)
        self.stderr_path = os.path.join(self.tmpdir, "stderr.log")
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([self.wshubd, "-c", cfg_path, "--port-file", port_file],
                                     stdin=subprocess.DEVNULL, stdout=self._stderr,
                                     stderr=self._stderr, env=env, cwd=self.tmpdir)
        deadline = time.monotonic() + timeout
        while True:
            if os.path.exists(port_file):
                self._read_ports(port_file)
                return self
            rc = self.proc.poll()
            if rc is not None:
                raise HarnessError("%s exited with %d before writing its port file:\n%s"
                                   % (self.name, rc, self.log_tail()))
            if time.monotonic() > deadline:
                raise HarnessError("%s wrote no port file within %.0fs:\n%s"
                                   % (self.name, timeout, self.log_tail()))
            time.sleep(0.02)

    def _read_ports(self, path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) != 2:
                    continue
                host, _, port = parts[1].rpartition(":")
                host = host.strip("[]")
                if parts[0] == "server":
                    self.ws_host, self.ws_port = host, int(port)
                elif parts[0] == "admin":
                    self.admin_host, self.admin_port = host, int(port)
        if self.ws_port is None:
            raise HarnessError("port file has no 'server' line")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout=STOP_TIMEOUT):
        """Waits for exit; returns the exit code or None if still running at the bound."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, bounded wait, SIGKILL if needed. Returns the exit code of the SIGTERM path
        (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            self.returncode = self.proc.returncode
            return self.returncode
        self.proc.send_signal(signal.SIGTERM)
        rc = self.wait(timeout)
        if rc is None:
            self.kill()
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def cleanup(self, keep_logs=False):
        """Kills the process if still running and removes the temp dir (unless keep_logs)."""
        self.kill()
        if getattr(self, "_stderr", None):
            self._stderr.close()
            self._stderr = None
        if self.tmpdir and not keep_logs:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup(keep_logs=self.keep_logs)
            raise

    def __exit__(self, et, ev, tb):
        try:
            rc = self.stop()
        finally:
            self.cleanup(keep_logs=self.keep_logs)
        # A clean SIGTERM shutdown exits 0; anything else (a crash, a sanitizer report, a
        # hang past STOP_TIMEOUT) fails the test that used the server, unless it failed already.
        if et is None and self.check_exit and rc != 0:
            raise HarnessError("%s exit code after SIGTERM: %r (want 0)" % (self.name, rc))
        return False

    def log_tail(self, n=30):
        if not self.tmpdir:
            return "(no log)"
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    # -- addresses and admin ----------------------------------------------------------------

    def url(self, path="/ws"):
        return "ws://%s:%d%s" % (self.ws_host, self.ws_port, path)

    def admin_get(self, path, timeout=5.0):
        """GET on the admin listener; returns (status, body text)."""
        if self.admin_port is None:
            raise HarnessError("admin listener not enabled")
        conn = http.client.HTTPConnection(self.admin_host, self.admin_port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def metrics(self):
        status, body = self.admin_get("/metrics")
        if status != 200:
            raise HarnessError("/metrics answered %d" % status)
        return parse_metrics(body)


# -- Prometheus text format -----------------------------------------------------------------

_SAMPLE_RE = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$')
_LABEL_RE = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


def _parse_labels(text):
    labels = []
    pos = 0
    while pos < len(text):
        m = _LABEL_RE.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError("bad label set {%s}" % text)
        labels.append((m.group(1), m.group(2)))
        pos = m.end()
    return labels


def metric_key(name, labels=None):
    """The dictionary key parse_metrics uses: name, or name{a="x",b="y"} with sorted labels."""
    if not labels:
        return name
    items = sorted(labels.items()) if isinstance(labels, dict) else sorted(labels)
    return "%s{%s}" % (name, ",".join('%s="%s"' % (k, v) for k, v in items))


def parse_metrics(text):
    """Parses Prometheus text exposition into {metric_key: float}. Raises ValueError on a line
    that is neither a comment nor a well-formed sample, so a malformed /metrics fails tests."""
    out = {}
    for ln, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            raise ValueError("line %d is not a sample: %r" % (ln, line))
        labels = _parse_labels(m.group(3)) if m.group(3) else []
        key = metric_key(m.group(1), labels)
        if key in out:
            raise ValueError("line %d: duplicate sample %s" % (ln, key))
        v = m.group(4)
        out[key] = float({"+Inf": "inf", "-Inf": "-inf", "NaN": "nan"}.get(v, v))
    return out


def metric(metrics, name, labels=None, default=0.0):
    """One value from parse_metrics output; absent labelled series count as `default`."""
    return metrics.get(metric_key(name, labels), default)


def run_wshubd(wshubd, args, env=None, timeout=30):
    """Runs wshubd with CLI arguments (no server); returns CompletedProcess with text output."""
    e = dict(os.environ)
    for k in list(e):
        if k.startswith("WSHUB_"):
            del e[k]
    e.update(env or {})
    return subprocess.run([wshubd] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, env=e, timeout=timeout)


# ------------------------------------------------------------------------------------------
# The test runner shared by the Python suites: a list of test functions (plain or async), each
# given a Ctx; prints `ok NAME` / `FAIL NAME: why` and a final `N passed, M failed`.
# ------------------------------------------------------------------------------------------

class Ctx:
    """What every test gets: the command-line arguments as attributes (wshubd, plugin_dir, ...)
    and the servers it started (their logs are printed when the test fails)."""

    def __init__(self, args):
        for key, value in vars(args).items():
            setattr(self, key, value)
        self.servers = []

    def server(self, config, **kw):
        kw.setdefault("keep_logs", True)  # the runner shows the log on failure, then cleans up
        s = Server(self.wshubd, config, plugin_dir=self.plugin_dir, **kw)
        self.servers.append(s)
        return s


def _short(v):
    r = v if not isinstance(v, (str, bytes)) or len(v) <= 200 else v[:100]
    if r is not v:
        return "%r... (%d)" % (r, len(v))
    return v


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def eq(got, want, what):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, _short(got), _short(want)))


def _run_one(fn, ctx, timeout):
    import asyncio
    import inspect

    if inspect.iscoroutinefunction(fn):
        async def bounded():
            await asyncio.wait_for(fn(ctx), timeout)
        asyncio.run(bounded())
    else:
        fn(ctx)


def run_tests(tests, args, timeout):
    """Runs every test (those whose name contains args.only, when set); returns the exit code."""
    import sys
    import traceback

    passed = failed = 0
    for fn in tests:
        name = fn.__name__
        if getattr(args, "only", None) and args.only not in name:
            continue
        ctx = Ctx(args)
        try:
            _run_one(fn, ctx, timeout)
        except BaseException as e:  # noqa: B902 - a test must never stop the runner
            if isinstance(e, KeyboardInterrupt):
                raise
            failed += 1
            why = "%s: %s" % (type(e).__name__, e) if str(e) else type(e).__name__
            print("FAIL %s: %s" % (name, why.splitlines()[0] if why else "?"), flush=True)
            sys.stderr.write(traceback.format_exc())
            for s in ctx.servers:
                sys.stderr.write("--- %s log (tail) ---\n%s\n" % (s.name, s.log_tail()))
        else:
            passed += 1
            print("ok %s" % name, flush=True)
        finally:
            for s in ctx.servers:
                s.cleanup()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0
