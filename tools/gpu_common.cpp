#include "tools/gpu_common.hpp"

#include <nlohmann/json.hpp>

#include <fstream>
#include <stdexcept>

#include "core/error.hpp"
#include "rackep/config.hpp"

namespace rackep::tools {

void require_cuda_build(const std::string& command) {
  if (RACKEP_HAVE_CUDA == 0)
    throw std::runtime_error(
        command +
        ": rackep was built without the CUDA backend (kernels/); reconfigure with "
        "-DRACKEP_ENABLE_CUDA=ON on a machine with nvcc (CUDA 13, NCCL, cuBLAS) and rebuild");
}

MoeShape read_moe_shape(const std::string& name_or_path) {
  std::string path = name_or_path;
  if (!std::ifstream(path).good())
    path = std::string(RACKEP_SOURCE_DIR) + "/configs/models/" + name_or_path + ".json";
  std::ifstream in(path);
  if (!in.good())
    throw InputError("--model", name_or_path,
                     "no such file, and no configs/models/" + name_or_path + ".json");
  nlohmann::json doc;
  try {
    in >> doc;
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path, "json", e.what());
  }
  auto number = [&](const char* field) -> int64_t {
    if (!doc.is_object() || !doc.contains(field)) throw InputError(path, field, "missing");
    const nlohmann::json& v = doc[field].is_object() ? doc[field]["value"] : doc[field];
    if (!v.is_number_integer() || v.get<int64_t>() <= 0)
      throw InputError(path, field, "must be a positive integer");
    return v.get<int64_t>();
  };
  MoeShape s;
  s.name = doc.contains("name") && doc["name"].is_string() ? doc["name"].get<std::string>() : name_or_path;
  s.hidden = number("hidden");
  s.expert_ffn = number("expert_ffn");
  s.num_experts = static_cast<int>(number("num_experts"));
  s.top_k = static_cast<int>(number("top_k"));
  return s;
}

}  // namespace rackep::tools
