// File: traces/esft.hpp
// Importer for the ESFT per-token expert scores (deepseek-ai/ESFT results/expert_scores; docs/TRACES.md, and
// the SOURCE.md shipped with traces/data/esft-deepseek-v2-lite). A task directory holds
// expert_weights_{layer}.txt.gz (or .txt) for MoE layers 1..26 of a DeepSeek-V2-Lite-architecture model
// (layer 0 is dense and absent): one line per sequence, "<ids>\t\t<weights>\n", 6*T tab-separated
// expert ids in [0, 64) (token-major, top-6) and as many gate weights. Line i is the same sequence in
// every layer file. read_esft() validates everything and returns the routing of all sequences of all
// given tasks (tasks in argument order, lines in file order); compose it into microbatches with
// TokenComposer (traces/composer.hpp). Memory: 2 bytes per (token, layer, k).
// Usage:
//   rackep::TokenRouting r = rackep::read_esft({"traces/data/esft-deepseek-v2-lite/intent"});
#pragma once

#include <string>
#include <vector>

#include "traces/composer.hpp"

namespace rackep {

/// What to read from ESFT task directories.
struct EsftOptions {
  std::vector<int> layers;  ///< MoE layer ids to read (each in 1..26); empty = all of 1..26
  int num_experts = 64;     ///< routed experts of the model; ids must lie in [0, num_experts)
  int top_k = 6;            ///< experts per token
};

/// Reads and validates the task directories. Each problem is an InputError whose source names the file (and
/// ":<line>" when it concerns a line) and whose field names what is wrong: "task directory" (missing),
/// "file" (a layer file missing or unreadable), "gzip" (corrupt or truncated), "line" (no "\t\t" separator,
/// no newline at the end), "expert id" (not an integer in [0, num_experts), or repeated within a token),
/// "weight" (not a number in [0, 1]), "count" (id and weight counts differ, or ids not a multiple of top_k,
/// or an empty line), "tokens" (token count differs from the same line of the first layer file), "lines"
/// (line count differs between layer files). Sequences are recorded in sources[] per task; a SOURCE.md found
/// in a task directory or its parent is kept in notices (its license must travel with derived data).
TokenRouting read_esft(const std::vector<std::string>& task_dirs, const EsftOptions& options = {});

}  // namespace rackep
