// libFuzzer harness: the canonical trace reader (manifest.json + chunk .npy files, traces/trace_reader.hpp).
// The first input byte picks the file that the rest of the input replaces in a small valid trace:
// 0 manifest.json, 1 the loads chunk, 2 the index chunk; then every record is read.
#include <vector>

#include "fuzz/fuzz_util.hpp"
#include "traces/import_common.hpp"
#include "traces/trace_reader.hpp"
#include "traces/trace_writer.hpp"

namespace {

struct Base {
  std::vector<std::string> names;
  std::vector<std::string> bytes;
};

const Base& base() {
  static const Base b = [] {
    rackep::TraceManifest m;
    m.model = "fuzz";
    m.num_ranks = 2;
    m.num_experts = 4;
    m.top_k = 2;
    m.tokens_per_rank = 8;
    m.layers = {1, 3};
    m.provenance_json = "{}";
    std::vector<rackep::TraceRecord> records;
    for (int mb = 0; mb < 2; ++mb)
      for (int layer : m.layers) {
        rackep::TraceRecord r;
        r.layer = layer;
        r.microbatch = mb;
        r.loads = rackep::LoadMatrix(2, 4);
        for (int s = 0; s < 2; ++s)
          for (int e = 0; e < 4; ++e) r.loads.at(s, e) = (s + e + layer + mb) % 5;
        records.push_back(r);
      }
    m.num_records = static_cast<int64_t>(records.size());
    rackep::RecordListStream in(m, records);
    const std::string dir = rackep::fuzz::scratch() + "/base";
    std::filesystem::remove_all(dir);
    rackep::write_trace(in, dir, {/*records_per_chunk=*/4});
    Base out;
    for (const char* name : {"manifest.json", "chunk-000000.loads.npy", "chunk-000000.index.npy"}) {
      out.names.push_back(name);
      out.bytes.push_back(rackep::read_file_text(dir + "/" + name));
    }
    return out;
  }();
  return b;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Base& b = base();
  const size_t pick = data[0] % b.names.size();
  for (size_t i = 0; i < b.names.size(); ++i) {
    const std::string& text = b.bytes[i];
    if (i == pick)
      rackep::fuzz::put("t/" + b.names[i], data + 1, size - 1);
    else
      rackep::fuzz::put("t/" + b.names[i], reinterpret_cast<const uint8_t*>(text.data()), text.size());
  }
  rackep::fuzz::refuse([&] {
    rackep::TraceReader reader(rackep::fuzz::scratch() + "/t");
    rackep::fuzz::drain(reader);
  });
  return 0;
}
