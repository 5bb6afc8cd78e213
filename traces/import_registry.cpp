#include "traces/import_registry.hpp"

#include "core/error.hpp"
#include "traces/import_jsonl.hpp"
#include "traces/import_sglang.hpp"
#include "traces/import_trtllm.hpp"
#include "traces/import_ultraep.hpp"
#include "traces/import_vllm.hpp"

namespace rackep {

namespace {

const std::string& single_input(const std::string& format, const std::vector<std::string>& inputs) {
  if (inputs.size() != 1)
    throw InputError("--from " + format, "inputs",
                     "expects exactly one input, got " + std::to_string(inputs.size()));
  return inputs.front();
}

}  // namespace

const char* import_format_names() {
  return "trtllm";
}
const char* export_format_names() {
  return "trtllm";
}

bool is_import_format(const std::string& format) {
  return format == "trtllm";
}

std::unique_ptr<RecordStream> open_import(const std::string& format, const std::vector<std::string>& inputs,
                                          const ImportOptions& options, ImportReport& report) {
  if (format == "trtllm") return open_trtllm_stats(single_input(format, inputs), options, report);
  if (format == "jsonl") return open_token_jsonl(inputs, options, report);
  if (format == "vllm") return open_vllm_routed_experts(inputs, options, report);
  if (format == "sglang") return open_sglang_recording(inputs, options, report);
  if (format == "ultraep") return open_ultraep_profile(single_input(format, inputs), options, report);
  throw InputError("--from", "--from",
                   "unknown format '" + format + "' (supported: esft, " + import_format_names() + ")");
}

void export_trace(const std::string& format, RecordStream& in, const std::string& out) {
  if (format == "trtllm") return write_trtllm_stats(in, out);
  if (format == "jsonl") return write_token_jsonl(in, out);
  throw InputError("--to", "--to",
                   "unknown format '" + format + "' (supported: " + export_format_names() + ")");
}

}  // namespace rackep
