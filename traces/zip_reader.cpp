#include "traces/zip_reader.hpp"

#include <zlib.h>

#include <algorithm>
#include <climits>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define RACKEP_CRC32_CLMUL 1
#endif

#include "core/error.hpp"
#include "traces/import_common.hpp"

namespace rackep {

namespace {

constexpr uint32_t kEocdSig = 0x06054b50;
constexpr uint32_t kZip64EocdSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint64_t kMaxDeflateRatio = 1032;              // deflate's largest expansion
constexpr uint64_t kMaxMemberBytes = uint64_t{1} << 40;  // 1 TiB: no trace member is larger

uint64_t le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

uint32_t crc32_zlib(uint32_t crc, const unsigned char* p, size_t n) {
  for (size_t off = 0; off < n; off += UINT_MAX / 2) {
    const size_t k = std::min<size_t>(n - off, UINT_MAX / 2);
    crc = static_cast<uint32_t>(::crc32(crc, p + off, static_cast<uInt>(k)));
  }
  return crc;
}

#ifdef RACKEP_CRC32_CLMUL
// CRC-32 (the ZIP/gzip polynomial, reflected) by carry-less multiplication: Gopal et al., "Fast CRC
// Computation for Generic Polynomials Using PCLMULQDQ Instruction" (Intel, 2009), with the constants of
// Linux's crc32-pclmul and Chromium's zlib. Four 128-bit lanes are folded 512 bits at a time, then into one
// lane; that lane, stored back as 16 bytes, is congruent to everything before it, so zlib's table code
// finishes it and the tail. Same result as zlib's crc32(), several times faster (stored .npz members are
// checked at memory speed).
// x * x^D + next mod P, for the distance D that the constants k encode (one 128-bit lane to the next).
__attribute__((target("pclmul,sse4.1"))) inline __m128i fold(__m128i x, __m128i k, __m128i next) {
  return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)),
                       next);
}

__attribute__((target("pclmul,sse4.1"))) uint32_t crc32_clmul(uint32_t crc, const unsigned char* p,
                                                              size_t n) {
  if (n < 128) return crc32_zlib(crc, p, n);
  const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596, 0x0154442bd4);  // x^(4*128+32), x^(4*128-32) mod P
  const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009e, 0x01751997d0);  // x^(128+32), x^(128-32) mod P
  auto load = [](const unsigned char* q) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(q)); };
  // The register (crc before its final inversion) enters as an XOR into the first four bytes.
  __m128i x0 = _mm_xor_si128(load(p), _mm_cvtsi32_si128(static_cast<int>(~crc)));
  __m128i x1 = load(p + 16), x2 = load(p + 32), x3 = load(p + 48);
  p += 64;
  n -= 64;
  for (; n >= 64; p += 64, n -= 64) {
    x0 = fold(x0, k1k2, load(p));
    x1 = fold(x1, k1k2, load(p + 16));
    x2 = fold(x2, k1k2, load(p + 32));
    x3 = fold(x3, k1k2, load(p + 48));
  }
  x0 = fold(x0, k3k4, x1);
  x0 = fold(x0, k3k4, x2);
  x0 = fold(x0, k3k4, x3);
  for (; n >= 16; p += 16, n -= 16) x0 = fold(x0, k3k4, load(p));
  unsigned char folded[16];
  _mm_storeu_si128(reinterpret_cast<__m128i*>(folded), x0);
  // zlib with register 0 (crc argument ~0) over the folded lane, then on over the tail.
  return crc32_zlib(crc32_zlib(0xffffffffu, folded, 16), p, n);
}
#endif

// zlib's crc32() over any length, by carry-less multiplication where the CPU has it.
uint32_t crc32_of(const unsigned char* p, size_t n) {
#ifdef RACKEP_CRC32_CLMUL
  static const bool clmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
  if (clmul) return crc32_clmul(0, p, n);
#endif
  return crc32_zlib(0, p, n);
}

}  // namespace

