#!/usr/bin/env python3
"""Mecha benchmark harness (stdlib only). Started by Benchmarks/run; see Benchmarks/README.md.

Measures, in one run and side by side, the request path through Mecha against nginx and haproxy
doing the same hops, the embedded state store against direct SQLite, the embedded pub/sub, the
sidecar's startup, memory and binary size, and the loopback floor. Every figure is the median of
interleaved repetitions with the range; ratios are taken within a repetition.

Rules kept here: all traffic on 127.0.0.1; every child bounded in time; only processes this script
started are stopped, by PID, also on Ctrl-C / SIGTERM.
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCHEMA = "mecha-bench/1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# Observability on the "metrics"/"tracing" shapes: the plain rows run with metrics off; these
# add metrics (on by default in Mecha and daprd) and then tracing at sampling 0 and 1, exporting
# Zipkin JSON to a span sink: an nginx on the client CPUs that answers 202 to any POST, as a
# collector on another machine would (receiving the spans is not the sidecar's cost).
def tracing_config(rate, sink_port):
    return f"""apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: bench-tracing
spec:
  tracing:
    samplingRate: "{rate}"
    zipkin:
      endpointAddress: "http://127.0.0.1:{sink_port}/api/v2/spans"
"""


# Governance on the "with policies" shapes: what a production target typically carries.
POLICY_RESILIENCY = """apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: bench-policies
spec:
  policies:
    timeouts:
      general: 5s
    retries:
      quick:
        policy: constant
        duration: 10ms
        maxRetries: 3
    circuitBreakers:
      guard:
        maxRequests: 1
        timeout: 30s
        trip: consecutiveFailures > 5
  targets:
    apps:
      server-p:
        timeout: general
        retry: quick
        circuitBreaker: guard
"""

POLICY_TRAFFIC = """apiVersion: mecha.dev/v1alpha1
kind: TrafficPolicy
metadata:
  name: bench-traffic
spec:
  target: server-p
  loadBalancer:
    policy: peakEWMA
"""


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


class Interrupted(BaseException):
    pass


# ----------------------------------------------------------------------------------------------
# Settings
# ----------------------------------------------------------------------------------------------

SECTIONS = ["loopback", "http", "state", "redis", "pubsub", "startup", "binary"]


def parse_args(argv):
    p = argparse.ArgumentParser(description="Mecha benchmark harness (use Benchmarks/run).")
    p.add_argument("--mecha", help="the mecha binary to measure")
    p.add_argument("--build-config", default="release", help="release or debug (recorded in the results)")
    p.add_argument("--smoke", action="store_true", help="1 repetition, 1 s per measurement: checks the harness works")
    p.add_argument("--reps", type=int, help="repetitions (default 3; smoke 1)")
    p.add_argument("--duration", type=int, help="seconds per measurement (default 10; smoke 1)")
    p.add_argument("--warmup", type=int, help="seconds of warm-up before each fixed-rate measurement (default 2; smoke 0)")
    p.add_argument("--rate", type=int, default=1000, help="fixed request rate (default 1000 rps)")
    p.add_argument("--connections", type=int, default=16, help="connections (default 16)")
    p.add_argument("--body-bytes", type=int, default=1024, help="request/response body size (default 1024)")
    p.add_argument("--pubsub-rate", type=int, help="publish rate for the latency run (default: --rate; smoke 200)")
    p.add_argument("--upstream", choices=["after-body", "early"], default="after-body",
                   help="the upstream app (nginx) replies after reading the request body (default), or early: "
                        "as soon as the headers are in (nginx `return`)")
    p.add_argument("--only", help="comma-separated sections to run: " + ",".join(SECTIONS))
    p.add_argument("--shapes", help="comma-separated HTTP shapes to run (default all; direct is always included)")
    p.add_argument("--server-cpus", help="CPUs for proxies and the upstream app (default 0)")
    p.add_argument("--client-cpus", help="CPUs for the load generators (default: the other CPUs)")
    p.add_argument("--out-dir", default=str(ROOT / "bench-results"), help="where results go (default bench-results/)")
    p.add_argument("--keep-scratch", action="store_true", help="keep the scratch directory (configs, logs)")
    p.add_argument("--validate", metavar="JSON", help="only check that a results file has the expected schema")
    p.add_argument("--require-complete", action="store_true", help="with --validate: every section and shape must have results")
    args = p.parse_args(argv)
    if args.validate:
        return args
    if not args.mecha:
        p.error("--mecha is required")
    args.mecha = str(Path(args.mecha).resolve())
    args.reps = args.reps or (1 if args.smoke else 3)
    args.duration = args.duration or (1 if args.smoke else 10)
    if args.warmup is None:
        args.warmup = 0 if args.smoke else 2
    args.pubsub_rate = args.pubsub_rate or (200 if args.smoke else args.rate)
    args.sections = SECTIONS if not args.only else [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        p.error("unknown sections: " + ", ".join(sorted(unknown)))
    cpus = sorted(os.sched_getaffinity(0))
    if args.server_cpus is None:
        args.server_cpus = str(cpus[0]) if len(cpus) >= 2 else None
    if args.client_cpus is None:
        others = [c for c in cpus if str(c) != args.server_cpus]
        args.client_cpus = ",".join(map(str, others)) if args.server_cpus and others else None
    n_client = len(cpu_list(args.client_cpus)) if args.client_cpus else len(cpus)
    args.wrk_threads = max(1, min(n_client, 4, args.connections))
    return args


def cpu_list(spec):
    out = []
    for part in spec.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


# ----------------------------------------------------------------------------------------------
# Processes: started here, pinned with taskset, stopped by PID
# ----------------------------------------------------------------------------------------------


def descendants(pid):
    """PIDs of pid's children, recursively (from /proc/<pid>/task/*/children)."""
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            continue
        for kid in kids:
            found.append(kid)
            found.extend(descendants(kid))
    return found


def cpu_seconds(pid):
    """utime + stime of one process (all its threads), from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Proc:
    def __init__(self, name, popen, log_path):
        self.name, self.popen, self.log_path = name, popen, log_path

    @property
    def pid(self):
        return self.popen.pid

    def tree(self):
        return [self.pid] + descendants(self.pid)

    def cpu(self):
        return sum(cpu_seconds(p) for p in self.tree())

    def rss(self):
        return sum(rss_bytes(p) for p in self.tree())

    def alive(self):
        return self.popen.poll() is None

    def log_tail(self, lines=20):
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Processes:
    """Every long-running process the harness starts; stop_all() stops them in reverse order."""

    def __init__(self, scratch):
        self.scratch = scratch
        self.procs = []

    def start(self, name, argv, cpus=None, env=None):
        cmd = (["taskset", "-c", cpus] if cpus else []) + [str(a) for a in argv]
        log_path = self.scratch / f"{name}.log"
        with open(log_path, "wb") as out:
            popen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True, cwd=self.scratch)
        proc = Proc(name, popen, log_path)
        self.procs.append(proc)
        return proc

    def stop(self, proc, grace=5.0):
        if proc not in self.procs:
            return
        self.procs.remove(proc)
        kids = descendants(proc.pid)
        if proc.alive():
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.popen.wait(timeout=5)
        for kid in kids:  # e.g. nginx workers, if the master did not take them down
            try:
                os.kill(kid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop_all(self):
        for proc in reversed(list(self.procs)):
            try:
                self.stop(proc)
            except Exception as e:  # keep stopping the others
                log(f"could not stop {proc.name} ({proc.pid}): {e}")


def run_tool(argv, timeout, cpus=None, env=None, check=True):
    """Runs a short-lived command (bounded by `timeout` seconds) and returns its stdout."""
    cmd = ["timeout", "-k", "5", str(int(timeout))] + (["taskset", "-c", cpus] if cpus else []) + [str(a) for a in argv]
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} exited {result.returncode}: {result.stderr.decode(errors='replace')[-600:]}")
    return result.stdout.decode(errors="replace")


def json_line(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise BenchError(f"no JSON in output: {text[-300:]!r}")


class Ports:
    def __init__(self):
        self.used = set()

    def take(self):
        for _ in range(100):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in self.used:
                self.used.add(port)
                return port
        raise BenchError("no free port")


def http_request(port, method, path, body=None, headers=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_http(port, path, timeout, proc=None, ok=lambda status: 200 <= status < 300):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise BenchError(f"{proc.name} exited ({proc.popen.returncode}) before {path} answered:\n{proc.log_tail()}")
        try:
            status, _ = http_request(port, "GET", path, timeout=2)
            if ok(status):
                return
            last = status
        except OSError as e:
            last = e
        time.sleep(0.02)
    raise BenchError(f"port {port} {path} not ready after {timeout}s (last: {last})"
                     + (f"\n{proc.log_tail()}" if proc else ""))


# ----------------------------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------------------------


def summary(values):
    """Median and range of the non-missing values (None when there are none)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def ratio(a, b):
    if a is None or b is None or b <= 0:
        return None
    return a / b


# ----------------------------------------------------------------------------------------------
# The environment: machine, tools, commit
# ----------------------------------------------------------------------------------------------


