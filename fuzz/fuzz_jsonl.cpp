// libFuzzer harness: the per-token JSONL importer (traces/import_jsonl.hpp), input to records.
#include "fuzz/fuzz_util.hpp"
#include "traces/import_jsonl.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string p = rackep::fuzz::put("routing.jsonl", data, size);
  rackep::fuzz::refuse([&] {
    rackep::ImportReport report;
    auto s = rackep::open_token_jsonl({p}, {}, report);
    rackep::fuzz::drain(*s);
  });
  return 0;
}
