// The ESFT importer and the composer, on the real data shipped in traces/data/esft-deepseek-v2-lite, and on
// small hand-made files with every kind of defect.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "test_util.hpp"
#include "traces/composer.hpp"
#include "traces/esft.hpp"
#include "traces/trace_reader.hpp"
#include "traces/trace_writer.hpp"

namespace rackep {
namespace {

using test::expect_input_error;

const std::string kData = std::string(RACKEP_SOURCE_DIR) + "/traces/data/esft-deepseek-v2-lite";

// Independent recount: the whole decompressed file with gzread, split by hand, ids parsed with strtol.
// Returns the expert ids of every token of every line, in order (k = 6 per token).
std::vector<std::vector<int>> recount_file(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  EXPECT_NE(f, nullptr) << path;
  std::string text;
  char buf[1 << 16];
  int n = 0;
  while ((n = gzread(f, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  gzclose(f);
  std::vector<std::vector<int>> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::vector<int> ids;
    const std::string id_part = line.substr(0, line.find("\t\t"));
    const char* p = id_part.c_str();
    char* end = nullptr;
    for (long v = std::strtol(p, &end, 10); end != p; v = std::strtol(p, &end, 10)) {
      ids.push_back(static_cast<int>(v));
      p = end;
    }
    lines.push_back(ids);
  }
  return lines;
}

TEST(Esft, ReadsTheShippedTasks) {
  const TokenRouting r = read_esft({kData + "/intent", kData + "/summary", kData + "/translation/"});
  // SOURCE.md: intent 127 / 8222, summary 13 / 8479, translation 40 / 8251 (sequences / tokens).
  ASSERT_EQ(r.sources.size(), 3u);
  EXPECT_EQ(r.sources[0].name, "intent");
  EXPECT_EQ(r.sources[0].num_sequences, 127);
  EXPECT_EQ(r.sources[0].num_tokens, 8222);
  EXPECT_EQ(r.sources[1].num_sequences, 13);
  EXPECT_EQ(r.sources[1].num_tokens, 8479);
  EXPECT_EQ(r.sources[2].name, "translation");
  EXPECT_EQ(r.sources[2].num_sequences, 40);
  EXPECT_EQ(r.sources[2].num_tokens, 8251);
  EXPECT_EQ(r.num_tokens(), 8222 + 8479 + 8251);
  EXPECT_EQ(r.layers.size(), 26u);
  EXPECT_EQ(r.layers.front(), 1);
  EXPECT_EQ(r.layers.back(), 26);
  EXPECT_EQ(r.num_experts, 64);
  EXPECT_EQ(r.top_k, 6);
  // Sequence lengths (SOURCE.md): intent 47..88, summary 273..1402.
  int64_t lo = 1 << 30, hi = 0;
  for (int64_t s = 127; s < 140; ++s) {
    lo = std::min(lo, r.sequence_length(s));
    hi = std::max(hi, r.sequence_length(s));
  }
  EXPECT_EQ(lo, 273);
  EXPECT_EQ(hi, 1402);
  ASSERT_EQ(r.notices.size(), 1u);  // one SOURCE.md, the parent's, kept once
  EXPECT_EQ(r.notices[0].first, "SOURCE.md");
  EXPECT_NE(r.notices[0].second.find("License"), std::string::npos);
  EXPECT_NE(r.provenance_json.find("MIT"), std::string::npos);
}

class EsftCompose : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    routing_ = std::make_shared<const TokenRouting>(
        read_esft({kData + "/intent", kData + "/translation"}, {{1, 2, 26}, 64, 6}));
  }
  static void TearDownTestSuite() { routing_.reset(); }

  // Every token is in exactly one span: of some (microbatch, rank), or of the dropped remainder.
  static void expect_each_token_once(const TokenComposer& c, int num_ranks) {
    std::vector<int> seen(static_cast<size_t>(routing_->num_tokens()), 0);
    auto mark = [&](const TokenSpan& s) {
      EXPECT_GE(s.begin, routing_->sequence_offsets[s.sequence]);
      EXPECT_LE(s.begin + s.length, routing_->sequence_offsets[s.sequence + 1]);
      for (int64_t t = s.begin; t < s.begin + s.length; ++t) ++seen[t];
    };
    for (int64_t b = 0; b < c.num_microbatches(); ++b)
      for (int r = 0; r < num_ranks; ++r)
        for (const TokenSpan& s : c.spans(b, r)) mark(s);
    for (const TokenSpan& s : c.dropped()) mark(s);
    for (size_t t = 0; t < seen.size(); ++t) ASSERT_EQ(seen[t], 1) << "token " << t;
  }

  static std::shared_ptr<const TokenRouting> routing_;
};
std::shared_ptr<const TokenRouting> EsftCompose::routing_;

TEST_F(EsftCompose, PackFillsEveryRankExactly) {
  const int n = 8;
  const int64_t t = 512;
  TokenComposer c(routing_, {n, t, ComposePolicy::kPack, 11});
  // 8222 + 8251 = 16473 tokens; 4 microbatches of 4096, 89 dropped.
  EXPECT_EQ(c.num_microbatches(), 4);
  EXPECT_EQ(c.dropped_tokens(), 16473 - 4 * 4096);
  EXPECT_EQ(c.manifest().num_records, 12);
  expect_each_token_once(c, n);
  TraceRecord rec;
  int64_t records = 0;
  while (c.next(rec)) {
    ++records;
    for (int r = 0; r < n; ++r) EXPECT_EQ(rec.loads.source_totals()[r], t * 6);  // N*T tokens per microbatch
  }
  EXPECT_EQ(records, 12);
}

TEST_F(EsftCompose, CountsMatchADirectRecount) {
  TokenComposer c(routing_, {4, 1000, ComposePolicy::kPack, 3});
  // Token ids of intent then translation, as the composer numbers them, from the independent parser.
  for (size_t j = 0; j < routing_->layers.size(); ++j) {
    const int layer = routing_->layers[j];
    std::vector<int> ids;
    for (const char* task : {"intent", "translation"})
      for (const auto& line :
           recount_file(kData + "/" + task + "/expert_weights_" + std::to_string(layer) + ".txt.gz"))
        ids.insert(ids.end(), line.begin(), line.end());
    ASSERT_EQ(static_cast<int64_t>(ids.size()), routing_->num_tokens() * 6);
    std::vector<int64_t> expected(64, 0), got(64, 0);
    for (int id : ids) ++expected[id];
    for (int64_t b = 0; b < c.num_microbatches(); ++b) {
      const std::vector<int64_t> w = c.loads(j, b).expert_totals();
      for (int e = 0; e < 64; ++e) got[e] += w[e];
    }
    for (const TokenSpan& s : c.dropped())
      for (int64_t tok = s.begin; tok < s.begin + s.length; ++tok)
        for (int i = 0; i < 6; ++i) ++got[ids[tok * 6 + i]];
    EXPECT_EQ(got, expected) << "layer " << layer;
    // And per (microbatch, rank): the loads are the recount of exactly that rank's spans.
    const LoadMatrix m = c.loads(j, 2);
    for (int r = 0; r < 4; ++r) {
      std::vector<int32_t> row(64, 0);
      for (const TokenSpan& s : c.spans(2, r))
        for (int64_t tok = s.begin; tok < s.begin + s.length; ++tok)
          for (int i = 0; i < 6; ++i) ++row[ids[tok * 6 + i]];
      EXPECT_EQ(std::vector<int32_t>(m.row(r), m.row(r) + 64), row);
    }
  }
}

TEST_F(EsftCompose, WholeNeverSplitsASequence) {
  const int n = 4;
  const int64_t t = 400;  // longest translation sequence: 329 tokens
  TokenComposer c(routing_, {n, t, ComposePolicy::kWhole, 5});
  EXPECT_GT(c.num_microbatches(), 5);
  expect_each_token_once(c, n);
  std::set<int64_t> placed;
  for (int64_t b = 0; b < c.num_microbatches(); ++b) {
    int64_t total = 0;
    for (int r = 0; r < n; ++r) {
      EXPECT_LE(c.tokens(b, r), t);
      total += c.tokens(b, r);
      for (const TokenSpan& s : c.spans(b, r)) {
        EXPECT_EQ(s.length, routing_->sequence_length(s.sequence));
        EXPECT_TRUE(placed.insert(s.sequence).second);
      }
    }
    EXPECT_GT(total, 0);
  }
  for (const TokenSpan& s : c.dropped()) EXPECT_TRUE(placed.insert(s.sequence).second);
  EXPECT_EQ(static_cast<int64_t>(placed.size()), routing_->num_sequences());
  expect_input_error(
      [&] {
        TokenComposer x(routing_, {n, 300, ComposePolicy::kWhole, 5});
      },
      "--tokens-per-rank", "--tokens-per-rank");
}

TEST_F(EsftCompose, SeedChoosesTheOrder) {
  TokenComposer a(routing_, {8, 256, ComposePolicy::kPack, 1}),
      b(routing_, {8, 256, ComposePolicy::kPack, 1});
  TokenComposer other(routing_, {8, 256, ComposePolicy::kPack, 2});
  EXPECT_EQ(a.sequence_order(), b.sequence_order());
  EXPECT_NE(a.sequence_order(), other.sequence_order());
  EXPECT_EQ(a.loads(0, 3), b.loads(0, 3));
  EXPECT_FALSE(a.loads(0, 3) == other.loads(0, 3));
}

TEST_F(EsftCompose, TooLittleDataIsAnError) {
  expect_input_error(
      [&] {
        TokenComposer c(routing_, {64, 8192, ComposePolicy::kPack, 0});
      },
      "--tokens-per-rank", "--tokens-per-rank");
  expect_input_error(
      [&] {
        TokenComposer c(routing_, {0, 8, ComposePolicy::kPack, 0});
      },
      "--ranks", "--ranks");
}

TEST_F(EsftCompose, WritesAReadableTraceWithItsNotice) {
  test::TempDir tmp;
  TokenComposer c(routing_, {8, 512, ComposePolicy::kPack, 11});
  TraceWriter w(tmp.path("t"), c.manifest(), {5});
  for (const auto& [name, text] : routing_->notices) w.add_side_file(name, text);
  TraceRecord r;
  while (c.next(r)) w.append(r);
  w.close();
  EXPECT_TRUE(std::filesystem::exists(tmp.path("t/SOURCE.md")));
  TraceReader reader(tmp.path("t"));
  EXPECT_EQ(reader.manifest().layers, (std::vector<int>{1, 2, 26}));
  EXPECT_NE(reader.manifest().provenance_json.find("\"policy\":\"pack\""), std::string::npos);
  int64_t i = 0;
  while (reader.next(r)) {
    EXPECT_EQ(r.loads, c.loads(static_cast<size_t>(i % 3), i / 3));
    ++i;
  }
  EXPECT_EQ(i, 12);
}

// ---- hand-made defects
// --------------------------------------------------------------------------------------

// A line of `tokens` tokens with ids (t + i) % 64 for token t, i < 6, and weights 0.1.
std::string good_line(int tokens, int shift = 0) {
  std::string ids, weights;
  for (int t = 0; t < tokens; ++t)
    for (int i = 0; i < 6; ++i) {
      ids += (ids.empty() ? "" : "\t") + std::to_string((t + i + shift) % 64);
      weights += (weights.empty() ? "" : "\t") + std::string("0.1");
    }
  return ids + "\t\t" + weights + "\n";
}

void write_gz(const std::string& path, const std::string& text) {
  gzFile f = gzopen(path.c_str(), "wb9");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, text.data(), static_cast<unsigned>(text.size())), static_cast<int>(text.size()));
  gzclose(f);
}

