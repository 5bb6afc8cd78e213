#!/usr/bin/env python3
"""Writes the hostile inputs of tests/fixtures/hostile/ (README.md there says what each exercises).

Pure Python standard library: python3 tools/make_hostile_fixtures.py [--out tests/fixtures/hostile]
File names start with the fuzz harness whose seed corpus they join (tools/fuzz.sh): zip-, pt-, pickle-,
ultraep-, trace-, jsonl-, sglang-, trtllm-, model-, topology-, calibration-.
"""
import argparse
import json
import os
import struct
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_import_fixtures import npy_bytes  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMPORT = os.path.join(ROOT, "tests", "fixtures", "import")


def put(out, name, data):
    path = os.path.join(out, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def zip_one(name, method, data, crc, compressed, uncompressed):
    """A one-member ZIP archive whose headers say exactly what they are given (sizes may lie)."""
    n = name.encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, compressed, uncompressed,
                        len(n), 0) + n + data
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, compressed,
                          uncompressed, len(n), 0, 0, 0, 0, 0, 0) + n
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local), 0)
    return local + central + eocd


def pickle_pt(stem, pickle_bytes, storages=()):
    members = [(stem + "/data.pkl", pickle_bytes)] + [(stem + "/data/" + k, v) for k, v in storages]
    out, central = b"", b""
    for name, data in members:
        n = name.encode()
        crc = zlib.crc32(data)
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0x21, crc, len(data), len(data), len(n), 0)
        out += n + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0x21, crc, len(data),
                               len(data), len(n), 0, 0, 0, 0, 0, offset) + n
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(out), 0)
    return out + central + eocd


