// File: traces/import_vllm.hpp
// Importer of per-request routed experts as users save them from API responses (docs/TRACES.md §3; README,
// format table): a .jsonl file with one response object per line, or a .json file holding one response or an
// array of them. What each engine version writes:
//   vLLM, nested lists (first versions of --enable-return-routed-experts):
//     "prompt_routed_experts": [prompt_len][L_moe][k], "choices": [{"routed_experts": [gen_len][L_moe][k]}]
//     (or a top-level "routed_experts"); layer ids are MoE-local 0..L_moe-1.
//   vLLM, capture buffer (current): choices[i].routed_experts is the base64 of a .npy int32 [tokens,
//     num_hidden_layers, k] (np.save of the capturer's rows; prompt rows included), or the envelope
//     {"encoding": "base64", "dtype": "int32", "shape": [tokens, layers, k], "data": <base64 raw bytes>};
//     layer ids are the model's 0..num_hidden_layers-1, dense layers are all-zero rows.
//   SGLang --enable-return-routed-experts with "return_routed_experts": true: "meta_info": {"routed_experts":
//     <base64 raw int32 [prompt_tokens + completion_tokens - 1, num_hidden_layers, k]>, "prompt_tokens",
//     "completion_tokens"}; k is not written: give --top-k.
// Rows of a capture buffer that hold no routing (all 0 or all -1: dense layers, uncaptured tokens) are read
// by TokenRoutingBuilder (traces/composer.hpp): dense layers are dropped and reported, never the tokens.
// The prompt and the first choice's tokens form one sequence; every further choice is a sequence of its own
// (the prompt is counted once: with prompt rows included, its first usage.prompt_tokens rows are skipped).
// There are no source ranks: sequences are composed into per-rank microbatches by TokenComposer, exactly like
// the ESFT importer, with --ranks, --tokens-per-rank, --policy and --seed. Usage:
//   auto s = rackep::open_vllm_routed_experts({"responses.jsonl"}, options, report);
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "traces/composer.hpp"
#include "traces/import_common.hpp"

namespace rackep {

/// Reads the responses into per-token routing. E = options.num_experts or the largest id + 1; options.layers
/// picks layers (LayerFilter); options.top_k must match the recorded k (and is required for SGLang's
/// meta_info). Errors are InputError("<file>:<line or index>", field, ...) with field "json",
/// "prompt_routed_experts", "routed_experts" or "meta_info.routed_experts" (not [tokens][layers][k], bad
/// base64 / .npy / dtype / shape, a layer or k count differing from the first response, an id outside
/// [0, E), an id repeated within a token), "usage.prompt_tokens" (needed to split prompt rows), "--top-k".
TokenRouting read_vllm_routed_experts(const std::vector<std::string>& files, const ImportOptions& options,
                                      ImportReport& report);

/// read_vllm_routed_experts() composed into microbatches: options.num_ranks and options.tokens_per_rank are
/// required (InputError("--ranks", ...)), options.policy is "pack" or "whole", options.seed orders sequences.
std::unique_ptr<RecordStream> open_vllm_routed_experts(const std::vector<std::string>& files,
                                                       const ImportOptions& options, ImportReport& report);

}  // namespace rackep
