#include "sim/trace_source.hpp"

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "core/error.hpp"
#include "sim/config_io.hpp"
#include "traces/esft.hpp"
#include "traces/synthetic.hpp"
#include "traces/trace_reader.hpp"

namespace rackep::sim {
namespace {

// ESFT replay defaults: a training-size microbatch (4096 tokens per rank) and 4 microbatches per layer.
constexpr int64_t kEsftDefaultTokensPerRank = 4096;
constexpr int64_t kEsftDefaultMicrobatches = 4;

// Keys attended by tokens at positions [a, a + len) of one sequence: sum of min(p + 1, w).
double span_keys(int64_t a, int64_t len, int window) {
  auto prefix = [window](int64_t m) {  // sum_{p=0}^{m-1} min(p+1, w)
    const double md = static_cast<double>(m);
    if (window <= 0 || m <= window) return md * (md + 1.0) / 2.0;
    const double w = window;
    return w * (w + 1.0) / 2.0 + (md - w) * w;
  };
  return prefix(a + len) - prefix(a);
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace

TraceSource::~TraceSource() = default;

TraceSource::TraceSource(const TraceSpec& spec) {
  const std::string& t = spec.text;
  if (t.rfind("esft:", 0) == 0) {
    std::vector<std::string> dirs;
    const std::string base = data_dir() + "/traces/data/esft-deepseek-v2-lite/";
    for (const std::string& task : split(t.substr(5), ',')) {
      dirs.push_back(std::filesystem::is_directory(task) ? task : base + task);
    }
    if (dirs.empty())
      throw InputError("--trace", t, "name at least one ESFT task (intent, summary, translation)");
    EsftOptions eo;
    eo.num_experts = spec.num_experts;
    eo.top_k = spec.top_k;
    if (spec.num_layers > 0 && spec.num_layers < 26) {
      for (int l = 1; l <= spec.num_layers; ++l) eo.layers.push_back(l);
    }
    auto routing = std::make_shared<const TokenRouting>(read_esft(dirs, eo));
    ComposeConfig cc;
    cc.num_ranks = spec.num_ranks;
    cc.tokens_per_rank = spec.tokens_per_rank > 0 ? spec.tokens_per_rank : kEsftDefaultTokensPerRank;
    cc.policy = ComposePolicy::kPack;
    cc.seed = spec.seed;
    // The shipped data holds ~25k tokens; microbatches of realistic size reuse its real sequences over as
    // many independently shuffled passes as it takes to fill the requested microbatches.
    const int64_t microbatches = spec.microbatches > 0 ? spec.microbatches : kEsftDefaultMicrobatches;
    const int64_t wanted = microbatches * cc.num_ranks * cc.tokens_per_rank;
    cc.passes =
        static_cast<int>(std::max<int64_t>(1, (wanted + routing->num_tokens() - 1) / routing->num_tokens()));
    auto composer = std::make_unique<TokenComposer>(routing, cc);
    composer_ = composer.get();
    stream_ = std::move(composer);
    std::ostringstream d;
    d << "ESFT per-token routing (" << t.substr(5) << ", " << routing->num_tokens() << " tokens) packed into "
      << cc.num_ranks << " ranks x " << cc.tokens_per_rank << " tokens, seed " << cc.seed;
    if (cc.passes > 1) d << ", sequences reused over " << cc.passes << " shuffled passes";
    description_ = d.str();
  } else if (t.rfind("synthetic:", 0) == 0) {
    SynthConfig c;
    c.kind = parse_synth_kind(t.substr(10), "--trace");
    c.num_ranks = spec.num_ranks;
    c.num_experts = spec.num_experts;
    c.top_k = spec.top_k;
    c.tokens_per_rank = spec.tokens_per_rank > 0 ? spec.tokens_per_rank : 8192;
    c.layers.clear();
    for (int l = 0; l < spec.num_layers; ++l) c.layers.push_back(l);
    c.num_microbatches = spec.microbatches > 0 ? spec.microbatches : 8;
    c.imbalance = spec.imbalance;
    c.seed = spec.seed;
    c.layer_variation = true;
    c.switch_every = 2;
    c.drift_every = 1;
    c.model = "synthetic";
    auto s = std::make_unique<SyntheticStream>(c);
    std::ostringstream d;
    d << "synthetic " << synth_kind_name(c.kind) << " routing, target imbalance " << c.imbalance << ", "
      << c.num_microbatches << " microbatches x " << c.layers.size() << " layers, " << c.tokens_per_rank
      << " tokens per rank, seed " << c.seed;
    description_ = d.str();
    stream_ = std::move(s);
  } else {
    if (!std::filesystem::is_directory(t)) {
      throw InputError("--trace", t, "not a trace directory, esft:<tasks> or synthetic:<zipf|drift|switch>");
    }
    auto r = std::make_unique<TraceReader>(t);
    description_ = "trace " + t + " (" + r->manifest().model + ")";
    stream_ = std::move(r);
  }
  const TraceManifest& m = stream_->manifest();
  const std::string src = t.rfind("esft:", 0) == 0 || t.rfind("synthetic:", 0) == 0 ? std::string("--trace")
                                                                                    : t + "/" + kManifestFile;
  if (spec.num_ranks > 0 && m.num_ranks != spec.num_ranks) {
    throw InputError(src, "num_ranks",
                     "trace has " + std::to_string(m.num_ranks) + " source ranks, --ranks asks for " +
                         std::to_string(spec.num_ranks));
  }
  if (spec.num_experts > 0 && m.num_experts != spec.num_experts) {
    throw InputError(src, "num_experts",
                     "trace has " + std::to_string(m.num_experts) + " experts, the model " +
                         std::to_string(spec.num_experts));
  }
  if (spec.top_k > 0 && m.top_k != spec.top_k) {
    throw InputError(
        src, "top_k",
        "trace has top-" + std::to_string(m.top_k) + ", the model top-" + std::to_string(spec.top_k));
  }
  seq_len_ =
      spec.seq_len > 0 ? spec.seq_len : static_cast<int>(std::min<int64_t>(m.tokens_per_rank, 1 << 30));
}

double TraceSource::attended_keys(int64_t microbatch, int rank, double tokens, int window) const {
  if (composer_ != nullptr) {
    double keys = 0.0;
    const TokenRouting& routing = composer_->routing();
    for (const TokenSpan& span : composer_->spans(microbatch, rank)) {
      const int64_t pos = span.begin - routing.sequence_offsets[span.sequence];
      keys += span_keys(pos, span.length, window);
    }
    return keys;
  }
  // Sequences of seq_len tokens packed back to back on the rank.
  const int64_t t = static_cast<int64_t>(tokens);
  const int64_t full = t / seq_len_;
  const int64_t rest = t % seq_len_;
  return static_cast<double>(full) * span_keys(0, seq_len_, window) + span_keys(0, rest, window);
}

}  // namespace rackep::sim
