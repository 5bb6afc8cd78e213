// File: traces/import_ultraep.hpp
// Importer of UltraEP's load profiler (ultra_ep/profiling.py, schema "ultra_ep_trace_v1"; docs/TRACES.md §1),
// recorded with ULTRA_EP_LOAD_PROFILING=1 ULTRA_EP_LOAD_PROFILE_DIR=dir:
//   {trace_id}.manifest.json          ep_size, num_layers, num_global_logical_experts, ..., chunks,
//   dropped_records {trace_id}.chunk{000000}.npz      np.savez: layers int32 [n], virtual_layers int32 [n],
//   microbatches int64
//                                     [n], pre_logical_loads int32 [n, E], post_physical_loads int32 [n, P],
//                                     metadata (0-d unicode; not needed: the manifest holds the same)
// The profiler writes GLOBAL loads only (pre_logical_loads is summed over all source ranks before
// balancing); per-source-rank loads exist in the runtime but are not written. The importer says so and
// spreads each global load over N source ranks by a stated, seeded policy (spread_global_loads in
// traces/import_common.hpp): the canonical trace's column sums equal the recording exactly, its rows do not
// come from the recording. post_physical_loads (after UltraEP's reroute) is summarised in the provenance as
// the recorded per-rank imbalance. Records are written in the order their device copies complete, so
// interleaved pipeline schedules and late copies put them out of order, within a chunk and across a flush:
// they are ordered by (microbatch, layer), never refused. Chunks are read one at a time to validate and index
// (memory: one chunk + 16 bytes per record), then converted in canonical order through a cache of 3 chunks.
// Usage:
//   rackep::ImportOptions o;  o.top_k = 8;  // not recorded by the profiler
//   auto s = rackep::open_ultraep_profile("ultra_ep_traces/<id>.manifest.json", o, report);
#pragma once

#include <memory>
#include <string>

#include "traces/import_common.hpp"

namespace rackep {

/// Opens a profiler manifest (or a directory holding exactly one *.manifest.json). options.top_k is required
/// (InputError("--top-k", ...)); options.num_ranks (default: the manifest's ep_size) is N; options.seed seeds
/// the spread. Errors are InputError naming the file and field: manifest keys missing or inconsistent
/// ("num_global_logical_experts" != master x ep_size, "chunks" != the chunk files found), a truncated or
/// damaged .npz ("zip" or the member name), an array of the wrong dtype or shape ("<member>"), negative
/// loads, a listed layer not in the recording ("--layers"), a (layer, microbatch) twice ("microbatches").
std::unique_ptr<RecordStream> open_ultraep_profile(const std::string& manifest_or_dir,
                                                   const ImportOptions& options, ImportReport& report);

}  // namespace rackep
