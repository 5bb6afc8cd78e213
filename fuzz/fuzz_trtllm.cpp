// libFuzzer harness: the TensorRT-LLM expert statistics importer (safetensors, traces/import_trtllm.hpp): the
// input is rank0.safetensors next to the fixture's meta_info.json (16 experts, top-2).
#include "fuzz/fuzz_util.hpp"
#include "traces/import_common.hpp"
#include "traces/import_trtllm.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string meta = [] {
    const std::string m = rackep::read_file_text(std::string(RACKEP_SOURCE_DIR) +
                                                 "/tests/fixtures/import/trtllm/meta_info.json");
    return rackep::fuzz::put("trt/meta_info.json", reinterpret_cast<const uint8_t*>(m.data()), m.size());
  }();
  rackep::fuzz::put("trt/rank0.safetensors", data, size);
  rackep::fuzz::refuse([&] {
    rackep::ImportReport report;
    auto s = rackep::open_trtllm_stats(rackep::fuzz::scratch() + "/trt", {}, report);
    rackep::fuzz::drain(*s);
  });
  return 0;
}
