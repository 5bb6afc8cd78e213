// libFuzzer harness: the SGLang legacy CSV reader (traces/import_sglang.hpp); .pt files are fuzz_pt's.
#include "fuzz/fuzz_util.hpp"
#include "traces/import_sglang.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string p =
      rackep::fuzz::put("csv/expert_distribution_rank0_timestamp1700000000.csv", data, size);
  rackep::fuzz::refuse([&] {
    rackep::ImportReport report;
    rackep::ImportOptions o;
    o.top_k = 2;
    auto s = rackep::open_sglang_recording({p}, o, report);
    rackep::fuzz::drain(*s);
  });
  return 0;
}
