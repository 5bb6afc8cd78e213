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
Newer and older files users have (each function's docstring says how the engine writes them):
  trtllm_partial/, trtllm_eplb/ (+ moe_load_balancer.yaml), trtllm_raw/   write_trtllm_variants
  jsonl/no_origin.jsonl                                                     write_jsonl_no_origin
  vllm/capture.jsonl, sglang/responses.jsonl                                write_vllm_capture
  ultraep_ooo/                                                              write_ultraep_out_of_order
  sglang/per_token_old/, two_dumps/, legacy/, init_location.json            write_sglang_variants
  loads/eplb_weight.npy, loads/expert_load_view.pt                          write_loads
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


def safetensors_bytes(tensors, dtype="I64", shapes=None):
    """tensors: list of (key, list of ints) written as dtype (I64 or I32) [len] (or shapes[key])."""
    header = {"__metadata__": {"format": "pt"}}
    data = b""
    for key, values in tensors:
        blob = struct.pack(("<%dq" if dtype == "I64" else "<%di") % len(values), *values)
        shape = shapes[key] if shapes else [len(values)]
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
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


def ultraep_manifest(group_id, trace_id, ep, masters, phys, chunks):
    """The manifest UltraEP's profiler writes beside its chunks (one EP group, rank 0, quota placement)."""
    return {"ep_group_id": group_id, "ep_rank": 0, "ep_size": ep, "num_layers": 4, "max_microbatches": 2,
            "num_local_master_experts": masters, "num_local_redundant_experts": phys - masters,
            "num_local_physical_experts": phys, "num_global_logical_experts": masters * ep,
            "num_global_physical_experts": phys * ep, "nvl_domain_size": ep, "placement_mode": "quota",
            "trace_id": trace_id, "schema": "ultra_ep_trace_v1", "created_unix": 1700000000.0,
            "writer_group_rank": 0, "max_pending_records": 16, "record_interval": 1, "flush_interval": 5,
            "chunks": chunks, "dropped_records": 0}


def write_ultraep(out):
    d = os.path.join(out, "ultraep")
    os.makedirs(d, exist_ok=True)
    ep, masters, phys = 4, 4, 5
    trace_id = "epg7f00aa_gr0_r0_1700000000000"
    manifest = ultraep_manifest("7f00aa", trace_id, ep, masters, phys, chunks=3)
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

    class LongStorage:
        pass

    for cls in (IntStorage, LongStorage):
        cls.__module__ = "torch"
        cls.__qualname__ = cls.__name__
        setattr(torch, cls.__name__, cls)
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils

    storages = []

    class Storage:
        def __init__(self, values, long):
            self.key = str(len(storages))
            self.values = values
            self.long = long
            storages.append(self)

    class Tensor:
        def __init__(self, values, shape, long=False):
            self.storage = Storage(values, long)
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
                return ("storage", LongStorage if obj.long else IntStorage, obj.key, "cpu", len(obj.values))
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
            fmt = "<%dq" if st.long else "<%di"
            zf.writestr(zip_info(stem + "/data/" + st.key), struct.pack(fmt % len(st.values), *st.values))
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


def write_trtllm_variants(out):
    """trtllm_partial/: the recording stopped mid-flush (iterations 10..12 on ranks 0-1, 10..11 on ranks 2-3).
    trtllm_eplb/: a run with the EP load balancer (MoeLoadBalancerConfig num_slots=20, static placement,
    layer_updates_per_iter=0): the statistic counts SLOT ids, so meta_info.json says 20 and every tensor is
    [20]; moe_load_balancer.yaml as yaml.safe_dump writes it (block lists), slots 16..19 replicate experts 0..3.
    trtllm_raw/: rank{r}_raw.safetensors, I32 [tokens, 2] token_selected_experts per "{iter}_{layer}" (the
    raw dump that tensorrt_llm's utils.load_raw_expert_statistic reads), no counts files."""
    ranks, iters = 4, range(10, 13)
    # partial
    d = os.path.join(out, "trtllm_partial")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "meta_info.json"), "w") as f:
        json.dump({"num_experts": NUM_EXPERTS, "num_experts_per_token": TOP_K}, f)
    for r in range(ranks):
        rng = Lcg(3000 + r)
        tensors = []
        for it in iters:
            if r >= 2 and it == 12:
                continue
            num_tokens = 20 + rng.next(21)
            for layer in MOE_LAYERS:
                tensors.append(("%d_%d" % (it, layer), bincount(route_tokens(rng, num_tokens))))
        with open(os.path.join(d, "rank%d.safetensors" % r), "wb") as f:
            f.write(safetensors_bytes(tensors))
    # eplb slots
    d = os.path.join(out, "trtllm_eplb")
    os.makedirs(d, exist_ok=True)
    slots = NUM_EXPERTS + 4
    assignment = list(range(NUM_EXPERTS)) + [0, 1, 2, 3]
    with open(os.path.join(d, "meta_info.json"), "w") as f:
        json.dump({"num_experts": slots, "num_experts_per_token": TOP_K}, f)
    with open(os.path.join(d, "moe_load_balancer.yaml"), "w") as f:
        f.write("initial_global_assignments:\n")
        for layer in MOE_LAYERS:
            f.write("  %d:\n" % layer)
            for e in assignment:
                f.write("  - %d\n" % e)
        f.write("layer_updates_per_iter: 0\nnum_slots: %d\n" % slots)
    for r in range(2):
        rng = Lcg(4000 + r)
        tensors = []
        for it in iters:
            for layer in MOE_LAYERS:
                counts = [0] * slots
                for tok in route_tokens(rng, 24):
                    for e in tok:  # a replicated expert's tokens alternate between its two slots
                        counts[e + NUM_EXPERTS if e < 4 and rng.next(2) else e] += 1
                tensors.append(("%d_%d" % (it, layer), counts))
        with open(os.path.join(d, "rank%d.safetensors" % r), "wb") as f:
            f.write(safetensors_bytes(tensors))
    # raw
    d = os.path.join(out, "trtllm_raw")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "meta_info.json"), "w") as f:
        json.dump({"num_experts": NUM_EXPERTS, "num_experts_per_token": TOP_K}, f)
    for r in range(2):
        rng = Lcg(5000 + r)
        tensors, shapes = [], {}
        for it in iters:
            num_tokens = 10 + rng.next(11)
            for layer in MOE_LAYERS:
                key = "%d_%d" % (it, layer)
                tensors.append((key, sum(route_tokens(rng, num_tokens), [])))
                shapes[key] = [num_tokens, TOP_K]
        with open(os.path.join(d, "rank%d_raw.safetensors" % r), "wb") as f:
            f.write(safetensors_bytes(tensors, "I32", shapes))


