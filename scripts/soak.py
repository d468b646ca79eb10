#!/usr/bin/env python3
"""Soak tests for the long-running modes (not run in CI; figures in docs/RELIABILITY.md).

  scripts/soak.py serve  [--minutes 60] [--threads N] [--powhost PATH] [--out DIR]
  scripts/soak.py worker [--minutes 60] [--threads N] [--powhost PATH] [--out DIR]

`serve`: `powhost serve --backend cpu` generates on the `devtest` params (node 1 of 3, every
nonce valid) for the whole run, posting its batches to a receiver that refuses 30 % of the
posts at random and is down (connection refused) for two separate minutes. At the end a
SIGTERM lets it flush. Checked: every nonce the node computed was delivered exactly once
(the delivered nonces are exactly 1, 4, 7, ... with no gap and no repeat, at least as many
as the server reported computed), a random sample of the delivered distances matches
`powhost distances`, and resident memory stayed flat.

`worker`: `powhost worker --backend cpu` takes streaming jobs (5 batches of 32 nonces each,
devtest) from a platform stand-in that refuses 30 % of result posts and is down for two
separate minutes (job-take and results alike). Checked: each job's chunks were accepted once
each, batch 1..5 with no gap or repeat, its final result exactly once and equal to the
aggregate of its chunks; memory flat.

Standard library only. Prints a JSON summary last; exit 0 when every check held.
"""

import argparse
import http.server
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter, defaultdict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFUSE = 0.30
rng = random.Random(14)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Flaky:
    """An HTTP server on a fixed port that refuses REFUSE of the posts (503) and can be
    taken down (its socket closed: connection refused) and brought back."""

    def __init__(self, handle_get, handle_post):
        self.handle_get, self.handle_post = handle_get, handle_post
        self.lock = threading.Lock()
        self.refused = 0
        self.server = None
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.up()

    def up(self):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: down means down

            def log_message(self, *a):
                pass

            def reply(self, code, body=b""):
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                code, body = outer.handle_get(self.path)
                self.reply(code, body)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(n)
                with outer.lock:
                    refuse = rng.random() < REFUSE
                    if refuse:
                        outer.refused += 1
                if refuse:
                    return self.reply(503, b"refused by the soak")
                with outer.lock:
                    outer.handle_post(self.path, body)
                self.reply(200, b"{}")

        for _ in range(100):
            try:
                self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
                break
            except OSError:
                time.sleep(0.1)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self):
        self.server.shutdown()
        self.server.server_close()


def powhost_env(threads):
    env = dict(os.environ)
    env.pop("RUST_LOG", None)
    env["LOG_LEVEL"] = "warn"
    if threads:
        env["RAYON_NUM_THREADS"] = str(threads)
    return env


def run_phases(minutes, pid, sample, flaky):
    """Run for `minutes`, sampling memory (and `sample()`) every minute; the server is down
    for one minute at a quarter and at two thirds of the run (shorter for short runs)."""
    total = minutes * 60.0
    down_for = min(60.0, total / 6)
    downs = [0.25 * total, 0.66 * total]
    start = time.time()
    samples = []
    next_sample = 0.0
    is_down = None
    while True:
        t = time.time() - start
        if t >= total:
            break
        for d in downs:
            if d <= t < d + down_for and is_down is None:
                log(f"receiver down for {down_for:.0f} s")
                flaky.down()
                is_down = d
        if is_down is not None and t >= is_down + down_for:
            log("receiver up again")
            flaky.up()
            downs.remove(is_down)
            is_down = None
        if t >= next_sample:
            s = {"minute": round(t / 60, 1), "rss_mib": round(rss_kib(pid) / 1024, 1)}
            s.update(sample())
            samples.append(s)
            log(json.dumps(s))
            next_sample += 60.0
        time.sleep(0.5)
    if is_down is not None:
        flaky.up()
    return samples


def memory_verdict(samples):
    """Flat: no growth. The baseline is the first sample after two minutes (model built,
    queues warm); the last sample is within 10 % (or 16 MiB) of it. A sample below the
    baseline is not growth: with no job to compute (the platform down) the allocator hands
    the compute buffers back, and they come back with the next job."""
    warm = [s["rss_mib"] for s in samples[2:]] or [s["rss_mib"] for s in samples]
    base, low, high, last = warm[0], min(warm), max(warm), warm[-1]
    flat = last - base <= max(16.0, 0.10 * base)
    return {"rss_mib_baseline": base, "rss_mib_min": low, "rss_mib_max": high,
            "rss_mib_last": last, "flat": flat}


def stop(proc, wait_s):
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return "killed"


