#!/usr/bin/env python3
"""Writes the small test fixtures of `rackep trace import` (tests/fixtures/import/<format>/).

Pure Python standard library (no torch, no numpy), emitting the exact byte formats the recorders write, so
the fixtures can be regenerated anywhere:  python3 tools/make_import_fixtures.py [--out tests/fixtures/import]

Every fixture is a tiny "recording" of the same made-up model: 16 routed experts, top-2, model layers
0..3 where layer 0 is dense (DeepSeek-style first dense layer) and layers 1..3 are MoE. Routing is drawn by
a fixed linear congruential generator (not `random`, whose algorithms may change), skewed towards low expert
ids so that imbalance is visible. How each file mirrors its recorder:

  trtllm/   TensorRT-LLM EXPERT_STATISTIC_ITER_RANGE=10-13 EXPERT_STATISTIC_PATH=trtllm
            EXPERT_STATISTIC_DUMP_DISPATCH=1 on 4 attention-DP ranks: meta_info.json, rank{r}.safetensors
            (keys "{iter}_{layer}", int64 [16] = bincount of the rank's top-2 ids, MoE layers only),
            rank{r}_numtokens.json. safetensors = u64 little-endian header length + JSON header (padded
            with spaces to 8 bytes, as safetensors does) + raw little-endian data.
  jsonl/    per-token JSONL of moe-balance (sim/trace_format.md), one object per (layer, batch): 3 batches of
            4 origin rows, layers 0..3. Layer 0 is dense: its tokens carry [-1, -1] (empty rows). Every 7th
            token of a MoE layer has its second expert padded with -1 (capacity drop). topk_weights and
            request_id are present, as a serving recorder writes them.
  ultraep/  UltraEP load profiler (ULTRA_EP_LOAD_PROFILING=1 ULTRA_EP_LOAD_PROFILE_FLUSH_INTERVAL=5) on
            ep_size 4 with 4 masters + 1 redundant slot per rank: {id}.manifest.json and three
            {id}.chunk{NNNNNN}.npz written like np.savez (uncompressed zip, members opened with
            force_zip64=True, .npy v1.0 headers padded to 64 bytes, a 0-d '<U' metadata array). 4
            microbatches x MoE layers 1..3; microbatch 1 straddles chunks 0 and 1. pre_logical_loads are
            global (summed over ranks); post_physical_loads move half of the hottest expert onto the least
            loaded rank's redundant slot.
  sglang/   SGLang expert distribution recorder, torch.save layout (zip: {stem}/data.pkl pickle protocol 2,
            {stem}/data/{key} raw little-endian storages, {stem}/version, {stem}/byteorder). The pickle is
            produced by the standard pickle module with stand-in classes registered as
            torch._utils._rebuild_tensor_v2, torch.IntStorage and collections.OrderedDict, and storages as
            persistent ids ('storage', torch.IntStorage, key, 'cpu', numel), exactly as torch.save does.
              per_pass/  --expert-distribution-recorder-mode per_pass, 2 ranks with DP attention, model layers
                         0..3 (0 dense, all-zero), 16 logical experts on 20 physical slots (experts 0..3 have a
                         redundant copy in slots 16..19), 3 forward passes: expert_distribution_recorder_
                         1700000000_{rank}.pt
              stat/      --expert-distribution-recorder-mode stat with a circular buffer of 4 steps (the last
                         unused, all zero): logical_count int32 [4, 4, 16], summed over 2 ranks
              csv/       the legacy per-rank CSV (layer_id,expert_id,count), 2 ranks
              evil.pt    a .pt whose pickle asks for os.system (must be refused, never run)
  vllm/     vLLM completions responses saved by a client of a server started with
            --enable-return-routed-experts, one response per line (responses.jsonl): prompt_routed_experts
            [prompt_len][3 MoE layers][2] and choices[].routed_experts [gen_len][3][2]; MoE-local layer ids
            (the model's layers 1..3); the last request asked for n=2 choices.
"""
import argparse
import json
import os
import struct

NUM_EXPERTS = 16
TOP_K = 2
MOE_LAYERS = [1, 2, 3]


class Lcg:
    """Numerical Recipes 64-bit LCG; the high bits are used."""

    def __init__(self, seed):
        self.state = (seed * 6364136223846793005 + 1442695040888963407) % (1 << 64)

    def next(self, n):
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        return (self.state >> 33) % n


