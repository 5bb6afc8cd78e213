// File: traces/import_sglang.hpp
// Importer of SGLang's expert distribution recorder (python/sglang/srt/eplb/expert_distribution.py;
// docs/TRACES.md §2), recorded with --expert-distribution-recorder-mode MODE and POST
// /start_expert_distribution_record, /stop_..., /dump_expert_distribution_record (files in
// SGLANG_EXPERT_DISTRIBUTION_RECORDER_DIR, default /tmp). What each SGLang version writes:
//   stat / stat_approx   expert_distribution_recorder_{time}.pt = {"rank": 0, "logical_count": int [S, L, E],
//                        ...}: counts of S buffered forward passes SUMMED over ranks (global only): each
//                        step becomes a record, spread evenly over --ranks source ranks (seeded, as for
//                        UltraEP); all-zero steps (unused circular-buffer rows) are dropped.
//   per_pass / per_token expert_distribution_recorder_{time}_{rank}.pt, one per rank = {"records": [{
//                        "forward_pass_id", "rank", "global_physical_count": int [L, P], ...}],
//                        "last_physical_to_logical_map": int [L, P]}: per-source-rank counts; physical slots
//                        are mapped back to logical experts through the map (scatter-add). Record =
//                        (forward_pass_id, layer), row r = the file of rank r. Streamed one forward pass at a
//                        time (memory: one pass of every rank, not the recording).
//   per_token, older     records without global_physical_count: counted from topk_ids_of_layer int [L, T, 8]
//                        (physical ids, -1 padding).
//   several dumps        one {time} per dump: --dump TIME imports one, --merge-dumps merges all by
//                        (forward pass, rank) as SGLang's eplb_simulator reader does; otherwise an error.
//   legacy CSV           expert_distribution_rank{r}_timestamp{t}.csv, "layer_id,expert_id,count" (<= April
//                        2025): one record (microbatch 0) per layer, row r = rank r.
//   legacy torch.save    (non-zip, torch < 1.6): refused with an error that says how to re-save it.
//   responses .jsonl     saved /generate responses with meta_info.routed_experts: read as for vLLM
//                        (traces/import_vllm.hpp) and composed; {"logical_count"} .json
//                        (--init-expert-location): read as global loads (traces/import_loads.hpp).
// Layer ids are the model's (dense layers included, as zero rows): dense layers are dropped; --layers picks
// (LayerFilter). --replication R divides counts by R (stat: TP attention replicates every token R-fold) or
// keeps one of each R identical rank files (per_pass, CSV). .pt files are read with the allow-listed
// pickle reader (traces/pickle_reader.hpp): nothing in them is executed.
// Usage:
//   auto s = rackep::open_sglang_recording({"/tmp/sglang_dump"}, options, report);
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "traces/import_common.hpp"

namespace rackep {

/// Opens SGLang recorder output. Errors are InputError naming the file and field: "pickle"/"zip" (damaged
/// .pt, a class outside the allow-list), "format" (a legacy non-zip .pt), "dump" (several dumps without
/// --dump/--merge-dumps), "topk_ids_of_layer", "logical_count" / "records" / "global_physical_count" /
/// "last_physical_to_logical_map" (missing, wrong rank or shape, negative counts, map ids outside [0, E)),
/// "rank" (a rank file missing, or a record's rank differing from its file's), "forward_pass_id"
/// (different ids in different rank files), "layer_id"/"expert_id"/"count" (CSV), "layers" (tokens on a
/// layer outside options.layers), "--replication" (counts not divisible, or replicas that differ).
std::unique_ptr<RecordStream> open_sglang_recording(const std::vector<std::string>& inputs,
                                                    const ImportOptions& options, ImportReport& report);

}  // namespace rackep