class EsftBad : public ::testing::Test {
 protected:
  // A task with layers 1 and 2, three sequences of 2, 3 and 4 tokens.
  void SetUp() override {
    dir_ = tmp_.path("task");
    std::filesystem::create_directories(dir_);
    for (int layer : {1, 2}) write_layer(layer, good_line(2) + good_line(3) + good_line(4));
  }
  void write_layer(int layer, const std::string& text) {
    write_gz(dir_ + "/expert_weights_" + std::to_string(layer) + ".txt.gz", text);
  }
  void expect_bad(const std::string& source_part, const std::string& field) {
    expect_input_error([&] { read_esft({dir_}, {{1, 2}, 64, 6}); }, source_part, field);
  }
  test::TempDir tmp_;
  std::string dir_;
};

TEST_F(EsftBad, GoodFilesRead) {
  const TokenRouting r = read_esft({dir_}, {{1, 2}, 64, 6});
  EXPECT_EQ(r.num_sequences(), 3);
  EXPECT_EQ(r.num_tokens(), 9);
  EXPECT_EQ(r.notices.size(), 0u);
}

TEST_F(EsftBad, ExpertIdOutOfRange) {
  std::string line = good_line(2);
  line.replace(0, 1, "64");
  write_layer(2, good_line(2) + line + good_line(4));
  expect_bad("expert_weights_2.txt.gz:2", "expert id");
}

