// File: traces/import_vllm.hpp
// Importer of vLLM's per-request routed experts ("routed experts replay", --enable-return-routed-experts;
// docs/TRACES.md §3) as a user saves them from the API responses: a .jsonl file with one response object per
// line, or a .json file holding one response or an array of them. Per response:
//   "prompt_routed_experts": [prompt_len][L_moe][k]   expert ids of the prompt tokens (optional)
//   "choices": [{"routed_experts": [gen_len][L_moe][k], ...}, ...]  (or a top-level "routed_experts")
// The prompt and the first choice's generated tokens form one sequence (generation continues the prompt);
// every further choice is a sequence of its own (the prompt is counted once). Layer ids are MoE-local
// (0..L_moe-1); --layers maps them to the model's ids (exactly L_moe of them, in order). There are no source
// ranks: sequences are composed into per-rank microbatches by TokenComposer (traces/composer.hpp), exactly
// like the ESFT importer, with --ranks, --tokens-per-rank, --policy and --seed. Usage:
//   auto s = rackep::open_vllm_routed_experts({"responses.jsonl"}, options, report);
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "traces/composer.hpp"
#include "traces/import_common.hpp"

namespace rackep {

/// Reads the responses into per-token routing. E = options.num_experts or the largest id + 1. Errors are
/// InputError("<file>:<line or index>", field, ...) with field "json", "prompt_routed_experts" or
/// "routed_experts" (not a [tokens][layers][k] array of ints, a layer or k count differing from the first
/// response, an id outside [0, E), an id repeated within a token), "--layers" (not L_moe ids).
TokenRouting read_vllm_routed_experts(const std::vector<std::string>& files, const ImportOptions& options,
                                      ImportReport& report);

/// read_vllm_routed_experts() composed into microbatches: options.num_ranks and options.tokens_per_rank are
/// required (InputError("--ranks", ...)), options.policy is "pack" or "whole", options.seed orders sequences.
std::unique_ptr<RecordStream> open_vllm_routed_experts(const std::vector<std::string>& files,
                                                       const ImportOptions& options, ImportReport& report);

}  // namespace rackep
