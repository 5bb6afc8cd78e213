// File: traces/pickle_reader.hpp
// A safe reader of torch.save files (.pt): a ZIP archive holding "<prefix>/data.pkl" (a pickle, protocol 2
// as torch writes it, protocol 3-5 opcodes accepted) and the raw tensor storages "<prefix>/data/<key>".
// The pickle is interpreted, never executed: only the opcodes that plain containers and tensors need are
// implemented, and GLOBAL may name only an allow-list of classes, which are interpreted, not called:
//   torch._utils._rebuild_tensor_v2        -> a tensor (storage, offset, size, stride)
//   torch.{Long,Int,Short,Char,Byte,Bool,Float,Double,Half,BFloat16}Storage  -> a storage dtype tag
//   collections.OrderedDict                -> an (empty) dict
//   torch.device                           -> its string argument
// Anything else (os.system, builtins.eval, a model class, ...) is InputError(file, "pickle", "... class
// 'module.name' is not in the allow-list ..."). Usage:
//   rackep::TorchFile pt("expert_distribution_recorder_1700000000.pt");
//   const rackep::PyValue& root = pt.root();            // e.g. a dict
//   std::vector<int64_t> shape; std::vector<int64_t> v = pt.tensor_values(*root.get("logical_count"), shape);
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace rackep {

class ZipReader;

/// A value of the restricted pickle object model.
struct PyValue {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kStr,
    kBytes,
    kList,
    kTuple,
    kDict,
    kTensor,
    kStorage,
    kGlobal
  };
  Kind kind = Kind::kNone;
  int64_t i = 0;   ///< kBool, kInt; kTensor: storage offset (elements)
  double f = 0.0;  ///< kFloat
  std::string s;   ///< kStr, kBytes; kStorage: key; kGlobal: "module.name"; kTensor: storage key
  std::string
      dtype;  ///< kStorage, kTensor: "int64", "int32", "int16", "int8", "uint8", "bool", "float32", ...
  std::vector<std::shared_ptr<PyValue>> items;                                      ///< kList, kTuple
  std::vector<std::pair<std::shared_ptr<PyValue>, std::shared_ptr<PyValue>>> dict;  ///< kDict, in order
  std::vector<int64_t> shape, stride;                                               ///< kTensor

  /// The value of string key `key` in a dict, or nullptr.
  const PyValue* get(const std::string& key) const;
  /// A short description for messages: "dict", "tensor int32 [3, 4]", "int 7", ...
  std::string describe() const;
};

class TorchFile {
 public:
  /// Opens and unpickles `path`. Throws InputError(path, "zip", ...) for a damaged archive, (path, "pickle",
  /// ...) for an opcode or class outside what is supported, a truncated or malformed pickle.
  explicit TorchFile(std::string path);
  ~TorchFile();
  TorchFile(const TorchFile&) = delete;
  TorchFile& operator=(const TorchFile&) = delete;

  const PyValue& root() const { return *root_; }
  const std::string& path() const { return path_; }

  /// The elements of tensor `t` in C order as int64 (integer and bool dtypes only), and its shape. Throws
  /// InputError(path, field, ...) when `t` is not a tensor, its dtype is not an integer type, or its storage
  /// is missing or too short for its size, stride and offset.
  std::vector<int64_t> tensor_values(const PyValue& t, std::vector<int64_t>& shape,
                                     const std::string& field) const;

 private:
  std::string path_;
  std::string prefix_;  // "<prefix>/" of the archive's members
  std::unique_ptr<ZipReader> zip_;
  std::shared_ptr<PyValue> root_;
};

/// Unpickles `bytes` with the allow-list above (exposed for tests). `source` names the file in errors.
std::shared_ptr<PyValue> unpickle(const std::string& bytes, const std::string& source);

}  // namespace rackep
