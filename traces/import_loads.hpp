// File: traces/import_loads.hpp
// Importer of global per-layer expert loads (README, format table: `--from loads`), the matrices that load
// balancers take as input, each as its tool writes it:
//   DeepSeek EPLB `weight` [layers, experts] (eplb.py rebalance_experts input): np.save'd .npy (int32/int64),
//     or JSON {"weight": [[...]]};
//   SGLang --init-expert-location JSON {"logical_count": [[...]]} ([layers, experts], or [steps, layers,
//     experts] as the stat recorder dumps it);
//   vLLM / vllm-ascend expert_load_view.pt: torch.save of an integer tensor [layers, experts] (or a dict
//     holding it under "expert_load_view", "logical_count" or "weight");
//   a .json holding a bare nested list.
// The loads are GLOBAL (summed over source ranks): each (step, layer) row becomes one record whose loads are
// spread evenly over --ranks N source ranks (spread_global_loads, seeded), as for UltraEP and SGLang stat.
// Layer ids are the row indices (the source's numbering); all-zero rows (dense layers) are dropped.
// Usage:
//   auto s = rackep::open_global_loads({"expert_load_view.pt"}, options, report);  // --ranks, --top-k
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "traces/import_common.hpp"

namespace rackep {

/// True when `path` is a .json object holding "logical_count" or "weight" (so SGLang's importer can hand
/// --init-expert-location files over).
bool is_global_loads_json(const std::string& path);

/// Opens one load matrix file. options.num_ranks and options.top_k are required (InputError("--ranks" /
/// "--top-k", ...)). Errors are InputError(file, field, ...): "json" / "pickle" / "zip" / the .npy fields
/// (unreadable), "<key>" (not an integer matrix [layers, experts] or [steps, layers, experts], a negative
/// or fractional count, a column count differing from --experts), "inputs" (more than one file).
std::unique_ptr<RecordStream> open_global_loads(const std::vector<std::string>& inputs,
                                                const ImportOptions& options, ImportReport& report);

}  // namespace rackep
