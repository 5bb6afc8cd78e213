// The UltraEP load-profiler importer (and the ZIP reader under it): the shipped fixture written like
// np.savez, the stated even spread of global loads, and damaged archives / inconsistent manifests.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "test_util.hpp"
#include "traces/import_ultraep.hpp"
#include "traces/zip_reader.hpp"

namespace rackep {
namespace {

namespace fs = std::filesystem;
const std::string kDir = std::string(RACKEP_SOURCE_DIR) + "/tests/fixtures/import/ultraep";
const std::string kId = "epg7f00aa_gr0_r0_1700000000000";

using test::drain;

ImportOptions top2() {
  ImportOptions o;
  o.top_k = 2;
  return o;
}

TEST(ImportUltraep, Fixture) {
  ImportReport report;
  auto s = open_ultraep_profile(kDir, top2(), report);
  const TraceManifest& m = s->manifest();
  EXPECT_EQ(m.num_ranks, 4);  // ep_size
  EXPECT_EQ(m.num_experts, 16);
  EXPECT_EQ(m.layers, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(m.num_records, 12);
  const auto recs = drain(*s);
  ASSERT_EQ(recs.size(), 12u);
  // Global loads read straight from the first chunk's pre_logical_loads member.
  ZipReader zip(kDir + "/" + kId + ".chunk000000.npz");
  const std::string pre = zip.read("pre_logical_loads.npy");
  const int32_t* first = reinterpret_cast<const int32_t*>(pre.data() + 128);  // 128-byte NPY header
  const std::vector<int64_t> w = recs[0].loads.expert_totals();
  for (int e = 0; e < 16; ++e) EXPECT_EQ(w[e], first[e]) << e;
  for (size_t i = 0; i < recs.size(); ++i) {
    EXPECT_EQ(recs[i].microbatch, static_cast<int64_t>(i / 3));
    EXPECT_EQ(recs[i].layer, static_cast<int>(i % 3) + 1);
    EXPECT_EQ(recs[i].loads.total(), 4 * 32 * 2);  // 4 ranks x 32 tokens x top-2 per record
    // Even spread: the rows of one expert differ by at most one token.
    for (int e = 0; e < 16; ++e) {
      int lo = INT32_MAX, hi = 0;
      for (int r = 0; r < 4; ++r)
        lo = std::min(lo, recs[i].loads.at(r, e)), hi = std::max(hi, recs[i].loads.at(r, e));
      EXPECT_LE(hi - lo, 1);
    }
  }
  bool says_global = false;
  for (const auto& l : report.assumed) says_global |= l.find("GLOBAL loads only") != std::string::npos;
  EXPECT_TRUE(says_global);
  // The seed moves only the remainders; the same seed gives the same records.
  ImportOptions seeded = top2();
  seeded.seed = 5;
  ImportReport r2;
  const auto a = drain(*open_ultraep_profile(kDir, seeded, r2));
  const auto b = drain(*open_ultraep_profile(kDir, seeded, r2));
  bool any_diff = false;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].loads, b[i].loads);
    EXPECT_EQ(a[i].loads.expert_totals(), recs[i].loads.expert_totals());
    any_diff |= !(a[i].loads == recs[i].loads);
  }
  EXPECT_TRUE(any_diff);
  // More source ranks than ep_size.
  ImportOptions wide = top2();
  wide.num_ranks = 8;
  EXPECT_EQ(open_ultraep_profile(kDir, wide, r2)->manifest().num_ranks, 8);
}

TEST(ImportUltraep, RecordsOutOfOrderAreOrdered) {
  // Interleaved microbatches within chunk 0 and (layer 3, microbatch 1) written late into chunk 1.
  const std::string dir = std::string(RACKEP_SOURCE_DIR) + "/tests/fixtures/import/ultraep_ooo";
  ImportReport report;
  auto s = open_ultraep_profile(dir, top2(), report);
  const auto recs = drain(*s);
  ASSERT_EQ(recs.size(), 9u);
  for (size_t i = 0; i < recs.size(); ++i) {
    EXPECT_EQ(recs[i].microbatch, static_cast<int64_t>(i / 3));
    EXPECT_EQ(recs[i].layer, static_cast<int>(i % 3) + 1);
    EXPECT_EQ(recs[i].loads.total(), 64 * 2);  // 64 tokens x top-2 per record
  }
  bool said = false;
  for (const auto& l : report.assumed) said |= l.find("ordered by (microbatch, layer)") != std::string::npos;
  EXPECT_TRUE(said);
  ImportOptions layer2 = top2();
  layer2.layers = {2};
  EXPECT_EQ(drain(*open_ultraep_profile(dir, layer2, report)).size(), 3u);
}

