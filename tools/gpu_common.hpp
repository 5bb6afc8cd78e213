// File: tools/gpu_common.hpp
// Shared pieces of the GPU commands (`rackep run-layer`, `rackep calibrate`, `rackep bench kernels`): the
// error a build without the CUDA backend gives, and the expert shape of a model config.
#pragma once

#include <cstdint>
#include <string>

namespace rackep::tools {

/// Throws RuntimeError("<command>: rackep was built without the CUDA backend ...", exit code 1) when
/// RACKEP_HAVE_CUDA is 0.
void require_cuda_build(const std::string& command);

/// What the GPU commands need from a model config (configs/models/*.json, sim's format: {"value": ...,
/// "source"}).
struct MoeShape {
  std::string name;
  int64_t hidden = 0;
  int64_t expert_ffn = 0;
  int num_experts = 0;
  int top_k = 0;
};

/// `name_or_path`: a file, or a name under configs/models/ ("qwen3-235b-a22b"), read by sim::load_model.
/// Throws InputError(path, field, ...).
MoeShape read_moe_shape(const std::string& name_or_path);

}  // namespace rackep::tools
