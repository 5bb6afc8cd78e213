#include "core/ref_expert_ffn.hpp"

#include <cmath>
#include <string>

#include "core/error.hpp"
#include "core/ref_bf16.hpp"

namespace rackep {

void expert_ffn_reference(const uint16_t* x, int64_t num_tokens, const uint16_t* fc1, const uint16_t* fc2,
                          const FfnDims& dims, uint16_t* y) {
  if (dims.hidden <= 0 || dims.ffn <= 0)
    throw InputError("expert ffn", "dims", "hidden and ffn must be positive");
  if (num_tokens < 0) throw InputError("expert ffn", "num_tokens", "must be >= 0");
  const int64_t h_dim = dims.hidden;
  const int64_t f_dim = dims.ffn;
  std::vector<float> xf(static_cast<size_t>(h_dim));
  std::vector<float> gu(static_cast<size_t>(2 * f_dim));
  std::vector<float> act(static_cast<size_t>(f_dim));
  for (int64_t t = 0; t < num_tokens; ++t) {
    for (int64_t h = 0; h < h_dim; ++h) xf[h] = bf16_to_float(x[t * h_dim + h]);
    for (int64_t o = 0; o < 2 * f_dim; ++o) {
      const uint16_t* w = fc1 + o * h_dim;
      float acc = 0.0f;
      for (int64_t h = 0; h < h_dim; ++h) acc += xf[h] * bf16_to_float(w[h]);
      gu[o] = round_to_bf16(acc);
    }
    for (int64_t f = 0; f < f_dim; ++f) {
      const float g = gu[f];
      const float silu = g / (1.0f + std::exp(-g));
      act[f] = round_to_bf16(silu * gu[f_dim + f]);
    }
    for (int64_t h = 0; h < h_dim; ++h) {
      const uint16_t* w = fc2 + h * f_dim;
      float acc = 0.0f;
      for (int64_t f = 0; f < f_dim; ++f) acc += act[f] * bf16_to_float(w[f]);
      y[t * h_dim + h] = float_to_bf16(acc);
    }
  }
}

void grouped_expert_ffn_reference(const uint16_t* x, const std::vector<int64_t>& slot_offsets,
                                  const std::vector<const uint16_t*>& fc1,
                                  const std::vector<const uint16_t*>& fc2, const FfnDims& dims, uint16_t* y) {
  if (slot_offsets.empty() || slot_offsets.front() != 0)
    throw InputError("expert ffn", "slot_offsets", "must start at 0");
  const size_t num_slots = slot_offsets.size() - 1;
  if (fc1.size() != num_slots || fc2.size() != num_slots)
    throw InputError("expert ffn", "weights", "need one fc1 and one fc2 per slot");
  for (size_t i = 0; i < num_slots; ++i) {
    const int64_t begin = slot_offsets[i];
    const int64_t rows = slot_offsets[i + 1] - begin;
    if (rows < 0) throw InputError("expert ffn", "slot_offsets", "must be non-decreasing");
    if (rows == 0) continue;
    if (fc1[i] == nullptr || fc2[i] == nullptr)
      throw InputError("expert ffn", "weights", "slot " + std::to_string(i) + " has tokens but no weights");
    expert_ffn_reference(x + begin * dims.hidden, rows, fc1[i], fc2[i], dims, y + begin * dims.hidden);
  }
}

FfnCompare compare_ffn_outputs(const std::vector<uint16_t>& ref, const std::vector<uint16_t>& got,
                               int64_t num_rows, int64_t hidden) {
  const size_t n = static_cast<size_t>(num_rows * hidden);
  if (ref.size() < n || got.size() < n)
    throw InputError("expert ffn", "outputs", "fewer elements than rows x hidden");
  FfnCompare c;
  for (int64_t r = 0; r < num_rows; ++r) {
    double sum_sq = 0.0;
    for (int64_t h = 0; h < hidden; ++h) {
      const double v = bf16_to_float(ref[r * hidden + h]);
      sum_sq += v * v;
    }
    const double rms = std::sqrt(sum_sq / static_cast<double>(hidden));
    for (int64_t h = 0; h < hidden; ++h) {
      const int64_t i = r * hidden + h;
      const double a = bf16_to_float(ref[i]);
      const double b = bf16_to_float(got[i]);
      const double err = std::fabs(a - b);
      if (!(err <= FfnCompare::kRelTol * std::fabs(a) + FfnCompare::kAbsTolOfRowRms * rms)) {
        if (c.first_bad < 0) c.first_bad = i;
        ++c.num_bad;
        c.ok = false;
      }
      if (err > c.max_abs_err || std::isnan(err)) c.max_abs_err = err;
      if (a != 0.0 && err / std::fabs(a) > c.max_rel_err) c.max_rel_err = err / std::fabs(a);
    }
  }
  return c;
}

}  // namespace rackep
