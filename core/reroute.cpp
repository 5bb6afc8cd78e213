#include "core/reroute.hpp"

#include <numeric>
#include <string>

#include "core/allocation.hpp"
#include "core/error.hpp"

namespace rackep {

int64_t interleave_stride(int64_t q) {
  if (q <= 1) return 1;
  int64_t s = q / 2 + 1;
  if (s >= q) s = q - 1;
  if (s < 1) s = 1;
  while (std::gcd(s, q) != 1) {
    s += 1;
    if (s >= q) s = 1;
  }
  return s;
}

int reroute_instance(int expert, int64_t k, const int32_t* prefix, int c, bool interleave) {
  const int64_t q = prefix[c - 1];
  int64_t kk = k;
  if (interleave && q > 1) kk = (k * interleave_stride(q) + expert % q) % q;
  int j = 0;
  while (j < c && kk >= prefix[j]) ++j;
  return j < c ? j : c - 1;
}

std::vector<int32_t> reroute_tokens(const Plan& plan, const Allocation& alloc, int source,
                                    const std::vector<int32_t>& topk_ids, int top_k, bool interleave) {
  const int l_count = plan.num_experts();
  if (top_k <= 0 || topk_ids.size() % static_cast<size_t>(top_k) != 0)
    throw InputError("topk_ids", "top_k",
                     "token ids are not a whole number of top-" + std::to_string(top_k) + " rows");
  std::vector<int64_t> ordinal(static_cast<size_t>(l_count), 0);
  std::vector<int32_t> out(topk_ids.size());
  // Prefix per expert for this source (only quota plans use it).
  std::vector<int32_t> prefix(static_cast<size_t>(alloc.num_instances()));
  for (int l = 0; l < l_count; ++l)
    rank_quota_prefix(alloc, source, l, plan.lcnt[l], prefix.data() + alloc.offset[l]);
  std::vector<int64_t> counted(static_cast<size_t>(l_count), 0);
  for (int32_t id : topk_ids) {
    if (id < 0 || id >= l_count)
      throw InputError("topk_ids", "expert",
                       "expert id " + std::to_string(id) + " outside [0, " + std::to_string(l_count) + ")");
    counted[id] += 1;
  }
  for (int l = 0; l < l_count; ++l)
    if (counted[l] != prefix[alloc.offset[l] + plan.lcnt[l] - 1])
      throw InputError("topk_ids", "expert " + std::to_string(l),
                       "source rank " + std::to_string(source) + " routes " + std::to_string(counted[l]) +
                           " tokens but its allocation holds " +
                           std::to_string(prefix[alloc.offset[l] + plan.lcnt[l] - 1]));
  for (size_t i = 0; i < topk_ids.size(); ++i) {
    const int l = topk_ids[i];
    const int c = plan.lcnt[l];
    const int64_t k = ordinal[l]++;
    const int j = plan.has_quota ? reroute_instance(l, k, prefix.data() + alloc.offset[l], c, interleave)
                                 : static_cast<int>(k % c);
    out[i] = plan.physical(l, j);
  }
  return out;
}

}  // namespace rackep
