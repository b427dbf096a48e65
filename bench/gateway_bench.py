#!/usr/bin/env python3
"""toolgate gateway benchmark: nginx as a fixed-answer provider, wrk as load.

Measures POST /v1/chat/completions (~1 KB body) straight at nginx and through toolgate, in
interleaved rounds, and prints requests/s of both, their ratio, the latency toolgate adds at p50 and
p99, toolgate's CPU time per request and its peak RSS; for a plain JSON answer and for an SSE stream,
and (JSON) through routing pools: a 3-target loadbalance pool, and a 2-target fallback pool whose
first target fails half of its requests with a 500 (against the same direct nginx answer).
Everything listens on 127.0.0.1 (free ports) and is stopped at the end, also on failure.

usage: bench/gateway_bench.py [--duration 5] [--rounds 3] [--connections 64,1] [--threads N]
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

COMPLETION = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "bench-model",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "The quick brown fox jumps over the lazy dog."},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 250, "completion_tokens": 10, "total_tokens": 260},
})


def sse_body():
    words = "The quick brown fox jumps over the lazy dog again".split()
    chunks = [{"role": "assistant", "content": ""}] + [{"content": " " + w} for w in words]
    out = []
    for d in chunks:
        out.append({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "bench-stream",
                    "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}]})
    out.append({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "bench-stream",
                "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]})
    out.append({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "bench-stream",
                "choices": [], "usage": {"prompt_tokens": 250, "completion_tokens": 10, "total_tokens": 260}})
    return "".join("data: " + json.dumps(c) + "\n\n" for c in out) + "data: [DONE]\n\n"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def request_body(model, stream):
    # ~1 KB, like a short chat with a system prompt.
    system = "You are a helpful assistant. " * 20
    body = {"model": model, "messages": [{"role": "system", "content": system},
                                         {"role": "user", "content": "Summarise the benefits of gateways in one line."}],
            "temperature": 0.2}
    if stream:
        body["stream"] = True
    return json.dumps(body)


def parse_wrk(text):
    def dur(s):
        m = re.match(r"([\d.]+)(us|ms|s)", s)
        v = float(m.group(1))
        return v / 1000.0 if m.group(2) == "us" else v * 1000.0 if m.group(2) == "s" else v
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    total = int(re.search(r"(\d+) requests in", text).group(1))
    pct = {}
    for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", text, re.M):
        pct[int(p)] = dur(v)
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(x) for x in m.groups())
    return {"rps": rps, "total": total, "p50": pct.get(50), "p99": pct.get(99), "errors": errors}


def cpu_seconds(pid):
    """(user, system) CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tck, int(fields[12]) / tck


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def variant_yaml(name, work, redis_port):
    if name.startswith("sess_"):
        # Server-side sessions: every request carries x-session-id (one session per wrk connection)
        # and only its new message; the gateway loads a history trimmed to 20 messages, sends it on,
        # and stores the exchange before answering.
        store = (f"state: {{ sqlite: {{ path: {work}/sessions.db }} }}" if name == "sess_sqlite" else
                 f"state: {{ redis: {{ url: 'redis://127.0.0.1:{redis_port}/0', timeout: 500ms }} }}")
        return f"""
{store}
sessions: {{ store: {name[5:]}, max_messages: 20, on_limit: trim }}
"""
    if name.startswith("cache_"):
        # The response cache in memory, shared by every caller: cache_hit and cache_stream repeat one
        # request (all but the first are hits), cache_miss makes each request unique (a lookup, a
        # miss, the call, and a store that evicts the least recently used entry once full).
        return """
plugins:
  - name: response-cache
    config: { scope: global, ttl: 10m, max_bytes: 64MiB }
"""
    if name == "guard6":
        # Every guardrail that passes this answer (schema-guard would refuse the fixed non-JSON answer).
        return """
plugins:
  - { name: secret-scan, config: { action: block } }
  - { name: pii-redact, config: { action: redact, restore: true } }
  - { name: prompt-shield, config: { threshold: 0.7 } }
  - { name: word-filter, config: { words: [darn, heck, blast] } }
  - { name: max-token, config: { max_input_tokens: 32000, max_output_tokens: 4096 } }
  - { name: regex-guard, stage: after_request, config: { patterns: ['(?i)project\\s+aurora'] } }
"""
    # A key, rate limits (requests and tokens) and a budget on every request; limits far above what
    # the run reaches, so every request is checked and counted but none is refused.
    store = {"keys_mem": "state: { persist: false }",
             "keys_sqlite": f"state: {{ sqlite: {{ path: {work}/bench.db }} }}",
             "keys_log": f"state: {{ sqlite: {{ path: {work}/bench-log.db }} }}\nrequest_log: {{ enabled: true }}",
             "keys_redis": f"state: {{ redis: {{ url: 'redis://127.0.0.1:{redis_port}/0', timeout: 500ms }} }}"}[name]
    return f"""
{store}
keys:
  - name: bench
    key: sk-bench-key-1
    limits: {{ requests_per_minute: 1000000000, tokens_per_minute: 1000000000000 }}
    budget: {{ daily_usd: 1000000000 }}
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved direct/gateway rounds per case")
    ap.add_argument("--connections", default="64,1", help="comma-separated wrk connection counts")
    ap.add_argument("--threads", type=int, default=0, help="toolgate worker threads (0: one per core)")
    ap.add_argument("--cases", default="json,stream,lb3,fb50",
                    help="comma-separated: json, stream, lb3 (3-target loadbalance pool), fb50 (fallback, first target "
                         "fails 50%%), guard6 (json through a second gateway with six guardrails on, schema-guard aside), "
                         "keys_mem, keys_sqlite, keys_redis (a key, a rate limit and a budget on every request, on "
                         "each store), keys_log (keys_sqlite with the request log on), cache_hit, cache_stream (the response "
                         "cache answering every request but the first, JSON and replayed stream), cache_miss (every "
                         "request unique: lookup, miss, upstream call, store), sess_sqlite, sess_redis (x-session-id "
                         "on every request, a 20-message history loaded and the exchange stored; one wrk thread per "
                         "connection, each its own session)")
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "toolgate"))
    ap.add_argument("--no-build", action="store_true", help="use the existing binary")
    args = ap.parse_args()

    for tool in ("nginx", "wrk"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            sys.exit(f"{tool} is missing: apt-get install nginx wrk")
    if not args.no_build:
        subprocess.run(["cmake", "-S", ROOT, "-B", os.path.join(ROOT, "build"), "-G", "Ninja",
                        "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", os.path.join(ROOT, "build"), "--target", "toolgate"], check=True,
                       stdout=subprocess.DEVNULL)

    work = tempfile.mkdtemp(prefix="toolgate-bench-")
    os.chmod(work, 0o755)  # nginx workers (www-data when started as root) read the static stream file
    procs = []
    try:
        nginx_port, gw_port = free_port(), free_port()
        os.makedirs(f"{work}/www/stream/v1/chat", exist_ok=True)
        with open(f"{work}/www/stream/v1/chat/completions", "w") as f:
            f.write(sse_body())
        conf = f"""
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_body_temp_path {work}/body; proxy_temp_path {work}/proxy; fastcgi_temp_path {work}/fcgi;
  uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
  client_body_buffer_size 64k;
  split_clients "${{request_id}}" $fail {{ 50% 1; * ""; }}
  server {{
    listen 127.0.0.1:{nginx_port};
    location = /v1/chat/completions {{ default_type application/json; return 200 '{COMPLETION}'; }}
    location = /flaky/v1/chat/completions {{
      default_type application/json;
      if ($fail) {{ return 500 '{{"error":{{"message":"injected failure"}}}}'; }}
      return 200 '{COMPLETION}';
    }}
    location /stream/ {{
      root {work}/www;
      default_type text/event-stream;
      error_page 405 =200 $uri;
      sub_filter_types text/event-stream;
      sub_filter 'never-matches-anything' '';
    }}
  }}
}}
"""
        with open(f"{work}/nginx.conf", "w") as f:
            f.write(conf)
        nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
        procs.append(subprocess.Popen([nginx_bin, "-c", f"{work}/nginx.conf", "-p", work], stderr=subprocess.DEVNULL))
        wait_port(nginx_port)

        with open(f"{work}/gateway.yaml", "w") as f:
            f.write(f"""
