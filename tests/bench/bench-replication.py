#!/usr/bin/env python3
"""Replication benchmark: Isthmus against native NATS mirroring (issue 5).

Not a test: a command (scripts/bench-replication.sh). In one run, side by side
on this machine, with interleaved repetitions (every system once per round,
order rotating), for each payload kind:

  ceiling  one nats-server (file storage): asynchronous JetStream publish rate.
  native   two nats-servers with JetStream domains (iad, ams) joined by a
           leafnode that passes through the fault proxy (no faults: it counts
           the bytes); a mirror on ams of iad's stream ANCHOR, created with a
           raw $JS.API request using the external API prefix $JS.iad.API.
  isthmus  two more nats-servers (no leafnode), an isthmusd beside each, TLS+S2
           link through the fault proxy (ams dials iad through it).

Phases per pair (native, isthmus), each measured as deltas:
  catchup  200,000 messages published into iad's stream before replication
           starts (mirror created / daemons started); throughput from the first
           replicated message seen at the follower to the last one.
  live     steady publishing at --live-rate (20,000 msg/s) for --live-seconds;
           end-to-end lag (payload send stamp -> arrival at a JetStream push
           consumer on the follower's stream) p50/p99.
  max      unpaced publishing (as fast as acks allow, --inflight in flight):
           the rate the leader sustains with replication running, and the lag.
For each phase: bytes through the proxy (both directions), CPU seconds of
every process (utime+stime from /proc/<pid>/stat); at the end peak RSS
(VmHWM) of every process.

Payload kinds: `128` (stamped JSON of exactly 128 bytes, 96 of them random
base64) and `json` (the S2 benchmark's json_events with the stamp inserted).
Messages carry no headers.

Prints a Markdown table (median (min-max) over repetitions) and writes
raw.json and results.md into --out.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
SUBJECTS = "bench.a,bench.b,bench.c"
STREAM = "ANCHOR"
MIRROR = "ANCHOR_MIRROR"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


class Proc:
    """A child process we started, with its log; killed by pid on stop()."""

    def __init__(self, name, argv, logpath, stdout=None):
        self.name = name
        self.logf = open(logpath, "ab")
        self.p = subprocess.Popen(argv, stdout=stdout or self.logf, stderr=self.logf,
                                  stdin=subprocess.DEVNULL)

    @property
    def pid(self):
        return self.p.pid

    def cpu(self):
        with open(f"/proc/{self.pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / CLK_TCK

    def hwm_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.logf.close()


class Bench:
    def __init__(self, args):
        self.a = args
        self.out = None      # results directory (main() sets it)
        self.run_tag = ""    # r<rep>-<kind>-<system> of the run under way
        self.build = os.path.abspath(args.build)
        self.loadgen = os.path.join(self.build, "tests/tools/loadgen/isthmus-loadgen")
        self.isthmusd = args.isthmusd or os.path.join(self.build, "daemon/isthmusd")
        self.faultproxy = os.path.join(self.build, "tests/tools/faultproxy/faultproxy")
        self.nats = shutil.which("nats-server") or "/usr/sbin/nats-server"
        for exe in (self.loadgen, self.isthmusd, self.faultproxy, self.nats):
            if not os.access(exe, os.X_OK):
                sys.exit(f"bench-replication: missing executable {exe} (build first)")
        self.tmp = tempfile.mkdtemp(prefix="isthmus-bench-repl.")
        self.procs = []
        self.make_certs()

    # ----- processes -------------------------------------------------------
    def spawn(self, name, argv, logpath, stdout=None):
        p = Proc(name, argv, logpath, stdout)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in reversed(self.procs):
            p.stop()
        self.procs = []

    def lg(self, *argv, timeout=120, check=True):
        r = subprocess.run([self.loadgen, *argv], capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"loadgen {' '.join(argv[:1])} failed ({r.returncode}): {r.stdout[-500:]} {r.stderr[-500:]}")
        return r.stdout

    def nats_server(self, d, name, domain=None, leaf_listen=None, leaf_remote=None):
        os.makedirs(d, exist_ok=True)
        port, mon = free_port(), free_port()
        conf = [f'server_name: "{name}"', f'listen: "127.0.0.1:{port}"', f'http: "127.0.0.1:{mon}"',
                "jetstream {", f'  store_dir: "{d}/js"']
        if domain:
            conf.append(f"  domain: {domain}")
        conf.append("}")
        if leaf_listen:
            conf.append(f'leafnodes {{ listen: "127.0.0.1:{leaf_listen}" }}')
        if leaf_remote:
            conf.append(f'leafnodes {{ remotes: [ {{ url: "nats://{leaf_remote}" }} ] }}')
        with open(f"{d}/nats.conf", "w") as f:
            f.write("\n".join(conf) + "\n")
        p = self.spawn(f"nats-{name}", [self.nats, "-c", f"{d}/nats.conf"], f"{d}/nats.log")
        p.url = f"nats://127.0.0.1:{port}"
        p.mon = mon
        self.wait(20, f"nats-server {name}", lambda: subprocess.run(
            [self.loadgen, "ping", "--url", p.url], capture_output=True, timeout=5).returncode == 0)
        return p

    def wait(self, secs, what, fn):
        deadline = time.time() + secs
        while time.time() < deadline:
            try:
                if fn():
                    return
            except Exception:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"timed out waiting for {what} (logs in {self.tmp})")

    def proxy(self, d, target):
        os.makedirs(d, exist_ok=True)
        p = self.spawn("faultproxy", [self.faultproxy, "--listen", "127.0.0.1:0", "--target", target,
                                      "--control", "127.0.0.1:0"], f"{d}/faultproxy.log", stdout=subprocess.PIPE)
        line = p.p.stdout.readline().decode()
        m = re.match(r"listen=(\S+) control=(\S+)", line)
        if not m:
            raise RuntimeError(f"faultproxy did not start: {line!r}")
        p.listen, ctl = m.group(1), m.group(2)
        host, port = ctl.rsplit(":", 1)
        p.ctl = socket.create_connection((host, int(port)))
        p.ctlf = p.ctl.makefile("rw")
        return p

    @staticmethod
    def proxy_stats(p):
        p.ctlf.write("stats\n")
        p.ctlf.flush()
        line = p.ctlf.readline().split()
        if not line or line[0] != "ok":
            raise RuntimeError(f"faultproxy stats: {line}")
        return {k: int(v) for k, v in (f.split("=") for f in line[1:])}

    def make_certs(self):
        t = os.path.join(self.tmp, "tls")
        os.makedirs(t)
        run = lambda *c: subprocess.run(c, check=True, capture_output=True)
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", "2", "-subj", "/CN=bench CA", "-keyout", f"{t}/ca.key", "-out", f"{t}/ca.pem")
        for r in ("iad", "ams"):
            run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-subj", f"/CN={r}", "-keyout", f"{t}/{r}.key", "-out", f"{t}/{r}.csr")
            with open(f"{t}/{r}.ext", "w") as f:
                f.write(f"subjectAltName=DNS:{r}\nextendedKeyUsage=serverAuth,clientAuth\n")
            run("openssl", "x509", "-req", "-in", f"{t}/{r}.csr", "-CA", f"{t}/ca.pem", "-CAkey", f"{t}/ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{t}/{r}.ext", "-out", f"{t}/{r}.crt")
        self.tls = t

    # ----- measurement helpers ---------------------------------------------
    def snapshot(self, procs, proxy):
        s = {"t": time.time(), "cpu": {p.name: p.cpu() for p in procs}}
        if proxy:
            st = self.proxy_stats(proxy)
            s["bytes"] = st["a2b_bytes"] + st["b2a_bytes"]
            s["accepted"] = st["accepted"]
        return s

    @staticmethod
    def delta(a, b, msgs):
        d = {"msgs": msgs, "cpu_s": {k: b["cpu"][k] - a["cpu"].get(k, 0.0) for k in b["cpu"]}}
        if "bytes" in b:
            d["wire_bytes"] = b["bytes"] - a.get("bytes", 0)
        return d

    def payload_args(self, kind):
        if kind == "128":
            return ["--payload", "bytes", "--size", "128"]
        return ["--payload", "json_events"]

    def publish(self, url, kind, count, rate=0):
        argv = ["publish", "--url", url, "--subjects", SUBJECTS, "--count", str(count), "--index-header", "0",
                "--inflight", str(self.a.inflight), *self.payload_args(kind)]
        if rate:
            argv += ["--rate", str(rate)]
        out = self.lg(*argv, timeout=300)
        m = re.search(r"published (\d+) messages in ([\d.]+) s \((\d+) msg/s\), (\d+) failed", out)
        if not m or int(m.group(4)) != 0:
            raise RuntimeError(f"publish: {out}")
        return {"published": int(m.group(1)), "seconds": float(m.group(2)), "rate": float(m.group(3))}

    def create_stream(self, url, cfg):
        self.lg("create-stream", "--url", url, "--json", json.dumps(cfg))

    def anchor_cfg(self):
        return {"name": STREAM, "subjects": SUBJECTS.split(","), "retention": "limits", "storage": "file",
                "discard": "old", "num_replicas": 1}

    # ----- systems ---------------------------------------------------------
    def run_ceiling(self, kind, d):
        srv = self.nats_server(f"{d}/nats", "ceiling")
        self.create_stream(srv.url, self.anchor_cfg())
        a = self.snapshot([srv], None)
        pub = self.publish(srv.url, kind, self.a.catchup)
        b = self.snapshot([srv], None)
        res = {"publish": pub, "phases": {"publish": self.delta(a, b, pub["published"])},
               "rss_kib": {srv.name: srv.hwm_kib()}}
        return res

    def live_phase(self, leader_url, follower_url, follower_stream, kind, count, rate, procs, proxy, phase):
        argv = [self.loadgen, "lag", "--url", follower_url, "--stream", follower_stream,
                "--count", str(count), "--timeout", str(self.a.lag_timeout)]
        if self.a.lag_series:
            # One file per (repetition, kind, system, phase): arrival and lag
            # of every message, for tests/bench/lag-series.py.
            sdir = os.path.join(self.out, "lag-series")
            os.makedirs(sdir, exist_ok=True)
            argv += ["--series", os.path.join(sdir, f"{self.run_tag}-{phase}.txt")]
        lagp = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = lagp.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"lag consumer: {line!r} {lagp.stderr.read()}")
            a = self.snapshot(procs, proxy)
            pub = self.publish(leader_url, kind, count, rate)
            out, err = lagp.communicate(timeout=self.a.lag_timeout + 30)
        finally:
            if lagp.poll() is None:
                lagp.kill()
                lagp.wait()
        b = self.snapshot(procs, proxy)
        lag = json.loads(out.strip().splitlines()[-1])
        if lag["received"] < count:
            log(f"  WARNING: lag consumer got {lag['received']} of {count} messages")
        ph = self.delta(a, b, count)
        ph.update({"publish": pub, "lag": lag,
                   "seconds": (lag["last_ns"] / 1e9 - a["t"]) if lag["last_ns"] else b["t"] - a["t"]})
        return ph

    def catchup_phase(self, follower_url, follower_stream, start_fn, procs_fn, proxy):
        a = self.snapshot(procs_fn(), proxy)
        t0 = time.time_ns()
        watch = subprocess.Popen([self.loadgen, "wait-count", "--url", follower_url, "--stream", follower_stream,
                                  "--count", str(self.a.catchup), "--timeout", "120", "--interval-ms", "5"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            start_fn()
            out, err = watch.communicate(timeout=150)
        finally:
            if watch.poll() is None:
                watch.kill()
                watch.wait()
        w = json.loads(out.strip().splitlines()[-1])
        if not w["ok"]:
            raise RuntimeError(f"catch-up did not finish: {w} {err}")
        b = self.snapshot(procs_fn(), proxy)
        ph = self.delta(a, b, self.a.catchup)
        span = (w["done_ns"] - w["first_ns"]) / 1e9
        ph.update({"watch": w, "rate_from_first": (self.a.catchup - w["first_seq"]) / span if span > 0 else None,
                   "rate_from_start": self.a.catchup / ((w["done_ns"] - t0) / 1e9),
                   "first_after_s": (w["first_ns"] - t0) / 1e9})
        return ph

    def run_pair_phases(self, kind, leader, follower, follower_stream, procs_fn, proxy, start_fn):
        phases = {}
        phases["catchup"] = self.catchup_phase(follower.url, follower_stream, start_fn, procs_fn, proxy)
        procs = procs_fn()
        n_live = self.a.live_rate * self.a.live_seconds
        phases["live"] = self.live_phase(leader.url, follower.url, follower_stream, kind, n_live,
                                         self.a.live_rate, procs, proxy, "live")
        phases["max"] = self.live_phase(leader.url, follower.url, follower_stream, kind, self.a.max_count, 0,
                                        procs, proxy, "max")
        for p in procs:
            if not p.alive():
                raise RuntimeError(f"{p.name} exited during the run")
        return {"phases": phases, "rss_kib": {p.name: p.hwm_kib() for p in procs},
                "proxy_accepted": self.proxy_stats(proxy)["accepted"]}

    def run_native(self, kind, d):
        leaf_port = free_port()
        hub = self.nats_server(f"{d}/iad", "iad", domain="iad", leaf_listen=leaf_port)
        proxy = self.proxy(d, f"127.0.0.1:{leaf_port}")
        leaf = self.nats_server(f"{d}/ams", "ams", domain="ams", leaf_remote=proxy.listen)
        self.wait(20, "leafnode connected",
                  lambda: json.load(urllib.request.urlopen(f"http://127.0.0.1:{hub.mon}/leafz", timeout=2))
                  .get("leafnodes", 0) >= 1)
        self.create_stream(hub.url, self.anchor_cfg())
        self.publish(hub.url, kind, self.a.catchup)
        mirror = {"name": MIRROR, "storage": "file", "retention": "limits", "num_replicas": 1,
                  "mirror": {"name": STREAM, "external": {"api": "$JS.iad.API", "deliver": ""}}}
        return self.run_pair_phases(kind, hub, leaf, MIRROR, lambda: [hub, leaf], proxy,
                                    lambda: self.create_stream(leaf.url, mirror))

    def daemon_conf(self, d, region, nats_url, link_port, peer, peer_addr, http_port):
        t = self.tls
        conf = f"""[region]