ZipReader::ZipReader(std::string path) : path_(std::move(path)), file_(std::make_unique<MappedFile>(path_)) {
  const unsigned char* d = file_->data();
  const size_t size = file_->size();
  // The end-of-central-directory record is the last 22 bytes plus a comment of up to 65535 bytes.
  if (size < 22)
    throw InputError(path_, "zip", "truncated: " + std::to_string(size) + " bytes, not a ZIP archive");
  size_t eocd = SIZE_MAX;
  const size_t lowest = size >= 22 + 65535 ? size - 22 - 65535 : 0;
  for (size_t p = size - 22 + 1; p-- > lowest;)
    if (le(d + p, 4) == kEocdSig && p + 22 + le(d + p + 20, 2) == size) {
      eocd = p;
      break;
    }
  if (eocd == SIZE_MAX)
    throw InputError(path_, "zip", "no end-of-central-directory record: truncated, or not a ZIP archive");
  uint64_t count = le(d + eocd + 10, 2);
  uint64_t dir_bytes = le(d + eocd + 12, 4);
  uint64_t dir_offset = le(d + eocd + 16, 4);
  if (count == 0xffff || dir_bytes == 0xffffffffu || dir_offset == 0xffffffffu) {
    if (eocd < 20 || le(d + eocd - 20, 4) != kZip64LocatorSig)
      throw InputError(path_, "zip", "ZIP64 sizes without a ZIP64 locator");
    const uint64_t z = le(d + eocd - 20 + 8, 8);
    if (size < 56 || z > size - 56 || le(d + z, 4) != kZip64EocdSig)
      throw InputError(path_, "zip", "the ZIP64 end-of-central-directory record is missing or past the end");
    count = le(d + z + 32, 8);
    dir_bytes = le(d + z + 40, 8);
    dir_offset = le(d + z + 48, 8);
  }
  if (dir_offset > size || dir_bytes > size - dir_offset)
    throw InputError(path_, "zip", "the central directory lies past the end of the file: truncated");
  size_t p = static_cast<size_t>(dir_offset);
  const size_t end = static_cast<size_t>(dir_offset + dir_bytes);
  for (uint64_t i = 0; i < count; ++i) {
    if (p + 46 > end || le(d + p, 4) != kCentralSig)
      throw InputError(path_, "zip", "central directory entry " + std::to_string(i) + " is damaged");
    ZipEntry e;
    const uint16_t flags = static_cast<uint16_t>(le(d + p + 8, 2));
    e.method = static_cast<uint16_t>(le(d + p + 10, 2));
    e.crc32 = static_cast<uint32_t>(le(d + p + 16, 4));
    e.compressed_bytes = le(d + p + 20, 4);
    e.uncompressed_bytes = le(d + p + 24, 4);
    const size_t name_len = le(d + p + 28, 2), extra_len = le(d + p + 30, 2), comment_len = le(d + p + 32, 2);
    e.local_header_offset = le(d + p + 42, 4);
    if (p + 46 + name_len + extra_len + comment_len > end)
      throw InputError(path_, "zip",
                       "central directory entry " + std::to_string(i) + " runs past the directory");
    e.name.assign(reinterpret_cast<const char*>(d + p + 46), name_len);
    // ZIP64 extended information: the fields that are 0xffffffff in the record, in this order.
    const size_t extra_end = p + 46 + name_len + extra_len;
    for (size_t x = p + 46 + name_len; x + 4 <= extra_end;) {
      const uint16_t id = static_cast<uint16_t>(le(d + x, 2)), len = static_cast<uint16_t>(le(d + x + 2, 2));
      if (x + 4 + len > extra_end)
        throw InputError(path_, e.name, "an extra field runs past the central directory entry");
      if (id == 0x0001) {
        size_t f = x + 4;
        auto take = [&](uint64_t& field) {
          if (field == 0xffffffffu && f + 8 <= x + 4 + len) {
            field = le(d + f, 8);
            f += 8;
          }
        };
        take(e.uncompressed_bytes);
        take(e.compressed_bytes);
        take(e.local_header_offset);
      }
      x += 4 + len;
    }
    if (flags & 0x1) throw InputError(path_, e.name, "encrypted entries are not supported");
    if (e.method != 0 && e.method != 8)
      throw InputError(path_, e.name,
                       "compression method " + std::to_string(e.method) + " (only stored and deflate)");
    index_.emplace(e.name, entries_.size());  // the first of duplicate names wins, as the scan did
    entries_.push_back(std::move(e));
    p += 46 + name_len + extra_len + comment_len;
  }
}

