// File: traces/import_registry.hpp
// One entry point for the importers and exporters of recorded routing (traces/import_*.hpp), by format name,
// so that `rackep trace import --from FORMAT` and `rackep trace export --to FORMAT` need no per-format code.
// (The ESFT importer composes per-token data and is driven by cmd_trace.cpp itself.)
// Usage:
//   rackep::ImportReport report;
//   auto s = rackep::open_import("trtllm", {"expert_statistic"}, options, report);
//   rackep::write_trace_atomic(*s, "out/trace", {}, report.side_files);
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "traces/import_common.hpp"

namespace rackep {

/// Formats open_import() reads, comma-separated, for help texts and errors.
const char* import_format_names();
/// Formats export_trace() writes.
const char* export_format_names();
/// True when open_import() reads `format`.
bool is_import_format(const std::string& format);

/// Opens `inputs` (files or directories, as the format needs) of `format` as a canonical record stream and
/// fills `report`. Throws InputError("--from", "--from", ...) for an unknown format and the importer's
/// InputErrors otherwise.
std::unique_ptr<RecordStream> open_import(const std::string& format, const std::vector<std::string>& inputs,
                                          const ImportOptions& options, ImportReport& report);

/// Writes `in` at `out` in `format` (see export_format_names()); nothing is left at `out` on failure.
void export_trace(const std::string& format, RecordStream& in, const std::string& out);

}  // namespace rackep