name = "{region}"

[nats]
urls = ["{nats_url}"]
pending_bytes_limit = "{self.a.pending_bytes}"

[link]
listen = "127.0.0.1:{link_port}"
compression = "s2"
window_messages = {self.a.window_messages}
window_bytes = "{self.a.window_bytes}"
max_frame_bytes = "{self.a.max_frame}"

[link.tls]
ca = "{t}/ca.pem"
cert = "{t}/{region}.crt"
key = "{t}/{region}.key"

[[peers]]
name = "{peer}"
address = "{peer_addr}"

[http]
listen = "127.0.0.1:{http_port}"

[[streams]]
name = "{STREAM}"
leader = "iad"

[log]
level = "warn"
"""
        path = f"{d}/isthmusd-{region}.toml"
        with open(path, "w") as f:
            f.write(conf)
        subprocess.run([self.isthmusd, "--check-config", path], check=True, capture_output=True)
        return path

    def run_isthmus(self, kind, d):
        iad = self.nats_server(f"{d}/iad", "iad")
        ams = self.nats_server(f"{d}/ams", "ams")
        link_iad, link_ams = free_port(), free_port()
        proxy = self.proxy(d, f"127.0.0.1:{link_iad}")
        # "ams" sorts first, so ams dials iad: through the proxy.
        conf_iad = self.daemon_conf(d, "iad", iad.url, link_iad, "ams", f"127.0.0.1:{link_ams}", free_port())
        conf_ams = self.daemon_conf(d, "ams", ams.url, link_ams, "iad", proxy.listen, free_port())
        self.create_stream(iad.url, self.anchor_cfg())
        self.publish(iad.url, kind, self.a.catchup)
        daemons = []

        def start():
            daemons.append(self.spawn("isthmusd-iad", [self.isthmusd, "--config", conf_iad], f"{d}/isthmusd-iad.log"))
            daemons.append(self.spawn("isthmusd-ams", [self.isthmusd, "--config", conf_ams], f"{d}/isthmusd-ams.log"))

        res = self.run_pair_phases(kind, iad, ams, STREAM, lambda: [iad, ams, *daemons], proxy, start)
        if res["proxy_accepted"] < 1:
            raise RuntimeError("the link did not pass through the proxy")
        return res

    # ----- driver ----------------------------------------------------------
    def run(self):
        systems = {"ceiling": self.run_ceiling, "native": self.run_native, "isthmus": self.run_isthmus}
        order = [s for s in systems if s in self.a.systems]
        results = {k: {s: [] for s in systems} for k in self.a.kinds}
        loads = [loadavg()]
        started = time.time()
        for rep in range(self.a.reps):
            for kind in self.a.kinds:
                k = rep % len(order)
                rot = order[k:] + order[:k]
                for sysname in rot:
                    self.run_tag = f"r{rep}-{kind}-{sysname}"
                    d = os.path.join(self.tmp, self.run_tag)
                    os.makedirs(d)
                    log(f"rep {rep + 1}/{self.a.reps} {kind} {sysname} (load {loadavg()[0]:.2f})")
                    try:
                        r = systems[sysname](kind, d)
                        r["load_before"] = loads[-1]
                        loads.append(loadavg())
                        r["load_after"] = loads[-1]
                        results[kind][sysname].append(r)
                        log("  " + summary_line(sysname, r))
                    finally:
                        self.stop_all()
                    if not self.a.keep:
                        shutil.rmtree(d, ignore_errors=True)
        meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
                "minutes": (time.time() - started) / 60, "loadavg_samples": loads,
                "cpu": cpu_model(), "nproc": os.cpu_count(),
                "nats_server": subprocess.run([self.nats, "--version"], capture_output=True, text=True).stdout.strip(),
                "args": vars(self.a)}
        return meta, results


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def summary_line(sysname, r):
    if sysname == "ceiling":
        return f"ceiling {r['publish']['rate']:.0f} msg/s"
    ph = r["phases"]
    return (f"{sysname}: catch-up {ph['catchup']['rate_from_first']:.0f} msg/s; "
            f"live p50/p99 {ph['live']['lag']['p50_ms']:.1f}/{ph['live']['lag']['p99_ms']:.1f} ms; "
            f"max {ph['max']['publish']['rate']:.0f} msg/s p50/p99 {ph['max']['lag']['p50_ms']:.1f}/"
            f"{ph['max']['lag']['p99_ms']:.1f} ms; wire catch-up {ph['catchup'].get('wire_bytes', 0) / ph['catchup']['msgs']:.0f} B/msg; "
            f"rss {', '.join(f'{k} {v / 1024:.0f}' for k, v in r['rss_kib'].items())} MiB")


# ----- report ---------------------------------------------------------------
def med(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None, None
    return statistics.median(xs), min(xs), max(xs)


def fmt(xs, digits=0):
    m, lo, hi = med(xs)
    if m is None:
        return "-"
    f = f"{{:,.{digits}f}}"
    return f"{f.format(m)} ({f.format(lo)}-{f.format(hi)})"


def ratio(a, b, digits=2):
    ma, mb = med(a)[0], med(b)[0]
    if ma is None or not mb:
        return "-"
    return f"{ma / mb:.{digits}f}"


def cpu_per_m(phase):
    return {k: v / phase["msgs"] * 1e6 for k, v in phase["cpu_s"].items()}


def report(meta, results):
    out = []
    la = meta["loadavg_samples"]
    out.append(f"Measured {meta['date']} on {meta['nproc']} cores ({meta['cpu']}), {meta['nats_server']}; "
               f"{meta['args']['reps']} interleaved repetitions, {meta['minutes']:.1f} min; "
               f"load average (1 min) from {min(x[0] for x in la):.2f} to {max(x[0] for x in la):.2f} "
               f"(median {statistics.median(x[0] for x in la):.2f}).")
    out.append("")
    for kind, res in results.items():
        ce, na, ist = res["ceiling"], res["native"], res["isthmus"]
        if not ce or not na or not ist:
            continue
        title = "128-byte messages" if kind == "128" else "JSON events (json_events corpus)"
        out.append(f"### {title}")
        out.append("")
        out.append("| metric | ceiling | native mirror | isthmus | isthmus / native | isthmus / ceiling |")
        out.append("|---|---:|---:|---:|---:|---:|")
        ceil_rate = [r["publish"]["rate"] for r in ce]
        P = lambda rs, ph, f: [f(r["phases"][ph]) for r in rs]
        rows = []
        cu_n = P(na, "catchup", lambda p: p["rate_from_first"])
        cu_i = P(ist, "catchup", lambda p: p["rate_from_first"])
        rows.append(("async publish / catch-up, msg/s", fmt(ceil_rate), fmt(cu_n), fmt(cu_i), ratio(cu_i, cu_n),
                     ratio(cu_i, ceil_rate)))
        for ph, label in (("live", f"live {meta['args']['live_rate'] // 1000}k msg/s"), ("max", "max rate")):
            if ph == "max":
                rn = P(na, ph, lambda p: p["publish"]["rate"])
                ri = P(ist, ph, lambda p: p["publish"]["rate"])
                rows.append(("max rate: leader publish msg/s", fmt(ceil_rate), fmt(rn), fmt(ri), ratio(ri, rn),
                             ratio(ri, ceil_rate)))
            for q in ("p50_ms", "p99_ms"):
                ln = P(na, ph, lambda p: p["lag"][q])
                li = P(ist, ph, lambda p: p["lag"][q])
                rows.append((f"{label}: lag {q[:3]} ms", "", fmt(ln, 1), fmt(li, 1), ratio(li, ln), ""))
        for ph in ("catchup", "live", "max"):
            wn = P(na, ph, lambda p: p["wire_bytes"] / p["msgs"])
            wi = P(ist, ph, lambda p: p["wire_bytes"] / p["msgs"])
            rows.append((f"{ph}: wire bytes per message", "", fmt(wn), fmt(wi), ratio(wi, wn), ""))
        for ph in ("catchup", "live", "max"):
            tot_c = [sum(cpu_per_m(r["phases"]["publish"]).values()) for r in ce] if ph != "live" else []
            tot_n = P(na, ph, lambda p: sum(cpu_per_m(p).values()))
            tot_i = P(ist, ph, lambda p: sum(cpu_per_m(p).values()))
            rows.append((f"{ph}: CPU s per M msgs, all processes", fmt(tot_c, 1) if tot_c else "", fmt(tot_n, 1),
                         fmt(tot_i, 1), ratio(tot_i, tot_n), ratio(tot_i, tot_c) if tot_c else ""))
            procs = sorted(set(ist[0]["phases"][ph]["cpu_s"]) | set(na[0]["phases"][ph]["cpu_s"]))
            for pn in procs:
                vn = [cpu_per_m(r["phases"][ph]).get(pn) for r in na] if pn in na[0]["phases"][ph]["cpu_s"] else []
                vi = [cpu_per_m(r["phases"][ph]).get(pn) for r in ist] if pn in ist[0]["phases"][ph]["cpu_s"] else []
                rows.append((f"{ph}: CPU s per M msgs, {pn}", "", fmt(vn, 1) if vn else "", fmt(vi, 1) if vi else "",
                             "", ""))
        rss_names = sorted(set(ist[0]["rss_kib"]) | set(na[0]["rss_kib"]))
        rows.append(("peak RSS MiB, nats-server", fmt([r["rss_kib"]["nats-ceiling"] / 1024 for r in ce]), "", "",
                     "", ""))
        for pn in rss_names:
            vn = [r["rss_kib"][pn] / 1024 for r in na if pn in r["rss_kib"]]
            vi = [r["rss_kib"][pn] / 1024 for r in ist if pn in r["rss_kib"]]
            rows.append((f"peak RSS MiB, {pn}", "", fmt(vn) if vn else "", fmt(vi) if vi else "", "", ""))
        for row in rows:
            out.append("| " + " | ".join(row) + " |")
        out.append("")
        out.extend(targets(kind, ce, na, ist))
        out.append("")
    return "\n".join(out)


def p99_spread(ist, nat, resamples=4000):
    """How firm the p99 comparison is. A p99 over seconds of traffic on
    shared cores swings by tens of percent between repetitions (stalls that
    hit every process at once): the ratio of the medians with a bootstrap
    interval (repetitions resampled with replacement, each system on its
    own; fixed seed, so a run reports the same interval when re-read), and
    how many repetitions, taken pairwise in the order they ran, had
    Isthmus no worse than the native repetition next to it."""
    pairs = sum(1 for a, b in zip(ist, nat) if a <= b)
    if len(ist) < 3 or len(nat) < 3:
        return f"(Isthmus no worse in {pairs} of {min(len(ist), len(nat))} paired repetitions)"
    rng = random.Random(5)
    rs = sorted(statistics.median(rng.choices(ist, k=len(ist))) / statistics.median(rng.choices(nat, k=len(nat)))
                for _ in range(resamples))
    lo, hi = rs[int(0.05 * (resamples - 1))], rs[int(0.95 * (resamples - 1))]
    return (f"(ratio {statistics.median(ist) / statistics.median(nat):.2f}, 90% bootstrap interval "
            f"{lo:.2f}-{hi:.2f}; Isthmus no worse in {pairs} of {min(len(ist), len(nat))} paired repetitions)")


def targets(kind, ce, na, ist):
    """Issue 5's targets, judged on medians of this run."""
    m = lambda xs: med(xs)[0]
    ceil = m([r["publish"]["rate"] for r in ce])
    cu_i = m([r["phases"]["catchup"]["rate_from_first"] for r in ist])
    cu_n = m([r["phases"]["catchup"]["rate_from_first"] for r in na])
    p99_i = m([r["phases"]["live"]["lag"]["p99_ms"] for r in ist])
    p99_n = m([r["phases"]["live"]["lag"]["p99_ms"] for r in na])
    rss = max(v for r in ist for k, v in r["rss_kib"].items() if k.startswith("isthmusd")) / 1024
    yes = lambda ok: "**met**" if ok else "**not met**"
    lines = [f"Targets ({'128 B' if kind == '128' else 'JSON events'}, medians of this run):",
             f"- catch-up >= 70% of the ceiling: {cu_i / ceil:.0%} of the ceiling ({cu_i / cu_n:.0%} of native): "
             f"{yes(cu_i >= 0.7 * ceil)}",
             f"- live p99 lag at the steady rate no worse than native's: {p99_i:.1f} ms vs {p99_n:.1f} ms: "
             f"{yes(p99_i <= p99_n)}",
             "  " + p99_spread([r["phases"]["live"]["lag"]["p99_ms"] for r in ist],
                               [r["phases"]["live"]["lag"]["p99_ms"] for r in na])]
    if kind == "json":
        w = lambda rs: sum(r["phases"][ph]["wire_bytes"] for r in rs for ph in ("catchup", "live", "max"))
        lines.append(f"- wire bytes < 40% of native's (all phases): {w(ist) / w(na):.1%}: {yes(w(ist) < 0.4 * w(na))}")
    lines.append(f"- isthmusd peak RSS < 64 MiB: highest {rss:.1f} MiB: {yes(rss < 64)}")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--out", default=None, help="directory for results.md and raw.json (default BUILD/bench-replication)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--kinds", default="128,json", help="payload kinds: 128, json")
    ap.add_argument("--catchup", type=int, default=200000, help="messages pre-published for the catch-up")
    ap.add_argument("--live-rate", type=int, default=20000)
    ap.add_argument("--live-seconds", type=int, default=8)
    ap.add_argument("--max-count", type=int, default=200000, help="messages of the max-rate phase")
    ap.add_argument("--inflight", type=int, default=1024, help="unacknowledged publishes in flight")
    ap.add_argument("--lag-timeout", type=float, default=90)
    ap.add_argument("--pending-bytes", default="8MiB", help="isthmusd nats.pending_bytes_limit")
    ap.add_argument("--window-bytes", default="8MiB", help="isthmusd link.window_bytes")
    ap.add_argument("--window-messages", type=int, default=50000, help="isthmusd link.window_messages")
    ap.add_argument("--max-frame", default="8MiB", help="isthmusd link.max_frame_bytes")
    ap.add_argument("--systems", default="ceiling,native,isthmus", help="for development: a subset")
    ap.add_argument("--isthmusd", default=None, help="for development: another isthmusd binary")
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs (logs, stores)")
    ap.add_argument("--lag-series", action="store_true",
                    help="write every message's arrival and lag to OUT/lag-series/ (see tests/bench/lag-series.py)")
    ap.add_argument("--report", metavar="RAW_JSON", default=None,
                    help="run nothing: print the tables of an earlier run from its raw.json")
    a = ap.parse_args()
    if a.report:
        with open(a.report) as f:
            raw = json.load(f)
        print(report(raw["meta"], raw["results"]))
        return
    a.kinds = [k for k in a.kinds.split(",") if k]
    a.systems = [s for s in a.systems.split(",") if s]
    for k in a.kinds:
        if k not in ("128", "json"):
            ap.error(f"unknown kind {k}")
    out = a.out or os.path.join(a.build, "bench-replication")
    os.makedirs(out, exist_ok=True)
    b = Bench(a)
    b.out = os.path.abspath(out)
    log(f"temp dir {b.tmp}")
    try:
        meta, results = b.run()
    finally:
        b.stop_all()
        if not a.keep:
            shutil.rmtree(b.tmp, ignore_errors=True)
    text = report(meta, results)
    with open(os.path.join(out, "raw.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    log(f"results in {out}/results.md and raw.json")


if __name__ == "__main__":
    main()
