# The report of bench/e2e-bench: reads its samples (tab-separated lines
# "mode path figure round value"), prints per mode three tables (median and
# min-max over the rounds, one row per path) and the targets of
# docs/BENCHMARKS.md as same-round ratios, and writes the same as
# JSON. Plain POSIX awk (Debian's mawk), no sorting builtins.
#
#   awk -F'\t' -v rounds=3 -v paths="direct hbone ..." -v json=out.json \
#       [-v commit= -v started= -v cores= -v seconds= -v load_before= -v load_after= -v smoke=] \
#       -f bench/e2e-report.awk samples.tsv

function add_unique(list, n, item,    i) {
  for (i = 1; i <= n; i++) if (list[i] == item) return n
  list[n + 1] = item
  return n + 1
}

# Sorts v[1..n] ascending in place (insertion sort: n is the number of rounds).
function sort_values(v, n,    i, j, x) {
  for (i = 2; i <= n; i++) {
    x = v[i]
    for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]
    v[j + 1] = x
  }
}

# Fills st["n"], st["median"], st["min"], st["max"] from v[1..n]; n == 0 leaves st["n"] = 0.
function stats_of(v, n, st) {
  st["n"] = n
  if (n == 0) return
  sort_values(v, n)
  st["median"] = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  st["min"] = v[1]
  st["max"] = v[n]
}

function fmt(x,    a) {
  a = x < 0 ? -x : x
  if (a >= 100) return sprintf("%.0f", x)
  if (a >= 10) return sprintf("%.1f", x)
  return sprintf("%.2f", x)
}

function cell(st) {
  if (st["n"] == 0) return "-"
  if (st["n"] == 1 || st["min"] == st["max"]) return fmt(st["median"])
  return fmt(st["median"]) " (" fmt(st["min"]) "-" fmt(st["max"]) ")"
}

# The samples of one mode/path/figure, in round order, into v; returns how many.
function samples_of(mode, path, fig, v,    r, n) {
  n = 0
  for (r = 1; r <= rounds; r++) if ((mode, path, fig, r) in val) v[++n] = val[mode, path, fig, r]
  return n
}

function figure_stats(mode, path, fig, st,    v, n) {
  n = samples_of(mode, path, fig, v)
  stats_of(v, n, st)
}

# Rows are paths; a path with none of these figures is left out.
function print_table(mode, title, figs, heads,    f, nf, h, i, p, line, st, any) {
  nf = split(figs, f, " ")
  split(heads, h, "|")
  printf "\n%s\n", title
  line = sprintf("  %-13s", "path")
  for (i = 1; i <= nf; i++) line = line sprintf(" %-21s", h[i])
  print line
  for (p = 1; p <= npaths; p++) {
    line = sprintf("  %-13s", path_order[p])
    any = 0
    for (i = 1; i <= nf; i++) {
      figure_stats(mode, path_order[p], f[i], st)
      line = line sprintf(" %-21s", cell(st))
      if (st["n"] > 0) any = 1
    }
    if (any) print line
  }
}

# One target: ours (path/figure) against a peer (path/figure) as the ratio of
# the same round's samples, or (peer path "-") the figure itself against a
# limit. need is ">=" or "<=" goal.
function target(mode, name, our_path, our_fig, peer_path, peer_fig, op, goal,    r, n, v, st, ours, peer, met, o, p) {
  n = 0
  for (r = 1; r <= rounds; r++) {
    if (!((mode, our_path, our_fig, r) in val)) continue
    o = val[mode, our_path, our_fig, r]
    if (peer_path == "-") { v[++n] = o; continue }
    if (!((mode, peer_path, peer_fig, r) in val)) continue
    p = val[mode, peer_path, peer_fig, r]
    if (p > 0) v[++n] = o / p
  }
  stats_of(v, n, st)
  figure_stats(mode, our_path, our_fig, ours)
  if (peer_path != "-") figure_stats(mode, peer_path, peer_fig, peer)
  met = "-"
  if (n > 0) met = ((op == ">=" && st["median"] >= goal) || (op == "<=" && st["median"] <= goal)) ? "yes" : "NO"
  printf "  %-46s %-10s %-10s %-21s %-8s %s\n", name, (ours["n"] ? fmt(ours["median"]) : "-"),
         (peer_path == "-" ? "-" : (peer["n"] ? fmt(peer["median"]) : "-")), cell(st), op " " goal, met
  ntargets[mode]++
  t = mode SUBSEP ntargets[mode]
  tname[t] = name; tours[t] = our_path "/" our_fig; tpeer[t] = (peer_path == "-" ? "" : peer_path "/" peer_fig)
  tneed[t] = op " " goal; tmet[t] = met; tn[t] = n
  if (n > 0) { tmed[t] = st["median"]; tmin[t] = st["min"]; tmax[t] = st["max"] }
}

