// libFuzzer harness: the vLLM routed-experts reader (traces/import_vllm.hpp); the first byte picks a .jsonl
// (one response per line) or a .json (one response or an array) file.
#include "fuzz/fuzz_util.hpp"
#include "traces/import_vllm.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string p = rackep::fuzz::put(data[0] & 1 ? "r.json" : "r.jsonl", data + 1, size - 1);
  rackep::fuzz::refuse([&] {
    rackep::ImportReport report;
    rackep::read_vllm_routed_experts({p}, {}, report);
  });
  return 0;
}
