"""Turns bench/run.sh's results.jsonl into docs/benchmarks.md and its plot.

usage: report.py RESULTS.jsonl OUT.md OUT.png
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

results_path, md_path, png_path = sys.argv[1:4]
rows = [json.loads(line) for line in open(results_path) if line.strip()]
by = lambda kind: [r for r in rows if r.get("bench") == kind]  # noqa: E731
machine = (by("machine") or [{}])[0]


def f(v, digits=0):
    if v is None:
        return "–"
    if isinstance(v, float) and digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def ok(cond):
    return "**met**" if cond else "**not met**"


ingest = by("ingest")
disk = by("disk")


def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def runs(system, per, conns):
    """Every run of one configuration, by repetition."""
    src = disk if system == "disk" else [r for r in ingest if r["system"] == system]
    return sorted((r for r in src if r["per_request"] == per and r["conns"] == conns), key=lambda r: r.get("rep", 1))


def find(system, per, conns):
    """One configuration's runs folded into one row: medians of the rates and latencies, the
    highest peak RSS, every refusal."""
    rs = runs(system, per, conns)
    if not rs:
        return None
    row = dict(rs[0])
    for k in ("events_per_sec", "requests_per_sec", "p50_ms", "p99_ms", "cpu_us_per_request"):
        if k in row:
            row[k] = median(r.get(k) for r in rs)
    rss = [r.get("peak_rss_kib") for r in rs if r.get("peak_rss_kib")]
    row["peak_rss_kib"] = max(rss) if rss else None
    row["refused"] = sum(r.get("refused") or 0 for r in rs)
    row["runs"] = len(rs)
    return row


def paired_ratios(system, per, conns):
    """system / bare HTTP for each repetition, the two measured back to back."""
    bare = {r.get("rep", 1): r for r in runs("bare_http", per, conns)}
    return [r["events_per_sec"] / bare[r.get("rep", 1)]["events_per_sec"]
            for r in runs(system, per, conns)
            if r.get("rep", 1) in bare and bare[r.get("rep", 1)]["events_per_sec"]]


def reps_text(n):
    return "once" if n == 1 else f"{n} times"


def ratio_text(ratios):
    if not ratios:
        return "–"
    if len(ratios) == 1:
        return f(ratios[0], 2)
    return f"{f(median(ratios), 2)} ({f(min(ratios), 2)}–{f(max(ratios), 2)})"


out = []
w = out.append
w("# Benchmarks\n")
w("Measured by `bash bench/run.sh" + (" --quick" if machine.get("quick") else "") + "` (the whole suite, one command). "
  "Every Sluice number sits next to a reference measured **in the same run on the same machine**; on a shared "
  "2-core machine the absolute numbers move from run to run, the ratios much less.\n")
w("| | |\n|---|---|")
w(f"| date | {machine.get('date', '?')} |")
w(f"| machine | {machine.get('nproc', '?')} CPUs, {machine.get('cpu', '?')}, {machine.get('ram_gib', '?')} GiB RAM, Linux {machine.get('kernel', '?')} |")
w(f"| commit | `{machine.get('commit', '?')}`{' (with uncommitted changes)' if machine.get('dirty') else ''} |")
w(f"| conditions | load average {' / '.join(machine.get('loadavg', []))} at start; {machine.get('other_build_processes', 0)} compiler/cargo/python processes of other work running; {'quick mode (3 s loads)' if machine.get('quick') else 'full mode (10 s loads)'} |")
w("| load generator | `wrk` 4.1 (Debian), keep-alive, 2 threads (1 for 1 connection), all on 127.0.0.1 |")
w("| sluice serve | release build, default settings except throttles and the queue bound raised out of the way and `log.level = warn` (no per-request access log lines) |")
w("")
w("![ingest throughput against its ceilings](benchmarks.png)\n")

# --- ingest -------------------------------------------------------------------------------------
w("## 1. Ingest: durable events/s next to the HTTP and disk ceilings\n")
w("*Durable* means the 202 is sent after the event's queue row is committed with `synchronous=FULL` in WAL mode "
  "(fsync'd). **Bare HTTP** is an axum handler on the same runtime that reads the body and answers 202 doing "
  "nothing else: the most any handler could reach here. **Disk** is raw batched SQLite inserts of the same rows "
  "with the same durability and group commit (`crates/sluice-bench/src/disk.rs`), one producer thread per "
  "connection waiting for its commit: what is left when HTTP, validation and signing are taken away.\n")
w("**Intake alone** is the same `sluice serve` with `worker.workers = 0`: the process step paused (as when the "
  "event source mapping is disabled on AWS), so the ingest route has the machine to itself. On AWS the ingest and "
  "process functions run on separate compute; on one 2-core machine the process step drains the queue on its own "
  "threads while the load runs, `worker.nice` (default 10) steps below the gateway's, so accepting events comes "
  "first and the process step takes the CPU that is left. Requests in flight are bounded by count (256), and the "
  "ingest work on bodies already read by bytes (256 KiB, at least 1 KiB a request), so many single events share "
  "each group commit while 100-event batches fill the byte budget.\n")
w("With one event per request at 64 and 256 connections, where the targets are judged, each configuration ran "
  f"{reps_text(max((r.get('rep', 1) for r in ingest), default=1))} with sluice, intake alone and bare HTTP alternating; "
  "the table gives the medians, and each ratio is the median of the runs' paired ratios (sluice over the bare run "
  "right after it), with their range in brackets. The peak RSS is the highest of the runs.\n")
w("| events/request | connections | sluice events/s | p50 ms | p99 ms | intake alone events/s | p99 ms | bare HTTP events/s | p99 ms | disk events/s | sluice / bare | intake alone / bare | sluice / disk | sluice peak RSS MiB |")
w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
ratios_bare = []
ratios_intake = []
for per in (1, 100):
    for c in (1, 16, 64, 256):
        s, i, b, d = find("sluice", per, c), find("sluice_intake", per, c), find("bare_http", per, c), find("disk", per, c)
        if not s:
            continue
        rbs, ris = paired_ratios("sluice", per, c), paired_ratios("sluice_intake", per, c)
        rb, ri = median(rbs), median(ris)
        rd = s["events_per_sec"] / d["events_per_sec"] if d and d["events_per_sec"] else None
        if rb is not None:
            ratios_bare.append((per, c, rb))
        if ri is not None:
            ratios_intake.append((per, c, ri))
        refused = f" ({s['refused']} refused)" if s.get("refused") else ""
        w(f"| {per} | {c} | {f(s['events_per_sec'])}{refused} | {f(s['p50_ms'], 2)} | {f(s['p99_ms'], 2)} | "
          f"{f(i['events_per_sec']) if i else '–'} | {f(i['p99_ms'], 2) if i else '–'} | "
          f"{f(b['events_per_sec']) if b else '–'} | {f(b['p99_ms'], 2) if b else '–'} | {f(d['events_per_sec']) if d else '–'} | "
          f"{ratio_text(rbs)} | {ratio_text(ris)} | {f(rd, 2)} | {f((s.get('peak_rss_kib') or 0) / 1024, 1)} |")
w("")
judged = [c for c in (64, 256) if find("sluice", 1, c)]
at = lambda ratios, c: next((r for p, cc, r in ratios if p == 1 and cc == c), None)  # noqa: E731
if judged:
    w("Targets, one event per request (with 100 per request the bare handler's events/s only counts bytes, so that "
      "ratio says little): intake alone at least **0.5** of bare HTTP and sluice with the process step running at "
      "least **0.45**, at 64 and at 256 connections (median of the paired runs):\n")
    for c in judged:
        ri, rb = at(ratios_intake, c), at(ratios_bare, c)
        w(f"- {c} connections: intake alone {f(ri, 2)} → {ok((ri or 0) >= 0.5)}; with the process step "
          f"{f(rb, 2)} → {ok((rb or 0) >= 0.45)}.")
    w("")
    # CPU per request: every thread of each server over the run (user + system, from /proc), divided by the
    # requests answered. The intake alone is the gateway: HTTP, auth, throttles, validation, sealing and the
    # queue's group commit, without the process step's threads.
    cpu_rows = [(c, find("sluice_intake", 1, c), find("bare_http", 1, c)) for c in judged]
    cpu_rows = [(c, i, b) for c, i, b in cpu_rows if i and b and i.get("cpu_us_per_request") and b.get("cpu_us_per_request")]
    if cpu_rows:
        w("Server CPU per request (user + system time of every thread of the server process over the run, from "
          "`/proc/<pid>/stat`, divided by the requests answered; medians of the runs):\n")
        w("| connections | intake alone µs/request | bare HTTP µs/request | intake alone / bare |")
        w("|---:|---:|---:|---:|")
        worst = 0.0
        for c, i, b in cpu_rows:
            ratio = i["cpu_us_per_request"] / b["cpu_us_per_request"]
            worst = max(worst, ratio)
            w(f"| {c} | {f(i['cpu_us_per_request'], 1)} | {f(b['cpu_us_per_request'], 1)} | {ratio:.2f} |")
        w("")
        w(f"Target: the gateway's CPU per single-event request at most **2x** the bare handler's: worst {worst:.2f} → "
          f"{ok(worst <= 2.0)}.\n")
w("With one event per request every 202 waits for an fsync; group commit shares each fsync among the requests "
  "that arrived meanwhile, so throughput grows with connections until the CPU (2 cores shared by the server, "
  "`wrk` and the writer thread) is the limit. The bare handler has no fsync at all; the disk column has no HTTP, "
  "so the two ceilings bound Sluice from both sides.\n")

# --- webhook intake -----------------------------------------------------------------------------
intake = by("intake")
if intake:
    w("### 1b. Signed-webhook intake next to bearer-key ingest\n")
    w("The same Rust client (`sluice-bench intake`, 64 connections, closed loop) posts 1 KiB events either to "
      "`POST /v1/events` with an API key or as Standard Webhooks deliveries to `POST /v1/sources/{id}`, each "
      "with a fresh `webhook-id` and HMAC-SHA256 signature (so none is an idempotent replay). A delivery costs "
      "what a keyed event does plus its signature check and its delivery-id claim (a retried delivery must be "
      "stored once). The claim commits with the message, but it is an insert at a random key (a digest of the "
      "source and the delivery id), so each one dirties a page of its own where a keyed event only appends: "
      "that write is most of the gap. The two alternate on fresh servers; the ratio is the median of the "
      "paired runs.\n")
    w("| mode | runs | events/s (median) | p50 ms | p99 ms | refused |")
    w("|---|---:|---:|---:|---:|---:|")
    for mode in ("bearer", "webhook"):
        rs = [r for r in intake if r["mode"] == mode]
        if rs:
            w(f"| {mode} | {len(rs)} | {f(median(r['events_per_sec'] for r in rs))} | {f(median(r['p50_ms'] for r in rs), 2)} | "
              f"{f(median(r['p99_ms'] for r in rs), 2)} | {sum(r.get('refused') or 0 for r in rs)} |")
    bearer = {r.get("rep", 1): r for r in intake if r["mode"] == "bearer"}
    pairs = [r["events_per_sec"] / bearer[r.get("rep", 1)]["events_per_sec"]
             for r in intake if r["mode"] == "webhook" and r.get("rep", 1) in bearer and bearer[r.get("rep", 1)]["events_per_sec"]]
    w(f"\nTarget: signed-webhook intake at least 0.9 of bearer-key ingest: {ratio_text(pairs)} → {ok((median(pairs) or 0) >= 0.9)}.\n")

# --- open-loop latency --------------------------------------------------------------------------
openloop = sorted(by("openloop"), key=lambda r: (r.get("fraction") or 0, r.get("rate") or 0))
latency_png = os.path.join(os.path.dirname(png_path), "benchmarks-latency.png")
if openloop:
    peak_rate = openloop[0].get("peak")
    w("## 1c. Latency at fixed offered rates (open loop)\n")
    w("The latencies in section 1 are `wrk`'s, and `wrk` is a *closed-loop* load generator: each connection sends "
      "its next request only when the previous one has been answered. When the server stalls, the generator stalls "
      "with it, and the requests that would have arrived meanwhile are never sent, so a one-second pause shows up "
      "as one slow request instead of the hundreds of slow answers that clients arriving on their own schedule "
      "would have had. This is *coordinated omission*: the generator coordinates with the server to leave out "
      "exactly the samples the tail percentiles are about.\n")
    w("`sluice-bench openloop` (`crates/sluice-bench/src/openloop.rs`) measures the way `wrk2` does. The schedule "
      "is fixed before the run: request *i* is due at *start + i / rate*, and the requests are dealt round-robin "
      "to 64 connections, each of which sends its share in order, sleeping when it is early and never skipping a "
      "request when it is late. **Every latency is measured from the request's intended send time** to its "
      "complete response, so time spent queued behind a slow answer counts. The offered rates are a quarter, half "
      "and three quarters of the peak: the median sluice events/s of section 1 at 64 connections, one event per "
      f"request, process step running ({f(peak_rate)} events/s in this run). Each rate runs "
      f"{f(openloop[0].get('secs'))} s on a fresh `sluice serve` "
      "started as in section 1; every response counts, refusals included. The generator's timer wakes a connection "
      "up to about a millisecond after a request is due, and that lag is part of each latency (the last column "
      "gives the p99 from the actual send instead, the number a closed-loop generator would show).\n")
    w("![open-loop latency percentiles against offered load](benchmarks-latency.png)\n")
    w("| fraction of peak | offered req/s | achieved req/s | refused | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | p99 ms from actual send |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in openloop:
        errs = r.get("errors") or 0
        unsent = r.get("unsent") or 0
        extra = (f" (+{errs} errors)" if errs else "") + (f" ({unsent} not sent)" if unsent else "")
        frac = r.get("fraction")
        w(f"| {f(frac, 2) if frac is not None else '–'} | {f(r.get('rate'))} | {f(r.get('achieved_per_sec'))} | "
          f"{r.get('refused', 0)}{extra} | {f(r.get('p50_ms'), 2)} | {f(r.get('p90_ms'), 2)} | {f(r.get('p99_ms'), 2)} | "
          f"{f(r.get('p999_ms'), 2)} | {f(r.get('max_ms'), 2)} | {f(r.get('service_p99_ms'), 2)} |")
    w("\nBelow the peak the server has capacity to spare on average, so the median is about the cost of one "
      "durable write (a share of a group-committed fsync) and the tail is made of its pauses: an fsync that takes "
      "longer, the process step or the load generator taking the 2 cores. Where the percentiles from the intended "
      "time are well above the p99 from the actual send, requests were queued behind a slow answer: the samples a "
      "closed-loop run would have left out.\n")

# --- memory -------------------------------------------------------------------------------------
rss = [r.get("peak_rss_kib") or 0 for r in ingest if r["system"] in ("sluice", "sluice_intake")]
if rss:
    peak = max(rss) / 1024
    w("## 6. Memory\n")
    w(f"Peak RSS (`VmHWM`) of `sluice serve` over each ingest run above, intake alone included (a fresh server per run): at most "
      f"**{peak:.1f} MiB** (at 256 connections with 100-event bodies, the largest buffers). "
      f"Target under 64 MiB → {ok(peak < 64)}. Per configuration, with the process step: " + ", ".join(
        f"{per}x{c}: {(r.get('peak_rss_kib') or 0) / 1024:.0f}"
        for per in (1, 100) for c in (1, 16, 64, 256) if (r := find("sluice", per, c)))
      + " MiB (events per request x connections). About 12 MiB of it is the binary's own pages. The rest grows "
      "with the connections (hyper keeps a read and a write buffer for each) and the bytes in flight: 256 "
      "connections of 100-event bodies keep ~2 MB of request bodies, their parsed values and sealed envelopes "
      "alive at once, plus the group-commit backlog. What keeps it flat: reads of each SQLite file run on at most "
      "4 connections, whose page caches are 256 KiB (1 MiB for each file's writer); concurrent misses on one API "
      "key share one store read, instead of every connection opening a reader on its own blocking thread when the "
      "key's cache entry expires; and the backpressure gauge counts the queue's rows at most once per 50 times "
      "its last count's duration, so a backlog of a million events costs no more memory than an empty queue.\n")

# --- e2e ----------------------------------------------------------------------------------------
e2e = by("e2e")
if e2e:
    w("## 2. End to end: HTTP to stored record\n")
    w("A Rust client (`sluice-bench e2e`) posts single events; a separate thread reads the store file through a "
      "read-only SQLite connection every millisecond to see when each accepted id becomes readable (polling "
      "`GET` per event would itself be most of the load). *Peak* is closed-loop at 64 connections; the latency "
      "run is open-loop at half the peak stored rate.\n")
    w("| run | connections | target req/s | accepted | stored | ingest events/s | stored events/s | p50 ms 202→readable | p99 ms | max ms |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in e2e:
        w(f"| {r.get('phase')} | {r['conns']} | {f(r.get('target_rate'))} | {r['accepted']} | {r['stored']} | "
          f"{f(r['ingest_per_sec'])} | {f(r['e2e_per_sec'])} | {f(r['p50_ms'], 1)} | {f(r['p99_ms'], 1)} | {f(r['max_ms'], 1)} |")
    w("\nIn the closed-loop peak run ingest accepts faster than the 4 workers store, so a backlog builds and "
      "202-to-readable grows with it (seconds, not lost: every accepted event is stored); the stored rate is the "
      "end-to-end capacity. At half of it the queue stays near empty.")
    half = next((r for r in e2e if r.get("phase") == "half_peak"), None)
    if half:
        w(f"\nTarget: p99 under 100 ms at half the peak rate: {f(half['p99_ms'], 1)} ms → {ok(half['p99_ms'] < 100 and half['stored'] == half['accepted'])}"
          f" (every accepted event stored: {half['stored'] == half['accepted']}).\n")

# --- feed ---------------------------------------------------------------------------------------
feed_sse = by("feed_sse")
feed_read = by("feed_read")
if feed_sse or feed_read:
    w("## 2b. Events out: the feed\n")
    w("`sluice-bench feed-sse` opens one `GET /v1/feed/stream` at the feed's head and posts single events "
      "open-loop at half the end-to-end peak stored rate (section 2); each id's latency is from its 202 to the "
      "moment its entry arrived on the stream. `sluice-bench feed-read` fills a tenant's feed with batches of "
      "100 and, once all are stored, pages through them with `GET /v1/feed?limit=1000` (one consumer, three "
      "passes, the median reported).\n")
    if feed_sse:
        w("| offered req/s | accepted | missing on the stream | p50 ms 202→on the stream | p99 ms | max ms |")
        w("|---:|---:|---:|---:|---:|---:|")
        for r in feed_sse:
            w(f"| {f(r['offered_per_sec'])} | {r['accepted']} | {r['missing']} | {f(r['p50_ms'], 1)} | {f(r['p99_ms'], 1)} | {f(r['max_ms'], 1)} |")
        r = feed_sse[-1]
        w(f"\nTarget: p99 under 50 ms at half the peak: {f(r['p99_ms'], 1)} ms → {ok((r['p99_ms'] or 1e9) < 50 and r['missing'] == 0)}.\n")
    if feed_read:
        w("| entries | page | entries/s (median) | min | max |")
        w("|---:|---:|---:|---:|---:|")
        for r in feed_read:
            w(f"| {r['entries']} | {r['page']} | {f(r['entries_per_sec'])} | {f(r['min_entries_per_sec'])} | {f(r['max_entries_per_sec'])} |")
        r = feed_read[-1]
        w(f"\nTarget: at least 20,000 entries/s for one consumer: {f(r['entries_per_sec'])} → {ok((r['entries_per_sec'] or 0) >= 20000)}.\n")

# --- process ------------------------------------------------------------------------------------
proc = by("process")
if proc:
    w("## 3. Process step alone\n")
    w("A queue pre-filled with sealed envelopes, drained by the same worker pool as `sluice serve` (4 pollers, "
      "batches of 10: verify signature, re-validate, conditional put). On moto the point is correctness: moto is "
      "one Python process, so its rate says nothing about SQS or DynamoDB.\n")
    w("| backend | records | seconds | records/s | dead-lettered | missing | correct |")
    w("|---|---:|---:|---:|---:|---:|---|")
    for r in proc:
        w(f"| {r['backend']} | {r['events']} | {f(r['seconds'], 2)} | {f(r['records_per_sec'])} | {r['dead_lettered']} | {r['missing']} | {r['correct']} |")
    w("")

# --- cold start ---------------------------------------------------------------------------------
cold = by("cold_start")
measured = lambda r: any(d.get("init_ms") is not None for d in r.get("detail", [])) or not r.get("detail")  # noqa: E731
if cold:
    w("## 4. Cold start under a local Lambda Runtime API\n")
    w("`sluice-bench cold-start` serves the custom-runtime protocol (`/2018-06-01/runtime/invocation/next`, "
      "`…/response`, `…/error`, `/runtime/init/error`) on loopback, execs the function, and records **init** "
      "(exec → first `GET …/next`: what Lambda bills and reports as Init Duration), **first response** (exec → "
      "the first event's response or error posted) and **peak memory** (`VmHWM` right after, Lambda's "
      "Max Memory Used). SDK calls go to a moto server on loopback (`AWS_ENDPOINT_URL`), so network time is "
      "loopback time. The Python references are the same two handlers written the usual way with Powertools "
      "for AWS Lambda (`bench/python/`, pinned in `requirements.txt`), run by `awslambdaric`, the runtime "
      "interface client AWS's own Python images use. Median of the runs, fresh process each run.\n")
    w("| function | language | binary | size MiB | runs | init ms (p50) | first response ms (p50) | peak RSS MiB | first outcome |")
    w("|---|---|---|---:|---:|---:|---:|---:|---|")
    size = lambda r: f((r["binary_bytes"]) / 1048576, 1) if r.get("binary_bytes") else "–"  # noqa: E731
    for r in cold:
        if r.get("missing"):
            w(f"| {r['name']} | rust | not built | – | 0 | – | – | – | – |")
            continue
        outcomes = sorted({d["outcome"] for d in r.get("detail", [])})
        if not measured(r):
            # Not one run reached the Runtime API: nothing was measured, and zeros would read as fast.
            w(f"| {r.get('function', r['name'])} | {r.get('language', '?')} | `{r.get('binary', 'python3 -m awslambdaric')}` | {size(r)} | {r['runs']} | "
              f"– | – | – | {', '.join(outcomes)} (did not start) |")
            continue
        w(f"| {r.get('function', r['name'])} | {r.get('language', '?')} | `{r.get('binary', 'python3 -m awslambdaric')}` | {size(r)} | {r['runs']} | "
          f"{f(r['init_ms_p50'], 1)} | {f(r['first_response_ms_p50'], 1)} | {f((r.get('peak_rss_kib') or 0) / 1024, 1)} | {', '.join(outcomes)} |")
    w("")
    for fn in ("ingest", "process"):
        rs = next((r for r in cold if r.get("language") == "rust" and r.get("function") == fn and not r.get("missing")), None)
        py = next((r for r in cold if r.get("language") == "python" and r.get("function") == fn), None)
        if rs and py and measured(rs) and rs["init_ms_p50"]:
            ratio = py["init_ms_p50"] / rs["init_ms_p50"]
            w(f"- **{fn}**: init {f(rs['init_ms_p50'], 1)} ms (Rust) vs {f(py['init_ms_p50'], 1)} ms (Python Powertools): "
              f"**{ratio:.1f}x** faster; first response {f(py['first_response_ms_p50'] / max(rs['first_response_ms_p50'], 0.001), 1)}x; "
              f"memory {f((py.get('peak_rss_kib') or 0) / max(rs.get('peak_rss_kib') or 1, 1), 1)}x less. "
              f"Targets: init < 20 ms → {ok(rs['init_ms_p50'] < 20)}; ≥ 10x → {ok(ratio >= 10)}.")
    others = [r for r in cold if r.get("language") == "rust" and not r.get("missing")]
    sized = [r for r in others if r.get("binary_bytes")]
    if sized:
        largest = max(sized, key=lambda r: r["binary_bytes"])
        w(f"- Every Rust function at most 10 MiB → {ok(len(sized) == len(others) and largest['binary_bytes'] <= 10 * 1048576)} "
          f"(largest: {largest['name']}, {largest['binary_bytes'] / 1048576:.1f} MiB, `{largest['binary']}`).")
    if others:
        w(f"- Every Rust function's init under 20 ms → {ok(all(measured(r) and r['init_ms_p50'] < 20 for r in others))} "
          f"(slowest: {max(r['init_ms_p50'] for r in others):.1f} ms"
          + "".join(f"; {r['name']} did not start" for r in others if not measured(r)) + ").")
    w("\nA first outcome of `error` is the function answering its first event with an error through the "
      "Runtime API (for the authorizer: the benchmark key is not in the keys table, so the answer is "
      "`Unauthorized`, after the same lookup an allowed key costs); it is still the first response.\n")

# --- cpu ----------------------------------------------------------------------------------------
cpu = by("cpu")
if cpu:
    w("## 5. Per-event CPU: validation + envelope sealing\n")
    w("Instructions counted by `valgrind --tool=callgrind` around `sluice-bench cpu` (the `sluice-cpu` crate: "
      "`Validator::parse_body`, one strict pass over the body for syntax, UTF-8, depth, duplicate keys and "
      "exact numbers, then each event's members read with `data` kept as the slice of the body it was sent as; "
      "then `ingest::seal_all`, the envelope written with that slice verbatim and signed with HMAC-SHA256), run at "
      "two iteration counts and differenced so start-up cancels out. Wall time per event from a plain run is "
      "indicative only. CI holds these counts to `bench/instructions.toml` (`scripts/check-instructions.sh`, "
      "at most 10 % above the baseline).\n")
    w("Under valgrind the HMAC's SHA-256 runs the `sha2` crate's portable code, about 3,300 instructions per "
      "64-byte block (valgrind hides the CPU's SHA extensions, which the crate uses outside it): some 50 "
      "instructions of every byte below are that, where the SHA extensions spend a tenth of it.\n")
    w("| event size | instructions per event | instructions per byte | ns per event (wall) |")
    w("|---:|---:|---:|---:|")
    for r in cpu:
        w(f"| {r['event_bytes']:,} B | {f(r['instructions_per_event'])} | {f(r['instructions_per_event'] / r['event_bytes'], 1)} | {f(r['ns_per_event'])} |")
    w("")

w("## Reproducing\n")
w("```sh\nbash bench/run.sh          # full run, writes this file and benchmarks.png\nbash bench/run.sh --quick  # shorter loads\n```\n")
w("Raw results of the run are in `target/bench/results.jsonl`. The script installs `wrk` and `valgrind` from "
  "Debian if missing and a virtualenv with `bench/python/requirements.txt` (Powertools, boto3, awslambdaric, "
  "matplotlib) under `target/bench-venv`. The Lambda binaries are the `cargo lambda` builds of "
  "`scripts/build-lambdas.sh` when present (`target/lambda/<bin>/bootstrap`), else host release builds of "
  "`sluice-lambda`.\n")

with open(md_path, "w") as fh:
    fh.write("\n".join(out))

# --- plot -----------------------------------------------------------------------------------------
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
for ax, per in zip(axes, (1, 100)):
    for system, label, style in (("bare_http", "bare HTTP (ceiling)", "s--"), ("disk", "raw durable SQLite (ceiling)", "^--"),
                                 ("sluice_intake", "intake alone (durable)", "d-"), ("sluice", "sluice serve (durable)", "o-")):
        pts = [(c, find(system, per, c)) for c in (1, 16, 64, 256)]
        pts = [(c, r["events_per_sec"]) for c, r in pts if r]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks([1, 16, 64, 256], ["1", "16", "64", "256"])
    ax.set_xlabel("connections")
    ax.set_ylabel("events/s")
    ax.set_title(f"{per} event{'s' if per > 1 else ''} per request")
    ax.grid(True, which="both", alpha=0.3)
axes[0].legend(fontsize=8)
fig.suptitle(f"Ingest on {machine.get('nproc', '?')} cores, {machine.get('date', '')}, commit {machine.get('commit', '')}")
fig.tight_layout()
fig.savefig(png_path, dpi=110)
print(f"wrote {md_path} and {png_path}", file=sys.stderr)

# --- open-loop latency plot -------------------------------------------------------------------------
if openloop:
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    rates = [r.get("rate") or 0 for r in openloop]
    for key, label, style in (("p50_ms", "p50", "o-"), ("p90_ms", "p90", "s-"), ("p99_ms", "p99", "^-"),
                              ("p999_ms", "p99.9", "d-"), ("max_ms", "max", "x--")):
        pts = [(x, r.get(key)) for x, r in zip(rates, openloop) if r.get(key)]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
    pts = [(x, r.get("service_p99_ms")) for x, r in zip(rates, openloop) if r.get("service_p99_ms")]
    if pts:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], ":", color="grey", label="p99 from actual send (closed-loop view)")
    ax.set_yscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    lo, hi = ax.get_ylim()
    # Label the minor ticks only over a narrow range, where there are few major ones.
    ax.yaxis.set_minor_formatter(plain if hi / max(lo, 1e-9) < 30 else matplotlib.ticker.NullFormatter())
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_xticks(rates, [f"{r.get('fraction', 0):g} of peak\n{x:,.0f}/s" if r.get("fraction") is not None else f"{x:,.0f}/s"
                          for x, r in zip(rates, openloop)])
    ax.set_xlabel("offered load (requests/s, one event each, 64 connections)")
    ax.set_ylabel("latency from intended send time (ms)")
    ax.set_title(f"sluice serve, open loop: latency percentiles vs offered load\n"
                 f"{machine.get('nproc', '?')} cores, {machine.get('date', '')}, commit {machine.get('commit', '')}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(latency_png, dpi=110)
    print(f"wrote {latency_png}", file=sys.stderr)