def X(s):  # BINUNICODE
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "hostile"))
    out = ap.parse_args().out
    os.makedirs(out, exist_ok=True)

    # ZIP: 42 bytes (< 56) whose ZIP64 locator points far past the end.
    locator = struct.pack("<IIQI", 0x07064B50, 0, 1 << 20, 1)
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    put(out, "zip-tiny-zip64.npz", locator + eocd)
    # ZIP: a deflated member of 2 bytes that claims 2.3 GB.
    empty = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = empty.compress(b"") + empty.flush()
    put(out, "zip-size-claim.npz", zip_one("layers.npy", 8, deflated, 0, len(deflated), 2_300_000_000))

    # UltraEP manifest whose num_local_master_experts x ep_size overflows 32 bits.
    with open(os.path.join(IMPORT, "ultraep", "epg7f00aa_gr0_r0_1700000000000.manifest.json")) as f:
        man = json.load(f)
    man["ep_size"] = 1 << 20
    man["num_local_master_experts"] = 1 << 20
    put(out, "ultraep-overflow.manifest.json", json.dumps(man, indent=2) + "\n")

    # torch.save .pt: logical_count [5, 1, 1] with stride 2^62 on dim 0 (4 * 2^62 wraps to 0), 4 elements.
    pkl = (b"\x80\x02}(" + X("logical_count") + b"ctorch._utils\n_rebuild_tensor_v2\n(" +
           b"(" + X("storage") + b"ctorch\nIntStorage\n" + X("0") + X("cpu") + b"K\x04tQ" + b"K\x00" +
           b"(K\x05K\x01K\x01t" + b"(\x8a\x08" + struct.pack("<q", 1 << 62) + b"K\x01K\x01t" + b"\x89" +
           b"ccollections\nOrderedDict\n)Rt" + b"Ru.")
    put(out, "pt-stride-overflow.pt",
        pickle_pt("expert_distribution_recorder_1700000000", pkl, [("0", struct.pack("<4i", 1, 2, 3, 4))]))
    # Pickle: lists nested 1000 deep; a list that contains itself (a cycle through the memo).
    depth = 1000
    put(out, "pt-deep-pickle.pt", pickle_pt("deep", b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."))
    put(out, "pickle-cycle.pkl", b"\x80\x02]q\x00h\x00a.")
    put(out, "pt-cycle-pickle.pt", pickle_pt("cycle", b"\x80\x02]q\x00h\x00a."))

    # Trace directories: a manifest claiming 2^62 records; chunk record counts that overflow when summed;
    # an .npy whose element count x itemsize + header overflows 64 bits.
    base = {"format": "rackep-trace", "format_version": 1, "model": "hostile", "num_ranks": 2, "num_experts": 4,
            "top_k": 2, "tokens_per_rank": 8, "layers": [1, 3],
            "record_order": "microbatch-major, then layer in the order of 'layers'", "num_records": 2,
            "provenance": {}, "chunks": [{"loads": "chunk-000000.loads.npy", "index": "chunk-000000.index.npy",
                                          "records": 2}]}
    loads = npy_bytes("<i4", (2, 2, 4), struct.pack("<16i", *([1, 2, 0, 1] * 4)))
    index = npy_bytes("<i8", (2, 2), struct.pack("<4q", 1, 0, 3, 0))
    big = dict(base, num_records=1 << 62)
    big["chunks"] = [dict(base["chunks"][0], records=1 << 62)]
    for d, m, l in (("trace-2e62-records", big, loads),
                    ("trace-records-overflow", dict(base, num_records=1 << 62, chunks=[
                        dict(base["chunks"][0], records=(1 << 62) + 1), dict(base["chunks"][0], records=3 << 61)]),
                     loads),
                    ("trace-npy-overflow", base, npy_bytes("<i4", ((1 << 61) - 1,), b""))):
        put(out, d + "/manifest.json", json.dumps(m, indent=2) + "\n")
        put(out, d + "/chunk-000000.loads.npy", l)
        put(out, d + "/chunk-000000.index.npy", index)
    m = dict(base)
    m["tokens_per_rank"] = "REPLACE"
    put(out, "trace-1e999/manifest.json", json.dumps(m, indent=2).replace('"REPLACE"', "1e999") + "\n")
    put(out, "trace-1e999/chunk-000000.loads.npy", loads)
    put(out, "trace-1e999/chunk-000000.index.npy", index)

    # JSONL: one 73-byte line whose row and expert ids imply a 10^6 x 65536 load matrix.
    put(out, "jsonl-huge-claim.jsonl",
        '{"layer":1,"batch_id":0,"origin_rows":[1000000],"topk_experts":[[65535]]}\n')
    # SGLang CSV whose rank (in the file name) does not fit an int.
    put(out, "sglang-csv/expert_distribution_rank99999999999999999999_timestamp1700000000.csv",
        "layer_id,expert_id,count\n1,0,1\n")

    # TensorRT-LLM: int64 counts whose sum overflows; a header nested 100000 deep.
    meta = json.dumps({"num_experts": 16, "num_experts_per_token": 2, "ep_size": 1, "experts_per_rank": 16})
    header = json.dumps({"10_1": {"dtype": "I64", "shape": [16], "data_offsets": [0, 128]}})
    header += " " * (-len(header) % 8)
    counts = struct.pack("<16q", *([(1 << 63) - 1] * 2 + [0] * 14))
    put(out, "trtllm-count-overflow/rank0.safetensors", struct.pack("<Q", len(header)) + header.encode() + counts)
    put(out, "trtllm-count-overflow/meta_info.json", meta)
    deep = "[" * 100000
    put(out, "trtllm-deep-header/rank0.safetensors", struct.pack("<Q", len(deep)) + deep.encode())
    put(out, "trtllm-deep-header/meta_info.json", meta)

    # Simulator files: JSON nested 100000 deep; a model with a number that overflows a double; a model
    # with 2^20 experts.
    put(out, "model-deep.json", "[" * 100000)
    with open(os.path.join(ROOT, "configs", "models", "deepseek-v2-lite.json")) as f:
        text = f.read()
    put(out, "model-1e999.json", text.replace('"value": 2048,', '"value": 1e999,', 1))
    put(out, "model-2e20-experts.json", text.replace('"value": 64,', '"value": 1048576,', 1))


if __name__ == "__main__":
    main()
