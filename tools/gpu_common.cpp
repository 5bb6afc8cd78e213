#include "tools/gpu_common.hpp"

#include <stdexcept>

#include "core/error.hpp"

#include "rackep/config.hpp"
#include "sim/config_io.hpp"
#include "sim/model_config.hpp"

namespace rackep::tools {

void require_cuda_build(const std::string& command) {
  if (RACKEP_HAVE_CUDA == 0)
    throw RuntimeError(command +
                       ": rackep was built without the CUDA backend (kernels/); reconfigure with "
                       "-DRACKEP_ENABLE_CUDA=ON on a machine with nvcc (CUDA 13, NCCL, cuBLAS) and rebuild");
}

MoeShape read_moe_shape(const std::string& name_or_path) {
  // The simulator's strict model loader: one parser for configs/models/*.json.
  const sim::ModelConfig m =
      sim::load_model(sim::resolve_data_file(name_or_path, "configs/models", "--model"));
  MoeShape s;
  s.name = m.name;
  s.hidden = m.hidden;
  s.expert_ffn = m.expert_ffn;
  s.num_experts = m.num_experts;
  s.top_k = m.top_k;
  return s;
}

}  // namespace rackep::tools