def write_jsonl_no_origin(out):
    """jsonl/no_origin.jsonl: per-token JSONL from a router hook that knows no ranks (no origin_rows), one
    object per (layer, batch) of 3 batches; layer 0 is dense and written as the hook's zero-filled [0, 0]
    rows (all-zero capture rows)."""
    d = os.path.join(out, "jsonl")
    rng = Lcg(88)
    lines = []
    for batch in range(3):
        n = 10 + 3 * batch
        for layer in [0] + MOE_LAYERS:
            experts = [[0, 0] for _ in range(n)] if layer == 0 else route_tokens(rng, n)
            lines.append(json.dumps({"layer": layer, "batch_id": batch, "topk_experts": experts},
                                    separators=(",", ":")))
    with open(os.path.join(d, "no_origin.jsonl"), "w") as f:
        f.write("\n".join(lines) + "\n")


def capture_rows(rng, num_tokens, num_hidden_layers=4):
    """A capture buffer's rows [tokens][num_hidden_layers][k] as vLLM's and SGLang's capturers fill them:
    int32 zero-initialised, so dense layer 0 stays [0, 0]."""
    rows = []
    for _ in range(num_tokens):
        rows.append([[0] * TOP_K] + [route_tokens(rng, 1)[0] for _ in MOE_LAYERS])
    return rows


def flat(rows):
    return [e for tok in rows for layer in tok for e in layer]