ZipReader::~ZipReader() = default;

const ZipEntry* ZipReader::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

std::string ZipReader::read(const std::string& name) const {
  std::string scratch;
  const std::string_view v = view(name, scratch);
  if (v.data() == scratch.data()) return scratch;
  return std::string(v);
}

std::string_view ZipReader::view(const std::string& name, std::string& scratch) const {
  const ZipEntry* e = find(name);
  if (e == nullptr) throw InputError(path_, name, "missing from the archive");
  const unsigned char* d = file_->data();
  const size_t size = file_->size();
  const uint64_t h = e->local_header_offset;
  if (h > size || size - h < 30 || le(d + h, 4) != kLocalSig)
    throw InputError(path_, name, "the local header is missing or damaged: truncated archive");
  const uint64_t start = h + 30 + le(d + h + 26, 2) + le(d + h + 28, 2);
  if (start > size || e->compressed_bytes > size - start)
    throw InputError(
        path_, name,
        "its " + std::to_string(e->compressed_bytes) + " bytes run past the end of the file: truncated");
  // Deflate expands at most 1032:1, so a deflated member can never hold more than that many times its
  // compressed bytes (checked before anything is allocated); nothing holds more than kMaxMemberBytes.
  if (e->uncompressed_bytes > kMaxMemberBytes)
    throw InputError(path_, name,
                     "size " + std::to_string(e->uncompressed_bytes) + " is over the limit of " +
                         std::to_string(kMaxMemberBytes) + " bytes per member");
  if (e->method == 8 && e->uncompressed_bytes > e->compressed_bytes * kMaxDeflateRatio + 1024)
    throw InputError(path_, name,
                     "claims " + std::to_string(e->uncompressed_bytes) + " bytes from " +
                         std::to_string(e->compressed_bytes) +
                         " deflated bytes, more than deflate can expand");
  const unsigned char* src = d + start;
  std::string_view out;
  if (e->method == 0) {
    if (e->compressed_bytes != e->uncompressed_bytes)
      throw InputError(path_, name, "stored entry with differing compressed and uncompressed sizes");
    out = std::string_view(reinterpret_cast<const char*>(src), e->compressed_bytes);
  } else {
    scratch.resize(e->uncompressed_bytes);
    z_stream z{};
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK) throw InputError(path_, name, "zlib initialisation failed");
    uint64_t in_left = e->compressed_bytes, out_done = 0;
    int rc = Z_OK;
    z.next_in = const_cast<Bytef*>(src);
    while (rc == Z_OK) {
      const uInt in_now = static_cast<uInt>(std::min<uint64_t>(in_left, UINT_MAX));
      const uInt out_now = static_cast<uInt>(std::min<uint64_t>(scratch.size() - out_done, UINT_MAX));
      z.avail_in = in_now;
      z.next_out = reinterpret_cast<Bytef*>(&scratch[0]) + out_done;
      z.avail_out = out_now;
      rc = inflate(&z, Z_NO_FLUSH);
      in_left -= in_now - z.avail_in;
      out_done += out_now - z.avail_out;
      if (rc == Z_OK && z.avail_in == 0 && in_left == 0) break;
      if (rc == Z_BUF_ERROR && out_now == 0) break;
    }
    inflateEnd(&z);
    if (rc != Z_STREAM_END || out_done != e->uncompressed_bytes)
      throw InputError(path_, name, "deflate data is corrupt or truncated");
    out = std::string_view(scratch.data(), scratch.size());
  }
  if (crc32_of(reinterpret_cast<const unsigned char*>(out.data()), out.size()) != e->crc32)
    throw InputError(path_, name, "CRC-32 mismatch: the data is damaged");
  return out;
}

}  // namespace rackep
