// File: tools/mpi_job.hpp
// MPI for the `rackep` executable (never for the libraries): whether an MPI launcher started this process,
// and, when rackep was built with MPI (RACKEP_TOOLS_MPI, Debian's libopenmpi-dev), the job itself: rank,
// size, gathering strings on rank 0 and ending the whole job when one process fails (`rackep sweep` under
// mpirun, `rackep run-layer` with one process per GPU). Usage:
//   if (mpi_launcher_world_size() > 1) { MpiJob job; std::vector<std::string> all = job.gather(mine); }
#pragma once

#include <string>
#include <vector>

#ifndef RACKEP_TOOLS_MPI
#define RACKEP_TOOLS_MPI 0
#endif

namespace rackep::tools {

/// Processes of the job when started by mpirun/mpiexec (OMPI_COMM_WORLD_SIZE, PMI_SIZE), else 0.
int mpi_launcher_world_size();

#if RACKEP_TOOLS_MPI
class MpiJob {
 public:
  MpiJob();  ///< MPI_Init unless MPI is initialised already
  ~MpiJob();
  MpiJob(const MpiJob&) = delete;
  MpiJob& operator=(const MpiJob&) = delete;
  int rank() const { return rank_; }
  int size() const { return size_; }
  /// Collective: every process's string, in rank order, on rank 0 (empty elsewhere).
  std::vector<std::string> gather(const std::string& mine) const;
  /// Ends every process of the job (the others may be waiting in a collective for this one).
  [[noreturn]] void abort(int code) const;

 private:
  bool initialised_here_ = false;
  int rank_ = 0;
  int size_ = 1;
};
#endif

}  // namespace rackep::tools
