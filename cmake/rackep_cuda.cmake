# cmake/rackep_cuda.cmake: resolves RACKEP_ENABLE_CUDA (AUTO | ON | OFF) into RACKEP_HAVE_CUDA, finds the CUDA
# toolkit (cudart, cuBLAS, cuBLASLt), NCCL and MPI for the kernels/ backend, and writes the generated header
# ${PROJECT_BINARY_DIR}/generated/rackep/config.hpp with RACKEP_HAVE_CUDA / _NCCL / _MPI as 0/1 macros.
#   AUTO: the backend is built when check_language(CUDA) finds nvcc (e.g. /usr/local/cuda/bin on PATH);
#   ON:   nvcc is required (configure fails without it);
#   OFF:  the backend is skipped; every other target and test builds as usual.
# NCCL (multi-GPU dispatch/combine) and MPI (one process per GPU) are optional inside the backend; without them
# the backend still builds and runs emulated ranks on one GPU.

set(RACKEP_HAVE_CUDA 0)
set(RACKEP_HAVE_NCCL 0)
set(RACKEP_HAVE_MPI 0)
string(TOUPPER "${RACKEP_ENABLE_CUDA}" _rackep_cuda_mode)
if(NOT _rackep_cuda_mode MATCHES "^(AUTO|ON|OFF|TRUE|FALSE|1|0|YES|NO)$")
  message(FATAL_ERROR "RACKEP_ENABLE_CUDA must be AUTO, ON or OFF, got '${RACKEP_ENABLE_CUDA}'")
endif()
if(_rackep_cuda_mode MATCHES "^(ON|TRUE|1|YES)$")
  set(_rackep_cuda_mode ON)
elseif(_rackep_cuda_mode MATCHES "^(OFF|FALSE|0|NO)$")
  set(_rackep_cuda_mode OFF)
endif()

if(NOT _rackep_cuda_mode STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(RACKEP_HAVE_CUDA 1)
  elseif(_rackep_cuda_mode STREQUAL "ON")
    message(FATAL_ERROR "RACKEP_ENABLE_CUDA=ON but no CUDA compiler was found "
                        "(put nvcc on PATH or set CMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc)")
  else()
    message(STATUS "rackep: CUDA backend off (no nvcc found; RACKEP_ENABLE_CUDA=AUTO)")
  endif()
endif()

if(RACKEP_HAVE_CUDA)
  # Hopper (sm_90) and Blackwell (sm_100) machine code, plus sm_100 PTX so newer GPUs can JIT it.
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES "90-real;100-real;100-virtual")
  endif()
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  if(NOT TARGET CUDA::cublas OR NOT TARGET CUDA::cublasLt)
    message(FATAL_ERROR "the CUDA toolkit at ${CUDAToolkit_LIBRARY_DIR} lacks cuBLAS/cuBLASLt")
  endif()
  message(STATUS "rackep: CUDA backend on (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, archs ${CMAKE_CUDA_ARCHITECTURES})")

  find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} $ENV{NCCL_HOME}/include)
  find_library(NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} $ENV{NCCL_HOME}/lib)
  if(NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
    set(RACKEP_HAVE_NCCL 1)
    add_library(rackep_nccl INTERFACE)
    target_include_directories(rackep_nccl SYSTEM INTERFACE ${NCCL_INCLUDE_DIR})
    target_link_libraries(rackep_nccl INTERFACE ${NCCL_LIBRARY})
    message(STATUS "rackep: NCCL found (${NCCL_LIBRARY}): multi-GPU dispatch/combine on")
  else()
    message(STATUS "rackep: NCCL not found: multi-GPU dispatch/combine off (emulated ranks on one GPU only)")
  endif()

  # One process per GPU needs MPI to broadcast the ncclUniqueId and the CUDA IPC handles (Debian: libopenmpi-dev).
  # The project enables only CXX (FindMPI's C component needs the C language), so the CXX component is used;
  # only MPI's C API is called, and MPI_CXX_SKIP_MPICXX keeps the deprecated C++ bindings out.
  set(MPI_CXX_SKIP_MPICXX TRUE)
  find_package(MPI QUIET COMPONENTS CXX)
  if(MPI_CXX_FOUND AND RACKEP_HAVE_NCCL)
    set(RACKEP_HAVE_MPI 1)
    message(STATUS "rackep: MPI found: one-process-per-GPU bootstrap of NCCL and CUDA IPC (kernels/nccl_ep.hpp) on")
  else()
    message(STATUS "rackep: MPI or NCCL not found: one-process-per-GPU bootstrap off (one process drives its GPUs)")
  endif()
endif()

configure_file(${PROJECT_SOURCE_DIR}/cmake/config.hpp.in ${PROJECT_BINARY_DIR}/generated/rackep/config.hpp @ONLY)
