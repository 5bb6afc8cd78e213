// libFuzzer harness: the UltraEP profiler importer (traces/import_ultraep.hpp): the first byte picks whether
// the rest is the chunk .npz (next to the fixture's manifest) or the manifest (next to the fixture's
// first chunk).
#include "fuzz/fuzz_util.hpp"
#include "traces/import_common.hpp"
#include "traces/import_ultraep.hpp"

namespace {
const std::string kId = "epg7f00aa_gr0_r0_1700000000000";
const std::string kFixture = std::string(RACKEP_SOURCE_DIR) + "/tests/fixtures/import/ultraep/" + kId;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const std::string manifest = rackep::read_file_text(kFixture + ".manifest.json");
  static const std::string chunk = rackep::read_file_text(kFixture + ".chunk000000.npz");
  const bool fuzz_manifest = data[0] & 1;
  const std::string& m = fuzz_manifest ? std::string() : manifest;
  const std::string& c = fuzz_manifest ? chunk : std::string();
  const std::string path = rackep::fuzz::put(
      "uep/" + kId + ".manifest.json", fuzz_manifest ? data + 1 : reinterpret_cast<const uint8_t*>(m.data()),
      fuzz_manifest ? size - 1 : m.size());
  rackep::fuzz::put("uep/" + kId + ".chunk000000.npz",
                    fuzz_manifest ? reinterpret_cast<const uint8_t*>(c.data()) : data + 1,
                    fuzz_manifest ? c.size() : size - 1);
  rackep::fuzz::refuse([&] {
    rackep::ImportReport report;
    rackep::ImportOptions o;
    o.top_k = 2;
    auto s = rackep::open_ultraep_profile(path, o, report);
    rackep::fuzz::drain(*s);
  });
  return 0;
}
