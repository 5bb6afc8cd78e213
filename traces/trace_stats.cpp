#include "traces/trace_stats.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.hpp"

namespace rackep {
namespace {

// Indices of the `hot` largest entries of w (ties: lower index first), in decreasing order.
std::vector<int> hottest_of(const std::vector<int64_t>& w, int hot) {
  std::vector<int> idx(w.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + hot, idx.end(),
                    [&](int a, int b) { return w[a] != w[b] ? w[a] > w[b] : a < b; });
  idx.resize(static_cast<size_t>(hot));
  return idx;
}

double pearson(const std::vector<int64_t>& a, const std::vector<int64_t>& b, bool* defined) {
  const double n = static_cast<double>(a.size());
  double ma = 0.0, mb = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    ma += static_cast<double>(a[i]);
    mb += static_cast<double>(b[i]);
  }
  ma /= n;
  mb /= n;
  double sab = 0.0, saa = 0.0, sbb = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double da = static_cast<double>(a[i]) - ma, db = static_cast<double>(b[i]) - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  *defined = saa > 0.0 && sbb > 0.0;
  return *defined ? sab / std::sqrt(saa * sbb) : 0.0;
}

struct Accumulator {
  LayerStats stats;
  std::vector<double> imbalances;
  double expert_imbalance_sum = 0.0;
  std::vector<int64_t> total_w;
  std::vector<int64_t> prev_w;
  bool has_prev = false;
  double rel_l1_sum = 0.0, pearson_sum = 0.0, overlap_sum = 0.0;
  int64_t rel_l1_pairs = 0;

  void finish(int hot) {
    LayerStats& s = stats;
    s.records = static_cast<int64_t>(imbalances.size());
    if (s.records > 0) {
      s.imbalance_mean = std::accumulate(imbalances.begin(), imbalances.end(), 0.0) / s.records;
      s.imbalance_max = *std::max_element(imbalances.begin(), imbalances.end());
      std::vector<double> sorted = imbalances;
      std::sort(sorted.begin(), sorted.end());
      const size_t n = sorted.size();
      s.imbalance_p50 = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
      s.expert_imbalance_mean = expert_imbalance_sum / s.records;
    }
    if (!total_w.empty() && s.tokens > 0)
      for (int e : hottest_of(total_w, hot))
        s.hottest.emplace_back(e, static_cast<double>(total_w[e]) / static_cast<double>(s.tokens));
    if (rel_l1_pairs > 0) s.predict_rel_l1 = rel_l1_sum / rel_l1_pairs;
    if (s.pearson_pairs > 0) s.predict_pearson = pearson_sum / s.pearson_pairs;
    if (s.predict_pairs > 0) s.predict_hot_overlap = overlap_sum / s.predict_pairs;
  }
};

}  // namespace

TraceStats compute_trace_stats(RecordStream& in, const StatsOptions& options) {
  TraceStats out;
  out.manifest = in.manifest();
  const TraceManifest& m = out.manifest;
  out.num_ranks = options.num_ranks > 0 ? options.num_ranks : m.num_ranks;
  if (options.num_ranks < 0) throw InputError("--ranks", "--ranks", "must be positive");
  if (m.num_experts % out.num_ranks != 0)
    throw InputError("--ranks", "--ranks",
                     std::to_string(m.num_experts) + " experts do not split evenly over " +
                         std::to_string(out.num_ranks) + " ranks");
  if (options.hot < 1) throw InputError("--hot", "--hot", "must be positive");
  out.num_masters = m.num_experts / out.num_ranks;
  out.hot = std::min(options.hot, m.num_experts);
  const ClusterShape shape{out.num_ranks, out.num_masters, 0, out.num_ranks};

  std::vector<Accumulator> acc(m.layers.size());
  for (size_t j = 0; j < acc.size(); ++j) {
    acc[j].stats.layer = m.layers[j];
    acc[j].total_w.assign(static_cast<size_t>(m.num_experts), 0);
  }
  Accumulator all;
  TraceRecord r;
  int64_t last_mb = -1;
  while (in.next(r)) {
    const int pos = m.layer_position(r.layer);
    RACKEP_CHECK(pos >= 0, "stream record with a layer outside its manifest");
    if (out.records == 0 || r.microbatch != last_mb) ++out.microbatches;
    last_mb = r.microbatch;
    ++out.records;
    Accumulator& a = acc[static_cast<size_t>(pos)];
    const std::vector<int64_t> w = r.loads.expert_totals();
    const int64_t tokens = std::accumulate(w.begin(), w.end(), int64_t{0});
    // Rank loads of M consecutive experts per rank, from W (the trace's N may differ from --ranks).
    std::vector<int64_t> rl(static_cast<size_t>(shape.num_ranks), 0);
    for (int l = 0; l < m.num_experts; ++l) rl[shape.master_rank(l)] += w[l];
    const double imb = imbalance(rl);
    const double expert_imb = imbalance(w);
    for (Accumulator* x : {&a, &all}) {
      x->imbalances.push_back(imb);
      x->expert_imbalance_sum += expert_imb;
      x->stats.tokens += tokens;
    }
    for (int l = 0; l < m.num_experts; ++l) a.total_w[l] += w[l];
    if (a.has_prev) {
      int64_t diff = 0;
      for (int l = 0; l < m.num_experts; ++l) diff += std::llabs(a.prev_w[l] - w[l]);
      bool defined = false;
      const double c = pearson(a.prev_w, w, &defined);
      const std::vector<int> hp = hottest_of(a.prev_w, out.hot), hn = hottest_of(w, out.hot);
      int common = 0;
      for (int e : hp) common += std::count(hn.begin(), hn.end(), e) > 0 ? 1 : 0;
      for (Accumulator* x : {&a, &all}) {
        ++x->stats.predict_pairs;
        if (tokens > 0) {
          x->rel_l1_sum += static_cast<double>(diff) / static_cast<double>(tokens);
          ++x->rel_l1_pairs;
        }
        if (defined) {
          x->pearson_sum += c;
          ++x->stats.pearson_pairs;
        }
        x->overlap_sum += static_cast<double>(common) / out.hot;
      }
    }
    a.prev_w = w;
    a.has_prev = true;
  }
  for (Accumulator& a : acc) {
    a.finish(out.hot);
    out.layers.push_back(a.stats);
  }
  all.finish(out.hot);
  out.overall = all.stats;
  out.overall.layer = -1;
  return out;
}

}  // namespace rackep
