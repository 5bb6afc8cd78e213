#!/usr/bin/env bash
# Import throughput of `rackep trace import` on one core (README, "Importing production traces"):
#   TensorRT-LLM: a synthetic trace (64 ranks, 256 experts, 58 layers) exported with `rackep trace export --to
#                 trtllm` (int64 safetensors), then imported; MB/s = safetensors bytes / import wall time.
#   UltraEP NPY:  a profiler recording (ep 64, 256 logical / 320 physical experts, 128 records per .npz chunk,
#                 the profiler's default flush interval) written by a stdlib-Python generator, then imported
#                 with --ranks 1: the spread over N ranks multiplies the OUTPUT N-fold (global loads become
#                 N rows), which would measure the writer, not the NPY reading path.
# The input is read once before timing (warm page cache), so the numbers are CPU cost, the bound that matters
# when the storage is faster than the importer. Wall time and CPU time (user + sys) are both printed: on a
# shared machine the CPU figure is the importer's own cost; user time alone excludes the kernel's file writing,
# which other jobs' I/O slows. Peak memory is /usr/bin/time's maximum RSS.
#   SGLang:       a per_pass recording (8 rank files x 500 forward passes, global_physical_count int32 [61 layers,
#                 288 physical slots], 256 logical experts) written in torch.save's layout by the fixture
#                 generator (tools/make_import_fixtures.py), imported with --top-k 8 (one forward pass at a time).
# Each path is imported RUNS times (default 3; a fresh output directory each time), one line per run.
# Usage: [RUNS=3] tools/bench_import.sh [build dir] [work dir]
set -euo pipefail
RUNS=${RUNS:-3}
BUILD=${1:-build}
WORK=${2:-$(mktemp -d)}
RACKEP="$BUILD/rackep"
mkdir -p "$WORK"
rm -rf "$WORK/synth" "$WORK/trt" "$WORK/out-trt" "$WORK/ultraep" "$WORK/out-uep" "$WORK/sglang" "$WORK/out-sgl"

"$RACKEP" --log-level warn trace synth --out "$WORK/synth" --ranks 64 --experts 256 --top-k 8 \
  --tokens-per-rank 64 --layers 58 --microbatches 40 --seed 1 > /dev/null
"$RACKEP" --log-level warn trace export --to trtllm "$WORK/synth" --out "$WORK/trt" > /dev/null

python3 - "$WORK/ultraep" <<'EOF'
import json, os, struct, sys, zipfile
d = sys.argv[1]; os.makedirs(d)
ep, E, P, n, chunks = 64, 256, 320, 128, 400
tid = "bench"
def npy(descr, shape, payload):
    s = "(%d,)" % shape[0] if len(shape) == 1 else "(%s)" % ", ".join(map(str, shape))
    h = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, s) + " " * (21 - len(str(shape[0])))
    h += " " * ((64 - (11 + len(h)) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + payload
pre = struct.pack("<%di" % E, *[(97 * e) % 1000 for e in range(E)])
post = struct.pack("<%di" % P, *[(31 * p) % 900 for p in range(P)])
layers = 58
for c in range(chunks):
    ids = [c * n + i for i in range(n)]
    L = [i % layers for i in ids]; M = [i // layers for i in ids]
    with zipfile.ZipFile(os.path.join(d, "%s.chunk%06d.npz" % (tid, c)), "w") as z:
        for name, blob in [("layers", npy("<i4", (n,), struct.pack("<%di" % n, *L))),
                           ("virtual_layers", npy("<i4", (n,), struct.pack("<%di" % n, *L))),
                           ("microbatches", npy("<i8", (n,), struct.pack("<%dq" % n, *M))),
                           ("pre_logical_loads", npy("<i4", (n, E), pre * n)),
                           ("post_physical_loads", npy("<i4", (n, P), post * n))]:
            with z.open(name + ".npy", "w", force_zip64=True) as f:
                f.write(blob)
json.dump({"schema": "ultra_ep_trace_v1", "ep_size": ep, "num_layers": layers, "max_microbatches": 1,
           "num_local_master_experts": E // ep, "num_local_redundant_experts": 1,
           "num_local_physical_experts": P // ep, "num_global_logical_experts": E,
           "num_global_physical_experts": P, "chunks": chunks, "dropped_records": 0, "trace_id": tid},
          open(os.path.join(d, tid + ".manifest.json"), "w"))
EOF

python3 - "$WORK/sglang" "$(dirname "$0")" <<'EOF'
import os, sys
sys.path.insert(0, sys.argv[2])
import make_import_fixtures as fx
d = sys.argv[1]; os.makedirs(d)
L, P, E, ranks, passes = 61, 288, 256, 8, 500
p2l = [p % E for p in range(P)] * L
for r in range(ranks):
    flat = [((31 * p + 7 * l + r) % 97) * (l > 2) for l in range(L) for p in range(P)]
    fx.write_torch_save(os.path.join(d, "expert_distribution_recorder_1700000000_%d.pt" % r),
                        lambda Tensor: {"records": [{"forward_pass_id": fp, "rank": r, "gatherer_key": "primary",
                                                     "global_physical_count": Tensor(flat, [L, P])}
                                                    for fp in range(passes)],
                                        "last_physical_to_logical_map": Tensor(p2l, [L, P])})
EOF

measure() {  # name, input dir, output dir, import args...
  local name=$1 input=$2 out=$3
  shift 3
  cat "$input"/* > /dev/null
  local bytes
  bytes=$(du -sb "$input" | cut -f1)
  rm -rf "$out"
  /usr/bin/time -f "%e %U %S %M" -o "$WORK/$name.time" taskset -c 0 \
    "$RACKEP" --log-level warn trace import "$@" --out "$out" > /dev/null
  read -r wall user sys rss < "$WORK/$name.time"
  awk -v n="$name" -v b="$bytes" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" 'BEGIN {
    printf "%-8s %7.1f MB: wall %5.2f s = %6.1f MB/s; CPU %5.2f s = %6.1f MB/s (user %5.2f s = %6.1f MB/s); peak RSS %.0f MB\n",
           n, b / 1e6, w, b / 1e6 / w, u + s, b / 1e6 / (u + s), u, b / 1e6 / (u > 0 ? u : 0.01), r / 1024 }'
}

for ((run = 0; run < RUNS; ++run)); do
  measure trtllm "$WORK/trt" "$WORK/out-trt" --from trtllm "$WORK/trt"
done
for ((run = 0; run < RUNS; ++run)); do
  measure sglang "$WORK/sglang" "$WORK/out-sgl" --from sglang "$WORK/sglang" --top-k 8
done
for ((run = 0; run < RUNS; ++run)); do
  measure ultraep "$WORK/ultraep" "$WORK/out-uep" --from ultraep "$WORK/ultraep" --top-k 8 --ranks 1 \
    --chunk-records 128
done
