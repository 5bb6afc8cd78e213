// The hand-written .npy header: exact bytes, and a strict parser.
#include <gtest/gtest.h>

#include <string>

#include "core/error.hpp"
#include "test_util.hpp"
#include "traces/npy.hpp"

namespace rackep {
namespace {

using test::expect_input_error;

// numpy.save of np.zeros((3, 2, 4), '<i4'): the dictionary is 62 characters, numpy reserves 21 - len("3") =
// 20 spaces for the growing axis, and pads so that 10 (magic, version, length) + header is a multiple of 64:
// 10 + 62 + 20 + 1 ('\n') = 93 -> 35 more spaces -> 128 bytes in all, header length 118 = 0x76.
TEST(Npy, HeaderMatchesNumpyByteForByte) {
  const std::string dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 2, 4), }";
  const std::string expected =
      std::string("\x93NUMPY\x01\x00\x76\x00", 10) + dict + std::string(55, ' ') + "\n";
  EXPECT_EQ(npy_header(NpyDtype::kInt32, {3, 2, 4}), expected);
  EXPECT_EQ(expected.size(), 128u);
}

TEST(Npy, OneDimensionalShapeIsATuple) {
  const std::string h = npy_header(NpyDtype::kInt64, {5});
  EXPECT_NE(h.find("'shape': (5,), }"), std::string::npos);
  EXPECT_EQ(h.size() % 64, 0u);
  const NpyArrayInfo info = parse_npy_header(h, "x.npy");
  EXPECT_EQ(info.shape, (std::vector<int64_t>{5}));
  EXPECT_EQ(info.dtype, NpyDtype::kInt64);
  EXPECT_EQ(info.data_offset_bytes, 128);
}

TEST(Npy, ParsesWhatItWrites) {
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{0, 2}, {1, 1, 1}, {123456789012, 64, 256}, {7, 3, 5, 2}}) {
    const std::string h = npy_header(NpyDtype::kInt32, shape);
    EXPECT_EQ(h.size() % 64, 0u);
    const NpyArrayInfo info = parse_npy_header(h, "x.npy");
    EXPECT_EQ(info.shape, shape);
    EXPECT_EQ(info.data_offset_bytes, static_cast<int64_t>(h.size()));
  }
}

std::string with_dict(const std::string& dict) {
  std::string body = dict + "\n";
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(body.size() & 0xFF));
  out.push_back(static_cast<char>(body.size() >> 8));
  return out + body;
}

TEST(Npy, ParserIsStrict) {
  const std::string ok = "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }";
  EXPECT_EQ(parse_npy_header(with_dict(ok), "a.npy").num_elements, 6);
  // Key order is free, as in Python; double quotes are accepted too.
  EXPECT_EQ(parse_npy_header(with_dict("{\"shape\": (2,), 'descr': '<i8', 'fortran_order': False}"), "a.npy")
                .num_elements,
            2);
  expect_input_error([] { parse_npy_header("PK\x03\x04 not npy", "a.npy"); }, "a.npy", "magic");
  std::string v3 = with_dict(ok);
  v3[6] = 3;
  expect_input_error([&] { parse_npy_header(v3, "a.npy"); }, "a.npy", "version");
  expect_input_error(
      [] {
        parse_npy_header(with_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"), "a.npy");
      },
      "a.npy", "descr");
  expect_input_error(
      [] {
        parse_npy_header(with_dict("{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }"), "a.npy");
      },
      "a.npy", "descr");
  expect_input_error(
      [] {
        parse_npy_header(with_dict("{'descr': '<i4', 'fortran_order': True, 'shape': (2,), }"), "a.npy");
      },
      "a.npy", "fortran_order");
  expect_input_error(
      [] {
        parse_npy_header(with_dict("{'descr': '<i4', 'fortran_order': False, 'shape': (2), }"), "a.npy");
      },
      "a.npy", "shape");
  expect_input_error(
      [] {
        parse_npy_header(with_dict("{'descr': '<i4', 'fortran_order': False, 'shape': (-2,), }"), "a.npy");
      },
      "a.npy", "shape");
  expect_input_error([] { parse_npy_header(with_dict("{'descr': '<i4', 'shape': (2,), }"), "a.npy"); },
                     "a.npy", "fortran_order");
  expect_input_error(
      [] {
        parse_npy_header(with_dict("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), 'extra': 1, }"),
                         "a.npy");
      },
      "a.npy", "extra");
  expect_input_error([&] { parse_npy_header(with_dict(ok + " x"), "a.npy"); }, "a.npy", "header");
  const std::string full = with_dict(ok);
  expect_input_error([&] { parse_npy_header(full.substr(0, 40), "a.npy"); }, "a.npy", "header");
  expect_input_error(
      [] {
        parse_npy_header(
            with_dict(
                "{'descr': '<i4', 'fortran_order': False, 'shape': (99999999999, 99999999999, 99999999), }"),
            "a.npy");
      },
      "a.npy", "shape");
}

TEST(Npy, FileSizeMustMatchTheHeader) {
  test::TempDir tmp;
  const std::string path = tmp.path("a.npy");
  const std::string header = npy_header(NpyDtype::kInt32, {2, 3});
  test::write_bytes(path, header + std::string(24, '\0'));
  EXPECT_EQ(read_npy_info(path).num_elements, 6);
  test::write_bytes(path, header + std::string(20, '\0'));
  expect_input_error([&] { read_npy_info(path); }, "a.npy", "size");
  test::write_bytes(path, header + std::string(28, '\0'));
  expect_input_error([&] { read_npy_info(path); }, "a.npy", "size");
  test::write_bytes(path, header.substr(0, 50));
  expect_input_error([&] { read_npy_info(path); }, "a.npy", "header");
  test::write_bytes(path, "");
  expect_input_error([&] { read_npy_info(path); }, "a.npy", "magic");
  expect_input_error([&] { read_npy_info(tmp.path("missing.npy")); }, "missing.npy", "file");
}

}  // namespace
}  // namespace rackep