def write_vllm_capture(out):
    """vllm/capture.jsonl: responses of a current vLLM (--enable-return-routed-experts, routed experts replay):
    choices[i].routed_experts is base64 of np.save(int32 [prompt + generated, num_hidden_layers=4, 2]) with
    the prompt rows included (the capturer's shared-memory rows of the request's token slots); the last
    response uses the {"encoding": "base64", "dtype", "shape", "data"} envelope of raw bytes and n=2 choices
    (choice 1 repeats the prompt rows). Layer 0 is dense: all-zero rows.
    sglang/responses.jsonl: SGLang /generate responses with "return_routed_experts": true: meta_info
    .routed_experts = base64 of raw int32 [prompt_tokens + completion_tokens - 1, 4, 2] (the last token is not
    forwarded), as extract_routed_experts_from_meta_info decodes it."""
    import base64
    rng = Lcg(31337)
    lines = []
    for i in range(4):
        prompt, gen = 8 + rng.next(9), 4 + rng.next(5)
        usage = {"prompt_tokens": prompt, "completion_tokens": gen}
        if i < 3:
            rows = capture_rows(rng, prompt + gen)
            payload = npy_bytes("<i4", (prompt + gen, 4, TOP_K), struct.pack("<%di" % len(flat(rows)), *flat(rows)))
            choices = [{"index": 0, "text": "...", "routed_experts": base64.b64encode(payload).decode()}]
        else:
            prompt_rows = capture_rows(rng, prompt)
            choices = []
            for c in range(2):
                rows = prompt_rows + capture_rows(rng, gen)
                raw = struct.pack("<%di" % len(flat(rows)), *flat(rows))
                choices.append({"index": c, "text": "...", "routed_experts": {
                    "encoding": "base64", "dtype": "int32", "shape": [prompt + gen, 4, TOP_K],
                    "data": base64.b64encode(raw).decode()}})
            usage["completion_tokens"] = 2 * gen
        lines.append(json.dumps({"id": "cmpl-%d" % i, "object": "text_completion", "choices": choices,
                                 "usage": usage}, separators=(",", ":")))
    with open(os.path.join(out, "vllm", "capture.jsonl"), "w") as f:
        f.write("\n".join(lines) + "\n")
    lines = []
    for i in range(3):
        prompt, gen = 6 + rng.next(7), 3 + rng.next(4)
        rows = capture_rows(rng, prompt + gen - 1)
        raw = struct.pack("<%di" % len(flat(rows)), *flat(rows))
        lines.append(json.dumps({"text": "...", "meta_info": {
            "id": "req-%d" % i, "prompt_tokens": prompt, "completion_tokens": gen,
            "routed_experts": base64.b64encode(raw).decode()}}, separators=(",", ":")))
    with open(os.path.join(out, "sglang", "responses.jsonl"), "w") as f:
        f.write("\n".join(lines) + "\n")


def write_ultraep_out_of_order(out):
    """ultraep_ooo/: the profiler under an interleaved pipeline schedule: records reach the writer in the
    order their device copies complete, so microbatches interleave within a chunk and one record, (layer 3,
    microbatch 1), completes late and lands in the next chunk after the flush. 3 microbatches x layers 1..3,
    chunks of 5 (flush_interval 5)."""
    d = os.path.join(out, "ultraep_ooo")
    os.makedirs(d, exist_ok=True)
    ep, masters, phys = 4, 4, 5
    trace_id = "epg7f00bb_gr0_r0_1700000000000"
    manifest = ultraep_manifest("7f00bb", trace_id, ep, masters, phys, chunks=2)
    rng = Lcg(777)
    order = [(1, 0), (2, 0), (1, 1), (3, 0), (2, 1),   # chunk 0: microbatches interleaved
             (1, 2), (3, 1), (2, 2), (3, 2)]            # chunk 1: (3, 1) completed late, after the flush
    # (layer, microbatch) in completion order
    records = []
    for layer, mb in order:
        pre = [0] * NUM_EXPERTS
        for e, c in enumerate(bincount(route_tokens(rng, 64))):
            pre[e] += c
        post = []
        for r in range(ep):
            post += pre[r * masters:(r + 1) * masters] + [0]
        records.append((layer, mb, pre, post))
    for c in range(2):
        part = records[5 * c:5 * c + 5]
        n = len(part)
        meta_text = json.dumps(dict(manifest, chunk_id=c, records=n))
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


