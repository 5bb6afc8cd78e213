// libFuzzer harness: torch.save .pt files (ZIP + pickle + storages, traces/pickle_reader.hpp): every tensor
// reachable from the root is read with tensor_values().
#include <vector>

#include "fuzz/fuzz_util.hpp"
#include "traces/pickle_reader.hpp"

namespace {

void visit(const rackep::TorchFile& pt, const rackep::PyValue& v, int depth) {
  if (depth > 100) return;
  if (v.kind == rackep::PyValue::Kind::kTensor) {
    std::vector<int64_t> shape;
    rackep::fuzz::refuse([&] { pt.tensor_values(v, shape, "tensor"); });
  }
  for (const auto& x : v.items) visit(pt, *x, depth + 1);
  for (const auto& [k, x] : v.dict) visit(pt, *x, depth + 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string p = rackep::fuzz::put("fuzz.pt", data, size);
  rackep::fuzz::refuse([&] {
    rackep::TorchFile pt(p);
    visit(pt, pt.root(), 0);
  });
  return 0;
}