providers_from_env: false
server: {{ listen: "127.0.0.1:{gw_port}", threads: {args.threads} }}
log: {{ level: warn, requests: true }}
providers:
  - name: nginx
    type: openai
    base_url: http://127.0.0.1:{nginx_port}/v1
    models: [bench-model]
    prices: {{ bench-model: {{ input: 2.5, output: 10 }} }}
  - name: nginx-stream
    type: openai
    base_url: http://127.0.0.1:{nginx_port}/stream/v1
    models: [bench-stream]
  - {{ name: lb-a, type: openai, base_url: "http://127.0.0.1:{nginx_port}/v1", models: [bench-model] }}
  - {{ name: lb-b, type: openai, base_url: "http://127.0.0.1:{nginx_port}/v1", models: [bench-model] }}
  - {{ name: lb-c, type: openai, base_url: "http://127.0.0.1:{nginx_port}/v1", models: [bench-model] }}
  - {{ name: flaky, type: openai, base_url: "http://127.0.0.1:{nginx_port}/flaky/v1", models: [bench-model] }}
pools:
  - name: bench-lb3
    mode: loadbalance
    targets: [ {{ provider: lb-a, model: bench-model }}, {{ provider: lb-b, model: bench-model }},
               {{ provider: lb-c, model: bench-model }} ]
  - name: bench-fallback50
    mode: fallback
    targets:
      # The breaker stays closed (half the requests succeed), so every request tries the flaky
      # target first: the figure is the price of one failed upstream call per second request.
      - {{ provider: flaky, model: bench-model, circuit_breaker: false }}
      - {{ provider: lb-a, model: bench-model }}