def first_line(argv, stream="stdout"):
    try:
        r = subprocess.run(["timeout", "10"] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    except OSError:
        return None
    text = (r.stdout if stream == "stdout" else r.stderr).decode(errors="replace").strip()
    if not text:
        text = (r.stderr if stream == "stdout" else r.stdout).decode(errors="replace").strip()
    return text.splitlines()[0].strip() if text else None


def machine_info():
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    os_name = None
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)),
        "memory_bytes": mem,
        "cpu_model": model,
        "kernel": platform.release(),
        "os": os_name,
        "loadavg_start": list(os.getloadavg()),
    }


def tool_versions(mecha):
    return {
        "mecha": first_line([mecha, "--version"]),
        "swift": first_line(["swift", "--version"]),
        "nginx": first_line(["nginx", "-v"], "stderr"),
        "haproxy": first_line(["haproxy", "-v"]),
        "wrk": first_line(["wrk", "-v"]),
        "h2load": first_line(["h2load", "--version"]),
        "redis-server": first_line(["redis-server", "--version"]),
        "hyperfine": first_line(["hyperfine", "--version"]),
        "gcc": first_line(["gcc", "--version"]),
        "python": platform.python_version(),
    }


def commit_info():
    def git(*a):
        r = subprocess.run(["git", "-C", str(ROOT)] + list(a), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        return r.stdout.decode().strip() if r.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"sha": sha or "unknown", "subject": git("log", "-1", "--format=%s"), "dirty": bool(status)}


# ----------------------------------------------------------------------------------------------
# The harness
# ----------------------------------------------------------------------------------------------


