// The canonical trace directory: round trips, chunking, exact bytes, and every kind of bad input.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "test_util.hpp"
#include "traces/npy.hpp"
#include "traces/trace_reader.hpp"
#include "traces/trace_writer.hpp"

namespace rackep {
namespace {

namespace fs = std::filesystem;
using test::expect_input_error;
using test::read_bytes;
using test::write_bytes;

TraceManifest small_manifest() {
  TraceManifest m;
  m.model = "unit-test";
  m.num_ranks = 3;
  m.num_experts = 4;
  m.top_k = 2;
  m.tokens_per_rank = 10;
  m.layers = {5, 7};
  m.provenance_json = R"({"recorded_by":"trace_io_test","note":{"nested":[1,2]}})";
  return m;
}

// Record (layer position j, microbatch b): a recognisable pattern, row sums <= T*k = 20.
TraceRecord make_record(const TraceManifest& m, size_t j, int64_t b) {
  TraceRecord r;
  r.layer = m.layers[j];
  r.microbatch = b;
  r.loads = LoadMatrix(m.num_ranks, m.num_experts);
  for (int s = 0; s < m.num_ranks; ++s)
    for (int l = 0; l < m.num_experts; ++l)
      r.loads.at(s, l) = static_cast<int32_t>((b * 7 + j * 3 + s * 2 + l) % 5);
  return r;
}

std::vector<TraceRecord> write_records(const std::string& dir, const TraceManifest& m, int64_t microbatches,
                                       int64_t per_chunk) {
  std::vector<TraceRecord> all;
  TraceWriter w(dir, m, {per_chunk});
  for (int64_t b = 0; b < microbatches; ++b)
    for (size_t j = 0; j < m.layers.size(); ++j) {
      all.push_back(make_record(m, j, b * 3));  // microbatch ids need not be contiguous
      w.append(all.back());
    }
  w.close();
  return all;
}

std::vector<TraceRecord> read_all(RecordStream& in) {
  std::vector<TraceRecord> out;
  TraceRecord r;  // reused: the reader must overwrite it completely
  while (in.next(r)) out.push_back(r);
  return out;
}

TEST(TraceIo, RoundTrip) {
  test::TempDir tmp;
  const TraceManifest m = small_manifest();
  const auto written = write_records(tmp.path("t"), m, 5, 3);
  TraceReader reader(tmp.path("t"));
  const TraceManifest& got = reader.manifest();
  EXPECT_EQ(got.model, m.model);
  EXPECT_EQ(got.num_ranks, 3);
  EXPECT_EQ(got.num_experts, 4);
  EXPECT_EQ(got.top_k, 2);
  EXPECT_EQ(got.tokens_per_rank, 10);
  EXPECT_EQ(got.layers, m.layers);
  EXPECT_EQ(got.num_records, 10);
  EXPECT_EQ(got.provenance_json, R"({"recorded_by":"trace_io_test","note":{"nested":[1,2]}})");
  ASSERT_EQ(got.chunks.size(), 4u);  // 3 + 3 + 3 + 1
  EXPECT_EQ(got.chunks[3].num_records, 1);
  EXPECT_EQ(got.chunks[2].loads_file, "chunk-000002.loads.npy");
  const auto read = read_all(reader);
  ASSERT_EQ(read.size(), written.size());
  for (size_t i = 0; i < read.size(); ++i) {
    EXPECT_EQ(read[i].layer, written[i].layer) << i;
    EXPECT_EQ(read[i].microbatch, written[i].microbatch) << i;
    EXPECT_EQ(read[i].loads, written[i].loads) << i;
  }
  TraceRecord extra;
  EXPECT_FALSE(reader.next(extra));  // stays at the end
  EXPECT_FALSE(reader.next(extra));
}

TEST(TraceIo, ManyChunksStreamOneByOne) {
  test::TempDir tmp;
  TraceManifest m = small_manifest();
  m.layers = {0, 1, 2, 3, 4};
  const auto written = write_records(tmp.path("t"), m, 40, 7);  // 200 records -> 29 chunks
  TraceReader reader(tmp.path("t"));
  EXPECT_EQ(reader.manifest().chunks.size(), 29u);
  TraceRecord r;
  size_t i = 0;
  while (reader.next(r)) {
    ASSERT_LT(i, written.size());
    EXPECT_EQ(r.loads, written[i].loads);
    EXPECT_EQ(r.layer, written[i].layer);
    ++i;
  }
  EXPECT_EQ(i, 200u);
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(tmp.path("t"))) files += e.path().extension() == ".npy";
  EXPECT_EQ(files, 58u);
}

TEST(TraceIo, ChunkFilesAreExactNpy) {
  test::TempDir tmp;
  TraceManifest m = small_manifest();
  m.num_ranks = 2;
  m.layers = {5};
  TraceWriter w(tmp.path("t"), m, {100});
  std::vector<int32_t> values;
  for (int64_t b = 0; b < 3; ++b) {
    TraceRecord r{5, b, LoadMatrix(2, 4, {1, 2, 3, 4, 5, 6, 7, static_cast<int32_t>(b)})};
    values.insert(values.end(), r.loads.values().begin(), r.loads.values().end());
    w.append(r);
  }
  w.close();
  // Loads: shape (3, 2, 4) -> 62-character dictionary, 20 + 35 spaces, '\n' (see npy_test.cpp).
  std::string loads = std::string("\x93NUMPY\x01\x00\x76\x00", 10) +
                      "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 2, 4), }" +
                      std::string(55, ' ') + "\n";
  for (int32_t v : values)
    for (int byte = 0; byte < 4; ++byte)
      loads.push_back(static_cast<char>((static_cast<uint32_t>(v) >> (8 * byte)) & 0xFF));
  EXPECT_EQ(read_bytes(tmp.path("t/chunk-000000.loads.npy")), loads);
  // Index: shape (3, 2) int64 -> 59-character dictionary, 20 + 38 spaces, '\n'; rows (layer 5, microbatch b).
  std::string index = std::string("\x93NUMPY\x01\x00\x76\x00", 10) +
                      "{'descr': '<i8', 'fortran_order': False, 'shape': (3, 2), }" + std::string(58, ' ') +
                      "\n";
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t v : {int64_t{5}, b})
      for (int byte = 0; byte < 8; ++byte)
        index.push_back(static_cast<char>((static_cast<uint64_t>(v) >> (8 * byte)) & 0xFF));
  EXPECT_EQ(read_bytes(tmp.path("t/chunk-000000.index.npy")), index);
}