TEST_F(EsftBad, ExpertIdNotAnInteger) {
  write_layer(1, good_line(2) + "x" + good_line(3).substr(1) + good_line(4));
  expect_bad("expert_weights_1.txt.gz:2", "expert id");
}

TEST_F(EsftBad, ExpertRepeatedWithinAToken) {
  std::string line = good_line(2);  // token 0 is 0 1 2 3 4 5
  line.replace(0, 1, "5");
  write_layer(1, line + good_line(3) + good_line(4));
  expect_bad("expert_weights_1.txt.gz:1", "expert id");
}

TEST_F(EsftBad, IdAndWeightCountsDiffer) {
  std::string line = good_line(3);
  line.insert(line.size() - 1, "\t0.2");
  write_layer(1, good_line(2) + good_line(3) + line);
  expect_bad("expert_weights_1.txt.gz:3", "count");
}

TEST_F(EsftBad, IdsNotAMultipleOfK) {
  write_layer(1, "1\t2\t3\t4\t5\t\t0.1\t0.1\t0.1\t0.1\t0.1\n" + good_line(3) + good_line(4));
  expect_bad("expert_weights_1.txt.gz:1", "count");
}

TEST_F(EsftBad, BadWeight) {
  std::string line = good_line(2);
  line.replace(line.find("0.1"), 3, "1.5");
  write_layer(1, line + good_line(3) + good_line(4));
  expect_bad("expert_weights_1.txt.gz:1", "weight");
}

