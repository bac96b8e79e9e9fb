#!/usr/bin/env bash
# Slurm side of LLMChain's node benchmark: measures on a one-node Slurm cluster
# (started here, by hand, in a temp dir) the same figures that
# `cargo run --release -p llmchain-daemon --example load` measures for the
# LLMChain daemon:
#   * submit throughput: N `sbatch --wrap=true` from 1 client and from 4
#     concurrent clients, while a blocker job holds the whole node, so every
#     submitted job stays queued (as in load.rs);
#   * submit-to-start latency with a free slot, one job at a time, each waited
#     for before the next: the job's first command writes `date +%s.%N`; the
#     script records its own clock just before it runs `sbatch` (client send
#     to start, the load benchmark's "client_send_to_start"), split at the
#     moment slurmctld logs the job's allocation ("sched: Allocate", log
#     timestamps in milliseconds); also Slurm's own SubmitTime -> StartTime,
#     for reference only (whole seconds);
#   * 500 x `true` through the 2-slot node: wall time from the first submit
#     until the queue is empty.
# Each phase runs on a freshly started cluster, as load.rs starts a fresh
# daemon per phase.
#
# Two configurations (--config):
#   default  Slurm's scheduler defaults (sched/backfill, sched_interval=60,
#            batch_sched_delay=3, sched_min_interval=2us, ...);
#   fast     SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,
#            bf_interval=1: the main scheduler runs at every tick of
#            slurmctld's one-second background loop instead of every third
#            second, and backfill every second instead of every 30 (printed in
#            the report; BENCH_SLURM_FAST=... replaces these settings).
# Slurm 22.05 does not start a batch job inside the submit RPC: the submit
# only queues a scheduling request that slurmctld's background loop serves
# at its next whole-second tick, so no setting brings the average start
# latency much below half a second.
# Both configurations share the plumbing needed to run here at all:
# select/cons_tres with CR_CPU (2 CPUs, so two 1-CPU jobs run at once),
# proctrack/linuxproc, task/none, no accounting database, a private munged.
#
# Usage (as root; installs `slurm-wlm` and `munge` with apt-get if missing):
#   scripts/bench-slurm.sh [--config default|fast|both] [--reps N] [--quick]
#                          [--phases submit,latency,true] [--json] [--keep]
#   --quick   1,000 submits per throughput phase and 50 latency samples
#             (load.rs --quick); default 4,000 and 200 (load.rs without).
#   --reps N  repeat every measurement N times; the table shows medians.
#   --phases  run only some measurements: submit (throughput), latency,
#             true (500 x true); default all three.
#   --json    also print one JSON object (every repetition, every
#             percentile) on stdout; the table then goes to stderr.
#   --keep    keep the temp dir (configs, daemon logs) for inspection.
# For a quick try-out, BENCH_SLURM_SUBMITS, BENCH_SLURM_SAMPLES and
# BENCH_SLURM_TRUE override the three sizes (figures then not comparable).
# Every daemon this script starts (munged, slurmctld, slurmd, and the job
# steps slurmd started) is stopped on exit, also on Ctrl-C or error.
set -euo pipefail

config=both
reps=1
quick=0
json=0
keep=0
phases=submit,latency,true
while [ $# -gt 0 ]; do
    case "$1" in
        --config) config=${2:?--config needs default, fast or both}; shift 2 ;;
        --config=*) config=${1#--config=}; shift ;;
        --reps) reps=${2:?--reps needs a number}; shift 2 ;;
        --reps=*) reps=${1#--reps=}; shift ;;
        --phases) phases=${2:?--phases needs a list}; shift 2 ;;
        --phases=*) phases=${1#--phases=}; shift ;;
        --quick) quick=1; shift ;;
        --json) json=1; shift ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-slurm: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
case "$config" in
    default) configs=(default) ;;
    fast) configs=(fast) ;;
    both) configs=(default fast) ;;
    *) echo "bench-slurm: --config must be default, fast or both, not '$config'" >&2; exit 2 ;;
