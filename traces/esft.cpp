#include "traces/esft.hpp"

#include <zlib.h>

#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.hpp"
#include "core/input_limits.hpp"

namespace rackep {
namespace fs = std::filesystem;

namespace {

constexpr int kFirstMoeLayer = 1;
constexpr int kLastMoeLayer = 26;

// Reads a gzip (or plain) text file line by line with zlib's gzgets, detecting corrupt and truncated input.
class GzLines {
 public:
  explicit GzLines(std::string path) : path_(std::move(path)), file_(gzopen(path_.c_str(), "rb")) {
    if (file_ == nullptr)
      throw InputError(path_, "file", std::string("cannot open: ") + std::strerror(errno));
    gzbuffer(file_, 1 << 18);
  }
  ~GzLines() {
    if (file_ != nullptr) gzclose(file_);
  }
  GzLines(const GzLines&) = delete;
  GzLines& operator=(const GzLines&) = delete;

  /// Next line without its '\n'; false at a clean end of file.
  bool next(std::string& line) {
    line.clear();
    char buf[1 << 16];
    for (;;) {
      if (gzgets(file_, buf, sizeof buf) == nullptr) {
        check_stream();
        if (line.empty()) return false;
        throw InputError(where(line_ + 1), "line", "no newline at the end of the file (truncated?)");
      }
      const size_t len = std::strlen(buf);
      line.append(buf, len);
      if (len > 0 && buf[len - 1] == '\n') {
        line.pop_back();
        ++line_;
        check_stream();
        return true;
      }
    }
  }
  std::string where(int64_t line) const { return path_ + ":" + std::to_string(line); }
  int64_t line_number() const { return line_; }

 private:
  void check_stream() {
    int err = Z_OK;
    const char* msg = gzerror(file_, &err);
    if (err != Z_OK)
      throw InputError(where(line_ + 1), "gzip",
                       std::string("corrupt or truncated compressed data: ") + (msg ? msg : "unknown error"));
  }

