#include "kernels/check.hpp"

namespace rackep::kernels {

CudaError::CudaError(std::string call, std::string error, const std::string& detail, std::string where)
    : RuntimeError(call + " failed: " + error + " (" + detail + ") at " + where),
      call_(std::move(call)),
      error_(std::move(error)),
      where_(std::move(where)) {}

void throw_cuda_error(const char* call, const char* error, const char* detail, const char* file, int line) {
  throw CudaError(call, error != nullptr ? error : "unknown error", detail != nullptr ? detail : "",
                  std::string(file) + ":" + std::to_string(line));
}

}  // namespace rackep::kernels