def soak_serve(args):
    presets = json.loads(
        subprocess.check_output([args.powhost, "presets", "--json"], env=powhost_env(None))
    )
    params = next(p["params"] for p in presets if p["name"] == "devtest")
    block_hash = "%064x" % rng.getrandbits(256)
    node_id, node_count = 1, 3
    delivered = Counter()
    dist_of = {}
    posts = [0]

    def on_post(path, body):
        batch = json.loads(body)
        posts[0] += 1
        for n, d in zip(batch["nonces"], batch["dist"]):
            delivered[n] += 1
            dist_of[n] = d

    receiver = Flaky(lambda path: (404, b""), on_post)
    proc = subprocess.Popen(
        [args.powhost, "serve", "--backend", "cpu", "--listen", "127.0.0.1:0",
         "--flush-timeout", "300", "--undelivered", os.path.join(args.out, "undelivered.jsonl")],
        stdout=subprocess.PIPE, env=powhost_env(args.threads), stderr=open(os.path.join(args.out, "serve.log"), "w"),
    )
    addr = json.loads(proc.stdout.readline())["listening"]

    def call(method, path, body=None):
        req = urllib.request.Request(f"http://{addr}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read() or b"null")

    init = {"node_id": node_id, "node_count": node_count, "block_hash": block_hash,
            "block_height": 1, "public_key": "soak-key", "batch_size": 100,
            "r_target": 1e9, "fraud_threshold": 1e-7, "params": params,
            "url": f"http://127.0.0.1:{receiver.port}"}
    call("POST", "/api/v1/pow/init/generate", init)
    last_status = {}

    def sample():
        status = call("GET", "/api/v1/pow/status")
        last_status.update(status)
        with receiver.lock:
            got = sum(delivered.values())
        return {"computed": status.get("computed"), "delivered": got,
                "refused": receiver.refused}

    samples = run_phases(args.minutes, proc.pid, sample, receiver)
    sample()
    log("SIGTERM: flushing")
    rc = stop(proc, 330)
    with receiver.lock:
        nonces = sorted(delivered)
        repeats = {n: c for n, c in delivered.items() if c > 1}
    expected = [node_id + node_count * m for m in range(len(nonces))]
    gaps = len(set(expected) - set(nonces))
    # Spot-check distances against a fresh computation.
    sample_nonces = rng.sample(nonces, min(16, len(nonces)))
    out = json.loads(subprocess.check_output(
        [args.powhost, "distances", "--backend", "cpu", "--preset", "devtest",
         "--block-hash", block_hash, "--public-key", "soak-key",
         "--nonces", ",".join(map(str, sample_nonces)), "--json"], env=powhost_env(None)))
    max_diff = max(abs(a - dist_of[n]) for n, a in zip(out["nonces"], out["dist"]))
    computed = last_status.get("computed") or 0
    checks = {
        "exit_code_0": rc == 0,
        "no_repeats": not repeats,
        "no_gaps": gaps == 0 and nonces == expected,
        "all_computed_delivered": len(nonces) >= computed,
        "distances_match": max_diff <= 5e-6,
    }
    mem = memory_verdict(samples)
    checks["memory_flat"] = mem["flat"]
    return {
        "mode": "serve", "minutes": args.minutes, "threads": args.threads,
        "exit": rc, "computed_last_status": computed, "delivered_nonces": len(nonces),
        "repeats": len(repeats), "gaps": gaps, "posts_accepted": posts[0],
        "posts_refused": receiver.refused, "spot_check_max_abs_diff": max_diff,
        "memory": mem, "checks": checks, "samples": samples,
    }


def soak_worker(args):
    presets = json.loads(
        subprocess.check_output([args.powhost, "presets", "--json"], env=powhost_env(None))
    )
    params = next(p["params"] for p in presets if p["name"] == "devtest")
    batches, batch_size = 5, 32
    lock = threading.Lock()
    issued = {}                      # job id -> start nonce
    chunks = defaultdict(Counter)    # job id -> batch_number -> times accepted
    chunk_bodies = defaultdict(dict)
    finals = defaultdict(list)
    next_job = [0]

    def on_get(path):
        if "/job-take" in path:
            with lock:
                n = next_job[0]
                next_job[0] += 1
                job_id = f"soak-{n}"
                issued[job_id] = n * 1000
            job = {"id": job_id, "input": {
                "block_hash": "ab" * 32, "block_height": 1, "public_key": "soak-key",
                "r_target": 1e9, "params": params, "streaming": True,
                "start_nonce": n * 1000, "batch_size": batch_size, "max_batches": batches}}
            return 200, json.dumps(job).encode()
        if "/job-stop" in path:
            time.sleep(5)
            return 200, b'{"jobsToStop": []}'
        return 200, b"{}"  # heartbeat

    def on_post(path, body):
        job_id = path.split("?")[0].rstrip("/").split("/")[-1]
        v = json.loads(body)
        if "isStream=false" in path and "/job-stream/" in path:
            chunk = v["output"]
            chunks[job_id][chunk["batch_number"]] += 1
            chunk_bodies[job_id][chunk["batch_number"]] = chunk
        else:
            finals[job_id].append(v)

    platform = Flaky(on_get, on_post)
    base = f"http://127.0.0.1:{platform.port}/v2/ep"
    env = powhost_env(args.threads)
    env.update({
        "RUNPOD_WEBHOOK_GET_JOB": f"{base}/job-take/$ID?gpu=soak",
        "RUNPOD_WEBHOOK_POST_OUTPUT": f"{base}/job-done/$RUNPOD_POD_ID/$ID?gpu=soak",
        "RUNPOD_WEBHOOK_POST_STREAM": f"{base}/job-stream/$RUNPOD_POD_ID/$ID?gpu=soak",
        "RUNPOD_WEBHOOK_PING": f"{base}/ping/$RUNPOD_POD_ID?gpu=soak",
        "RUNPOD_AI_API_KEY": "soak", "RUNPOD_POD_ID": "soak-pod", "RUNPOD_PING_INTERVAL": "10000",
    })
    proc = subprocess.Popen(
        [args.powhost, "worker", "--backend", "cpu", "--flush-timeout", "300",
         "--callback-backoff-max", "10",
         "--undelivered", os.path.join(args.out, "undelivered.jsonl")],
        env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(args.out, "worker.log"), "w"),
    )

    def sample():
        with lock:
            return {"jobs_issued": len(issued), "jobs_finished": len(finals),
                    "refused": platform.refused}

    samples = run_phases(args.minutes, proc.pid, sample, platform)
    log("SIGTERM: flushing")
    rc = stop(proc, 330)
    with lock:
        problems = []
        complete = 0
        for job_id, start in issued.items():
            got = chunks.get(job_id, Counter())
            fin = finals.get(job_id, [])
            numbers = sorted(got)
            if any(c > 1 for c in got.values()):
                problems.append(f"{job_id}: a chunk accepted twice {dict(got)}")
            if numbers != list(range(1, len(numbers) + 1)):
                problems.append(f"{job_id}: chunks {numbers} have a gap")
            if len(fin) > 1:
                problems.append(f"{job_id}: final result accepted {len(fin)} times")
            if fin:
                aggregate = [chunk_bodies[job_id][b] for b in numbers]
                if fin[0].get("output") != aggregate:
                    problems.append(f"{job_id}: the final aggregate differs from its chunks")
                for b in numbers:
                    c = chunk_bodies[job_id][b]
                    want = list(range(start + (b - 1) * batch_size, start + b * batch_size))
                    if c["nonces"] != want:
                        problems.append(f"{job_id}: batch {b} nonces are not {want[0]}..")
                if len(numbers) == batches:
                    complete += 1
            elif numbers:
                problems.append(f"{job_id}: chunks delivered but no final result")
        # The last job taken may have been in flight at SIGTERM: it ends early, but whole.
        unfinished = [j for j in issued if j not in finals]
    mem = memory_verdict(samples)
    checks = {"exit_code_0": rc == 0, "no_problems": not problems,
              "at_most_one_unfinished": len(unfinished) <= 1, "memory_flat": mem["flat"]}
    return {
        "mode": "worker", "minutes": args.minutes, "threads": args.threads, "exit": rc,
        "jobs_issued": len(issued), "jobs_complete": complete, "unfinished": unfinished,
        "posts_refused": platform.refused, "problems": problems[:20], "memory": mem,
        "checks": checks, "samples": samples,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["serve", "worker"])
    p.add_argument("--minutes", type=float, default=60)
    p.add_argument("--threads", type=int, default=None,
                   help="compute threads (RAYON_NUM_THREADS); default: every core")
    p.add_argument("--powhost", default=os.path.join(REPO, "target", "release", "powhost"),
                   help="the binary (default: target/release/powhost; build it with cargo build --release)")
    p.add_argument("--out", default=None, help="directory for logs and the summary")
    args = p.parse_args()
    args.out = args.out or os.path.join("/tmp", f"powhost-soak-{args.mode}-{int(time.time())}")
    os.makedirs(args.out, exist_ok=True)
    if not os.access(args.powhost, os.X_OK):
        sys.exit(f"no powhost binary at {args.powhost}: build it (cargo build --release) or pass --powhost")
    log(f"soak {args.mode} for {args.minutes} min; logs in {args.out}")
    summary = soak_serve(args) if args.mode == "serve" else soak_worker(args)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps({k: v for k, v in summary.items() if k != "samples"}, indent=1))
    sys.exit(0 if all(summary["checks"].values()) else 1)


if __name__ == "__main__":
    main()
