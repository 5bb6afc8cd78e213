// File: traces/npy.hpp
// The NumPy .npy container (format version 1.0), written and parsed by hand so that rackep needs no
// NumPy and every chunk of a canonical trace opens with numpy.load(path, mmap_mode="r"). Only what
// traces use is supported: little-endian int32 ('<i4') and int64 ('<i8'), C order, any rank.
// Usage:
//   std::string header = rackep::npy_header(rackep::NpyDtype::kInt32, {n, N, L});  // + n*N*L int32
//   rackep::NpyArrayInfo info = rackep::read_npy_info(path);  // strict parse and size check
//   std::fseek(f, info.data_offset_bytes, SEEK_SET);
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace rackep {

/// Element types of trace arrays. Stored little-endian: '<i4' and '<i8'.
enum class NpyDtype { kInt32, kInt64 };

/// The NumPy descr string of `dtype` ("<i4" or "<i8").
const char* npy_descr(NpyDtype dtype);
/// Bytes per element of `dtype` (4 or 8).
int npy_itemsize(NpyDtype dtype);

/// The complete NPY v1.0 preamble (magic, version, header length, dictionary, padding, '\n') for a C-order
/// array, byte-identical to what numpy.save (NumPy >= 1.24) writes: keys sorted, a growth-axis reserve of
/// 21 - len(str(shape[0])) spaces, then padding so that the data starts at a multiple of 64 bytes.
std::string npy_header(NpyDtype dtype, const std::vector<int64_t>& shape);

/// What a parsed .npy file holds.
struct NpyArrayInfo {
  NpyDtype dtype = NpyDtype::kInt32;
  std::vector<int64_t> shape;
  int64_t data_offset_bytes = 0;  ///< where the first element starts
  int64_t num_elements = 0;       ///< product of shape
};

/// Parses the header of `bytes` (the first bytes of a file; at least the whole header) strictly: magic
/// "\x93NUMPY", version 1.0 or 2.0, a dictionary with exactly 'descr' ('<i4' or '<i8'), 'fortran_order'
/// (False) and 'shape' (a tuple of non-negative ints), then only spaces and a final '\n'. Throws
/// InputError(source, field, ...) naming the offending field ("magic", "version", "header", "descr",
/// "fortran_order", "shape").
NpyArrayInfo parse_npy_header(const std::string& bytes, const std::string& source);
/// The same on `size` bytes at `data` (e.g. a member viewed in place in a mapped archive); reads only the
/// preamble and header, never the payload.
NpyArrayInfo parse_npy_header(const char* data, size_t size, const std::string& source);

/// Opens `path`, parses its header and checks that the file size is exactly header + num_elements * itemsize
/// (a truncated or over-long file is an InputError with field "size"). Reads only the header.
NpyArrayInfo read_npy_info(const std::string& path);

}  // namespace rackep