class Harness:
    def __init__(self, args, scratch):
        self.args = args
        self.scratch = scratch
        self.procs = Processes(scratch)
        self.ports = Ports()
        self.tools = {}
        self.results = {}
        self.run_counter = 0
        self.home = scratch / "mecha-home"
        self.home.mkdir()

    # ---- helpers ------------------------------------------------------------------------------

    def copy_binary(self):
        """Measures a private copy, so a rebuild during the run cannot swap the binary under it."""
        copy = self.scratch / "bin" / "mecha"
        copy.parent.mkdir()
        shutil.copy2(self.args.mecha, copy)
        self.args.mecha_source = self.args.mecha
        self.args.mecha = str(copy)

    def compile_tools(self):
        out = self.scratch / "tools"
        out.mkdir()
        for name, libs in [("loopback", []), ("pubsub", ["-lpthread"]), ("startup", []), ("sqlite_direct", ["-lsqlite3"])]:
            binary = out / name
            run_tool(["gcc", "-O2", "-Wall", "-o", binary, HERE / "tools" / f"{name}.c"] + libs, timeout=120)
            self.tools[name] = str(binary)

    def mecha_env(self):
        env = {k: v for k, v in os.environ.items() if k not in ("DAPR_API_TOKEN", "APP_API_TOKEN")}
        env["MECHA_HOME"] = str(self.home)
        return env

    def start_sidecar(self, name, app_id, app_port=None, home=None, extra=(), cpus="server"):
        home = home or self.home
        http_port = self.ports.take()
        argv = [self.args.mecha, "sidecar", "--app-id", app_id,
                "--dapr-http-port", http_port, "--dapr-grpc-port", self.ports.take(),
                "--dapr-internal-grpc-port", self.ports.take(), "--metrics-port", self.ports.take(),
                "--mecha-home", home, "--log-level", "warn", "--dapr-graceful-shutdown-seconds", "1"]
        if app_port:
            argv += ["--app-port", app_port]
        argv += list(extra)
        proc = self.procs.start(name, argv, cpus=self.cpus(cpus), env=self.mecha_env())
        proc.port = http_port
        return proc

    def cpus(self, which):
        return self.args.server_cpus if which == "server" else self.args.client_cpus if which == "client" else None

    def nginx_conf(self, name, port, upstream_port=None, sink=False, actors=False):
        d = self.scratch / name
        d.mkdir()
        user = "user root root;" if os.geteuid() == 0 else ""
        body = "x" * self.args.body_bytes
        # An actor host as daprd's app contract sees it: /dapr/config names the type, and
        # PUT /actors/Bench/<id>/method/<m> answers like any other path.
        config = """
        location = /dapr/config { default_type application/json; return 200 '{"entities":["Bench"]}'; }""" if actors else ""
        if sink:
            # The span sink: bodies kept in memory (no temporary files), answered 202.
            server = """
        client_body_buffer_size 8m;
        client_max_body_size 64m;
        location / { return 202; }"""
            upstream = ""
        elif upstream_port is None and self.args.upstream == "early":
            # `return` answers as soon as the headers are in, before the request body is read.
            server = f"""
        location = /dapr/subscribe {{ default_type application/json; return 200 '[]'; }}{config}
        location / {{ return 200 '{body}'; }}"""
            upstream = ""
        elif upstream_port is None:
            # Reads the whole request body first, as an app does: the mirror module reads it
            # (mirror_request_body) before the content phase; the static handler then finds no
            # file (404) or refuses the method (405), and error_page turns that into the reply.
            server = f"""
        location = /dapr/subscribe {{ default_type application/json; return 200 '[]'; }}{config}
        location = /_drained {{ internal; return 204; }}
        location / {{
            mirror /_drained;
            mirror_request_body on;
            log_not_found off;
            error_page 404 405 =200 @reply;
        }}
        location @reply {{ return 200 '{body}'; }}"""
            upstream = ""
        else:
            upstream = f"""
    upstream backend {{
        server 127.0.0.1:{upstream_port};
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }}"""
            server = """
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }"""
        conf = f"""# generated by Benchmarks/bench.py
{user}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type application/octet-stream;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    {upstream}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        {server}
    }}
}}
"""
        path = d / "nginx.conf"
        path.write_text(conf)
        return ["nginx", "-p", d, "-c", path, "-e", "stderr"]

    def haproxy_conf(self, name, port, upstream_port):
        path = self.scratch / f"{name}.cfg"
        path.write_text(f"""# generated by Benchmarks/bench.py
global
    nbthread 1
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
    http-reuse always
frontend in
    bind 127.0.0.1:{port}
    default_backend out
backend out
    http-reuse always
    server upstream 127.0.0.1:{upstream_port}
""")
        return ["haproxy", "-db", "-f", path]

    def wrk(self, port, path, rate, duration, kind="static", headers=(), connections=None, store="statestore", sample=()):
        """One wrk run; returns its summary plus the CPU seconds and peak RSS of `sample` procs."""
        out = self.scratch / f"wrk-{self.next_run()}.json"
        connections = connections or self.args.connections
        threads = min(self.args.wrk_threads, connections)
        env = dict(os.environ)
        env.update({
            "BENCH_RATE": str(rate), "BENCH_THREADS": str(threads), "BENCH_KIND": kind,
            "BENCH_METHOD": "POST", "BENCH_BODY_BYTES": str(self.args.body_bytes), "BENCH_HEADERS": "|".join(headers),
            "BENCH_STORE": store, "BENCH_KEYS": str(self.state_keys), "BENCH_OUT": str(out),
        })
        cmd = ["timeout", "-k", "5", str(duration + 30)] + (["taskset", "-c", self.args.client_cpus] if self.args.client_cpus else [])
        cmd += ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s",
                "--timeout", "10s", "-s", str(HERE / "wrk" / "bench.lua"), f"http://127.0.0.1:{port}{path}"]
        cpu_before = {p.name: p.cpu() for p in sample}
        rss_peak = {p.name: p.rss() for p in sample}
        popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, stdin=subprocess.DEVNULL)
        try:
            while popen.poll() is None:
                time.sleep(0.1)
                for p in sample:
                    rss_peak[p.name] = max(rss_peak[p.name], p.rss())
            stdout, stderr = popen.communicate()
        except BaseException:  # interrupted: stop this wrk (ours, by PID) before unwinding
            popen.kill()
            popen.wait()
            raise
        cpu = {p.name: p.cpu() - cpu_before[p.name] for p in sample}
        if popen.returncode != 0 or not out.exists():
            raise BenchError(f"wrk exited {popen.returncode}: {stderr.decode(errors='replace')[-500:]}")
        r = json.loads(out.read_text())
        lat = r["latency_us"]
        errors = sum(r["errors"].values())
        result = {
            "requests": r["requests"], "seconds": r["seconds"], "rps": r["rps"], "errors": errors,
            "error_detail": r["errors"],
            "p50_ms": lat["p50"] / 1000, "p75_ms": lat["p75"] / 1000, "p90_ms": lat["p90"] / 1000,
            "p99_ms": lat["p99"] / 1000, "p999_ms": lat["p999"] / 1000, "max_ms": lat["max"] / 1000,
            "mean_ms": lat["mean"] / 1000,
        }
        if sample:
            total_cpu = sum(cpu.values())
            result["cpu_s"] = total_cpu
            result["cpu_s_per_1000_req"] = total_cpu / (r["requests"] / 1000) if r["requests"] else None
            result["rss_peak_bytes"] = rss_peak
        if errors:
            log(f"  warning: {errors} errors ({r['errors']}) on :{port}{path}")
        return result

    def next_run(self):
        self.run_counter += 1
        return self.run_counter

    state_keys = 1000

    # ---- loopback floor -----------------------------------------------------------------------

    def bench_loopback(self):
        seconds = 0.5 if self.args.smoke else 3
        cpus = sorted(os.sched_getaffinity(0))
        pairs = [("same core", cpus[0], cpus[0])]
        if len(cpus) >= 2:
            pairs.append(("across cores", cpus[0], cpus[1]))
        out = {}
        for rep in range(self.args.reps):
            for label, a, b in pairs:
                r = json_line(run_tool([self.tools["loopback"], a, b, seconds], timeout=seconds + 30))
                out.setdefault(label, []).append(r)
        self.results["loopback"] = {
            label: {"round_trips": sum(r["round_trips"] for r in runs),
                    "rtt_p50_us": summary([r["p50_us"] for r in runs]),
                    "rtt_p99_us": summary([r["p99_us"] for r in runs]),
                    "runs": runs}
            for label, runs in out.items()
        }

    # ---- HTTP pass-through ----------------------------------------------------------------------

    def start_http_topology(self):
        """The upstream app, nginx/haproxy proxies (1 and 2 hops) and two Mecha sidecars."""
        a = self.args
        up_port = self.ports.take()
        self.upstream = self.procs.start("upstream-nginx", self.nginx_conf("upstream", up_port), cpus=a.server_cpus)
        self.upstream.port = up_port
        wait_http(up_port, "/", 20, self.upstream)

        def proxy(kind, name, upstream_port):
            port = self.ports.take()
            argv = self.nginx_conf(name, port, upstream_port) if kind == "nginx" else self.haproxy_conf(name, port, upstream_port)
            proc = self.procs.start(name, argv, cpus=a.server_cpus)
            proc.port = port
            wait_http(port, "/", 20, proc)
            return proc

        self.nginx_b = proxy("nginx", "nginx-b", up_port)
        self.nginx_a = proxy("nginx", "nginx-a", self.nginx_b.port)
        self.haproxy_b = proxy("haproxy", "haproxy-b", up_port)
        self.haproxy_a = proxy("haproxy", "haproxy-a", self.haproxy_b.port)

        # Sidecar B serves the app "server" (the upstream); sidecar A ("client") has no app and
        # finds B through name resolution in the shared --mecha-home.
        # The plain sidecars run without metrics: the observability rows below add them.
        self.mecha_b = self.start_sidecar("mecha-b", "server", app_port=up_port, extra=["--enable-metrics=false"])
        wait_http(self.mecha_b.port, "/v1.0/healthz", 60, self.mecha_b)
        self.mecha_a = self.start_sidecar("mecha-a", "client", extra=["--enable-metrics=false"])
        wait_http(self.mecha_a.port, "/v1.0/healthz", 60, self.mecha_a)
        # The same two hops in plaintext (mTLS is on by default): what mTLS costs.
        self.mecha_bp = self.start_sidecar("mecha-bp", "server-plain", app_port=up_port, extra=["--enable-metrics=false", "--enable-mtls=false"])
        wait_http(self.mecha_bp.port, "/v1.0/healthz", 60, self.mecha_bp)
        self.mecha_ap = self.start_sidecar("mecha-ap", "client-plain", extra=["--enable-metrics=false", "--enable-mtls=false"])
        wait_http(self.mecha_ap.port, "/v1.0/healthz", 60, self.mecha_ap)

        # The same app behind sidecars with governance on its target: a Resiliency timeout, retry
        # and circuit breaker on app "server-p", and a TrafficPolicy balancing it with peakEWMA.
        policies = self.scratch / "policies"
        policies.mkdir(exist_ok=True)
        (policies / "resiliency.yaml").write_text(POLICY_RESILIENCY)
        (policies / "traffic.yaml").write_text(POLICY_TRAFFIC)
        self.mecha_p = self.start_sidecar("mecha-p", "server-p", app_port=up_port, extra=["--resources-path", str(policies)])
        wait_http(self.mecha_p.port, "/v1.0/healthz", 60, self.mecha_p)
        self.mecha_pa = self.start_sidecar("mecha-pa", "client-p", extra=["--resources-path", str(policies)])
        wait_http(self.mecha_pa.port, "/v1.0/healthz", 60, self.mecha_pa)

        # Observability: metrics on; then tracing at sampling 0 and 1.
        self.mecha_m = self.start_sidecar("mecha-m", "server-m", app_port=up_port)
        wait_http(self.mecha_m.port, "/v1.0/healthz", 60, self.mecha_m)
        sink_port = self.ports.take()
        self.span_sink = self.procs.start("span-sink", self.nginx_conf("span-sink", sink_port, sink=True), cpus=a.client_cpus)
        wait_http(sink_port, "/", 20, self.span_sink)
        traced = {}
        for rate in ("0", "1"):
            config = self.scratch / f"tracing-{rate}.yaml"
            config.write_text(tracing_config(rate, sink_port))
            proc = self.start_sidecar(f"mecha-t{rate}", f"server-t{rate}", app_port=up_port, extra=["--config", str(config)])
            wait_http(proc.port, "/v1.0/healthz", 60, proc)
            traced[rate] = proc
        self.mecha_t0, self.mecha_t1 = traced["0"], traced["1"]

        # Actors: an app hosting type Bench behind its own sidecar, in a Mecha home of its own (the
        # other sidecars' apps host no actors); the client sidecar has no app.
        actor_up = self.ports.take()
        self.actor_upstream = self.procs.start("actor-upstream", self.nginx_conf("actor-upstream", actor_up, actors=True), cpus=a.server_cpus)
        wait_http(actor_up, "/", 20, self.actor_upstream)
        actor_home = self.scratch / "actor-home"
        actor_home.mkdir(exist_ok=True)
        self.mecha_actor_b = self.start_sidecar("mecha-actor-b", "actor-host", app_port=actor_up, home=actor_home, extra=["--enable-metrics=false"])
        wait_http(self.mecha_actor_b.port, "/v1.0/healthz", 60, self.mecha_actor_b)
        self.mecha_actor_a = self.start_sidecar("mecha-actor-a", "actor-client", home=actor_home, extra=["--enable-metrics=false"])
        wait_http(self.mecha_actor_a.port, "/v1.0/healthz", 60, self.mecha_actor_a)
        actor = "/v1.0/actors/Bench/a1/method/bench"

        invoke = "/v1.0/invoke/server/method/bench"
        invoke_p = "/v1.0/invoke/server-p/method/bench"
        header = ("dapr-app-id: server",)
        self.shapes = {
            # name: (hops, port, path, headers, processes on the path, reference)
            "direct": (0, up_port, "/bench", (), [], None),
            "mecha 1 hop (invoke URL)": (1, self.mecha_b.port, invoke, (), [self.mecha_b], "nginx 1 hop"),
            "mecha 1 hop (dapr-app-id)": (1, self.mecha_b.port, "/bench", header, [self.mecha_b], "nginx 1 hop"),
            "mecha 2 hops (invoke URL)": (2, self.mecha_a.port, invoke, (), [self.mecha_a, self.mecha_b], "nginx 2 hops"),
            "mecha 2 hops (dapr-app-id)": (2, self.mecha_a.port, "/bench", header, [self.mecha_a, self.mecha_b], "nginx 2 hops"),
            "mecha 2 hops without mTLS": (2, self.mecha_ap.port, "/v1.0/invoke/server-plain/method/bench", (), [self.mecha_ap, self.mecha_bp], "nginx 2 hops"),
            "mecha 1 hop with policies": (1, self.mecha_p.port, invoke_p, (), [self.mecha_p], "nginx 1 hop"),
            "mecha 2 hops with policies": (2, self.mecha_pa.port, invoke_p, (), [self.mecha_pa, self.mecha_p], "nginx 2 hops"),
            "mecha 1 hop with metrics": (1, self.mecha_m.port, "/v1.0/invoke/server-m/method/bench", (), [self.mecha_m], "mecha 1 hop (invoke URL)"),
            "mecha 1 hop with tracing 0": (1, self.mecha_t0.port, "/v1.0/invoke/server-t0/method/bench", (), [self.mecha_t0], "mecha 1 hop (invoke URL)"),
            "mecha 1 hop with tracing 1": (1, self.mecha_t1.port, "/v1.0/invoke/server-t1/method/bench", (), [self.mecha_t1], "mecha 1 hop (invoke URL)"),
            "mecha actor call (local)": (1, self.mecha_actor_b.port, actor, (), [self.mecha_actor_b], "mecha 1 hop (invoke URL)"),
            "mecha actor call (remote)": (2, self.mecha_actor_a.port, actor, (), [self.mecha_actor_a, self.mecha_actor_b], "mecha 2 hops (invoke URL)"),
            "nginx 1 hop": (1, self.nginx_b.port, "/bench", (), [self.nginx_b], None),
            "nginx 2 hops": (2, self.nginx_a.port, "/bench", (), [self.nginx_a, self.nginx_b], None),
            "haproxy 1 hop": (1, self.haproxy_b.port, "/bench", (), [self.haproxy_b], "nginx 1 hop"),
            "haproxy 2 hops": (2, self.haproxy_a.port, "/bench", (), [self.haproxy_a, self.haproxy_b], "nginx 2 hops"),
        }
        if a.shapes:
            wanted = {s.strip() for s in a.shapes.split(",")} | {"direct"}
            wanted |= {ref for name, s in self.shapes.items() if name in wanted and s[5] for ref in [s[5]]}
            self.shapes = {k: v for k, v in self.shapes.items() if k in wanted}

    def check_shape(self, name):
        hops, port, path, headers, _, _ = self.shapes[name]
        hdrs = dict(h.split(": ", 1) for h in headers)
        status, body = http_request(port, "POST", path, body=b"x" * self.args.body_bytes, headers=hdrs)
        if status != 200 or len(body) != self.args.body_bytes:
            raise BenchError(f"{name}: POST {path} answered {status} with {len(body)} bytes: {body[:200]!r}")

    def bench_http(self):
        a = self.args
        self.start_http_topology()
        processes = [self.upstream, self.nginx_a, self.nginx_b, self.haproxy_a, self.haproxy_b, self.mecha_a, self.mecha_b, self.mecha_p, self.mecha_pa]
        rss_idle = {p.name: p.rss() for p in processes}
        failed = {}
        for name in list(self.shapes):
            try:
                self.check_shape(name)
            except (BenchError, OSError) as e:
                failed[name] = str(e)
                log(f"  shape failed its check, skipped: {e}")
        shapes = [s for s in self.shapes if s not in failed]
        runs = {s: {"fixed": [], "saturated": []} for s in shapes}
        for rep in range(a.reps):
            order = shapes[rep % len(shapes):] + shapes[:rep % len(shapes)]
            for mode in ("fixed", "saturated"):
                for name in order:
                    hops, port, path, headers, on_path, _ = self.shapes[name]
                    rate = a.rate if mode == "fixed" else 0
                    log(f"rep {rep + 1}/{a.reps} {mode:9} {name}")
                    try:
                        if mode == "fixed" and a.warmup:
                            self.wrk(port, path, rate, a.warmup, headers=headers)
                        result = self.wrk(port, path, rate, a.duration, headers=headers, sample=on_path)
                    except BenchError as e:
                        log(f"  run failed: {e}")
                        result = {"error": str(e)}
                    for proc in on_path:
                        if not proc.alive():
                            result["error"] = f"{proc.name} exited ({proc.popen.returncode}): {proc.log_tail(5)}"
                            log(f"  {result['error']}")
                    runs[name][mode].append(result)
        rss_after = {p.name: p.rss() for p in processes}
        self.results["http"] = self.http_figures(shapes, runs, failed, rss_idle, rss_after)

    def http_figures(self, shapes, runs, failed, rss_idle, rss_after):
        reps = self.args.reps
        out = {"shapes": {}, "failed": failed, "rss_idle_bytes": rss_idle, "rss_after_bytes": rss_after}

        def value(name, mode, rep, key):
            r = runs.get(name, {}).get(mode, [])
            return r[rep][key] if rep < len(r) and r[rep].get("requests") else None

        for name in shapes:
            hops, _, _, _, on_path, ref = self.shapes[name]
            entry = {"hops": hops, "processes": [p.name for p in on_path], "reference": ref}
            for mode in ("fixed", "saturated"):
                rs = runs[name][mode]
                entry[mode] = {k: summary([r.get(k) for r in rs])
                               for k in ("rps", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "errors", "cpu_s_per_1000_req")}
                entry[mode]["runs"] = rs
            peaks = {}
            for r in runs[name]["fixed"]:
                for proc, rss in r.get("rss_peak_bytes", {}).items():
                    peaks[proc] = max(peaks.get(proc, 0), rss)
            entry["rss_peak_at_fixed_rate_bytes"] = peaks
            if hops:
                per_hop = {}
                for q in ("p50", "p90", "p99"):
                    deltas = [None if value(name, "fixed", i, f"{q}_ms") is None or value("direct", "fixed", i, f"{q}_ms") is None
                              else (value(name, "fixed", i, f"{q}_ms") - value("direct", "fixed", i, f"{q}_ms")) / hops
                              for i in range(reps)]
                    per_hop[f"added_{q}_ms_per_hop"] = summary(deltas)
                    if ref:
                        ref_hops = self.shapes[ref][0]
                        ratios = []
                        for i in range(reps):
                            mine, theirs = value(name, "fixed", i, f"{q}_ms"), value(ref, "fixed", i, f"{q}_ms")
                            direct = value("direct", "fixed", i, f"{q}_ms")
                            if None in (mine, theirs, direct):
                                ratios.append(None)
                            else:
                                ratios.append(ratio((mine - direct) / hops, (theirs - direct) / ref_hops))
                        per_hop[f"added_{q}_vs_reference"] = summary(ratios)
                entry["added_latency"] = per_hop
                sat = [ratio(value(name, "saturated", i, "rps"), value("direct", "saturated", i, "rps")) for i in range(reps)]
                entry["saturated_vs_direct"] = summary(sat)
                if ref:
                    entry["saturated_vs_reference"] = summary(
                        [ratio(value(name, "saturated", i, "rps"), value(ref, "saturated", i, "rps")) for i in range(reps)])
            out["shapes"][name] = entry
        return out

    # ---- state --------------------------------------------------------------------------------

    def bench_state(self):
        a = self.args
        sidecar = getattr(self, "mecha_b", None)
        if sidecar is None or not sidecar.alive():
            up = getattr(self, "upstream", None)
            sidecar = self.start_sidecar("mecha-state", "server", app_port=up.port if up else None)
            wait_http(sidecar.port, "/v1.0/healthz", 60, sidecar)
        value = '{"d":"' + "x" * max(0, a.body_bytes - 8) + '"}'
        items = ",".join(f'{{"key":"k{i}","value":{value}}}' for i in range(self.state_keys))
        status, body = http_request(sidecar.port, "POST", "/v1.0/state/statestore", body=f"[{items}]".encode(),
                                    headers={"Content-Type": "application/json"}, timeout=60)
        if status not in (200, 204):
            raise BenchError(f"state prepare: HTTP {status}: {body[:300]!r}")
        status, body = http_request(sidecar.port, "GET", "/v1.0/state/statestore/k1")
        if status != 200 or len(body) != len(value):
            raise BenchError(f"state check: HTTP {status}, {len(body)} bytes: {body[:100]!r}")
        direct_db = self.scratch / "direct-state.db"
        # Mecha stores keys as "<app id>||<key>"; the direct table holds the same keys.
        prefix = "server||"
        run_tool([self.tools["sqlite_direct"], direct_db, "prepare", self.state_keys, a.body_bytes, prefix], timeout=120)

        def mecha(op, rate, duration):
            kind = "state-get" if op == "get" else "state-set"
            return self.wrk(sidecar.port, "/", rate, duration, kind=kind, sample=[sidecar])

        def direct(op, rate, duration):
            r = json_line(run_tool([self.tools["sqlite_direct"], direct_db, op, rate, duration, self.state_keys,
                                    a.body_bytes, prefix], timeout=duration + 60, cpus=a.server_cpus))
            return {"requests": r["ops"], "rps": r["ops_per_s"], "errors": r["missing"],
                    "p50_ms": r["p50_us"] / 1000, "p90_ms": r["p90_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
                    "p999_ms": r["p999_us"] / 1000, "max_ms": r["max_us"] / 1000, "sqlite_version": r["sqlite_version"]}

        cases = [("mecha", "get"), ("mecha", "set"), ("direct", "get"), ("direct", "set")]
        runs = {f"{via} {op}": {"fixed": [], "saturated": []} for via, op in cases}
        for rep in range(a.reps):
            order = cases[rep % len(cases):] + cases[:rep % len(cases)]
            for via, op in order:
                fn = mecha if via == "mecha" else direct
                log(f"rep {rep + 1}/{a.reps} state {via} {op}")
                if a.warmup:
                    fn(op, a.rate, a.warmup)
                runs[f"{via} {op}"]["fixed"].append(fn(op, a.rate, a.duration))
                runs[f"{via} {op}"]["saturated"].append(fn(op, 0, a.duration))
        out = {"store": "state.sqlite (embedded, WAL)", "keys": self.state_keys, "value_bytes": a.body_bytes,
               "direct": "C + libsqlite3, same table layout and statements, one connection, one thread", "cases": {}}
        for case, modes in runs.items():
            out["cases"][case] = {mode: {k: summary([r.get(k) for r in rs]) for k in ("rps", "p50_ms", "p90_ms", "p99_ms", "errors")}
                                  for mode, rs in modes.items()}
            out["cases"][case]["runs"] = modes
            if case.startswith("mecha"):
                out["cases"][case]["cpu_s_per_1000_req"] = summary([r.get("cpu_s_per_1000_req") for r in modes["fixed"]])
        for op in ("get", "set"):
            m, d = runs[f"mecha {op}"]["fixed"], runs[f"direct {op}"]["fixed"]
            for q in ("p50", "p99"):
                out[f"{op}_added_{q}_ms"] = summary([x[f"{q}_ms"] - y[f"{q}_ms"] for x, y in zip(m, d)])
        self.results["state"] = out

    # ---- Redis (hook: measured once a state.redis component exists) ---------------------------

    redis_component_type = "state.redis"  # what the hook looks for (a test may point it at another type)

    def bench_redis(self):
        """Mecha's state API over a state.redis component vs redis-benchmark straight at the same
        redis-server. Until Mecha has that component type this only reports why it is skipped."""
        if not shutil.which("redis-server") or not shutil.which("redis-benchmark"):
            self.results["redis"] = {"skipped": "redis-server / redis-benchmark not installed"}
            return
        a = self.args
        port = self.ports.take()
        redis = self.procs.start("redis", ["redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "",
                                           "--appendonly", "no", "--protected-mode", "yes"], cpus=a.server_cpus)
        components = self.scratch / "redis-components"
        components.mkdir()
        (components / "redis.yaml").write_text(f"""apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: redisstore
spec:
  type: {self.redis_component_type}
  version: v1
  metadata:
  - name: redisHost
    value: 127.0.0.1:{port}
  - name: redisPassword
    value: ""
""")
        sidecar = self.start_sidecar("mecha-redis", "server", extra=["--resources-path", components])
        try:
            wait_http(sidecar.port, "/v1.0/healthz/outbound", 30, sidecar)
            status, body = http_request(sidecar.port, "GET", "/v1.0/metadata")
            types = [c.get("type") for c in json.loads(body).get("components", [])] if status == 200 else []
            if self.redis_component_type not in types:
                raise BenchError(f"{self.redis_component_type} not listed in /v1.0/metadata")
        except BenchError as e:
            self.procs.stop(sidecar)
            self.procs.stop(redis)
            reason = "no state.redis component"
            log(f"redis: skipped: {reason} ({str(e).splitlines()[-1][:200]})")
            self.results["redis"] = {"skipped": reason}
            return
        # From here on: runs once Mecha has a state.redis component.
        value = '{"d":"' + "x" * max(0, a.body_bytes - 8) + '"}'
        items = ",".join(f'{{"key":"k{i}","value":{value}}}' for i in range(self.state_keys))
        status, body = http_request(sidecar.port, "POST", "/v1.0/state/redisstore", body=f"[{items}]".encode(),
                                    headers={"Content-Type": "application/json"}, timeout=60)
        if status not in (200, 204):
            raise BenchError(f"redis state prepare: HTTP {status}: {body[:300]!r}")

        def direct(op, connections):
            csv = run_tool(["redis-benchmark", "-h", "127.0.0.1", "-p", port, "-c", connections,
                            "-n", max(10000, (5000 if connections == 1 else 20000) * a.duration),
                            "-d", a.body_bytes, "-r", self.state_keys, "-t", op, "--csv"],
                           timeout=a.duration * 10 + 60, cpus=a.client_cpus)
            # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
            rows = [line for line in csv.splitlines() if line.upper().startswith(f'"{op.upper()}"')]
            fields = [f.strip('"') for f in rows[0].split(",")] if rows else []
            if len(fields) < 8:
                raise BenchError(f"redis-benchmark output not understood: {csv[-300:]!r}")
            return {"rps": float(fields[1]), "p50_ms": float(fields[4]), "p99_ms": float(fields[6])}

        cases = [(via, op, c) for c in (1, a.connections) for op in ("get", "set") for via in ("mecha", "direct")]
        runs = {f"{via} {op}, {c} connection(s)": [] for via, op, c in cases}
        for rep in range(a.reps):
            for via, op, c in cases:
                log(f"rep {rep + 1}/{a.reps} redis {via} {op} {c} connection(s)")
                if via == "mecha":
                    r = self.wrk(sidecar.port, "/", 0, a.duration, kind=f"state-{op}", store="redisstore", connections=c,
                                 sample=[sidecar])
                else:
                    r = direct(op, c)
                runs[f"{via} {op}, {c} connection(s)"].append(r)
        out = {"store": self.redis_component_type, "direct": "redis-benchmark at the same redis-server, same connections",
               "mode": "saturated (back to back)", "cases": {}}
        for case, rs in runs.items():
            out["cases"][case] = {k: summary([r.get(k) for r in rs]) for k in ("rps", "p50_ms", "p99_ms")}
            out["cases"][case]["runs"] = rs
        for op in ("get", "set"):
            m, d = runs[f"mecha {op}, 1 connection(s)"], runs[f"direct {op}, 1 connection(s)"]
            out[f"{op}_added_p50_ms"] = summary([x["p50_ms"] - y["p50_ms"] for x, y in zip(m, d)])
        self.results["redis"] = out
        self.procs.stop(sidecar)
        self.procs.stop(redis)

    # ---- pub/sub ------------------------------------------------------------------------------

    def bench_pubsub(self):
        a = self.args
        sub_port = self.ports.take()
        sub = self.procs.start("subscriber-app", [self.tools["pubsub"], "sub", sub_port, "pubsub", "bench"], cpus=a.server_cpus)
        wait_http(sub_port, "/stats", 10, sub)
        sidecar = self.start_sidecar("mecha-sub", "subscriber", app_port=sub_port)
        wait_http(sidecar.port, "/v1.0/healthz", 60, sidecar)
        publisher_sidecar = getattr(self, "mecha_a", None)
        if publisher_sidecar is None or not publisher_sidecar.alive():
            publisher_sidecar = self.start_sidecar("mecha-pub", "publisher")
            wait_http(publisher_sidecar.port, "/v1.0/healthz", 60, publisher_sidecar)
        path = "/v1.0/publish/pubsub/bench"
        # A first event checks the path end to end.
        self.publish_round(sub_port, sidecar.port, path, rate=10, connections=1, duration=1, drain=30)

        def measure(label, port, rate, connections, drain):
            log(f"{label}")
            return self.publish_round(sub_port, port, path, rate, connections, a.duration, drain, sample=[sidecar])

        cases = [("same sidecar", sidecar.port), ("across sidecars", publisher_sidecar.port)]
        runs = {"same sidecar": [], "across sidecars": [], "saturated": []}
        for rep in range(a.reps):
            order = cases[rep % 2:] + cases[:rep % 2]
            for label, port in order:
                runs[label].append(measure(f"rep {rep + 1}/{a.reps} pubsub {label} at {a.pubsub_rate}/s",
                                           port, a.pubsub_rate, a.connections, drain=10 + a.duration))
            runs["saturated"].append(measure(f"rep {rep + 1}/{a.reps} pubsub saturated", sidecar.port, 0, a.connections,
                                             drain=15 if a.smoke else 60))
        out = {"component": "pubsub.sqlite (embedded)", "rate": a.pubsub_rate, "connections": a.connections,
               "body_bytes": a.body_bytes, "cases": {}}
        keys = ("published_per_s", "delivered_per_s", "delivery_p50_ms", "delivery_p90_ms", "delivery_p99_ms",
                "publish_p50_ms", "publish_p99_ms", "lost", "duplicates", "publish_errors",
                "subscriber_sidecar_cpu_s_per_1000_msgs")
        for label, rs in runs.items():
            out["cases"][label] = {k: summary([r.get(k) for r in rs]) for k in keys}
            out["cases"][label]["runs"] = rs
        self.results["pubsub"] = out

    def publish_round(self, sub_port, port, path, rate, connections, duration, drain, sample=()):
        run_id = self.next_run()
        status, _ = http_request(sub_port, "POST", f"/reset?run={run_id}")
        if status != 200:
            raise BenchError("subscriber reset failed")
        cpu_before = {p.name: p.cpu() for p in sample}
        pub = json_line(run_tool([self.tools["pubsub"], "pub", port, path, rate, connections, duration, run_id,
                                  self.args.body_bytes], timeout=duration + 60, cpus=self.args.client_cpus))
        deadline = time.monotonic() + drain
        while True:
            stats = json.loads(http_request(sub_port, "GET", "/stats")[1])
            if stats["unique"] >= pub["ok"] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        time.sleep(0.2)  # late duplicates
        stats = json.loads(http_request(sub_port, "GET", "/stats")[1])
        cpu = sum(p.cpu() - cpu_before[p.name] for p in sample)
        span = (stats["last_ns"] - stats["first_ns"]) / 1e9
        result = {
            "published": pub["ok"], "publish_errors": pub["errors"], "published_per_s": pub["ok_per_s"],
            "publish_p50_ms": pub["p50_us"] / 1000, "publish_p99_ms": pub["p99_us"] / 1000,
            "delivered": stats["unique"], "duplicates": stats["duplicates"], "lost": max(0, pub["ok"] - stats["unique"]),
            "delivered_per_s": stats["unique"] / span if span > 0 else None,
            "delivery_p50_ms": stats["p50_us"] / 1000, "delivery_p90_ms": stats["p90_us"] / 1000,
            "delivery_p99_ms": stats["p99_us"] / 1000, "delivery_max_ms": stats["max_us"] / 1000,
            "stale": stats["stale"], "bad": stats["bad"],
        }
        if sample:
            result["subscriber_sidecar_cpu_s_per_1000_msgs"] = cpu / (stats["unique"] / 1000) if stats["unique"] else None
        if result["lost"] or pub["errors"] or stats["bad"]:
            log(f"  warning: published {pub['ok']} (errors {pub['errors']}), delivered {stats['unique']}, bad {stats['bad']}")
        if stats["unique"] == 0:
            raise BenchError(f"pub/sub: nothing delivered ({pub}, {stats})")
        return result

    # ---- startup ------------------------------------------------------------------------------

    def bench_startup(self):
        a = self.args
        runs_n = 3 if a.smoke else 10
        existing = self.scratch / "startup-home"
        existing.mkdir()

        def once(home, label):
            port = self.ports.take()
            argv = [self.args.mecha, "sidecar", "--app-id", f"startup{self.next_run()}", "--dapr-http-port", port,
                    "--dapr-grpc-port", self.ports.take(), "--dapr-internal-grpc-port", self.ports.take(),
                    "--metrics-port", self.ports.take(), "--mecha-home", home, "--log-level", "warn",
                    "--dapr-graceful-shutdown-seconds", "1"]
            r = json_line(run_tool([self.tools["startup"], port, 60] + argv, timeout=120, env=self.mecha_env(), check=False))
            if not r.get("ok"):
                raise BenchError(f"startup probe ({label}) failed: {r}")
            return r

        once(existing, "prime")  # creates the database and tables once
        fresh, warm = [], []
        for i in range(runs_n):
            home = self.scratch / f"startup-fresh-{i}"
            fresh.append(once(home, "fresh"))
            warm.append(once(existing, "existing"))
        out = {
            "what": "exec → first 2xx on GET /v1.0/healthz/outbound, embedded default components, no app",
            "fresh_home_ms": summary([r["startup_ms"] for r in fresh]),
            "existing_home_ms": summary([r["startup_ms"] for r in warm]),
            "shutdown_after_sigterm_ms": summary([r["shutdown_ms"] for r in fresh + warm]),
            "runs": {"fresh": fresh, "existing": warm},
        }
        # The process-start floor: exec of the binary to exit, `mecha --version`, with hyperfine.
        if shutil.which("hyperfine"):
            export = self.scratch / "hyperfine.json"
            run_tool(["hyperfine", "-N", "--warmup", "2", "--runs", runs_n * 2, "--export-json", export,
                      f"{self.args.mecha} --version"], timeout=300)
            h = json.loads(export.read_text())["results"][0]
            out["exec_version_ms"] = {"median": h["median"] * 1000, "min": h["min"] * 1000, "max": h["max"] * 1000,
                                      "n": len(h.get("times", []))}
        self.results["startup"] = out

    # ---- binary -------------------------------------------------------------------------------

    def bench_binary(self):
        size = os.path.getsize(self.args.mecha)
        out = {"path": self.args.mecha_source, "bytes": size, "build": self.args.build_config}
        stripped = self.scratch / "mecha.stripped"
        try:
            run_tool(["strip", "-o", stripped, self.args.mecha], timeout=300)
            out["stripped_bytes"] = os.path.getsize(stripped)
            stripped.unlink()
        except (BenchError, OSError) as e:
            log(f"strip failed: {e}")
        self.results["binary"] = out

    # ---- memory summary -----------------------------------------------------------------------

    def memory_summary(self):
        http = self.results.get("http")
        if not http or "error" in http:
            return
        out = {}
        for proc in ("mecha-a", "mecha-b", "mecha-m", "mecha-t0", "mecha-t1", "nginx-a", "nginx-b", "haproxy-a", "haproxy-b", "upstream-nginx"):
            peak = 0
            for entry in http["shapes"].values():
                peak = max(peak, entry.get("rss_peak_at_fixed_rate_bytes", {}).get(proc, 0))
            out[proc] = {"idle_bytes": http["rss_idle_bytes"].get(proc), "at_fixed_rate_peak_bytes": peak or None,
                         "after_load_bytes": http["rss_after_bytes"].get(proc)}
        self.results["memory"] = out

    # ---- the run ------------------------------------------------------------------------------

    def run(self):
        a = self.args
        self.copy_binary()
        self.compile_tools()
        sections = {
            "loopback": self.bench_loopback, "http": self.bench_http, "state": self.bench_state,
            "redis": self.bench_redis, "pubsub": self.bench_pubsub, "startup": self.bench_startup,
            "binary": self.bench_binary,
        }
        errors = {}
        for name in SECTIONS:
            if name not in a.sections:
                continue
            log(f"== {name}")
            started = time.monotonic()
            try:
                sections[name]()
            except (BenchError, OSError, ValueError, KeyError) as e:
                errors[name] = str(e)
                self.results[name] = {"error": str(e)}
                log(f"{name} failed: {e}")
            log(f"   {name} took {time.monotonic() - started:.0f} s")
        self.memory_summary()
        return errors


# ----------------------------------------------------------------------------------------------
# Reporting
# ----------------------------------------------------------------------------------------------


def fmt(s, scale=1.0, digits=2, suffix=""):
    """'median [min–max]' of a summary."""
    if s is None:
        return "–"
    if isinstance(s, (int, float)):
        return f"{s * scale:.{digits}f}{suffix}"
    med = f"{s['median'] * scale:.{digits}f}"
    if s["n"] > 1:
        return f"{med} [{s['min'] * scale:.{digits}f}–{s['max'] * scale:.{digits}f}]{suffix}"
    return med + suffix


def mb(x):
    return "–" if not x else f"{x / 1048576:.1f}"


def markdown(doc):
    s = doc["settings"]
    m = doc["machine"]
    lines = [f"# Mecha benchmark — {doc['date']}", ""]
    lines.append(f"- commit `{doc['commit']['sha'][:12]}`{' (dirty tree)' if doc['commit']['dirty'] else ''}: "
                 f"{doc['commit'].get('subject') or ''}")
    lines.append(f"- mode **{doc['mode']}**, mecha **{doc['build']}** build; {s['reps']} repetition(s), {s['duration_s']} s per "
                 f"measurement, {s['warmup_s']} s warm-up; {s['rate']} rps fixed rate, {s['connections']} connections, "
                 f"{s['body_bytes']} B bodies; proxies + upstream on CPU {s['server_cpus']}, load generator on CPU "
                 f"{s['client_cpus']} ({s['wrk_threads']} wrk thread(s))")
    lines.append(f"- machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_bytes'] / 2**30:.1f} GiB, {m['os']}, "
                 f"kernel {m['kernel']}; load average at start {m['loadavg_start'][0]:.2f}, end {m.get('loadavg_end', [0])[0]:.2f}")
    lines.append("- tools: " + "; ".join(f"{k} {v}" for k, v in doc["tools"].items() if v))
    lines.append("- cells are `median [min–max]` over the repetitions; ratios are computed within each repetition")
    if doc["mode"] == "smoke" or doc["build"] != "release":
        lines.append("- **smoke / debug figures check the harness only; they say nothing about Mecha's performance**")
    if doc.get("errors"):
        lines.append("- **sections that failed:** " + "; ".join(f"{k}: {v.splitlines()[0][:200]}" for k, v in doc["errors"].items()))
    lines.append("")
    r = doc["results"]

    lb = r.get("loopback")
    if lb and "error" not in lb:
        lines += ["## Loopback floor (1-byte TCP ping-pong, round trip)", "", "| pair | RTT p50 µs | RTT p99 µs |", "|---|---|---|"]
        for label, e in lb.items():
            lines.append(f"| {label} | {fmt(e['rtt_p50_us'], digits=1)} | {fmt(e['rtt_p99_us'], digits=1)} |")
        lines.append("")

    h = r.get("http")
    if h and "error" not in h:
        lines += [f"## HTTP pass-through at a fixed {s['rate']} rps, {s['connections']} connections, POST {s['body_bytes']} B → {s['body_bytes']} B", "",
                  "| shape | rps | p50 ms | p90 ms | p99 ms | added p50 / hop ms | added p99 / hop ms | p50 Δ ÷ nginx Δ | p99 Δ ÷ nginx Δ | CPU s / 1000 req | errors |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, e in h["shapes"].items():
            f = e["fixed"]
            al = e.get("added_latency", {})
            lines.append(f"| {name} | {fmt(f['rps'], digits=0)} | {fmt(f['p50_ms'], digits=3)} | {fmt(f['p90_ms'], digits=3)} | "
                         f"{fmt(f['p99_ms'], digits=3)} | {fmt(al.get('added_p50_ms_per_hop'), digits=3)} | "
                         f"{fmt(al.get('added_p99_ms_per_hop'), digits=3)} | {fmt(al.get('added_p50_vs_reference'))} | "
                         f"{fmt(al.get('added_p99_vs_reference'))} | {fmt(f['cpu_s_per_1000_req'], digits=3)} | "
                         f"{fmt(f['errors'], digits=0)} |")
        lines += ["", "Δ = the shape's latency minus direct's in the same repetition, divided by its hops; "
                  "÷ nginx Δ compares with nginx over the same number of hops (target ≤ 1.2 at p50, ≤ 1.5 at p99). "
                  "CPU = utime+stime of the proxy processes on the path (both sidecars for two hops) per 1000 requests "
                  "= vCPU at 1000 rps (target ≤ 0.06 per hop).", ""]
        lines += [f"## Saturated throughput ({s['connections']} connections, proxies + upstream pinned to CPU {s['server_cpus']})", "",
                  "| shape | rps | p50 ms | p99 ms | rps ÷ direct | ÷ nginx's ratio | errors |", "|---|---|---|---|---|---|---|"]
        for name, e in h["shapes"].items():
            f = e["saturated"]
            lines.append(f"| {name} | {fmt(f['rps'], digits=0)} | {fmt(f['p50_ms'], digits=3)} | {fmt(f['p99_ms'], digits=3)} | "
                         f"{fmt(e.get('saturated_vs_direct'))} | {fmt(e.get('saturated_vs_reference'))} | {fmt(f['errors'], digits=0)} |")
        lines += ["", "÷ nginx's ratio = (rps ÷ direct) ÷ (nginx's rps ÷ direct) over the same hops (target ≥ 0.8). "
                  "The observability rows (with metrics; with tracing 0/1, which also have metrics) compare with "
                  "'mecha 1 hop (invoke URL)', whose sidecars run with --enable-metrics=false (targets: ≥ 0.95 with "
                  "metrics, ≥ 0.85 with full sampling). Sidecar-to-sidecar hops are mTLS (the default) except in "
                  "'mecha 2 hops without mTLS' (--enable-mtls=false on both sidecars).", ""]
        if h.get("failed"):
            lines += ["Shapes that failed their check: " + "; ".join(f"{k}: {v[:200]}" for k, v in h["failed"].items()), ""]

    mem = r.get("memory")
    if mem:
        lines += ["## Memory (VmRSS, MB)", "", "| process | idle | peak at fixed rate | after the load |", "|---|---|---|---|"]
        for proc, e in mem.items():
            lines.append(f"| {proc} | {mb(e['idle_bytes'])} | {mb(e['at_fixed_rate_peak_bytes'])} | {mb(e['after_load_bytes'])} |")
        lines += ["", "mecha-b serves the app (1 hop, and the second of 2 hops); mecha-a is the caller's sidecar in 2 hops; "
                  "both run without metrics. mecha-m serves the same app with metrics, mecha-t0/t1 with metrics and tracing at sampling 0/1. "
                  "nginx figures are master + worker. Target for Mecha: ≤ 20 MB idle, ≤ 30 MB at 1000 rps.", ""]

    st = r.get("startup")
    b = r.get("binary")
    if (st and "error" not in st) or (b and "error" not in b):
        lines += ["## Startup and binary", "", "| figure | value |", "|---|---|"]
        if st and "error" not in st:
            lines.append(f"| exec → first 2xx on /v1.0/healthz/outbound, new --mecha-home (ms) | {fmt(st['fresh_home_ms'], digits=1)} |")
            lines.append(f"| same, existing --mecha-home (ms) | {fmt(st['existing_home_ms'], digits=1)} |")
            lines.append(f"| SIGTERM → exit (ms) | {fmt(st['shutdown_after_sigterm_ms'], digits=1)} |")
            if st.get("exec_version_ms"):
                lines.append(f"| `mecha --version` exec → exit, hyperfine (ms) | {fmt(st['exec_version_ms'], digits=1)} |")
        if b and "error" not in b:
            lines.append(f"| binary size ({b['build']}) | {mb(b['bytes'])} MB |")
            if b.get("stripped_bytes"):
                lines.append(f"| stripped | {mb(b['stripped_bytes'])} MB |")
        lines += ["", "Target: startup ≤ 50 ms without external components.", ""]

    sr = r.get("state")
    if sr and "error" not in sr:
        lines += [f"## State ({sr['store']}, {sr['keys']} keys, {sr['value_bytes']} B values)", "",
                  f"| case | fixed {s['rate']}/s p50 ms | p90 ms | p99 ms | saturated ops/s | saturated p50 ms |",
                  "|---|---|---|---|---|---|"]
        for case, e in sr["cases"].items():
            lines.append(f"| {case} | {fmt(e['fixed']['p50_ms'], digits=3)} | {fmt(e['fixed']['p90_ms'], digits=3)} | "
                         f"{fmt(e['fixed']['p99_ms'], digits=3)} | {fmt(e['saturated']['rps'], digits=0)} | "
                         f"{fmt(e['saturated']['p50_ms'], digits=3)} |")
        lines += ["", f"Mecha's added latency over direct SQLite at {s['rate']}/s: GET p50 {fmt(sr.get('get_added_p50_ms'), 1000, 0)} µs, "
                  f"p99 {fmt(sr.get('get_added_p99_ms'), 1000, 0)} µs; SET p50 {fmt(sr.get('set_added_p50_ms'), 1000, 0)} µs, "
                  f"p99 {fmt(sr.get('set_added_p99_ms'), 1000, 0)} µs. Mecha is driven by wrk over HTTP ({s['connections']} "
                  f"connections); direct is {sr['direct']} (no HTTP: compare with the direct HTTP row above for the HTTP floor). "
                  "Saturated Mecha uses 16 connections, direct one thread back to back.", ""]
    rd = r.get("redis")
    if rd:
        if "skipped" in rd:
            lines += ["## State against Redis", "", f"skipped: {rd['skipped']}", ""]
        elif "error" not in rd:
            lines += ["## State against Redis (saturated)", "", "| case | ops/s | p50 ms | p99 ms |", "|---|---|---|---|"]
            for case, e in rd["cases"].items():
                lines.append(f"| {case} | {fmt(e['rps'], digits=0)} | {fmt(e['p50_ms'], digits=3)} | {fmt(e['p99_ms'], digits=3)} |")
            lines += ["", f"Mecha's added p50 over direct Redis (1 connection): GET {fmt(rd.get('get_added_p50_ms'), 1000, 0)} µs, "
                      f"SET {fmt(rd.get('set_added_p50_ms'), 1000, 0)} µs (target for GET ≤ 60 µs). Direct: {rd['direct']}.", ""]

    ps = r.get("pubsub")
    if ps and "error" not in ps:
        lines += [f"## Pub/sub ({ps['component']}, {ps['body_bytes']} B events, {ps['connections']} publisher connections)", "",
                  "| case | published/s | delivered/s | delivery p50 ms | p90 ms | p99 ms | publish p50 ms | publish p99 ms | lost | duplicates | CPU s / 1000 msgs |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for case, e in ps["cases"].items():
            label = f"{case} at {ps['rate']}/s" if case != "saturated" else "saturated (same sidecar)"
            lines.append(f"| {label} | {fmt(e['published_per_s'], digits=0)} | {fmt(e['delivered_per_s'], digits=0)} | "
                         f"{fmt(e['delivery_p50_ms'], digits=2)} | {fmt(e['delivery_p90_ms'], digits=2)} | {fmt(e['delivery_p99_ms'], digits=2)} | "
                         f"{fmt(e['publish_p50_ms'], digits=3)} | {fmt(e['publish_p99_ms'], digits=3)} | {fmt(e['lost'], digits=0)} | "
                         f"{fmt(e['duplicates'], digits=0)} | {fmt(e['subscriber_sidecar_cpu_s_per_1000_msgs'], digits=3)} |")
        lines += ["", "Delivery latency = the publisher's send instant (in the event) to its arrival at the subscriber app "
                  "(CLOCK_MONOTONIC). *same sidecar*: the app publishes to the sidecar that delivers to the subscriber; "
                  "*across sidecars*: published through another sidecar sharing the database. Saturated: back-to-back "
                  "publishing; delivered/s is the subscriber's arrival rate from first to last event. CPU = the subscriber's "
                  "sidecar (which also takes the publishes in the *same sidecar* and saturated cases).", ""]

    tg = doc.get("targets")
    if tg:
        lines += ["## Targets (../shared/PERFORMANCE.md)", "", "| target | measured | met |", "|---|---|---|"]
        for t in tg:
            lines.append(f"| {t['target']} | {t['measured']} | {t['met']} |")
        lines.append("")
    return "\n".join(lines)


def targets(doc):
    r = doc["results"]
    out = []

    def add(target, s, ok, digits=2, scale=1.0, unit=""):
        if s is None:
            return
        out.append({"target": target, "measured": fmt(s, scale, digits, unit),
                    "met": "–" if doc["build"] != "release" or doc["mode"] == "smoke" else ("yes" if ok(s["median"]) else "no")})

    h = r.get("http", {}).get("shapes", {}) if "error" not in r.get("http", {}) else {}
    for name in ("mecha 1 hop (invoke URL)", "mecha 1 hop (dapr-app-id)"):
        e = h.get(name, {})
        al = e.get("added_latency", {})
        add(f"{name}: added p50 ≤ 1.2× nginx's", al.get("added_p50_vs_reference"), lambda v: v <= 1.2)
        add(f"{name}: added p99 ≤ 1.5× nginx's", al.get("added_p99_vs_reference"), lambda v: v <= 1.5)
        add(f"{name}: saturated rps ratio ≥ 0.8× nginx's", e.get("saturated_vs_reference"), lambda v: v >= 0.8)
        add(f"{name}: ≤ 0.06 vCPU per 1000 rps", e.get("fixed", {}).get("cpu_s_per_1000_req"), lambda v: v <= 0.06, 3)
    for name, reference in (("mecha actor call (local)", "mecha 1 hop (invoke URL)"), ("mecha actor call (remote)", "mecha 2 hops (invoke URL)")):
        e, ref = h.get(name, {}), h.get(reference, {})
        p50, ref_p50 = e.get("fixed", {}).get("p50_ms"), ref.get("fixed", {}).get("p50_ms")
        if p50 and ref_p50 and ref_p50.get("median"):
            ratio_ = {k: (p50[k] / ref_p50["median"]) for k in ("median", "min", "max")}
            ratio_["n"] = p50.get("n", 1)
            add(f"{name}: p50 ≤ 1.5× {reference}'s", ratio_, lambda v: v <= 1.5)
    mem = r.get("memory", {}).get("mecha-b")
    if mem and mem.get("idle_bytes"):
        add("mecha RSS idle ≤ 20 MB", {"median": mem["idle_bytes"], "min": mem["idle_bytes"], "max": mem["idle_bytes"], "n": 1},
            lambda v: v <= 20 * 2**20, 1, 1 / 2**20, " MB")
    if mem and mem.get("at_fixed_rate_peak_bytes"):
        v = mem["at_fixed_rate_peak_bytes"]
        add(f"mecha RSS at {doc['settings']['rate']} rps ≤ 30 MB", {"median": v, "min": v, "max": v, "n": 1},
            lambda x: x <= 30 * 2**20, 1, 1 / 2**20, " MB")
    st = r.get("startup", {})
    if "error" not in st:
        add("startup to healthy ≤ 50 ms", st.get("existing_home_ms"), lambda v: v <= 50, 1, unit=" ms")
    rd = r.get("redis", {})
    if rd.get("get_added_p50_ms"):
        add("state GET overhead over direct Redis ≤ 60 µs p50", rd["get_added_p50_ms"], lambda v: v <= 0.060, 0, 1000, " µs")
    sr = r.get("state", {})
    if "error" not in sr and sr.get("get_added_p50_ms"):
        add("state GET overhead ≤ 60 µs p50 (over direct SQLite here; the target is over direct Redis)",
            sr.get("get_added_p50_ms"), lambda v: v <= 0.060, 0, 1000, " µs")
    return out


# ----------------------------------------------------------------------------------------------
# Schema check (used by Benchmarks/selftest)
# ----------------------------------------------------------------------------------------------


def validate(path, require_complete):
    doc = json.loads(Path(path).read_text())
    problems = []

    def need(obj, key, kind, where):
        if not isinstance(obj, dict) or key not in obj:
            problems.append(f"{where}: missing {key}")
            return None
        if kind is not None and not isinstance(obj[key], kind):
            problems.append(f"{where}.{key}: expected {kind}, got {type(obj[key]).__name__}")
            return None
        return obj[key]

    def need_summary(obj, key, where):
        s = need(obj, key, dict, where)
        if s is not None:
            for k in ("median", "min", "max", "n"):
                if not isinstance(s.get(k), (int, float)):
                    problems.append(f"{where}.{key}.{k}: not a number")
            if not problems and not (s["min"] <= s["median"] <= s["max"]):
                problems.append(f"{where}.{key}: median outside its range")

    if need(doc, "schema", str, "doc") != SCHEMA:
        problems.append(f"schema is not {SCHEMA}")
    for key, kind in (("mode", str), ("build", str), ("date", str), ("commit", dict), ("machine", dict), ("tools", dict),
                      ("settings", dict), ("results", dict), ("errors", dict), ("targets", list)):
        need(doc, key, kind, "doc")
    need(doc.get("commit", {}), "sha", str, "commit")
    for key in ("nproc", "memory_bytes"):
        need(doc.get("machine", {}), key, int, "machine")
    for tool in ("nginx", "haproxy", "wrk", "mecha"):
        if not doc.get("tools", {}).get(tool):
            problems.append(f"tools.{tool}: missing version")
    results = doc.get("results", {})
    if require_complete:
        if doc.get("errors"):
            problems.append(f"sections failed: {doc['errors']}")
        for section in SECTIONS:
            if section not in results:
                problems.append(f"results.{section}: missing")
    lb = results.get("loopback")
    if isinstance(lb, dict) and "error" not in lb:
        for label, e in lb.items():
            need_summary(e, "rtt_p50_us", f"loopback.{label}")
    h = results.get("http")
    if isinstance(h, dict) and "error" not in h:
        shapes = need(h, "shapes", dict, "http") or {}
        expected = ["direct", "mecha 1 hop (invoke URL)", "mecha 1 hop (dapr-app-id)", "mecha 2 hops (invoke URL)",
                    "mecha 2 hops (dapr-app-id)", "nginx 1 hop", "nginx 2 hops", "haproxy 1 hop", "haproxy 2 hops"]
        if require_complete:
            for name in expected:
                if name not in shapes:
                    problems.append(f"http.shapes: missing {name!r}" + (f" ({h.get('failed', {}).get(name)})" if name in h.get("failed", {}) else ""))
        for name, e in shapes.items():
            for mode in ("fixed", "saturated"):
                m = need(e, mode, dict, f"http.{name}")
                if m is None:
                    continue
                for k in ("rps", "p50_ms", "p90_ms", "p99_ms", "errors"):
                    need_summary(m, k, f"http.{name}.{mode}")
                if require_complete and m.get("errors", {}).get("max", 0):
                    problems.append(f"http.{name}.{mode}: {m['errors']['max']} request errors")
                if require_complete and not m.get("rps", {}).get("median"):
                    problems.append(f"http.{name}.{mode}: no requests")
            if e.get("hops"):
                need_summary(e.get("added_latency", {}), "added_p50_ms_per_hop", f"http.{name}.added_latency")
                need_summary(e, "saturated_vs_direct", f"http.{name}")
                if e.get("processes"):
                    need_summary(e["fixed"], "cpu_s_per_1000_req", f"http.{name}.fixed")
    st = results.get("state")
    if isinstance(st, dict) and "error" not in st:
        for case in ("mecha get", "mecha set", "direct get", "direct set"):
            c = need(st.get("cases", {}), case, dict, "state.cases")
            if c:
                for mode in ("fixed", "saturated"):
                    need_summary(c.get(mode, {}), "p50_ms", f"state.{case}.{mode}")
                    need_summary(c.get(mode, {}), "rps", f"state.{case}.{mode}")
        need_summary(st, "get_added_p50_ms", "state")
    rd = results.get("redis")
    if isinstance(rd, dict) and "skipped" not in rd and "error" not in rd:
        need(rd, "cases", dict, "redis")
    ps = results.get("pubsub")
    if isinstance(ps, dict) and "error" not in ps:
        for case in ("same sidecar", "across sidecars", "saturated"):
            c = need(ps.get("cases", {}), case, dict, "pubsub.cases")
            if c:
                for k in ("delivered_per_s", "delivery_p50_ms", "delivery_p99_ms", "published_per_s"):
                    need_summary(c, k, f"pubsub.{case}")
    su = results.get("startup")
    if isinstance(su, dict) and "error" not in su:
        need_summary(su, "fresh_home_ms", "startup")
        need_summary(su, "existing_home_ms", "startup")
    b = results.get("binary")
    if isinstance(b, dict) and "error" not in b:
        need(b, "bytes", int, "binary")
    return problems


# ----------------------------------------------------------------------------------------------


def estimate_minutes(a):
    """A rough duration of the run (measurements plus per-run overheads)."""
    per = a.warmup + 2 * a.duration + 1.5
    seconds = {
        "loopback": a.reps * 2 * (0.5 if a.smoke else 3),
        "http": 9 * a.reps * per + 10,
        "state": 4 * a.reps * per + 5,
        "redis": 3,
        "pubsub": a.reps * (3 * a.duration + 8) + 8,
        "startup": 20 if not a.smoke else 6,
        "binary": 5,
    }
    return sum(v for k, v in seconds.items() if k in a.sections) / 60


def main(argv):
    args = parse_args(argv)
    if args.validate:
        problems = validate(args.validate, args.require_complete)
        for p in problems:
            print(f"schema problem: {p}", file=sys.stderr)
        print(f"{args.validate}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        return 1 if problems else 0

    for tool in ("nginx", "haproxy", "wrk", "gcc", "taskset", "timeout"):
        if not shutil.which(tool):
            print(f"missing tool: {tool} (Benchmarks/run installs it)", file=sys.stderr)
            return 2
    if not os.access(args.mecha, os.X_OK):
        print(f"not an executable: {args.mecha}", file=sys.stderr)
        return 2

    def on_signal(signum, frame):
        raise Interrupted(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    scratch = Path(tempfile.mkdtemp(prefix="mecha-bench-"))
    started = datetime.datetime.now(datetime.timezone.utc)
    doc = {
        "schema": SCHEMA,
        "mode": "smoke" if args.smoke else "full",
        "build": args.build_config,
        "date": started.isoformat(timespec="seconds"),
        "commit": commit_info(),
        "machine": machine_info(),
        "tools": tool_versions(args.mecha),
        "settings": {
            "reps": args.reps, "duration_s": args.duration, "warmup_s": args.warmup, "rate": args.rate,
            "connections": args.connections, "body_bytes": args.body_bytes, "pubsub_rate": args.pubsub_rate,
            "server_cpus": args.server_cpus, "client_cpus": args.client_cpus, "wrk_threads": args.wrk_threads,
            "sections": args.sections, "mecha": args.mecha, "upstream_reply": args.upstream,
        },
    }
    log(f"scratch {scratch}; mecha {args.mecha} ({args.build_config}); {args.reps} rep(s) × {args.duration} s; "
        f"expect about {estimate_minutes(args):.0f} min")
    harness = Harness(args, scratch)
    interrupted = None
    try:
        doc["errors"] = harness.run()
    except Interrupted as e:
        interrupted = str(e)
        doc["errors"] = {"interrupted": interrupted}
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        harness.procs.stop_all()
    doc["results"] = harness.results
    doc["machine"]["loadavg_end"] = list(os.getloadavg())
    doc["elapsed_s"] = round((datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(), 1)
    doc["targets"] = targets(doc)

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{started.strftime('%Y%m%d-%H%M%S')}-{doc['commit']['sha'][:8]}" + ("-smoke" if args.smoke else "")
    (out_dir / f"{stem}.json").write_text(json.dumps(doc, indent=2) + "\n")
    md = markdown(doc)
    (out_dir / f"{stem}.md").write_text(md + "\n")
    print(md)
    print(f"\nresults: {out_dir / stem}.json and .md ({doc['elapsed_s']:.0f} s)")
    if args.keep_scratch:
        print(f"scratch kept: {scratch}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    if interrupted:
        return 130
    return 1 if doc["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
