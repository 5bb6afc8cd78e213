#include "traces/synthetic.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.hpp"
#include "traces/rng.hpp"
#include "traces/zipf.hpp"

namespace rackep {
namespace {

// Rejections from the alias table before sampling the renormalised remainder by a linear scan. Either way the
// draw follows the weights restricted to the experts not chosen yet, so the switch does not bias the result.
constexpr int kMaxRejections = 16;

}  // namespace

const char* synth_kind_name(SynthKind kind) {
  switch (kind) {
    case SynthKind::kZipf:
      return "zipf";
    case SynthKind::kDrift:
      return "drift";
    case SynthKind::kSwitch:
      return "switch";
  }
  return "?";
}

SynthKind parse_synth_kind(const std::string& text, const std::string& source) {
  if (text == "zipf") return SynthKind::kZipf;
  if (text == "drift") return SynthKind::kDrift;
  if (text == "switch") return SynthKind::kSwitch;
  throw InputError(source, "kind", "unknown generator '" + text + "' (zipf, drift, switch)");
}

void SynthConfig::validate(const std::string& source) const {
  auto positive = [&](int64_t v, const char* flag) {
    if (v <= 0) throw InputError(source, flag, "must be positive, got " + std::to_string(v));
  };
  positive(num_ranks, "--ranks");
  positive(num_experts, "--experts");
  positive(top_k, "--top-k");
  positive(tokens_per_rank, "--tokens-per-rank");
  positive(num_microbatches, "--microbatches");
  positive(drift_every, "--drift-every");
  positive(switch_every, "--switch-every");
  if (num_experts % num_ranks != 0)
    throw InputError(source, "--experts",
                     std::to_string(num_experts) + " experts do not split evenly over " +
                         std::to_string(num_ranks) + " ranks");
  if (top_k > num_experts) throw InputError(source, "--top-k", "must not exceed --experts");
  if (tokens_per_rank > std::numeric_limits<int32_t>::max() / top_k)
    throw InputError(source, "--tokens-per-rank", "tokens_per_rank * top_k must fit in int32");
  if (static_cast<int64_t>(num_ranks) * num_experts > (int64_t{1} << 28))
    throw InputError(source, "--experts", "ranks * experts is too large for one load matrix");
  if (layers.empty()) throw InputError(source, "--layers", "need at least one layer");
  if (num_microbatches > (int64_t{1} << 40) / static_cast<int64_t>(layers.size()))
    throw InputError(source, "--microbatches", "too many records");
  if (std::set<int>(layers.begin(), layers.end()).size() != layers.size())
    throw InputError(source, "--layers", "layer ids must be distinct");
  if (!(imbalance >= 1.0) || !std::isfinite(imbalance))
    throw InputError(source, "--imbalance", "must be a number >= 1");
  if (imbalance > 1.0) {
    const int masters = num_experts / num_ranks;
    const double reachable = zipf_rank_ratio(num_ranks, masters, top_k, 8.0);
    if (imbalance > reachable)
      throw InputError(source, "--imbalance",
                       "the Zipf model reaches at most " + std::to_string(reachable) + " for " +
                           std::to_string(num_ranks) + " ranks, " + std::to_string(num_experts) +
                           " experts, top-" + std::to_string(top_k) + " (alpha <= 8)");
  }
}

SyntheticStream::SyntheticStream(SynthConfig config) : config_(std::move(config)) {
  config_.validate("synthetic trace");
  const int n = config_.num_experts;
  const int masters = n / config_.num_ranks;
  alpha_ = zipf_alpha(config_.num_ranks, masters, config_.top_k, config_.imbalance);
  weights_ = zipf_weights(config_.num_ranks, masters, alpha_);

  // Walker/Vose alias table, built deterministically (ascending worklists, no randomness).
  std::vector<double> alias_prob(n, 1.0);
  alias_index_.resize(n);
  double total = 0.0;
  for (float w : weights_) total += w;
  std::vector<double> scaled(n);
  std::vector<int> small, large;
  for (int i = 0; i < n; ++i) {
    alias_index_[i] = i;
    scaled[i] = static_cast<double>(weights_[i]) * n / total;
    (scaled[i] < 1.0 ? small : large).push_back(i);
  }
  while (!small.empty() && !large.empty()) {
    const int s = small.back(), g = large.back();
    small.pop_back();
    large.pop_back();
    alias_prob[s] = scaled[s];
    alias_index_[s] = g;
    scaled[g] = scaled[g] + scaled[s] - 1.0;
    (scaled[g] < 1.0 ? small : large).push_back(g);
  }
  alias_keep_.resize(n);
  for (int i = 0; i < n; ++i)
    alias_keep_[i] = static_cast<uint64_t>(std::ldexp(std::clamp(alias_prob[i], 0.0, 1.0), 32));

  manifest_.model = config_.model;
  manifest_.num_ranks = config_.num_ranks;
  manifest_.num_experts = config_.num_experts;
  manifest_.top_k = config_.top_k;
  manifest_.tokens_per_rank = config_.tokens_per_rank;
  manifest_.layers = config_.layers;
  manifest_.num_records = config_.num_microbatches * static_cast<int64_t>(config_.layers.size());
  nlohmann::ordered_json p;
  p["recorded_by"] = "rackep synthetic generator (docs/ALGORITHMS.md 2.9)";
  p["kind"] = synth_kind_name(config_.kind);
  p["target_imbalance"] = config_.imbalance;
  p["alpha"] = alpha_;
  p["seed"] = config_.seed;
  p["microbatches"] = config_.num_microbatches;
  p["variable_tokens"] = config_.variable_tokens;
  p["layer_variation"] = config_.layer_variation;
  if (config_.kind == SynthKind::kDrift) p["drift_every"] = config_.drift_every;
  if (config_.kind == SynthKind::kSwitch) p["switch_every"] = config_.switch_every;
  p["sampling"] = config_.imbalance == 1.0
                      ? "deterministic pattern (t*k + i + r*k) mod L"
                      : "k distinct experts per token, sequential weighted sampling without replacement; "
                        "mt19937_64 streams per (microbatch, layer, rank)";
  manifest_.provenance_json = p.dump();
}

uint64_t SyntheticStream::layer_stream(int layer) const {
  // Layer ids may be negative; the stream id only has to be injective. 0 = "all layers".
  return config_.layer_variation ? static_cast<uint64_t>(static_cast<int64_t>(layer)) + 1 : 0;
}

std::vector<int> SyntheticStream::block_permutation(uint64_t stream_a, uint64_t stream_b) const {
  const int ranks = config_.num_ranks;
  const int masters = config_.num_experts / ranks;
  SeededRng rng(derive_seed(config_.seed, kStreamPermutation, stream_a, stream_b));
  auto shuffle = [&rng](std::vector<int>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
  };
  std::vector<int> rank_order(ranks);
  for (int r = 0; r < ranks; ++r) rank_order[r] = r;
  shuffle(rank_order);
  std::vector<int> perm(static_cast<size_t>(config_.num_experts));
  std::vector<int> local(masters);
  for (int r = 0; r < ranks; ++r) {
    for (int m = 0; m < masters; ++m) local[m] = m;
    shuffle(local);
    for (int m = 0; m < masters; ++m)
      perm[static_cast<size_t>(r) * masters + m] = rank_order[r] * masters + local[m];
  }
  return perm;
}

std::vector<int> SyntheticStream::base_placement(int layer) const {
  if (config_.layer_variation) return block_permutation(layer_stream(layer), 0);
  std::vector<int> base(static_cast<size_t>(config_.num_experts));
  for (size_t i = 0; i < base.size(); ++i) base[i] = static_cast<int>(i);
  return base;
}

std::vector<int> SyntheticStream::drift_placement(int layer, int64_t step) const {
  const int n = config_.num_experts;
  const std::vector<int> base = base_placement(layer);
  const int64_t s = step % n;
  std::vector<int> out(static_cast<size_t>(n));
  for (int p = 0; p < n; ++p) out[p] = base[static_cast<size_t>((p + s) % n)];
  return out;
}

std::vector<int> SyntheticStream::placement(int layer, int64_t microbatch) const {
  switch (config_.kind) {
    case SynthKind::kZipf:
      break;
    case SynthKind::kDrift:
      return drift_placement(layer, microbatch / config_.drift_every);
    case SynthKind::kSwitch: {
      const int64_t epoch = microbatch / config_.switch_every;
      if (epoch > 0) return block_permutation(layer_stream(layer), static_cast<uint64_t>(epoch));
      break;
    }
  }
  return base_placement(layer);
}

int64_t SyntheticStream::tokens(int64_t microbatch, int rank) const {
  if (!config_.variable_tokens) return config_.tokens_per_rank;
  SeededRng rng(derive_seed(config_.seed, kStreamTokenCounts, static_cast<uint64_t>(microbatch),
                            static_cast<uint64_t>(rank)));
  const double g = std::clamp(0.5 + 0.35 * rng.normal(), 0.0, 1.0);
  return static_cast<int64_t>(std::floor(g * static_cast<double>(config_.tokens_per_rank) + 0.5));
}

LoadMatrix SyntheticStream::generate(int layer, int64_t microbatch) const {
  const int n = config_.num_experts;
  const int k = config_.top_k;
  LoadMatrix loads(config_.num_ranks, n);
  const std::vector<int> place = placement(layer, microbatch);
  // Drift between two steps: a mixture of this step's placement (1 - f) and the next one's (f).
  double f = 0.0;
  std::vector<int> next_place;
  if (config_.kind == SynthKind::kDrift && microbatch % config_.drift_every != 0) {
    f = static_cast<double>(microbatch % config_.drift_every) / static_cast<double>(config_.drift_every);
    next_place = drift_placement(layer, microbatch / config_.drift_every + 1);
  }
  std::vector<double> expert_weight(static_cast<size_t>(n), 0.0);  // for the linear-scan fallback
  for (int p = 0; p < n; ++p) {
    expert_weight[place[p]] += (1.0 - f) * weights_[p];
    if (f > 0.0) expert_weight[next_place[p]] += f * weights_[p];
  }
  std::vector<int> chosen(static_cast<size_t>(k));
  for (int r = 0; r < config_.num_ranks; ++r) {
    int32_t* row = loads.row(r);
    const int64_t num_tokens = tokens(microbatch, r);
    if (config_.imbalance == 1.0) {
      for (int64_t t = 0; t < num_tokens; ++t)
        for (int i = 0; i < k; ++i)
          ++row[place[static_cast<size_t>((t * k + i + static_cast<int64_t>(r) * k) % n)]];
      continue;
    }
    if (k == n) {
      for (int e = 0; e < n; ++e) row[e] += static_cast<int32_t>(num_tokens);
      continue;
    }
    SeededRng rng(derive_seed(config_.seed, kStreamTokens, static_cast<uint64_t>(microbatch),
                              static_cast<uint64_t>(static_cast<int64_t>(layer)), static_cast<uint64_t>(r)));
    auto taken = [&](int e, int upto) {
      for (int i = 0; i < upto; ++i)
        if (chosen[i] == e) return true;
      return false;
    };
    for (int64_t t = 0; t < num_tokens; ++t) {
      for (int j = 0; j < k; ++j) {
        int pick = -1;
        // NOTE: rejection from the full (mixture) distribution, conditioned on "not chosen yet", is exactly
        // the renormalised distribution over the remaining experts, so this is sampling without replacement.
        for (int attempt = 0; attempt < kMaxRejections && pick < 0; ++attempt) {
          const int* pl = (f > 0.0 && rng.uniform() < f) ? next_place.data() : place.data();
          // One 64-bit draw: the high 32 bits pick the column (multiply-shift), the low 32 bits the coin.
          const uint64_t bits = rng.bits();
          const int i = static_cast<int>(((bits >> 32) * static_cast<uint64_t>(n)) >> 32);
          const int e = pl[(bits & 0xFFFFFFFFULL) < alias_keep_[i] ? i : alias_index_[i]];
          if (!taken(e, j)) pick = e;
        }
        if (pick < 0) {
          double rest = 0.0;
          for (int e = 0; e < n; ++e)
            if (!taken(e, j)) rest += expert_weight[e];
          const double u = rng.uniform() * rest;
          double acc = 0.0;
          for (int e = 0; e < n && pick < 0; ++e) {
            if (taken(e, j)) continue;
            acc += expert_weight[e];
            if (u < acc) pick = e;
          }
          for (int e = n - 1; e >= 0 && pick < 0; --e)  // rounding at the top end, or all-zero weights left
            if (!taken(e, j)) pick = e;
        }
        chosen[j] = pick;
        ++row[pick];
      }
    }
  }
  return loads;
}

bool SyntheticStream::next(TraceRecord& record) {
  if (next_microbatch_ >= config_.num_microbatches) return false;
  record.layer = config_.layers[next_layer_];
  record.microbatch = next_microbatch_;
  record.loads = generate(record.layer, record.microbatch);
  if (++next_layer_ == config_.layers.size()) {
    next_layer_ = 0;
    ++next_microbatch_;
  }
  return true;
}

}  // namespace rackep