TEST(TraceIo, RefusesToOverwrite) {
  test::TempDir tmp;
  write_records(tmp.path("t"), small_manifest(), 1, 4);
  const std::string before = read_bytes(tmp.path("t/manifest.json"));
  expect_input_error([&] { TraceWriter w(tmp.path("t"), small_manifest()); }, tmp.path("t"), "output");
  EXPECT_EQ(read_bytes(tmp.path("t/manifest.json")), before);
  write_bytes(tmp.path("file"), "user data");
  expect_input_error([&] { TraceWriter w(tmp.path("file"), small_manifest()); }, "file", "output");
  EXPECT_EQ(read_bytes(tmp.path("file")), "user data");
  TraceWriter w(tmp.path("u"), small_manifest());
  write_bytes(tmp.path("u/NOTICE"), "keep");
  expect_input_error([&] { w.add_side_file("NOTICE", "new"); }, "NOTICE", "output");
  EXPECT_EQ(read_bytes(tmp.path("u/NOTICE")), "keep");
  expect_input_error([&] { w.add_side_file("../escape", "x"); }, "u", "side file");
}

TEST(TraceIo, WriterRejectsBadRecords) {
  test::TempDir tmp;
  const TraceManifest m = small_manifest();
  TraceWriter w(tmp.path("t"), m);
  TraceRecord r = make_record(m, 0, 4);
  r.loads = LoadMatrix(2, 4);
  expect_input_error([&] { w.append(r); }, "t", "loads");  // wrong shape
  r = make_record(m, 0, 4);
  r.loads.at(1, 2) = -1;
  expect_input_error([&] { w.append(r); }, "t", "loads");  // negative count
  r = make_record(m, 0, 4);
  r.loads.at(0, 0) = 100;
  expect_input_error([&] { w.append(r); }, "t", "loads");  // more than T*k tokens from one rank
  r = make_record(m, 0, 4);
  r.layer = 6;
  expect_input_error([&] { w.append(r); }, "t", "layer");
  w.append(make_record(m, 1, 4));
  expect_input_error([&] { w.append(make_record(m, 0, 4)); }, "t", "microbatch");  // layer order
  expect_input_error([&] { w.append(make_record(m, 1, 4)); }, "t", "microbatch");  // duplicate
  expect_input_error([&] { w.append(make_record(m, 0, 3)); }, "t", "microbatch");  // going back
  w.append(make_record(m, 0, 5));
  EXPECT_EQ(w.close().num_records, 2);
  TraceManifest bad = small_manifest();
  bad.top_k = 0;
  expect_input_error([&] { TraceWriter x(tmp.path("x"), bad); }, "x", "top_k");
  bad = small_manifest();
  bad.layers = {1, 1};
  expect_input_error([&] { TraceWriter x(tmp.path("x"), bad); }, "x", "layers");
  bad = small_manifest();
  bad.provenance_json = "[1]";
  expect_input_error([&] { TraceWriter x(tmp.path("x"), bad); }, "x", "provenance");
  EXPECT_FALSE(fs::exists(tmp.path("x")));
}