""")
        gw_log = open(f"{work}/toolgate.log", "w")
        gw = subprocess.Popen([args.binary, "serve", "--config", f"{work}/gateway.yaml"], stderr=gw_log)
        procs.append(gw)
        wait_port(gw_port)
        # Variants: the same gateway with policies on, each its own process on its own port, measured
        # against the same direct nginx answer (and so comparable with the plain `json` case).
        wanted = set(args.cases.split(","))
        redis_port = redis_proc = None
        if "keys_redis" in wanted or "sess_redis" in wanted:
            redis_port = free_port()
            redis_bin = shutil.which("redis-server") or "/usr/bin/redis-server"
            redis_proc = subprocess.Popen([redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                           "--appendonly", "no"], stdout=subprocess.DEVNULL)
            procs.append(redis_proc)
            wait_port(redis_port)
        with open(f"{work}/gateway.yaml") as f:
            base = f.read()
        variants = {}
        for name in [c for c in ("guard6", "keys_mem", "keys_sqlite", "keys_log", "keys_redis", "cache_hit", "cache_stream",
                                  "cache_miss", "sess_sqlite", "sess_redis") if c in wanted]:
            port = free_port()
            text = base.replace(f"127.0.0.1:{gw_port}", f"127.0.0.1:{port}") + variant_yaml(name, work, redis_port)
            with open(f"{work}/{name}.yaml", "w") as f:
                f.write(text)
            proc = subprocess.Popen([args.binary, "serve", "--config", f"{work}/{name}.yaml"], stderr=gw_log)
            procs.append(proc)
            try:
                wait_port(port)
            except RuntimeError:
                with open(f"{work}/toolgate.log") as f:
                    raise RuntimeError(f"the {name} gateway did not start:\n" + f.read()[-2000:])
            variants[name] = (port, proc)

        # Sanity: both answer 200 with the same payload before any timing.
        for model, stream in (("bench-model", False), ("bench-stream", True), ("bench-lb3", False),
                              ("bench-fallback50", False)):
            out = subprocess.run(["curl", "-sf", "-H", "content-type: application/json", "-d", request_body(model, stream),
                                  f"http://127.0.0.1:{gw_port}/v1/chat/completions"], capture_output=True, text=True)
            if out.returncode != 0 or ("[DONE]" not in out.stdout if stream else "quick brown fox" not in out.stdout):
                with open(f"{work}/toolgate.log") as f:
                    log = f.read()[-2000:]
                raise RuntimeError(f"gateway sanity check failed for {model}: {out.stdout[:200]}\n{log}")

        results = []
        cases = [("bench-model", False, "json", "json"), ("bench-stream", True, "stream", "stream"),
                 ("bench-lb3", False, "json lb3", "lb3"), ("bench-fallback50", False, "json fb50", "fb50"),
                 ("bench-model", False, "json guard6", "guard6"), ("bench-model", False, "json keys_mem", "keys_mem"),
                 ("bench-model", False, "json keys_sqlite", "keys_sqlite"),
                 ("bench-model", False, "json keys_log", "keys_log"),
                 ("bench-model", False, "json keys_redis", "keys_redis"),
                 ("bench-model", False, "json cache_hit", "cache_hit"),
                 ("bench-stream", True, "stream cache_hit", "cache_stream"),
                 ("bench-model", False, "json cache_miss", "cache_miss"),
                 ("bench-model", False, "json sess_sqlite", "sess_sqlite"),
                 ("bench-model", False, "json sess_redis", "sess_redis")]
        for model, stream, label, key in cases:
            if key not in wanted:
                continue
            direct_path = "/stream/v1/chat/completions" if stream else "/v1/chat/completions"
            lua = f"{work}/post_{model}_{key}.lua"

            def write_lua(nonce=""):
                with open(lua, "w") as f:
                    body = request_body(model, stream)
                    if key.startswith("sess_"):
                        body = json.dumps({"model": model, "temperature": 0.2, "messages": [
                            {"role": "user", "content": "Summarise the benefits of gateways in one line."}]})
                    f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                            f"wrk.body = {json.dumps(body)}\n")
                    if key.startswith("sess_"):
                        # One connection per wrk thread, and one session per thread.
                        f.write('local ids = 0\n'
                                'function setup(thread) ids = ids + 1; thread:set("tid", ids) end\n'
                                'function init(args) wrk.headers["x-session-id"] = "bench-" .. tostring(tid) end\n')
                    if key.startswith("keys_"):
                        f.write('wrk.headers["Authorization"] = "Bearer sk-bench-key-1"\n')
                    if key == "cache_miss":
                        # A unique question per request (run, wrk thread and counter): never a hit.
                        f.write(f'local nonce = "{nonce}"\n'
                                'local ids = 0\n'
                                'function setup(thread) ids = ids + 1; thread:set("tid", ids) end\n'
                                'local n = 0\n'
                                'function request()\n'
                                '  n = n + 1\n'
                                '  local body = string.gsub(wrk.body, "one line%.", "one line, take " .. nonce .. "-" .. tostring(tid) .. "-" .. n .. ".")\n'
                                '  return wrk.format(nil, nil, nil, body)\n'
                                'end\n')

            write_lua()
            runs = 0
            for conns in [int(c) for c in args.connections.split(",")]:
                direct, through, cpu_per_req, user_per_req = [], [], [], []
                for _ in range(args.rounds):
                    for target in ("direct", "gateway"):
                        port, proc = variants.get(key, (gw_port, gw))
                        url = (f"http://127.0.0.1:{nginx_port}{direct_path}" if target == "direct"
                               else f"http://127.0.0.1:{port}/v1/chat/completions")
                        runs += 1
                        if key == "cache_miss":
                            write_lua(f"r{runs}")
                        cpu0 = cpu_seconds(proc.pid)
                        wrk_threads = str(conns) if key.startswith("sess_") else "1" if conns == 1 else "2"
                        out = subprocess.run(["wrk", "-t", wrk_threads, "-c", str(conns),
                                              "-d", f"{args.duration}s", "--latency", "-s", lua, url],
                                             capture_output=True, text=True, timeout=args.duration + 30)
                        cpu1 = cpu_seconds(proc.pid)
                        r = parse_wrk(out.stdout)
                        if r["errors"]:
                            raise RuntimeError(f"{target}: {r['errors']} failed requests\n{out.stdout}")
                        if target == "direct":
                            direct.append(r)
                        else:
                            through.append(r)
                            n = max(1, r["total"])
                            cpu_per_req.append((sum(cpu1) - sum(cpu0)) / n * 1e6)
                            user_per_req.append((cpu1[0] - cpu0[0]) / n * 1e6)
                best = lambda rs: max(rs, key=lambda r: r["rps"])
                med = lambda xs: sorted(xs)[len(xs) // 2]
                d, g = best(direct), best(through)
                results.append({
                    "case": label + f" c={conns}",
                    "direct_rps": d["rps"], "gateway_rps": g["rps"], "ratio": g["rps"] / d["rps"],
                    "added_p50_ms": med([x["p50"] for x in through]) - med([x["p50"] for x in direct]),
                    "added_p99_ms": med([x["p99"] for x in through]) - med([x["p99"] for x in direct]),
                    "cpu_us_per_req": med(cpu_per_req),
                    "user_us_per_req": med(user_per_req),
                })
        rss = peak_rss_mb(gw.pid)
        for name, (port, _) in variants.items():
            if name.startswith("cache_"):
                m = subprocess.run(["curl", "-s", f"http://127.0.0.1:{port}/metrics"], capture_output=True, text=True).stdout
                rows = [l for l in m.splitlines() if l.startswith(("toolgate_cache_lookups_total", "toolgate_cache_bytes",
                                                                     "toolgate_cache_evictions_total"))
                        and not l.endswith(" 0")]
                print(f"{name}: " + "; ".join(rows))
            if name.startswith("keys_"):
                m = subprocess.run(["curl", "-s", f"http://127.0.0.1:{port}/metrics"], capture_output=True, text=True).stdout
                rows = [l for l in m.splitlines() if l.startswith(("toolgate_request_log_records_total",
                                                                     "toolgate_policy_rejections_total{reason=\"rate",
                                                                     "toolgate_limiter_seconds", "toolgate_ledger_seconds",
                                                                     "toolgate_redis_commands_total"))]
                print(f"{name}: " + "; ".join(rows))
                values = {l.split()[0]: float(l.split()[1]) for l in rows if len(l.split()) == 2}
                turns, cmds = values.get("toolgate_limiter_seconds_count", 0), values.get("toolgate_redis_commands_total")
                if cmds is not None and turns:
                    print(f"{name}: {cmds / turns:.2f} Redis commands per model turn (one awaited before the turn, "
                          f"the close sent before the answer and not waited for)")
                    print(f"{name}: redis-server CPU {sum(cpu_seconds(redis_proc.pid)) / turns * 1e6:.1f} us per model turn")
        # The Redis target is latency in round trips: what keys_redis adds over keys_mem at c=1, against
        # one PING round trip to the same redis-server measured now.
        by_case = {r["case"]: r for r in results}
        if redis_port and "json keys_redis c=1" in by_case and "json keys_mem c=1" in by_case:
            out = subprocess.run(["redis-benchmark", "-p", str(redis_port), "-c", "1", "-n", "20000", "-q", "-t", "ping"],
                                 capture_output=True, text=True).stdout
            p50s = [float(x) for x in re.findall(r"p50=([0-9.]+) msec", out)]
            if p50s:
                rtt = min(p50s)
                extra = by_case["json keys_redis c=1"]["added_p50_ms"] - by_case["json keys_mem c=1"]["added_p50_ms"]
                print(f"keys_redis over keys_mem at c=1: +{extra:.3f} ms p50 = {extra / rtt:.1f} Redis PING round trips "
                      f"(PING p50 {rtt:.3f} ms, redis-benchmark -c 1, this run)")

        print(f"\ntoolgate vs. nginx direct, {args.rounds} interleaved rounds x {args.duration}s, best round for req/s, "
              f"median for latency and CPU; {os.cpu_count()} cores shared by wrk, nginx and toolgate")
        print(f"{'case':<18}{'direct req/s':>14}{'gateway req/s':>15}{'ratio':>8}{'+p50 ms':>10}{'+p99 ms':>10}"
              f"{'CPU us/req':>12}{'(user)':>8}")
        for r in results:
            print(f"{r['case']:<18}{r['direct_rps']:>14.0f}{r['gateway_rps']:>15.0f}{r['ratio']:>7.1%} "
                  f"{r['added_p50_ms']:>9.3f}{r['added_p99_ms']:>10.3f}{r['cpu_us_per_req']:>12.1f}{r['user_us_per_req']:>8.1f}")
        print("CPU us/req is toolgate's user+system time per request; on loopback the system part includes the\n"
              "kernel's TCP work for both ends of each connection (the peer's receive path runs in the sender's time).")
        print(f"toolgate peak RSS: {rss:.1f} MiB")
        with open(os.path.join(work, "results.json"), "w") as f:
            json.dump(results, f)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
