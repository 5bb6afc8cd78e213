#include "tools/mpi_job.hpp"

#include <cstdlib>

#include "core/error.hpp"
#if RACKEP_TOOLS_MPI
#include <mpi.h>
#endif

namespace rackep::tools {

int mpi_launcher_world_size() {
  auto read = [](const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr ? std::atoi(v) : 0;
  };
  if (const int n = read("OMPI_COMM_WORLD_SIZE"); n > 0) return n;
  if (const int n = read("PMI_SIZE"); n > 0) return n;
  return 0;
}

#if RACKEP_TOOLS_MPI
namespace {
void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS)
    throw RuntimeError(std::string(what) + " failed (MPI error " + std::to_string(rc) + ")");
}
}  // namespace

MpiJob::MpiJob() {
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (!initialised) {
    check(MPI_Init(nullptr, nullptr), "MPI_Init");
    initialised_here_ = true;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

MpiJob::~MpiJob() {
  int finalised = 0;
  MPI_Finalized(&finalised);
  if (initialised_here_ && !finalised) MPI_Finalize();
}

std::vector<std::string> MpiJob::gather(const std::string& mine) const {
  int length = static_cast<int>(mine.size());
  std::vector<int> lengths(static_cast<size_t>(size_), 0);
  check(MPI_Gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Gather");
  std::vector<int> offsets(static_cast<size_t>(size_), 0);
  int total = 0;
  for (int r = 0; r < size_; ++r) {
    offsets[r] = total;
    total += lengths[r];
  }
  std::string all(rank_ == 0 ? static_cast<size_t>(total) : 0, '\0');
  check(MPI_Gatherv(mine.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR, 0,
                    MPI_COMM_WORLD),
        "MPI_Gatherv");
  std::vector<std::string> out;
  if (rank_ == 0)
    for (int r = 0; r < size_; ++r) out.push_back(all.substr(static_cast<size_t>(offsets[r]), lengths[r]));
  return out;
}

void MpiJob::abort(int code) const {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);  // MPI_Abort does not return; this satisfies [[noreturn]]
}
#endif

}  // namespace rackep::tools
