// File: traces/zip_reader.hpp
// ZipReader: the part of the ZIP format that NumPy .npz files and torch.save .pt files use, read strictly:
// the central directory (ZIP64 records included, as np.savez writes them with force_zip64), entries stored
// (method 0) or deflated (method 8, via zlib), each checked against its CRC-32 and sizes. No encryption, no
// multi-disk archives. A truncated or damaged archive is an InputError naming the file and what is wrong.
// Usage:
//   rackep::ZipReader zip("chunk000000.npz");
//   std::string bytes = zip.read("pre_logical_loads.npy");   // whole entry, verified, copied
//   std::string scratch;                                      // reused for deflated entries
//   std::string_view v = zip.view("pre_logical_loads.npy", scratch);  // stored: in place, no copy
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace rackep {

class MappedFile;

/// One member of an archive, as its central directory describes it.
struct ZipEntry {
  std::string name;
  uint16_t method = 0;  ///< 0 stored, 8 deflated
  uint32_t crc32 = 0;
  uint64_t compressed_bytes = 0;
  uint64_t uncompressed_bytes = 0;
  uint64_t local_header_offset = 0;
};

class ZipReader {
 public:
  /// Maps `path` and parses its central directory. Throws InputError(path, "zip", ...) when the file is not
  /// a ZIP archive, is truncated (no end-of-central-directory record, or one pointing past the end), or an
  /// entry uses an unsupported feature (encryption, a method other than 0/8).
  explicit ZipReader(std::string path);
  ~ZipReader();
  ZipReader(const ZipReader&) = delete;
  ZipReader& operator=(const ZipReader&) = delete;

  const std::vector<ZipEntry>& entries() const { return entries_; }
  /// The entry called `name`, or nullptr.
  const ZipEntry* find(const std::string& name) const;
  /// The uncompressed bytes of `name`. Throws InputError(path, name, ...) when it is missing, its data runs
  /// past the end of the file, inflating fails, or the size or CRC-32 differs from the directory.
  std::string read(const std::string& name) const;
  /// The same verified bytes without a copy where the format allows: a stored member is checked (sizes,
  /// CRC-32) where it lies in the mapped file and returned as a view of it; a deflated member is inflated
  /// into `scratch` (resized, so a reused buffer is not reallocated) and the view points there. The view is
  /// valid while this reader lives and `scratch` is not modified. Throws like read().
  std::string_view view(const std::string& name, std::string& scratch) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::unique_ptr<MappedFile> file_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, size_t> index_;  // name -> entries_ position (torch.save: one per tensor)
};

}  // namespace rackep
