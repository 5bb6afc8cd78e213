// File: traces/import_jsonl.hpp
// Importer (and exporter) of per-token JSONL routing (johanna-rock/moe-balance sim/trace_format.md;
// docs/TRACES.md §7): one JSON object per line and per (layer, batch):
//   {"layer": 3, "batch_id": 0, "origin_rows": [T ints], "topk_experts": [[k ints] x T],
//    "topk_weights"?: [[k floats] x T], "request_id"?: ..., "source_file"?: ...}
// origin_rows[t] is the source rank (row) of token t, so the data is per-source-rank by construction: each
// object becomes one canonical record (microbatch = batch_id) whose loads count (origin row, expert) pairs.
// Expert id -1 is padding (a token routed to fewer than k experts) and is dropped and counted; a token whose
// ids are all 0 (k >= 2) is a capture row without routing (dense layers of a zero-filled buffer): counted for
// no expert, and a layer of only such rows is dropped as dense.
// Two passes: the first validates every object and keeps only an index (layer, batch, line offset); the
// second re-reads the lines in canonical order, one record at a time (memory: the index, not the counts).
// Files WITHOUT origin_rows (a router hook that knows no ranks) are per-token data without source ranks:
// batch b is one sequence, composed into ranks like vLLM's (--ranks, --tokens-per-rank, --policy, --seed).
// Usage:
//   rackep::ImportReport report;
//   auto s = rackep::open_token_jsonl({"trace.jsonl"}, {}, report);
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "traces/import_common.hpp"

namespace rackep {

/// Reads the files in order. N = options.num_ranks or the largest origin row + 1; E = options.num_experts or
/// the largest expert id + 1; k = the length of the top-k lists (equal everywhere). Errors are
/// InputError("<file>:<line>", field, ...) with field "json" (not an object), "layer" / "batch_id" (missing,
/// not an integer, a layer outside options.layers, a (layer, batch) twice), "origin_rows" / "topk_experts"
/// (missing, lengths differ, a row outside [0, N), an id outside [-1, E) or repeated within a token, top-k
/// lengths differ), "topk_weights" (shape differs from topk_experts).
std::unique_ptr<RecordStream> open_token_jsonl(const std::vector<std::string>& files,
                                               const ImportOptions& options, ImportReport& report);

/// Writes `in` as one JSONL file `path` (which must not exist): per record one object with the record's
/// tokens rebuilt from the counts: source rank s routes sum_e loads[s][e] / k tokens, and the pairs sorted by
/// expert are dealt column-wise, so every token gets k distinct experts. Importing the file gives back the
/// same records. Throws InputError(path, "loads", ...) for a row that no set of whole top-k tokens yields
/// (its sum is not a multiple of k, or one expert has more pairs than the row has tokens).
void write_token_jsonl(RecordStream& in, const std::string& path);

}  // namespace rackep
