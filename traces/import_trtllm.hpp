// File: traces/import_trtllm.hpp
// Importer (and exporter) of TensorRT-LLM expert statistics (tensorrt_llm/_torch/expert_statistic.py;
// docs/TRACES.md §5), recorded with EXPERT_STATISTIC_ITER_RANGE=start-stop EXPERT_STATISTIC_PATH=dir. The
// directory holds:
//   meta_info.json              {"num_experts": E, "num_experts_per_token": k[, "ep_size": R,
//   "experts_per_rank"]} rank{r}.safetensors         one int64 tensor [E] per key "{iter}_{layer}": bincount
//   of the top-k expert ids
//                               of the tokens on source rank r (attention-DP local tokens)
//   rank{r}_numtokens.json      optional (EXPERT_STATISTIC_DUMP_DISPATCH=1): {"{iter}_{layer}": tokens}
//   rank{r}_raw.safetensors     versions that dump token_selected_experts: int32 [tokens, k] per key (read,
//                               bincounted, when no rank{r}.safetensors is present)
// Each (iteration, layer) becomes one canonical record: microbatch = iteration, layer = the model layer id,
// row r = rank{r}'s counts. Under the EP load balancer (MoeLoadBalancerConfig, num_slots > experts) the ids
// are SLOTS: --placement moe_load_balancer.yaml (initial_global_assignments, static: layer_updates_per_iter
// 0) maps them to logical experts; without it, --experts below the recorded width is refused. Iterations that
// some ranks miss at the end (a recording stopped mid-flush) are dropped and reported. safetensors is read
// directly (8-byte little-endian header length, JSON header, raw little-endian data) with pread, one record
// at a time; the header index is kept once for all ranks with the same layout (memory: one rank's index).
// Usage:
//   rackep::ImportReport report;
//   auto s = rackep::open_trtllm_stats("expert_statistic", {}, report);
//   rackep::write_trace_atomic(*s, "out/trace", {});
#pragma once

#include <memory>
#include <string>

#include "traces/import_common.hpp"

namespace rackep {

/// Opens a TensorRT-LLM expert-statistic directory. Two passes over the mapped files: the constructor
/// validates everything (and derives T from the largest source row, or from rank{r}_numtokens.json when
/// present), next() converts. Errors are InputError naming the file and field: "meta_info.json" (missing,
/// bad JSON, "num_experts"/"num_experts_per_token" missing or not positive, "ep_size" not the number of rank
/// files), "rank files" (none, or rank ids not 0..R-1), "header" (truncated file, header length past the end,
/// bad JSON), "<key>" (dtype not I64/I32, shape not [E], data_offsets outside the data or overlapping, a
/// count outside [0, 2^31), a row sum differing from tokens * k), "key" (not "{iter}_{layer}", or present in
/// one rank file and not in another), "layer" (routed tokens on a layer outside options.layers).
std::unique_ptr<RecordStream> open_trtllm_stats(const std::string& dir, const ImportOptions& options,
                                                ImportReport& report);

/// Writes `in` as a TensorRT-LLM expert-statistic directory `dir` (which must not exist): meta_info.json with
/// ep_size = N (and experts_per_rank when N divides E), rank{r}.safetensors with key "{microbatch}_{layer}"
/// per record, int64 [E]. Importing the result gives back the same records, N, E, k and layers. Throws
/// InputError(dir, "output", ...) when the directory exists or cannot be written.
void write_trtllm_stats(RecordStream& in, const std::string& dir);

}  // namespace rackep