def route_tokens(rng, num_tokens):
    """Top-2 expert ids of num_tokens tokens, skewed: expert = min of two uniform draws."""
    out = []
    for _ in range(num_tokens):
        chosen = []
        while len(chosen) < TOP_K:
            e = min(rng.next(NUM_EXPERTS), rng.next(NUM_EXPERTS))
            if e not in chosen:
                chosen.append(e)
        out.append(chosen)
    return out


def bincount(tokens):
    counts = [0] * NUM_EXPERTS
    for tok in tokens:
        for e in tok:
            counts[e] += 1
    return counts


def safetensors_bytes(tensors):
    """tensors: list of (key, list of ints) written as I64 [len]."""
    header = {"__metadata__": {"format": "pt"}}
    data = b""
    for key, values in tensors:
        blob = struct.pack("<%dq" % len(values), *values)
        header[key] = {"dtype": "I64", "shape": [len(values)], "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def write_trtllm(out):
    d = os.path.join(out, "trtllm")
    os.makedirs(d, exist_ok=True)
    ranks, iters = 4, range(10, 13)
    with open(os.path.join(d, "meta_info.json"), "w") as f:
        json.dump({"num_experts": NUM_EXPERTS, "num_experts_per_token": TOP_K, "ep_size": ranks,
                   "experts_per_rank": NUM_EXPERTS // ranks}, f)
    for r in range(ranks):
        rng = Lcg(1000 + r)
        tensors, numtokens = [], {}
        for it in iters:
            num_tokens = 20 + rng.next(21)  # attention-DP ranks hold different token counts
            for layer in MOE_LAYERS:
                key = "%d_%d" % (it, layer)
                tensors.append((key, bincount(route_tokens(rng, num_tokens))))
                numtokens[key] = num_tokens
        with open(os.path.join(d, "rank%d.safetensors" % r), "wb") as f:
            f.write(safetensors_bytes(tensors))
        with open(os.path.join(d, "rank%d_numtokens.json" % r), "w") as f:
            json.dump(numtokens, f)


def write_jsonl(out):
    d = os.path.join(out, "jsonl")
    os.makedirs(d, exist_ok=True)
    rng = Lcg(77)
    lines = []
    for batch in range(3):
        rows = [rng.next(4) for _ in range(24 + 4 * batch)]
        for layer in [0] + MOE_LAYERS:
            if layer == 0:
                experts = [[-1, -1] for _ in rows]
            else:
                experts = route_tokens(rng, len(rows))
                for t in range(0, len(rows), 7):
                    experts[t][1] = -1
            weights = [[0.0 if e < 0 else 0.5 for e in tok] for tok in experts]
            lines.append(json.dumps({"layer": layer, "batch_id": batch, "origin_rows": rows,
                                     "topk_experts": experts, "topk_weights": weights,
                                     "request_id": "req-%d" % batch}, separators=(",", ":")))
    with open(os.path.join(d, "routing.jsonl"), "w") as f:
        f.write("\n".join(lines) + "\n")


def npy_bytes(descr, shape, payload):
    """NPY v1.0 exactly as numpy.save writes it (header padded so data starts at a multiple of 64)."""
    shape_text = "(%d,)" % shape[0] if len(shape) == 1 else "(%s)" % ", ".join(str(x) for x in shape)
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_text)
    if shape:
        header += " " * (21 - len(str(shape[0])))  # numpy's growth-axis reserve
    total = 10 + len(header) + 1
    header += " " * ((64 - total % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + payload


def zip_info(name):
    """A member with a fixed timestamp, so that regenerated fixtures are byte-identical."""
    import zipfile
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    return info


def write_npz(path, arrays):
    import zipfile
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, blob in arrays:
            with zf.open(zip_info(name + ".npy"), "w", force_zip64=True) as f:  # as numpy.savez does
                f.write(blob)


def write_ultraep(out):
    d = os.path.join(out, "ultraep")
    os.makedirs(d, exist_ok=True)
    ep, masters, phys = 4, 4, 5
    trace_id = "epg7f00aa_gr0_r0_1700000000000"
    manifest = {"ep_group_id": "7f00aa", "ep_rank": 0, "ep_size": ep, "num_layers": 4, "max_microbatches": 2,
                "num_local_master_experts": masters, "num_local_redundant_experts": phys - masters,
                "num_local_physical_experts": phys, "num_global_logical_experts": masters * ep,
                "num_global_physical_experts": phys * ep, "nvl_domain_size": ep, "placement_mode": "quota",
                "trace_id": trace_id, "schema": "ultra_ep_trace_v1", "created_unix": 1700000000.0,
                "writer_group_rank": 0, "max_pending_records": 16, "record_interval": 1, "flush_interval": 5,
                "chunks": 3, "dropped_records": 0}
    rng = Lcg(4242)
    records = []
    for mb in range(4):
        for layer in MOE_LAYERS:
            pre = [0] * NUM_EXPERTS
            for r in range(ep):
                for e, c in enumerate(bincount(route_tokens(rng, 32))):
                    pre[e] += c
            post = []
            for r in range(ep):
                post += pre[r * masters:(r + 1) * masters] + [0]
            hot = max(range(NUM_EXPERTS), key=lambda e: pre[e])
            loads = [sum(post[r * phys:(r + 1) * phys]) for r in range(ep)]
            cold = min(range(ep), key=lambda r: loads[r])
            moved = pre[hot] // 2
            post[(hot // masters) * phys + hot % masters] -= moved
            post[cold * phys + masters] += moved
            records.append((layer, mb, pre, post))
    for c in range(3):
        part = records[5 * c:5 * c + 5]
        n = len(part)
        meta = dict(manifest, chunk_id=c, records=n)
        meta_text = json.dumps(meta)
        arrays = [
            ("metadata", npy_bytes("<U%d" % len(meta_text), (), meta_text.encode("utf-32-le"))),
            ("layers", npy_bytes("<i4", (n,), struct.pack("<%di" % n, *[p[0] for p in part]))),
            ("virtual_layers", npy_bytes("<i4", (n,), struct.pack("<%di" % n, *[p[0] * 2 + p[1] % 2 for p in part]))),
            ("microbatches", npy_bytes("<i8", (n,), struct.pack("<%dq" % n, *[p[1] for p in part]))),
            ("pre_logical_loads", npy_bytes("<i4", (n, NUM_EXPERTS), struct.pack("<%di" % (n * NUM_EXPERTS), *sum([p[2] for p in part], [])))),
            ("post_physical_loads", npy_bytes("<i4", (n, phys * ep), struct.pack("<%di" % (n * phys * ep), *sum([p[3] for p in part], [])))),
        ]
        write_npz(os.path.join(d, "%s.chunk%06d.npz" % (trace_id, c)), arrays)
    with open(os.path.join(d, trace_id + ".manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)


def write_torch_save(path, obj_builder):
    """torch.save's zip layout with a protocol-2 pickle; obj_builder(storage) returns the object to pickle,
    calling storage(values) to register an int32 storage and get a tensor-like stand-in."""
    import collections
    import io
    import pickle
    import sys
    import types
    import zipfile

    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # never called: only its name is pickled
        raise RuntimeError("stand-in")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2

    class IntStorage:
        pass

    IntStorage.__module__ = "torch"
    IntStorage.__qualname__ = "IntStorage"
    torch.IntStorage = IntStorage
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils

    storages = []

    class Storage:
        def __init__(self, values):
            self.key = str(len(storages))
            self.values = values
            storages.append(self)

    class Tensor:
        def __init__(self, values, shape):
            self.storage = Storage(values)
            self.shape = shape

        def __reduce_ex__(self, protocol):
            stride, acc = [], 1
            for d in reversed(self.shape):
                stride.insert(0, acc)
                acc *= d
            return (_rebuild_tensor_v2, (self.storage, 0, tuple(self.shape), tuple(stride), False,
                                         collections.OrderedDict()))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", IntStorage, obj.key, "cpu", len(obj.values))
            return None

    try:
        obj = obj_builder(Tensor)
        buf = io.BytesIO()
        Pickler(buf, protocol=2).dump(obj)
    finally:
        for k, v in saved.items():
            if v is None:
                del sys.modules[k]
            else:
                sys.modules[k] = v
    stem = os.path.splitext(os.path.basename(path))[0]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(zip_info(stem + "/data.pkl"), buf.getvalue())
        zf.writestr(zip_info(stem + "/byteorder"), "little")
        for st in storages:
            zf.writestr(zip_info(stem + "/data/" + st.key), struct.pack("<%di" % len(st.values), *st.values))
        zf.writestr(zip_info(stem + "/version"), "3\n")


def write_sglang(out):
    d = os.path.join(out, "sglang")
    for sub in ("per_pass", "stat", "csv"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    layers, phys, ranks, passes = 4, 20, 2, 3
    p2l = [list(range(NUM_EXPERTS)) + [0, 1, 2, 3] for _ in range(layers)]
    rng = Lcg(99)
    logical_sum = [[[0] * NUM_EXPERTS for _ in range(layers)] for _ in range(passes + 1)]
    csv_rows = {r: [[0] * NUM_EXPERTS for _ in range(layers)] for r in range(ranks)}
    per_rank = {}
    for r in range(ranks):
        recs = []
        for fp in range(passes):
            counts = []
            for layer in range(layers):
                row = [0] * phys
                if layer > 0:
                    for tok in route_tokens(rng, 16 + 4 * r):
                        for e in tok:  # experts 0..3: alternate between the master and the redundant slot
                            slot = e + 16 if e < 4 and rng.next(2) else e
                            row[slot] += 1
                            logical_sum[fp][layer][e] += 1
                            csv_rows[r][layer][e] += 1
                counts.append(row)
            recs.append((fp, counts))
        per_rank[r] = recs

    for r in range(ranks):
        def build(Tensor, r=r):
            return {"records": [{"forward_pass_id": fp, "rank": r, "gatherer_key": "primary",
                                 "global_physical_count": Tensor(sum(c, []), [layers, phys])}
                                for fp, c in per_rank[r]],
                    "last_physical_to_logical_map": Tensor(sum(p2l, []), [layers, phys])}
        write_torch_save(os.path.join(d, "per_pass", "expert_distribution_recorder_1700000000_%d.pt" % r), build)

    def build_stat(Tensor):
        flat = [x for step in logical_sum for layer in step for x in layer]
        return {"rank": 0, "logical_count": Tensor(flat, [passes + 1, layers, NUM_EXPERTS]),
                "average_utilization_rate_over_window": None}
    write_torch_save(os.path.join(d, "stat", "expert_distribution_recorder_1700000000.pt"), build_stat)

    for r in range(ranks):
        with open(os.path.join(d, "csv", "expert_distribution_rank%d_timestamp1700000000.csv" % r), "w") as f:
            f.write("layer_id,expert_id,count\n")
            for layer in range(layers):
                for e in range(NUM_EXPERTS):
                    f.write("%d,%d,%d\n" % (layer, e, csv_rows[r][layer][e]))

    # A pickle that would run a shell command if loaded with pickle.load: the reader must refuse it.
    evil = b"\x80\x02cos\nsystem\nX\x0b\x00\x00\x00echo pwned!\x85R."
    import zipfile
    with zipfile.ZipFile(os.path.join(d, "evil.pt"), "w") as zf:
        zf.writestr(zip_info("evil/data.pkl"), evil)
        zf.writestr(zip_info("evil/version"), "3\n")


def write_vllm(out):
    d = os.path.join(out, "vllm")
    os.makedirs(d, exist_ok=True)
    rng = Lcg(2024)

    def routed(num_tokens):
        per_layer = [route_tokens(rng, num_tokens) for _ in MOE_LAYERS]
        return [[per_layer[l][t] for l in range(len(MOE_LAYERS))] for t in range(num_tokens)]

    lines = []
    for i in range(6):
        prompt, gen = 10 + rng.next(21), 5 + rng.next(11)
        choices = [{"index": 0, "text": "...", "finish_reason": "length", "routed_experts": routed(gen)}]
        if i == 5:
            choices.append({"index": 1, "text": "...", "finish_reason": "length", "routed_experts": routed(gen)})
        lines.append(json.dumps({"id": "cmpl-%d" % i, "object": "text_completion", "model": "tiny-moe",
                                 "prompt_routed_experts": routed(prompt), "choices": choices,
                                 "usage": {"prompt_tokens": prompt, "completion_tokens": gen * len(choices)}},
                                separators=(",", ":")))
    with open(os.path.join(d, "responses.jsonl"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "import"))
    args = parser.parse_args()
    write_trtllm(args.out)
    write_jsonl(args.out)
    write_ultraep(args.out)
    write_sglang(args.out)
    write_vllm(args.out)


if __name__ == "__main__":
    main()