TEST(TraceIo, IncompleteDirectoryIsRejected) {
  test::TempDir tmp;
  {
    TraceWriter w(tmp.path("t"), small_manifest(), {1});
    w.append(make_record(small_manifest(), 0, 0));
    // destroyed without close()
  }
  EXPECT_TRUE(fs::exists(tmp.path("t/chunk-000000.loads.npy")));
  expect_input_error([&] { TraceReader r(tmp.path("t")); }, "manifest.json", "manifest");
  expect_input_error([&] { TraceReader r(tmp.path("none")); }, "none", "trace");
}

// Rewrites manifest.json of a fresh trace through `edit` and expects the reader to name `field`.
class ManifestEdit : public ::testing::Test {
 protected:
  void SetUp() override { write_records(tmp_.path("t"), small_manifest(), 2, 3); }
  void expect_rejected(const std::string& from, const std::string& to, const std::string& field) {
    const std::string path = tmp_.path("t/manifest.json");
    std::string text = read_bytes(path);
    const size_t at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    write_bytes(path, text);
    expect_input_error([&] { TraceReader r(tmp_.path("t")); }, "manifest.json", field);
  }
  test::TempDir tmp_;
};

TEST_F(ManifestEdit, MissingField) {
  expect_rejected("\"top_k\": 2,", "", "top_k");
}
TEST_F(ManifestEdit, UnknownKey) {
  expect_rejected("\"top_k\": 2,", "\"top_k\": 2, \"topk\": 2,", "topk");
}
TEST_F(ManifestEdit, WrongType) {
  expect_rejected("\"num_ranks\": 3", "\"num_ranks\": \"3\"", "num_ranks");
}
TEST_F(ManifestEdit, FractionalCount) {
  expect_rejected("\"num_ranks\": 3", "\"num_ranks\": 3.5", "num_ranks");
}
TEST_F(ManifestEdit, NegativeSize) {
  expect_rejected("\"num_experts\": 4", "\"num_experts\": -4", "num_experts");
}
TEST_F(ManifestEdit, FutureVersion) {
  expect_rejected("\"format_version\": 1", "\"format_version\": 2", "format_version");
}
TEST_F(ManifestEdit, NotJson) {
  expect_rejected("{", "{{", "json");
}
TEST_F(ManifestEdit, RecordCountDisagrees) {
  expect_rejected("\"num_records\": 4", "\"num_records\": 5", "num_records");
}
TEST_F(ManifestEdit, ChunkEscapesDirectory) {
  expect_rejected("\"chunk-000000.loads.npy\"", "\"../chunk-000000.loads.npy\"", "chunks[0].loads");
}
TEST_F(ManifestEdit, UnknownChunkKey) {
  expect_rejected("\"records\": 3", "\"records\": 3, \"bytes\": 1", "chunks[0].bytes");
}
TEST_F(ManifestEdit, ShapeDisagreesWithChunks) {
  // The manifest now says 4 ranks; the chunk files hold (3, 3, 4).
  const std::string path = tmp_.path("t/manifest.json");
  std::string text = read_bytes(path);
  text.replace(text.find("\"num_ranks\": 3"), 14, "\"num_ranks\": 4");
  write_bytes(path, text);
  expect_input_error([&] { TraceReader r(tmp_.path("t")); }, "chunk-000000.loads.npy", "shape");
}

