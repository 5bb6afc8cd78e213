#include "traces/composer.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "traces/rng.hpp"

namespace rackep {

const char* compose_policy_name(ComposePolicy policy) {
  return policy == ComposePolicy::kPack ? "pack" : "whole";
}

ComposePolicy parse_compose_policy(const std::string& text, const std::string& source) {
  if (text == "pack") return ComposePolicy::kPack;
  if (text == "whole") return ComposePolicy::kWhole;
  throw InputError(source, "--policy", "unknown policy '" + text + "' (pack, whole)");
}

TokenComposer::TokenComposer(std::shared_ptr<const TokenRouting> routing, ComposeConfig config)
    : routing_(std::move(routing)), config_(config) {
  RACKEP_CHECK(routing_ != nullptr, "TokenComposer without routing");
  const TokenRouting& tr = *routing_;
  RACKEP_CHECK(tr.expert_ids.size() == tr.layers.size(), "routing: one id array per layer");
  RACKEP_CHECK(tr.num_experts > 0 && tr.top_k > 0 && !tr.layers.empty(), "routing: empty shape");
  for (size_t j = 0; j < tr.expert_ids.size(); ++j) {
    const auto& ids = tr.expert_ids[j];
    RACKEP_CHECK(static_cast<int64_t>(ids.size()) == tr.num_tokens() * tr.top_k, "routing: id array size");
    for (uint16_t id : ids)
      if (id >= tr.num_experts)
        throw InputError("token routing", "expert id",
                         "layer " + std::to_string(tr.layers[j]) + " routes to expert " + std::to_string(id) +
                             ", outside [0, " + std::to_string(tr.num_experts) + ")");
  }
  const int n = config_.num_ranks;
  const int64_t t_max = config_.tokens_per_rank;
  if (n <= 0) throw InputError("--ranks", "--ranks", "must be positive, got " + std::to_string(n));
  if (t_max <= 0)
    throw InputError("--tokens-per-rank", "--tokens-per-rank",
                     "must be positive, got " + std::to_string(t_max));
  if (t_max > (int64_t{1} << 40) / n)
    throw InputError("--tokens-per-rank", "--tokens-per-rank", "ranks * tokens per rank is too large");
  const char* policy = compose_policy_name(config_.policy);

  // Seeded sequence order.
  if (config_.passes < 1 || config_.passes > 100000)
    throw InputError("--passes", "--passes", "must be in [1, 100000], got " + std::to_string(config_.passes));
  const size_t num_seq = static_cast<size_t>(tr.num_sequences());
  order_.reserve(num_seq * static_cast<size_t>(config_.passes));
  for (int pass = 0; pass < config_.passes; ++pass) {
    std::vector<int64_t> perm(num_seq);
    for (size_t i = 0; i < num_seq; ++i) perm[i] = static_cast<int64_t>(i);
    SeededRng rng(derive_seed(config_.seed, kStreamShuffle, static_cast<uint64_t>(pass)));
    for (size_t i = num_seq; i > 1; --i) std::swap(perm[i - 1], perm[rng.below(i)]);
    order_.insert(order_.end(), perm.begin(), perm.end());
  }

  slot_begin_ = {0};
  std::vector<std::vector<TokenSpan>> open(static_cast<size_t>(n));
  auto close_microbatch = [&] {
    for (auto& slot : open) {
      spans_.insert(spans_.end(), slot.begin(), slot.end());
      slot_begin_.push_back(spans_.size());
      slot.clear();
    }
    ++num_microbatches_;
  };
  if (config_.policy == ComposePolicy::kPack) {
    int rank = 0;
    int64_t fill = 0;
    for (int64_t s : order_) {
      const int64_t len = tr.sequence_length(s);
      for (int64_t pos = 0; pos < len;) {
        const int64_t take = std::min(len - pos, t_max - fill);
        open[rank].push_back({s, tr.sequence_offsets[s] + pos, take});
        pos += take;
        fill += take;
        if (fill == t_max) {
          fill = 0;
          if (++rank == n) {
            close_microbatch();
            rank = 0;
          }
        }
      }
    }
  } else {
    int64_t longest = 0;
    for (int64_t s = 0; s < tr.num_sequences(); ++s) longest = std::max(longest, tr.sequence_length(s));
    if (longest > t_max)
      throw InputError("--tokens-per-rank", "--tokens-per-rank",
                       "policy 'whole' never splits a sequence, but the longest has " +
                           std::to_string(longest) + " tokens, more than " + std::to_string(t_max) +
                           " per rank; raise it or use --policy pack");
    std::vector<int64_t> fills(static_cast<size_t>(n), 0);
    for (int64_t s : order_) {
      const int64_t len = tr.sequence_length(s);
      if (len == 0) continue;
      int r = static_cast<int>(std::min_element(fills.begin(), fills.end()) - fills.begin());
      if (fills[r] + len > t_max) {
        close_microbatch();
        std::fill(fills.begin(), fills.end(), 0);
        r = 0;
      }
      open[r].push_back({s, tr.sequence_offsets[s], len});
      fills[r] += len;
    }
  }
  for (const auto& slot : open) dropped_.insert(dropped_.end(), slot.begin(), slot.end());
  if (num_microbatches_ == 0)
    throw InputError("--tokens-per-rank", "--tokens-per-rank",
                     std::string("policy '") + policy + "' fills no microbatch of " + std::to_string(n) +
                         " x " + std::to_string(t_max) + " tokens from " + std::to_string(tr.num_tokens()) +
                         " tokens; use fewer ranks or tokens per rank");

  manifest_.model = tr.model;
  manifest_.num_ranks = n;
  manifest_.num_experts = tr.num_experts;
  manifest_.top_k = tr.top_k;
  manifest_.tokens_per_rank = t_max;
  manifest_.layers = tr.layers;
  manifest_.num_records = num_microbatches_ * static_cast<int64_t>(tr.layers.size());
  nlohmann::ordered_json prov = nlohmann::ordered_json::parse(tr.provenance_json);
  nlohmann::ordered_json comp;
  comp["policy"] = policy;
  comp["description"] =
      config_.policy == ComposePolicy::kPack
          ? "sequences in seeded order, concatenated and cut into consecutive T-token windows; window w -> "
            "microbatch w / N, source rank w % N; the tail short of a full microbatch is dropped"
          : "whole sequences in seeded order, each to the least-filled rank (lowest on ties) if it fits in "
            "T, "
            "else the microbatch closes; the microbatch left open at the end is dropped";
  comp["sequence_order"] = "Fisher-Yates shuffle, mt19937_64 seeded by derive_seed(seed, shuffle)";
  comp["seed"] = config_.seed;
  comp["passes"] = config_.passes;
  comp["num_ranks"] = n;
  comp["tokens_per_rank"] = t_max;
  comp["microbatches"] = num_microbatches_;
  comp["sequences"] = tr.num_sequences();
  comp["tokens"] = tr.num_tokens();
  comp["tokens_used"] = tr.num_tokens() * config_.passes - dropped_tokens();
  comp["tokens_dropped"] = dropped_tokens();
  prov["composition"] = comp;
  manifest_.provenance_json = prov.dump();
  manifest_.validate("composed trace");
}

std::vector<TokenSpan> TokenComposer::spans(int64_t microbatch, int rank) const {
  RACKEP_CHECK(microbatch >= 0 && microbatch < num_microbatches_ && rank >= 0 && rank < config_.num_ranks,
               "TokenComposer::spans out of range");
  const size_t slot = static_cast<size_t>(microbatch) * config_.num_ranks + rank;
  return {spans_.begin() + static_cast<std::ptrdiff_t>(slot_begin_[slot]),
          spans_.begin() + static_cast<std::ptrdiff_t>(slot_begin_[slot + 1])};
}

int64_t TokenComposer::tokens(int64_t microbatch, int rank) const {
  int64_t sum = 0;
  for (const TokenSpan& s : spans(microbatch, rank)) sum += s.length;
  return sum;
}

int64_t TokenComposer::dropped_tokens() const {
  int64_t sum = 0;
  for (const TokenSpan& s : dropped_) sum += s.length;
  return sum;
}

LoadMatrix TokenComposer::loads(size_t layer_position, int64_t microbatch) const {
  RACKEP_CHECK(layer_position < routing_->layers.size(), "TokenComposer::loads: layer out of range");
  const int k = routing_->top_k;
  const std::vector<uint16_t>& ids = routing_->expert_ids[layer_position];
  LoadMatrix m(config_.num_ranks, routing_->num_experts);
  for (int r = 0; r < config_.num_ranks; ++r) {
    int32_t* row = m.row(r);
    const size_t slot = static_cast<size_t>(microbatch) * config_.num_ranks + r;
    for (size_t i = slot_begin_[slot]; i < slot_begin_[slot + 1]; ++i) {
      const uint16_t* p = ids.data() + spans_[i].begin * k;
      const uint16_t* end = p + spans_[i].length * k;
      for (; p != end; ++p) ++row[*p];
    }
  }
  return m;
}

bool TokenComposer::next(TraceRecord& record) {
  if (next_microbatch_ >= num_microbatches_) return false;
  record.layer = routing_->layers[next_layer_];
  record.microbatch = next_microbatch_;
  record.loads = loads(next_layer_, next_microbatch_);
  if (++next_layer_ == routing_->layers.size()) {
    next_layer_ = 0;
    ++next_microbatch_;
  }
  return true;
}

}  // namespace rackep