function print_targets(mode) {
  printf "\ntargets (docs/BENCHMARKS.md): ours / peer in each round, then the median (min-max) of those ratios;\n"
  printf "a limit without a peer compares the figure itself\n"
  printf "  %-46s %-10s %-10s %-21s %-8s %s\n", "target", "ours", "peer", "ratio (or value)", "need", "met"
  target(mode, "HBONE CPU-s/GB, 1 stream", "hbone", "cpu_s_per_gb_1", "-", "", "<=", 2.0)
  target(mode, "HBONE CPU-s/GB, 8 streams", "hbone", "cpu_s_per_gb_8", "-", "", "<=", 2.0)
  target(mode, "HBONE / haproxy mTLS throughput, 1 stream", "hbone", "gbit_1", "haproxy-mtls", "gbit_1", ">=", 1.25)
  target(mode, "HBONE / haproxy mTLS throughput, 8 streams", "hbone", "gbit_8", "haproxy-mtls", "gbit_8", ">=", 1.25)
  target(mode, "passthrough / haproxy plain throughput, 1 str.", "passthrough", "gbit_1", "haproxy", "gbit_1", ">=", 1.0)
  target(mode, "passthrough / haproxy plain throughput, 8 str.", "passthrough", "gbit_8", "haproxy", "gbit_8", ">=", 1.0)
  target(mode, "HBONE / direct ping-pong p50", "hbone", "p50_us", "direct", "p50_us", "<=", 3.5)
  target(mode, "HBONE / haproxy mTLS ping-pong p99", "hbone", "p99_us", "haproxy-mtls", "p99_us", "<=", 1.0)
  target(mode, "HBONE warm / haproxy plain conn/s, sequential", "hbone", "conn_per_s_1", "haproxy", "conn_per_s_1", ">=", 0.5)
  target(mode, "HBONE warm / haproxy plain conn/s, 16 conc.", "hbone", "conn_per_s_16", "haproxy", "conn_per_s_16", ">=", 0.5)
  target(mode, "HBONE cold / haproxy mTLS conn/s, sequential", "hbone-cold", "conn_per_s_1", "haproxy-mtls", "conn_per_s_1", ">=", 2.0)
  target(mode, "HBONE cold / haproxy mTLS conn/s, 16 conc.", "hbone-cold", "conn_per_s_16", "haproxy-mtls", "conn_per_s_16", ">=", 2.0)
  target(mode, "HBONE KiB per idle connection, both ztunnels", "hbone", "kib_per_idle_conn", "-", "", "<=", 16)
  target(mode, "HBONE idle RSS, larger ztunnel (KiB)", "hbone", "rss_idle_largest_kib", "-", "", "<=", 20480)
  target(mode, "HBONE RSS after burst / idle", "hbone", "rss_after_burst_over_idle", "-", "", "<=", 1.25)
}

function json_stats(st) {
  return sprintf("{\"median\": %s, \"min\": %s, \"max\": %s}", st["median"], st["min"], st["max"])
}