def write_sglang_variants(out):
    """sglang/per_token_old/: --expert-distribution-recorder-mode per_token of SGLang versions that wrote no
    global_physical_count: each record holds topk_ids_of_layer int32 [layers=4, tokens, 8] (physical ids, k
    padded to 8 with -1; dense layer 0 all -1), input_ids, positions; 2 ranks, 2 forward passes.
    sglang/two_dumps/: two per_pass dumps in one directory (dump ids 1700000000 and 1700000500), passes 0..1
    and 2..3, 2 ranks each (SGLang's reader merges every .pt of a directory by (forward pass, rank)).
    sglang/legacy/expert_distribution_recorder_1600000000.pt: torch.save(..., _use_new_zipfile_serialization=
    False), the pre-1.6 format: consecutive pickles (magic number, protocol version, sys info, the object).
    sglang/init_location.json: the {"logical_count": [layers][experts]} JSON of --init-expert-location."""
    import pickle
    d = os.path.join(out, "sglang")
    layers, phys = 4, 20
    p2l = [list(range(NUM_EXPERTS)) + [0, 1, 2, 3] for _ in range(layers)]
    rng = Lcg(1234)
    sub = os.path.join(d, "per_token_old")
    os.makedirs(sub, exist_ok=True)
    for r in range(2):
        recs = []
        for fp in range(2):
            n = 6 + 2 * r + fp
            ids = []
            for layer in range(layers):
                for tok in (route_tokens(rng, n) if layer > 0 else [[] for _ in range(n)]):
                    row = [e + 16 if e < 4 and rng.next(2) else e for e in tok]
                    ids += row + [-1] * (8 - len(row))
            recs.append((fp, n, ids))

        def build(Tensor, recs=recs, r=r):
            return {"records": [{"forward_pass_id": fp, "rank": r, "gatherer_key": "primary",
                                 "input_ids": Tensor(list(range(n)), [n]),
                                 "positions": Tensor(list(range(n)), [n]),
                                 "topk_ids_of_layer": Tensor(ids, [layers, n, 8])} for fp, n, ids in recs],
                    "last_physical_to_logical_map": Tensor(sum(p2l, []), [layers, phys])}
        write_torch_save(os.path.join(sub, "expert_distribution_recorder_1700000000_%d.pt" % r), build)
    sub = os.path.join(d, "two_dumps")
    os.makedirs(sub, exist_ok=True)
    for dump, first in ((1700000000, 0), (1700000500, 2)):
        for r in range(2):
            def build(Tensor, r=r, first=first):
                recs = []
                for fp in range(first, first + 2):
                    counts = []
                    for layer in range(layers):
                        row = [0] * phys
                        if layer > 0:
                            for e in bincount_ids(route_tokens(rng, 12)):
                                row[e] += 1
                        counts += row
                    recs.append({"forward_pass_id": fp, "rank": r, "gatherer_key": "primary",
                                 "global_physical_count": Tensor(counts, [layers, phys])})
                return {"records": recs, "last_physical_to_logical_map": Tensor(sum(p2l, []), [layers, phys])}
            write_torch_save(os.path.join(sub, "expert_distribution_recorder_%d_%d.pt" % (dump, r)), build)
    sub = os.path.join(d, "legacy")
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "expert_distribution_recorder_1600000000.pt"), "wb") as f:
        for obj in (0x1950a86a20f9469cfc6c, 1001, {"protocol_version": 1001, "little_endian": True,
                                                  "type_sizes": {"short": 2, "int": 4, "long": 4}},
                    {"rank": 0, "logical_count": None}, []):
            pickle.dump(obj, f, protocol=2)
    counts = [[0] * NUM_EXPERTS] + [bincount(route_tokens(rng, 40)) for _ in MOE_LAYERS]
    with open(os.path.join(d, "init_location.json"), "w") as f:
        json.dump({"logical_count": counts}, f)


def bincount_ids(tokens):
    return [e for tok in tokens for e in tok]


def write_loads(out):
    """loads/: global per-layer loads as the balancers take them. eplb_weight.npy: DeepSeek EPLB's `weight`
    [layers=4, 16] saved with np.save (int64; dense layer 0 all zero). expert_load_view.pt: vLLM/vllm-ascend's
    torch.save of the int64 tensor [MoE layers=3, 16] (examples/eplb)."""
    d = os.path.join(out, "loads")
    os.makedirs(d, exist_ok=True)
    rng = Lcg(4711)
    weight = [[0] * NUM_EXPERTS] + [bincount(route_tokens(rng, 50)) for _ in MOE_LAYERS]
    flat_w = [x for row in weight for x in row]
    with open(os.path.join(d, "eplb_weight.npy"), "wb") as f:
        f.write(npy_bytes("<i8", (4, NUM_EXPERTS), struct.pack("<%dq" % len(flat_w), *flat_w)))
    view = [bincount(route_tokens(rng, 30)) for _ in MOE_LAYERS]
    write_torch_save(os.path.join(d, "expert_load_view.pt"),
                     lambda Tensor: Tensor([x for row in view for x in row], [3, NUM_EXPERTS], long=True))


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
    write_trtllm_variants(args.out)
    write_jsonl_no_origin(args.out)
    write_vllm_capture(args.out)
    write_ultraep_out_of_order(args.out)
    write_sglang_variants(args.out)
    write_loads(args.out)


if __name__ == "__main__":
    main()