esac
case "$reps" in
    ''|*[!0-9]*|0) echo "bench-slurm: --reps must be a positive integer, not '$reps'" >&2; exit 2 ;;
esac
if [ "$quick" = 1 ]; then n_submit=1000; n_latency=50; else n_submit=4000; n_latency=200; fi
n_true=500
# Smaller runs for trying the script out (not comparable with load.rs):
n_submit=${BENCH_SLURM_SUBMITS:-$n_submit}
n_latency=${BENCH_SLURM_SAMPLES:-$n_latency}
n_true=${BENCH_SLURM_TRUE:-$n_true}

log() { echo "bench-slurm: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (Slurm's daemons and a private munged need it)"
command -v python3 >/dev/null || die "python3 is needed for the statistics (apt-get install -y python3)"
[ -n "${EPOCHREALTIME:-}" ] || die "bash 5 or newer is needed (\$EPOCHREALTIME)"

if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null \
    || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    log "installing slurm-wlm and munge with apt-get"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >&2
fi

work=$(mktemp -d /tmp/llmchain-bench-slurm.XXXXXX)
chmod 0755 "$work"
munge_pid=
ctld_pid=
slurmd_pid=
node=$(uname -n)
cpus=2

# Processes whose environment carries our SLURM_CONF path (slurmstepd and the
# job scripts inherit it): the only ones besides our daemons we may stop.
our_job_pids() {
    local p
    for p in /proc/[0-9]*; do
        if { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qx "SLURM_CONF=$work/.*"; then
            echo "${p#/proc/}"
        fi
    done
}

stop_pid() { # pid name
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
    log "$2 (pid $pid) did not stop on TERM; killing"
    kill -KILL "$pid" 2>/dev/null || true
}

stop_cluster() {
    if [ -n "$ctld_pid" ] && kill -0 "$ctld_pid" 2>/dev/null; then
        scancel --quiet --user=root 2>/dev/null || true
    fi
    stop_pid "$slurmd_pid" slurmd
    stop_pid "$ctld_pid" slurmctld
    slurmd_pid=
    ctld_pid=
    local p
    for p in $(our_job_pids); do kill -KILL "$p" 2>/dev/null || true; done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_cluster
    stop_pid "$munge_pid" munged
    if [ "$keep" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# A private munged: its own key, socket, log; nothing shared with the system.
mkdir -p "$work/munge"
chmod 0700 "$work/munge"
dd if=/dev/urandom of="$work/munge/munge.key" bs=1024 count=1 status=none
chmod 0400 "$work/munge/munge.key"
munged --force --foreground --socket="$work/munge/munge.sock" \
    --key-file="$work/munge/munge.key" --pid-file="$work/munge/munged.pid" \
    --log-file="$work/munge/munged.log" --seed-file="$work/munge/munged.seed" \
    >/dev/null 2>&1 &
munge_pid=$!
for _ in $(seq 100); do [ -S "$work/munge/munge.sock" ] && break; sleep 0.05; done
[ -S "$work/munge/munge.sock" ] || die "munged did not start (see $work/munge/munged.log; --keep keeps it)"

fast_params=${BENCH_SLURM_FAST:-"SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1"}

# start_cluster CONFIG RUN: writes slurm.conf for CONFIG into $work/RUN and
# starts slurmctld and slurmd there; returns when the node is idle.
start_cluster() {
    local cfg=$1 dir=$work/$2
    mkdir -p "$dir/state" "$dir/spool" "$dir/out"
    local cport dport
    cport=$(free_port)
    dport=$(free_port)
    while [ "$dport" = "$cport" ]; do dport=$(free_port); done
    cat >"$dir/slurm.conf" <<EOF
# One-node cluster for scripts/bench-slurm.sh (config: $cfg).
ClusterName=llmchainbench
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$cport
SlurmdPort=$dport
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$work/munge/munge.sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
LogTimeFormat=iso8601_ms
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=1024 State=UNKNOWN
PartitionName=bench Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
    if [ "$cfg" = fast ]; then
        tr ' ' '\n' <<<"$fast_params" >>"$dir/slurm.conf"
    fi
    export SLURM_CONF=$dir/slurm.conf
    slurmctld -D -i >"$dir/slurmctld.stdout" 2>&1 &
    ctld_pid=$!
    slurmd -D -N "$node" >"$dir/slurmd.stdout" 2>&1 &
    slurmd_pid=$!
    local i state=
    for i in $(seq 600); do
        state=$(sinfo -h -n "$node" -o %T 2>/dev/null || true)
        [ "$state" = idle ] && return 0
        kill -0 "$ctld_pid" 2>/dev/null || die "slurmctld exited (see $dir/slurmctld.log; --keep keeps it)"
        kill -0 "$slurmd_pid" 2>/dev/null || die "slurmd exited (see $dir/slurmd.log; --keep keeps it)"
        sleep 0.05
    done
    die "node $node not idle after 30 s (state '$state'; see $dir/*.log; --keep keeps them)"
}

# wait_empty TIMEOUT_S: until squeue shows no job at all (pending, running or
# completing).
wait_empty() {
    local deadline=$((SECONDS + $1))
    while [ -n "$(squeue -h -o %i 2>/dev/null || echo x)" ]; do
        [ $SECONDS -lt $deadline ] || die "jobs still queued after $1 s"
        sleep 0.05
    done
}

# throughput CLIENTS N -> prints submits/s.
throughput() {
    local clients=$1 n=$2 per c t0 t1 blocker
    per=$((n / clients))
    blocker=$(sbatch --parsable -c "$cpus" -o /dev/null --wrap='sleep 100000')
    for _ in $(seq 600); do
        [ "$(squeue -h -j "$blocker" -o %T)" = RUNNING ] && break
        sleep 0.05
    done
    [ "$(squeue -h -j "$blocker" -o %T)" = RUNNING ] || die "blocker job $blocker did not start"
    t0=$EPOCHREALTIME
    for c in $(seq "$clients"); do
        (
            for _ in $(seq "$per"); do
                sbatch --parsable -o /dev/null --wrap=true || exit 1
            done >"$work/ids.$c"
        ) &
    done
    wait
    t1=$EPOCHREALTIME
    local got
    got=$(cat "$work"/ids.* | wc -l)
    rm -f "$work"/ids.*
    [ "$got" = $((per * clients)) ] || die "only $got of $((per * clients)) submits succeeded"
    python3 -c "print(round($got / ($t1 - $t0), 1))"
}

# latency N RUNDIR -> writes RUNDIR/latency.tsv: id, client send, sbatch
# returned, job's first command (all epoch seconds), Slurm's SubmitTime and
# StartTime (epoch seconds, whole).
latency() {
    local n=$1 dir=$2 i id t0 t1 f start line sub st
    : >"$dir/latency.tsv"
    for i in $(seq "$n"); do
        f=$dir/out/start.$i
        t0=$EPOCHREALTIME
        id=$(sbatch --parsable -o /dev/null --wrap="date +%s.%N >$f.tmp && mv $f.tmp $f; true")
        t1=$EPOCHREALTIME
        for _ in $(seq 6000); do [ -s "$f" ] && break; sleep 0.002; done
        [ -s "$f" ] || die "job $id (sample $i) did not start within 12 s"
        start=$(<"$f")
        # wait for the job to finish (as load.rs waits) so one slot stays free
        for _ in $(seq 6000); do
            line=$(scontrol -o show job "$id" 2>/dev/null || true)
            case "$line" in *JobState=COMPLETED*) break ;; esac
            sleep 0.01
        done
        sub=$(sed -n 's/.* SubmitTime=\([^ ]*\) .*/\1/p' <<<"$line")
        st=$(sed -n 's/.* StartTime=\([^ ]*\) .*/\1/p' <<<"$line")
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$t0" "$t1" "$start" \
            "$(date -d "$sub" +%s)" "$(date -d "$st" +%s)" >>"$dir/latency.tsv"
    done
}

# true500 -> prints wall seconds from the first submit until the queue is empty.
true500() {
    local t0 t1
    t0=$EPOCHREALTIME
    for _ in $(seq "$n_true"); do
        sbatch --parsable -o /dev/null --wrap=true >/dev/null
    done
    wait_empty 1800
    t1=$EPOCHREALTIME
    python3 -c "print(round($t1 - $t0, 2))"
}

phase() { case ",$phases," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
results=$work/results.tsv
: >"$results"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log "work dir $work; load average: $load_start"
for rep in $(seq "$reps"); do
    for cfg in "${configs[@]}"; do
        run=$cfg-$rep
        if phase submit; then
            log "[$run] submit throughput, 1 client, $n_submit jobs"
            start_cluster "$cfg" "$run-t1"
            printf '%s\t%s\tsubmit_1\t%s\n' "$cfg" "$rep" "$(throughput 1 "$n_submit")" >>"$results"
            stop_cluster
            log "[$run] submit throughput, 4 clients, $n_submit jobs"
            start_cluster "$cfg" "$run-t4"
            printf '%s\t%s\tsubmit_4\t%s\n' "$cfg" "$rep" "$(throughput 4 "$n_submit")" >>"$results"
            stop_cluster
        fi
        if phase latency || phase true; then
            start_cluster "$cfg" "$run-lat"
            if phase latency; then
                log "[$run] submit-to-start latency, $n_latency samples"
                latency "$n_latency" "$work/$run-lat"
                printf '%s\t%s\tlatency\t%s\n' "$cfg" "$rep" "$work/$run-lat" >>"$results"
            fi
            if phase true; then
                log "[$run] $n_true x true on $cpus slots"
                printf '%s\t%s\ttrue500\t%s\n' "$cfg" "$rep" "$(true500)" >>"$results"
            fi
            stop_cluster
        fi
    done
done

LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg) LOADAVG0=$load_start FAST="$fast_params" JSON=$json \
    SLURMV=$(sbatch --version | cut -d' ' -f2) NSUB=$n_submit NTRUE=$n_true \
    python3 - "$results" <<'PY'
import json, math, os, re, statistics, sys
from datetime import datetime

def pct(v, p):  # nearest rank, as llmchain_core::metrics::percentile_sorted
    v = sorted(v)
    r = math.ceil(p / 100 * len(v))
    return v[min(max(r, 1), len(v)) - 1]

def summary(v):
    return {"n": len(v), "p50_ms": round(pct(v, 50), 1), "p95_ms": round(pct(v, 95), 1),
            "p99_ms": round(pct(v, 99), 1), "max_ms": round(max(v), 1),
            "mean_ms": round(statistics.fmean(v), 1)}

ts = re.compile(r"^\[(\S+)\] (.*)$")
alloc_re = re.compile(r"(?:sched: Allocate|_start_job: Started) JobId=(\d+)")
def ctld_alloc(log):
    """slurmctld's log (millisecond timestamps): when each job was allocated
    its node, by the main scheduler ("sched: Allocate") or by backfill
    ("_start_job: Started")."""
    alloc = {}
    for line in open(log, errors="replace"):
        m = ts.match(line.rstrip("\n"))
        j = m and alloc_re.search(m.group(2))
        if j:
            alloc.setdefault(j.group(1), datetime.fromisoformat(m.group(1)).timestamp())
    return alloc

runs = {}
for line in open(sys.argv[1]):
    cfg, rep, what, val = line.rstrip("\n").split("\t")
    r = runs.setdefault(cfg, {}).setdefault(int(rep), {})
    if what != "latency":
        r[what] = float(val)
        continue
    rows = [l.split("\t") for l in open(os.path.join(val, "latency.tsv")).read().splitlines()]
    alloc = ctld_alloc(os.path.join(val, "slurmctld.log"))
    r["latency"] = {
        "client_send_to_start": summary([(float(s) - float(t0)) * 1000 for _, t0, _, s, _, _ in rows]),
        "sbatch_return_to_start": summary([(float(s) - float(t1)) * 1000 for _, _, t1, s, _, _ in rows]),
        "sbatch_call": summary([(float(t1) - float(t0)) * 1000 for _, t0, t1, _, _, _ in rows]),
        "slurm_submit_to_start_whole_s": summary([(int(st) - int(sb)) * 1000 for *_, sb, st in rows]),
    }
    got = [row for row in rows if row[0] in alloc]
    if got:
        r["latency"]["client_send_to_allocate"] = summary([(alloc[i] - float(t0)) * 1000 for i, t0, *_ in got])
        r["latency"]["allocate_to_start"] = summary([(float(st) - alloc[i]) * 1000 for i, _, _, st, _, _ in got])

out = {
    "slurm_version": os.environ["SLURMV"],
    "node": {"cpus": 2, "select": "select/cons_tres CR_CPU", "proctrack": "proctrack/linuxproc",
             "task": "task/none"},
    "fast_settings": os.environ["FAST"],
    "submits_per_phase": int(os.environ["NSUB"]),
    "true_jobs": int(os.environ["NTRUE"]),
    "load_average_at_start": os.environ["LOADAVG0"],
    "load_average_at_end": os.environ["LOADAVG"],
    "configs": {c: [runs[c][k] for k in sorted(runs[c])] for c in runs},
}
table = sys.stdout
if os.environ["JSON"] == "1":
    print(json.dumps(out, indent=2))
    table = sys.stderr

def med(c, f):
    vals = [f(r) for r in runs[c].values()]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else float("nan")

def lat(key, field):
    return lambda r: r.get("latency", {}).get(key, {}).get(field)

cols = list(runs)
print(f"Slurm {out['slurm_version']} on one node ({os.uname().nodename}), 2 CPUs, "
      f"medians of {len(next(iter(runs.values())))} repetition(s); load average "
      f"{out['load_average_at_start']} at start, {out['load_average_at_end']} at end",
      file=table)
print(f"fast = {out['fast_settings']}", file=table)
rows = [
    (f"submits/s, 1 client ({out['submits_per_phase']} sbatch)", lambda c: med(c, lambda r: r.get("submit_1")), "{:.0f}"),
    (f"submits/s, 4 clients ({out['submits_per_phase']} sbatch)", lambda c: med(c, lambda r: r.get("submit_4")), "{:.0f}"),
]
for key, label in [("client_send_to_start", "submit-to-start (send->job runs)"),
                   ("client_send_to_allocate", "  of which send->allocated"),
                   ("allocate_to_start", "  of which allocated->job runs"),
                   ("sbatch_call", "sbatch call (fork..job id)"),
                   ("slurm_submit_to_start_whole_s", "Slurm SubmitTime->StartTime (1 s res.)")]:
    for p in ("p50", "p95", "p99"):
        rows.append((f"{label} {p} ms", (lambda k, q: lambda c: med(c, lat(k, q + "_ms")))(key, p), "{:.0f}"))
rows.append((f"{out['true_jobs']} x true on 2 slots, wall s", lambda c: med(c, lambda r: r.get("true500")), "{:.1f}"))
w = max(len(r[0]) for r in rows)
print(f"{'':{w}}  " + "  ".join(f"{c:>9}" for c in cols), file=table)
for label, f, fmt in rows:
    print(f"{label:{w}}  " + "  ".join(f"{fmt.format(f(c)):>9}" for c in cols), file=table)
PY