function write_json(    m, p, f, first_p, first_f, v, n, st, i, r, s, t, k) {
  printf "{\n  \"started\": \"%s\", \"commit\": \"%s\", \"cores\": %d, \"rounds\": %d, \"seconds\": %s, \"smoke\": %s,\n",
         started, commit, cores, rounds, seconds, (smoke == 1 ? "true" : "false") > json
  printf "  \"load_before\": \"%s\", \"load_after\": \"%s\",\n  \"results\": {", load_before, load_after > json
  for (m = 1; m <= nmodes; m++) {
    printf "%s\n    \"%s\": {", (m > 1 ? "," : ""), mode_order[m] > json
    first_p = 1
    for (p = 1; p <= npaths; p++) {
      first_f = 1
      for (f = 1; f <= nfigs; f++) {
        n = samples_of(mode_order[m], path_order[p], fig_order[f], v)
        if (n == 0) continue
        s = ""
        for (i = 1; i <= n; i++) s = s (i > 1 ? ", " : "") v[i]
        stats_of(v, n, st)
        if (first_f) { printf "%s\n      \"%s\": {", (first_p ? "" : ","), path_order[p] > json; first_p = 0 }
        printf "%s\n        \"%s\": {\"samples\": [%s], \"median\": %s, \"min\": %s, \"max\": %s}", (first_f ? "" : ","),
               fig_order[f], s, st["median"], st["min"], st["max"] > json
        first_f = 0
      }
      if (!first_f) printf "\n      }" > json
    }
    printf "\n    }" > json
  }
  printf "\n  },\n  \"targets\": {" > json
  for (m = 1; m <= nmodes; m++) {
    printf "%s\n    \"%s\": [", (m > 1 ? "," : ""), mode_order[m] > json
    for (k = 1; k <= ntargets[mode_order[m]]; k++) {
      t = mode_order[m] SUBSEP k
      printf "%s\n      {\"target\": \"%s\", \"ours\": \"%s\", \"peer\": \"%s\", \"need\": \"%s\", \"met\": %s", (k > 1 ? "," : ""),
             tname[t], tours[t], tpeer[t], tneed[t], (tmet[t] == "yes" ? "true" : (tmet[t] == "NO" ? "false" : "null")) > json
      if (tn[t] > 0) printf ", \"ratio\": {\"median\": %s, \"min\": %s, \"max\": %s}", tmed[t], tmin[t], tmax[t] > json
      printf "}" > json
    }
    printf "\n    ]" > json
  }
  printf "\n  }\n}\n" > json
  close(json)
}

BEGIN { npaths = split(paths, path_order, " ") }

NF == 5 {
  val[$1, $2, $3, $4] = $5
  nmodes = add_unique(mode_order, nmodes, $1)
  nfigs = add_unique(fig_order, nfigs, $3)
}

END {
  printf "\nztunnel end-to-end benchmark: commit %s, %s, %d cores, %d round(s) x %ss", commit, started, cores, rounds, seconds
  printf "%s\nload average before %s, after %s\n", (smoke == 1 ? " (SMOKE: checks the harness, not speed)" : ""), load_before, load_after
  print "cells: median (min-max) over the rounds; CPU and RSS are the sum of the path's proxy processes"
  for (m = 1; m <= nmodes; m++) {
    mode = mode_order[m]
    printf "\n=== %s ===\n", mode
    print_table(mode, "throughput and proxy CPU",
                "gbit_1 gbit_8 cpu_s_per_gb_1 cpu_s_per_gb_8",
                "Gbit/s 1 stream|Gbit/s 8 streams|CPU-s/GB 1 stream|CPU-s/GB 8 streams")
    print_table(mode, "latency (1 KiB ping-pong) and connection rate (new connection + 1-byte echo)",
                "p50_us p90_us p99_us conn_per_s_1 conn_per_s_16",
                "p50 us|p90 us|p99 us|conn/s sequential|conn/s 16 concurrent")
    print_table(mode, "proxy CPU per connection in the connection-rate runs (us, all the path's proxy processes)",
                "cpu_us_per_conn_1 cpu_us_per_conn_16", "sequential|16 concurrent")
    print_table(mode, "memory (RSS, KiB)",
                "rss_idle_kib rss_idle_largest_kib kib_per_idle_conn rss_after_burst_kib rss_after_burst_over_idle",
                "idle, sum|idle, largest process|per idle connection|after burst + quiet|after burst / idle")
    print_table(mode, "pool check: new HBONE connections per proxied connection (warm ~0, cold ~1; from the host's TCP opens, so\n  other programs on the machine can only add to it)",
                "hbone_conns_per_conn_1 hbone_conns_per_conn_16", "sequential|16 concurrent")
    print_targets(mode)
  }
  write_json()
}
