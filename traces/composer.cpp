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

void TokenRoutingBuilder::add(const int64_t* ids, int64_t tokens, const std::vector<int>& layer_ids, int k,
                              const std::string& where, const std::string& field) {
  if (layer_ids_.empty()) {
    if (layer_ids.empty() || k <= 0) throw InputError(where, field, "no layers or no expert ids per token");
    layer_ids_ = layer_ids;
    top_k_ = k;
    ids_.resize(layer_ids.size());
    routed_.assign(layer_ids.size(), 0);
    empty_rows_.assign(layer_ids.size(), 0);
  }
  if (layer_ids != layer_ids_)
    throw InputError(where, field,
                     std::to_string(layer_ids.size()) + " layers (" + describe_ids(layer_ids) +
                         "), earlier " + std::to_string(layer_ids_.size()) + " (" + describe_ids(layer_ids_) +
                         ")");
  if (k != top_k_)
    throw InputError(where, field,
                     std::to_string(k) + " ids per token and layer, expected top-" + std::to_string(top_k_));
  const int64_t limit = num_experts_ > 0 ? num_experts_ : kNoExpert;
  const size_t num_layers = layer_ids.size();
  for (size_t l = 0; l < num_layers; ++l) ids_[l].reserve(ids_[l].size() + static_cast<size_t>(tokens * k));
  for (int64_t t = 0; t < tokens; ++t)
    for (size_t l = 0; l < num_layers; ++l) {
      const int64_t* row = ids + (t * static_cast<int64_t>(num_layers) + static_cast<int64_t>(l)) * k;
      std::vector<uint16_t>& out = ids_[l];
      int minus = 0, zeros = 0;
      for (int i = 0; i < k; ++i) minus += row[i] == -1, zeros += row[i] == 0;
      if (minus == k || (k >= 2 && zeros == k)) {  // no routing captured for this token and layer
        ++empty_rows_[l];
        out.insert(out.end(), static_cast<size_t>(k), kNoExpert);
        continue;
      }
      for (int i = 0; i < k; ++i) {
        const int64_t e = row[i];
        if (e == -1) {
          ++padding_;
          out.push_back(kNoExpert);
          continue;
        }
        if (e < 0 || e >= limit)
          throw InputError(where, field,
                           "token " + std::to_string(open_tokens_ + t) + ", layer " +
                               std::to_string(layer_ids[l]) + ": " + std::to_string(e) +
                               " is not an expert id in [0, " + std::to_string(limit) + ")");
        for (int j = 0; j < i; ++j)
          if (row[j] == e)
            throw InputError(where, field,
                             "token " + std::to_string(open_tokens_ + t) + ", layer " +
                                 std::to_string(layer_ids[l]) + " selects expert " + std::to_string(e) +
                                 " twice");
        out.push_back(static_cast<uint16_t>(e));
        ++routed_[l];
        max_id_ = std::max(max_id_, static_cast<int>(e));
      }
    }
  open_tokens_ += tokens;
}

void TokenRoutingBuilder::close_sequence() {
  if (open_tokens_ == 0) return;
  offsets_.push_back(offsets_.back() + open_tokens_);
  open_tokens_ = 0;
}

TokenRouting TokenRoutingBuilder::finish(const std::vector<int>& model_layers, const std::string& source,
                                         ImportReport& report) {
  close_sequence();
  if (offsets_.back() == 0 || max_id_ < 0)
    throw InputError(source, "routed_experts", "no routed token in the input");
  LayerFilter filter(model_layers);
  for (size_t l = 0; l < layer_ids_.size(); ++l) filter.observe(layer_ids_[l], routed_[l]);
  TokenRouting r;
  r.layers = filter.kept(source);
  r.top_k = top_k_;
  r.num_experts = num_experts_ > 0 ? num_experts_ : max_id_ + 1;
  if (r.top_k > r.num_experts)
    throw InputError(source, "routed_experts",
                     "top-" + std::to_string(r.top_k) + " but only " + std::to_string(r.num_experts) +
                         " experts (give --experts)");
  int64_t empty = 0;
  for (int layer : r.layers) {
    const size_t l =
        static_cast<size_t>(std::find(layer_ids_.begin(), layer_ids_.end(), layer) - layer_ids_.begin());
    r.expert_ids.push_back(std::move(ids_[l]));
    empty += empty_rows_[l];
  }
  r.sequence_offsets = offsets_;
  filter.describe(report);
  if (empty > 0)
    report.assumed.push_back(std::to_string(empty) +
                             " (token, layer) rows of kept layers hold no routing (all -1 or all 0): counted "
                             "for no expert");
  if (padding_ > 0)
    report.assumed.push_back(std::to_string(padding_) + " expert slots of -1 padding dropped");
  return r;
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
      if (id >= tr.num_experts && id != kNoExpert)
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
      for (; p != end; ++p)
        if (*p != kNoExpert) ++row[*p];
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

std::unique_ptr<RecordStream> compose_routing(TokenRouting routing, const ImportOptions& o,
                                              const std::string& format, ImportReport& report) {
  if (o.num_ranks <= 0 || o.tokens_per_rank <= 0)
    throw InputError("--ranks", "--ranks",
                     format +
                         " routing has no source ranks: give --ranks and --tokens-per-rank to compose "
                         "microbatches");
  const ComposePolicy policy = parse_compose_policy(o.policy, "--policy");
  auto shared = std::make_shared<const TokenRouting>(std::move(routing));
  auto composer =
      std::make_unique<TokenComposer>(shared, ComposeConfig{o.num_ranks, o.tokens_per_rank, policy, o.seed});
  report.assumed.push_back("policy " + o.policy + " with seed " + std::to_string(o.seed) + ": " +
                           std::to_string(composer->num_microbatches()) + " microbatches of " +
                           std::to_string(o.num_ranks) + " ranks x " + std::to_string(o.tokens_per_rank) +
                           " tokens; " + std::to_string(composer->dropped_tokens()) +
                           " tokens dropped (the remainder that fills no microbatch)");
  return composer;
}

}  // namespace rackep
