#include "traces/import_registry.hpp"

#include "core/error.hpp"
#include "traces/import_jsonl.hpp"
#include "traces/import_loads.hpp"
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
  return "trtllm, sglang, vllm, ultraep, jsonl, loads";
}
const char* export_format_names() {
  return "trtllm, jsonl";
}

bool is_import_format(const std::string& format) {
  return format == "trtllm" || format == "sglang" || format == "vllm" || format == "ultraep" ||
         format == "jsonl" || format == "loads";
}

std::unique_ptr<RecordStream> open_import(const std::string& format, const std::vector<std::string>& inputs,
                                          const ImportOptions& options, ImportReport& report) {
  if (format == "trtllm") return open_trtllm_stats(single_input(format, inputs), options, report);
  if (format == "jsonl") return open_token_jsonl(inputs, options, report);
  if (format == "vllm" && !inputs.empty() && inputs.front().size() > 3 &&
      inputs.front().compare(inputs.front().size() - 3, 3, ".pt") ==
          0) {  // vllm(-ascend) expert_load_view.pt
    report.format = "vllm";
    return open_global_loads(inputs, options, report);
  }
  if (format == "vllm") return open_vllm_routed_experts(inputs, options, report);
  if (format == "sglang") return open_sglang_recording(inputs, options, report);
  if (format == "loads") return open_global_loads(inputs, options, report);
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