class ChunkEdit : public ::testing::Test {
 protected:
  void SetUp() override { write_records(tmp_.path("t"), small_manifest(), 2, 4); }
  std::string loads() const { return tmp_.path("t/chunk-000000.loads.npy"); }
  std::string index() const { return tmp_.path("t/chunk-000000.index.npy"); }
  // Overwrites 4 bytes at `offset` of `path` with `value`.
  static void poke(const std::string& path, size_t offset, int32_t value) {
    std::string bytes = read_bytes(path);
    std::memcpy(&bytes[offset], &value, 4);
    write_bytes(path, bytes);
  }
  test::TempDir tmp_;
};

TEST_F(ChunkEdit, TruncatedLoads) {
  const std::string b = read_bytes(loads());
  write_bytes(loads(), b.substr(0, b.size() - 4));
  expect_input_error([&] { TraceReader r(tmp_.path("t")); }, "chunk-000000.loads.npy", "size");
}

TEST_F(ChunkEdit, TruncatedHeader) {
  write_bytes(index(), read_bytes(index()).substr(0, 30));
  expect_input_error([&] { TraceReader r(tmp_.path("t")); }, "chunk-000000.index.npy", "header");
}

TEST_F(ChunkEdit, WrongDtype) {
  std::string b = read_bytes(loads());
  b.replace(b.find("<i4"), 3, "<i8");
  write_bytes(loads(), b);
  // Now the header promises twice the bytes: the size check or the dtype check must catch it, naming the
  // file.
  try {
    TraceReader r(tmp_.path("t"));
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(e.source().find("chunk-000000.loads.npy"), std::string::npos);
    EXPECT_TRUE(e.field() == "size" || e.field() == "descr") << e.what();
  }
}

TEST_F(ChunkEdit, NegativeCount) {
  poke(loads(), 128 + 4 * 5, -3);  // record 0, rank 1, expert 1
  TraceReader r(tmp_.path("t"));
  TraceRecord rec;
  expect_input_error([&] { r.next(rec); }, "chunk-000000.loads.npy", "loads");
}

TEST_F(ChunkEdit, TooManyTokensFromOneRank) {
  poke(loads(), 128, 1000);
  TraceReader r(tmp_.path("t"));
  TraceRecord rec;
  expect_input_error([&] { r.next(rec); }, "chunk-000000.loads.npy", "loads");
}

TEST_F(ChunkEdit, UnknownLayerInIndex) {
  poke(index(), 128 + 16, 6);  // record 1's layer id: 7 -> 6
  TraceReader r(tmp_.path("t"));
  TraceRecord rec;
  EXPECT_TRUE(r.next(rec));
  expect_input_error([&] { r.next(rec); }, "chunk-000000.index.npy", "index");
}

TEST_F(ChunkEdit, OutOfOrderIndex) {
  poke(index(), 128 + 16 * 2 + 8, 0);  // record 2's microbatch: 3 -> 0, before record 1's
  TraceReader r(tmp_.path("t"));
  TraceRecord rec;
  EXPECT_TRUE(r.next(rec));
  EXPECT_TRUE(r.next(rec));
  expect_input_error([&] { r.next(rec); }, "chunk-000000.index.npy", "index");
}

}  // namespace
}  // namespace rackep