  std::string path_;
  gzFile file_;
  int64_t line_ = 0;
};

// Splits [begin, end) at '\t' and calls fn(field_begin, field_end) for each field.
template <typename Fn>
void for_each_field(const char* begin, const char* end, Fn fn) {
  const char* p = begin;
  for (;;) {
    const char* tab = static_cast<const char*>(std::memchr(p, '\t', static_cast<size_t>(end - p)));
    const char* stop = tab ? tab : end;
    fn(p, stop);
    if (!tab) break;
    p = tab + 1;
  }
}

// Parses one line, appends its ids to `ids` and returns its token count.
int64_t parse_line(const std::string& line, const std::string& where, const EsftOptions& o,
                   std::vector<uint16_t>& ids) {
  const size_t sep = line.find("\t\t");
  if (sep == std::string::npos)
    throw InputError(where, "line", "no \"\\t\\t\" between the expert ids and the gate weights");
  const size_t first = ids.size();
  int64_t num_ids = 0;
  if (sep > 0) {
    for_each_field(line.data(), line.data() + sep, [&](const char* b, const char* e) {
      int value = 0;
      const auto [ptr, ec] = std::from_chars(b, e, value);
      if (b == e || ec != std::errc() || ptr != e || *b == '-' || *b == '+')
        throw InputError(
            where, "expert id",
            "field " + std::to_string(num_ids + 1) + " '" + std::string(b, e) + "' is not an integer");
      if (value < 0 || value >= o.num_experts)
        throw InputError(where, "expert id",
                         "field " + std::to_string(num_ids + 1) + ": " + std::to_string(value) +
                             " is outside [0, " + std::to_string(o.num_experts) + ")");
      ids.push_back(static_cast<uint16_t>(value));
      ++num_ids;
    });
  }
  int64_t num_weights = 0;
  const char* wb = line.data() + sep + 2;
  const char* we = line.data() + line.size();
  if (wb != we) {
    for_each_field(wb, we, [&](const char* b, const char* e) {
      double w = 0.0;
      const auto [ptr, ec] = std::from_chars(b, e, w);
      if (b == e || ec != std::errc() || ptr != e || !std::isfinite(w) || w < 0.0 || w > 1.0)
        throw InputError(where, "weight",
                         "field " + std::to_string(num_weights + 1) + " '" + std::string(b, e) +
                             "' is not a gate weight in [0, 1]");
      ++num_weights;
    });
  }
  if (num_ids == 0) throw InputError(where, "count", "the line routes no tokens");
  if (num_ids != num_weights)
    throw InputError(where, "count",
                     std::to_string(num_ids) + " expert ids but " + std::to_string(num_weights) + " weights");
  if (num_ids % o.top_k != 0)
    throw InputError(
        where, "count",
        std::to_string(num_ids) + " expert ids is not a multiple of top-k = " + std::to_string(o.top_k));
  const int64_t tokens = num_ids / o.top_k;
  for (int64_t t = 0; t < tokens; ++t) {
    const uint16_t* tok = ids.data() + first + t * o.top_k;
    for (int i = 0; i < o.top_k; ++i)
      for (int j = 0; j < i; ++j)
        if (tok[i] == tok[j])
          throw InputError(
              where, "expert id",
              "token " + std::to_string(t) + " selects expert " + std::to_string(tok[i]) + " twice");
  }
  return tokens;
}

std::string layer_file(const fs::path& dir, int layer) {
  const fs::path gz = dir / ("expert_weights_" + std::to_string(layer) + ".txt.gz");
  if (fs::exists(gz)) return gz.string();
  const fs::path txt = dir / ("expert_weights_" + std::to_string(layer) + ".txt");
  if (fs::exists(txt)) return txt.string();
  throw InputError(
      gz.string(), "file",
      "missing (an ESFT task directory holds expert_weights_{layer}.txt.gz for MoE layers 1..26)");
}

// The "License" bullet of a SOURCE.md, with its indented continuation lines joined; "" if there is none.
std::string license_of(const std::string& source_md) {
  std::istringstream in(source_md);
  std::string out;
  for (std::string l; std::getline(in, l);) {
    if (out.empty()) {
      if (l.find("License") == std::string::npos) continue;
      const size_t start = l.find_first_not_of(" -*");
      out = l.substr(start == std::string::npos ? 0 : start);
    } else if (l.size() > 2 && l[0] == ' ' && l.find_first_not_of(' ') != std::string::npos &&
               l[l.find_first_not_of(' ')] != '-') {
      out += " " + l.substr(l.find_first_not_of(' '));
    } else {
      break;
    }
  }
  return out;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TokenRouting read_esft(const std::vector<std::string>& task_dirs, const EsftOptions& options) {
  if (task_dirs.empty())
    throw InputError("--from esft", "task directory", "give at least one task directory");
  if (options.num_experts <= 0 || options.num_experts > kMaxExperts || options.top_k <= 0 ||
      options.top_k > options.num_experts)
    throw InputError("esft options", "num_experts",
                     "needs 0 < top_k <= num_experts <= " + std::to_string(kMaxExperts));
  std::vector<int> layers = options.layers;
  if (layers.empty())
    for (int l = kFirstMoeLayer; l <= kLastMoeLayer; ++l) layers.push_back(l);
  std::set<int> seen;
  for (int l : layers) {
    if (l < kFirstMoeLayer || l > kLastMoeLayer)
      throw InputError(
          "--layers", "--layers",
          "ESFT has MoE layers 1..26 (layer 0 is dense and not logged), got " + std::to_string(l));
    if (!seen.insert(l).second)
      throw InputError("--layers", "--layers", "layer " + std::to_string(l) + " twice");
  }

  TokenRouting r;
  r.model = "deepseek-ai/ESFT-vanilla-lite (DeepSeek-V2-Lite architecture)";
  r.num_experts = options.num_experts;
  r.top_k = options.top_k;
  r.layers = layers;
  r.expert_ids.resize(layers.size());
  std::set<std::string> notice_paths;
  std::string license = "unknown (no SOURCE.md next to the input)";
  nlohmann::ordered_json tasks = nlohmann::ordered_json::array();

  for (const std::string& dir_text : task_dirs) {
    fs::path dir(dir_text);
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) throw InputError(dir_text, "task directory", "no such directory");
    if (dir.filename().empty()) dir = dir.parent_path();  // "intent/" -> "intent"
    RoutingSource src;
    src.name = dir.filename().string();
    src.path = dir_text;
    std::vector<int64_t> lengths;  // tokens per line, from the first layer file
    std::string first_file;
    for (size_t j = 0; j < layers.size(); ++j) {
      const std::string path = layer_file(dir, layers[j]);
      GzLines lines(path);
      std::string line;
      int64_t count = 0;
      while (lines.next(line)) {
        const std::string where = lines.where(lines.line_number());
        const int64_t tokens = parse_line(line, where, options, r.expert_ids[j]);
        if (j == 0) {
          lengths.push_back(tokens);
        } else if (count >= static_cast<int64_t>(lengths.size())) {
          throw InputError(where, "lines",
                           "more lines than " + first_file + " (" + std::to_string(lengths.size()) + ")");
        } else if (lengths[count] != tokens) {
          throw InputError(where, "tokens",
                           std::to_string(tokens) + " tokens, but the same line of " + first_file + " has " +
                               std::to_string(lengths[count]));
        }
        ++count;
      }
      if (j == 0) {
        first_file = path;
        if (count == 0) throw InputError(path, "lines", "the file holds no sequences");
      } else if (count != static_cast<int64_t>(lengths.size())) {
        throw InputError(
            path, "lines",
            std::to_string(count) + " lines, but " + first_file + " has " + std::to_string(lengths.size()));
      }
    }
    for (int64_t len : lengths) {
      r.sequence_offsets.push_back(r.sequence_offsets.back() + len);
      src.num_tokens += len;
    }
    src.num_sequences = static_cast<int64_t>(lengths.size());
    r.sources.push_back(src);
    tasks.push_back({{"name", src.name},
                     {"path", src.path},
                     {"sequences", src.num_sequences},
                     {"tokens", src.num_tokens}});

    for (const fs::path& candidate : {dir / "SOURCE.md", dir.parent_path() / "SOURCE.md"}) {
      if (!fs::is_regular_file(candidate, ec)) continue;
      const std::string canonical = fs::weakly_canonical(candidate, ec).string();
      if (notice_paths.insert(canonical).second) {
        const std::string text = read_text(candidate);
        const std::string name = r.notices.empty() ? "SOURCE.md" : "SOURCE-" + src.name + ".md";
        r.notices.emplace_back(name, text);
        const std::string found = license_of(text);
        if (!found.empty()) license = found + " (see SOURCE.md beside this trace)";
      }
      break;
    }
  }

  nlohmann::ordered_json p;
  p["recorded_by"] =
      "ESFT expert scores (github.com/deepseek-ai/ESFT results/expert_scores): per-token top-6 routing of "
      "deepseek-ai/ESFT-vanilla-lite (DeepSeek-V2-Lite architecture), one forward pass per sequence, batch "
      "1, "
      "teacher-forced";
  p["importer"] = "rackep trace import --from esft";
  p["license"] = license;
  p["tasks"] = tasks;
  p["layers"] = "ESFT MoE layer ids 1..26 (layer 0 is dense); shared experts are not logged";
  p["gate_weights"] = "validated, not used";
  r.provenance_json = p.dump();
  return r;
}

}  // namespace rackep