TEST(ImportUltraep, BadInput) {
  test::TempDir tmp;
  ImportReport report;
  test::expect_input_error([&] { open_ultraep_profile(kDir, {}, report); }, "--top-k", "--top-k");
  ImportOptions model = top2();
  model.layers = {1, 2, 5};  // layer 5 is not in the recording
  test::expect_input_error([&] { open_ultraep_profile(kDir, model, report); }, "--layers", "--layers");
  const std::string d = tmp.path("in");
  auto fresh = [&] {
    fs::remove_all(d);
    fs::copy(kDir, d);
  };
  const std::string chunk1 = d + "/" + kId + ".chunk000001.npz";
  const std::string man = d + "/" + kId + ".manifest.json";
  fresh();
  {  // truncated archive
    const std::string bytes = test::read_bytes(chunk1);
    test::write_bytes(chunk1, bytes.substr(0, bytes.size() - 30));
    test::expect_input_error([&] { open_ultraep_profile(d, top2(), report); }, "chunk000001.npz", "zip");
    test::write_bytes(chunk1, bytes.substr(0, 2000));
    test::expect_input_error([&] { open_ultraep_profile(d, top2(), report); }, "chunk000001.npz", "zip");
  }
  fresh();
  {  // one flipped byte inside pre_logical_loads: CRC-32 catches it
    std::string bytes = test::read_bytes(chunk1);
    const size_t at = bytes.find("pre_logical_loads.npy");
    bytes[at + 200] ^= 0x01;
    test::write_bytes(chunk1, bytes);
    test::expect_input_error([&] { open_ultraep_profile(d, top2(), report); }, "chunk000001.npz",
                             "pre_logical_loads.npy");
  }
  fresh();
  {  // a manifest that disagrees with itself and with the arrays
    nlohmann::json j = nlohmann::json::parse(test::read_bytes(man));
    j["num_global_logical_experts"] = 20;
    test::write_bytes(man, j.dump());
    test::expect_input_error([&] { open_ultraep_profile(d, top2(), report); }, "manifest.json",
                             "num_global_logical_experts");
    j["num_local_master_experts"] = 5;  // consistent now, but the arrays hold 16 experts
    test::write_bytes(man, j.dump());
    test::expect_input_error([&] { open_ultraep_profile(d, top2(), report); }, "pre_logical_loads.npy",
                             "pre_logical_loads");
    j["schema"] = "other";
    test::write_bytes(man, j.dump());
    test::expect_input_error([&] { open_ultraep_profile(d, top2(), report); }, "manifest.json", "schema");
  }
  fresh();
  fs::remove(chunk1);
  test::expect_input_error([&] { open_ultraep_profile(d, top2(), report); }, "manifest.json", "chunks");
  test::write_bytes(tmp.path("empty.npz"), "PK");
  test::expect_input_error([&] { ZipReader z(tmp.path("empty.npz")); }, "empty.npz", "zip");
}

// Stored members of every length around the 16/64-byte blocks of the fast CRC-32, at every alignment, against
// a bitwise reference CRC; read() and view() agree, and one flipped bit anywhere is caught.
TEST(ZipReader, StoredMembersCrc) {
  auto crc_ref = [](const std::string& s) {
    uint32_t c = 0xffffffffu;
    for (unsigned char b : s) {
      c ^= b;
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return ~c;
  };
  auto le = [](uint64_t v, int bytes) {
    std::string out;
    for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return out;
  };
  std::vector<std::pair<std::string, std::string>> members;
  uint64_t x = 88172645463325252ull;
  std::vector<size_t> sizes = {0,   1,   3,   15,  16,  17,  63,  64,   65,
                               127, 128, 129, 143, 191, 192, 255, 1000, 4103};
  sizes.push_back(131072 + 9);
  for (size_t i = 0; i < sizes.size(); ++i) {
    std::string data(sizes[i], '\0');
    for (char& ch : data) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      ch = static_cast<char>(x);
    }
    members.emplace_back(std::string(i % 7 + 1, 'm') + std::to_string(i), data);  // names shift alignment
  }
  auto archive = [&](const std::vector<std::pair<std::string, std::string>>& ms,
                     const std::vector<uint32_t>& crcs) {
    std::string body, dir;
    for (size_t i = 0; i < ms.size(); ++i) {
      const auto& [name, data] = ms[i];
      const uint64_t offset = body.size();
      const std::string common = le(20, 2) + le(0, 2) + le(0, 2) + le(0, 2) + le(0, 2) + le(crcs[i], 4) +
                                 le(data.size(), 4) + le(data.size(), 4) + le(name.size(), 2) + le(0, 2);
      body += le(0x04034b50, 4) + common + name + data;
      dir += le(0x02014b50, 4) + le(20, 2) + common + le(0, 2) + le(0, 2) + le(0, 2) + le(0, 4) +
             le(offset, 4) + name;
    }
    return body + dir + le(0x06054b50, 4) + le(0, 2) + le(0, 2) + le(ms.size(), 2) + le(ms.size(), 2) +
           le(dir.size(), 4) + le(body.size(), 4) + le(0, 2);
  };
  std::vector<uint32_t> crcs;
  for (const auto& m : members) crcs.push_back(crc_ref(m.second));
  test::TempDir tmp;
  const std::string path = tmp.path("crc.zip");
  test::write_bytes(path, archive(members, crcs));
  {
    ZipReader zip(path);
    std::string scratch;
    for (const auto& [name, data] : members) {
      EXPECT_EQ(zip.read(name), data) << name;
      EXPECT_EQ(std::string(zip.view(name, scratch)), data) << name;
    }
  }
  for (size_t i = 0; i < members.size(); ++i) {
    if (members[i].second.empty()) continue;
    for (size_t at : {size_t{0}, members[i].second.size() / 2, members[i].second.size() - 1}) {
      auto damaged = members;
      damaged[i].second[at] ^= 0x10;
      test::write_bytes(path, archive(damaged, crcs));
      ZipReader zip(path);
      test::expect_input_error([&] { zip.read(damaged[i].first); }, "crc.zip", damaged[i].first);
    }
  }
}

}  // namespace
}  // namespace rackep