TEST_F(EsftBad, MissingSeparator) {
  write_layer(1, good_line(2) + "1\t2\t3\t4\t5\t6\n" + good_line(4));
  expect_bad("expert_weights_1.txt.gz:2", "line");
}

TEST_F(EsftBad, LayersDisagreeOnTokens) {
  write_layer(2, good_line(2) + good_line(4) + good_line(4));
  expect_bad("expert_weights_2.txt.gz:2", "tokens");
}

TEST_F(EsftBad, LayersDisagreeOnLines) {
  write_layer(2, good_line(2) + good_line(3));
  expect_bad("expert_weights_2.txt.gz", "lines");
}

TEST_F(EsftBad, MissingLayerFile) {
  std::filesystem::remove(dir_ + "/expert_weights_2.txt.gz");
  expect_bad("expert_weights_2.txt.gz", "file");
}

TEST_F(EsftBad, MissingTaskDirectory) {
  expect_input_error([&] { read_esft({tmp_.path("nope")}); }, "nope", "task directory");
}

TEST_F(EsftBad, DenseLayerZeroIsNotAMoeLayer) {
  expect_input_error([&] { read_esft({dir_}, {{0, 1}, 64, 6}); }, "--layers", "--layers");
}

TEST_F(EsftBad, TruncatedGzip) {
  std::string text;
  for (int i = 0; i < 200; ++i) text += good_line(50, i);
  write_layer(1, text);
  write_layer(2, text);
  const std::string path = dir_ + "/expert_weights_2.txt.gz";
  const std::string bytes = test::read_bytes(path);
  test::write_bytes(path, bytes.substr(0, bytes.size() / 2));
  expect_bad("expert_weights_2.txt.gz", "gzip");
}

TEST_F(EsftBad, CorruptGzip) {
  const std::string path = dir_ + "/expert_weights_1.txt.gz";
  std::string bytes = test::read_bytes(path);
  bytes[bytes.size() - 8] = static_cast<char>(bytes[bytes.size() - 8] ^ 0x5A);  // the CRC-32 trailer
  test::write_bytes(path, bytes);
  expect_bad("expert_weights_1.txt.gz", "gzip");
}

}  // namespace
}  // namespace rackep
