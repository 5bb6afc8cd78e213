#include "traces/pickle_reader.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "core/error.hpp"
#include "core/input_limits.hpp"
#include "traces/zip_reader.hpp"

namespace rackep {

namespace {

using Ref = std::shared_ptr<PyValue>;

Ref new_value(PyValue::Kind k) {
  auto v = std::make_shared<PyValue>();
  v->kind = k;
  return v;
}

// Storage class name -> (dtype, bytes per element).
const std::map<std::string, std::pair<std::string, int>>& storage_types() {
  static const std::map<std::string, std::pair<std::string, int>> m = {
      {"torch.LongStorage", {"int64", 8}},    {"torch.IntStorage", {"int32", 4}},
      {"torch.ShortStorage", {"int16", 2}},   {"torch.CharStorage", {"int8", 1}},
      {"torch.ByteStorage", {"uint8", 1}},    {"torch.BoolStorage", {"bool", 1}},
      {"torch.FloatStorage", {"float32", 4}}, {"torch.DoubleStorage", {"float64", 8}},
      {"torch.HalfStorage", {"float16", 2}},  {"torch.BFloat16Storage", {"bfloat16", 2}}};
  return m;
}

bool allowed(const std::string& name) {
  return storage_types().count(name) || name == "torch._utils._rebuild_tensor_v2" ||
         name == "collections.OrderedDict" || name == "torch.device";
}

class Unpickler {
 public:
  Unpickler(const std::string& bytes, std::string source) : b_(bytes), src_(std::move(source)) {}

  Ref run() {
    for (;;) {
      const uint8_t op = u8();
      switch (op) {
        case 0x80:
          u8();
          break;  // PROTO
        case 0x95:
          take(8);
          break;  // FRAME (framing is ignored; data is contiguous)
        case '.':
          return pop();  // STOP
        case '(':
          marks_.push_back(stack_.size());
          break;  // MARK
        case '}':
          stack_.push_back(make(PyValue::Kind::kDict));
          break;
        case ']':
          stack_.push_back(make(PyValue::Kind::kList));
          break;
        case ')':
          stack_.push_back(make(PyValue::Kind::kTuple));
          break;
        case 'N':
          stack_.push_back(make(PyValue::Kind::kNone));
          break;
        case 0x88:
        case 0x89: {  // NEWTRUE, NEWFALSE
          Ref v = make(PyValue::Kind::kBool);
          v->i = op == 0x88;
          stack_.push_back(v);
          break;
        }
        case 'J':
          push_int(static_cast<int32_t>(le(4)));
          break;  // BININT
        case 'K':
          push_int(static_cast<int64_t>(le(1)));
          break;  // BININT1
        case 'M':
          push_int(static_cast<int64_t>(le(2)));
          break;      // BININT2
        case 0x8a: {  // LONG1
          const size_t n = u8();
          if (n > 8) fail("LONG1 of " + std::to_string(n) + " bytes is out of range");
          uint64_t v = n ? le(n) : 0;
          if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign-extend
          push_int(static_cast<int64_t>(v));
          break;
        }
        case 'G': {  // BINFLOAT, big-endian double
          const std::string raw = take(8);
          uint64_t bits = 0;
          for (char c : raw) bits = (bits << 8) | static_cast<uint8_t>(c);
          Ref v = make(PyValue::Kind::kFloat);
          std::memcpy(&v->f, &bits, 8);
          stack_.push_back(v);
          break;
        }
        case 'X':
          push_str(PyValue::Kind::kStr, take(le(4)));
          break;  // BINUNICODE
        case 0x8c:
          push_str(PyValue::Kind::kStr, take(le(1)));
          break;  // SHORT_BINUNICODE
        case 'T':
          push_str(PyValue::Kind::kBytes, take(le(4)));
          break;  // BINSTRING
        case 'U':
          push_str(PyValue::Kind::kBytes, take(le(1)));
          break;  // SHORT_BINSTRING
        case 'B':
          push_str(PyValue::Kind::kBytes, take(le(4)));
          break;  // BINBYTES
        case 'C':
          push_str(PyValue::Kind::kBytes, take(le(1)));
          break;  // SHORT_BINBYTES
        case 't':
        case 'l': {  // TUPLE, LIST
          Ref v = make(op == 't' ? PyValue::Kind::kTuple : PyValue::Kind::kList);
          for (Ref& x : pop_mark()) adopt(*v, x);
          stack_.push_back(v);
          break;
        }
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1..3
          Ref v = make(PyValue::Kind::kTuple);
          std::vector<Ref> xs(op - 0x84);
          for (size_t k = xs.size(); k-- > 0;) xs[k] = pop();
          for (Ref& x : xs) adopt(*v, x);
          stack_.push_back(v);
          break;
        }
        case 'd': {  // DICT
          Ref v = make(PyValue::Kind::kDict);
          set_items(*v, pop_mark());
          stack_.push_back(v);
          break;
        }
        case 'a': {  // APPEND
          Ref x = pop();
          PyValue& l = container(PyValue::Kind::kList);
          adopt(l, x);
          break;
        }
        case 'e': {  // APPENDS
          auto xs = pop_mark();
          PyValue& l = container(PyValue::Kind::kList);
          for (Ref& x : xs) adopt(l, x);
          break;
        }
        case 's': {  // SETITEM
          Ref v = pop(), k = pop();
          set_items(container(PyValue::Kind::kDict), {k, v});
          break;
        }
        case 'u': {  // SETITEMS
          auto xs = pop_mark();
          set_items(container(PyValue::Kind::kDict), xs);
          break;
        }
        case 'c': {  // GLOBAL "module\nname\n"
          const std::string module = line(), name = line();
          push_global(module + "." + name);
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          Ref name = pop(), module = pop();
          if (name->kind != PyValue::Kind::kStr || module->kind != PyValue::Kind::kStr)
            fail("STACK_GLOBAL needs two strings");
          push_global(module->s + "." + name->s);
          break;
        }
        case 'R': {  // REDUCE: callable(*args), interpreted for the allow-list only
          Ref args = pop(), fn = pop();
          stack_.push_back(reduce(*fn, *args));
          break;
        }
        case 'Q':
          stack_.push_back(persistent(*pop()));
          break;  // BINPERSID
        case 'q':
          memo_[le(1)] = top();
          break;  // BINPUT
        case 'r':
          memo_[le(4)] = top();
          break;  // LONG_BINPUT
        case 0x94:
          memo_[memo_.size()] = top();
          break;  // MEMOIZE
        case 'h':
        case 'j': {  // BINGET, LONG_BINGET
          const auto it = memo_.find(le(op == 'h' ? 1 : 4));
          if (it == memo_.end()) fail("memo reference to an unset slot");
          stack_.push_back(it->second);
          break;
        }
        case 'b': {  // BUILD: only the empty state of an OrderedDict / tensor (None or {}) is accepted
          Ref state = pop();
          if (!(state->kind == PyValue::Kind::kNone ||
                (state->kind == PyValue::Kind::kDict && state->dict.empty())))
            fail("BUILD with a state (" + state->describe() + ") is not supported");
          top();
          break;
        }
        default: {
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", op);
          fail(std::string("opcode ") + hex + " at byte " + std::to_string(pos_ - 1) +
               " is not supported (only containers, numbers, strings and tensors)");
        }
      }
    }
  }

 private:
  Ref make(PyValue::Kind k) {
    all_.push_back(new_value(k));
    return all_.back();
  }
  [[noreturn]] void fail(const std::string& msg) const { throw InputError(src_, "pickle", msg); }
  uint8_t u8() {
    if (pos_ >= b_.size()) fail("truncated: the pickle ends without STOP");
    return static_cast<uint8_t>(b_[pos_++]);
  }
  std::string take(uint64_t n) {
    if (n > b_.size() - pos_) fail("truncated: a " + std::to_string(n) + "-byte field runs past the end");
    std::string s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  uint64_t le(size_t n) {
    const std::string s = take(n);
    uint64_t v = 0;
    for (size_t k = n; k-- > 0;) v = (v << 8) | static_cast<uint8_t>(s[k]);
    return v;
  }
  std::string line() {
    const size_t nl = b_.find('\n', pos_);
    if (nl == std::string::npos) fail("truncated GLOBAL");
    std::string s = b_.substr(pos_, nl - pos_);
    pos_ = nl + 1;
    return s;
  }
  Ref pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) fail("stack underflow");
    Ref v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Ref top() {
    if (stack_.empty()) fail("stack underflow");
    return stack_.back();
  }
  std::vector<Ref> pop_mark() {
    if (marks_.empty()) fail("no MARK");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Ref> out(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return out;
  }
  PyValue& container(PyValue::Kind k) {
    PyValue& c = *top();
    if (c.kind != k) fail("appending to a " + c.describe());
    if (frozen_.count(&c)) fail("modifying a " + c.describe() + " that is already inside another container");
    return c;
  }
  // Puts `x` into container `c`. Once inside a container a value is frozen (no later APPEND/SETITEM may
  // change it), so no value can ever contain itself: cycles, and the leaks of shared_ptr cycles, are
  // impossible. Nesting depth is bounded by kMaxNestingDepth.
  void adopt(PyValue& c, const Ref& x, std::vector<Ref>* into = nullptr) {
    if (x.get() == &c) fail("a " + c.describe() + " cannot contain itself");
    const int d = depth_of(*x) + 1;
    if (d > kMaxNestingDepth)
      fail("containers nest deeper than " + std::to_string(kMaxNestingDepth) + " levels");
    depth_[&c] = std::max(depth_of(c), d);
    frozen_.insert(x.get());
    (into != nullptr ? *into : c.items).push_back(x);
  }
  int depth_of(const PyValue& v) const {
    const auto it = depth_.find(&v);
    return it == depth_.end() ? 0 : it->second;
  }
  void set_items(PyValue& d, const std::vector<Ref>& xs) {
    if (xs.size() % 2) fail("odd number of dict items");
    for (size_t k = 0; k < xs.size(); k += 2) {
      std::vector<Ref> pair;
      adopt(d, xs[k], &pair);
      adopt(d, xs[k + 1], &pair);
      d.dict.emplace_back(pair[0], pair[1]);
    }
  }
  void push_int(int64_t v) {
    Ref r = make(PyValue::Kind::kInt);
    r->i = v;
    stack_.push_back(r);
  }
  void push_str(PyValue::Kind k, std::string s) {
    Ref r = make(k);
    r->s = std::move(s);
    stack_.push_back(r);
  }
  void push_global(const std::string& name) {
    if (!allowed(name))
      fail("class '" + name +
           "' is not in the allow-list (torch._utils._rebuild_tensor_v2, torch.*Storage, "
           "collections.OrderedDict, torch.device); refusing to load it");
    Ref g = make(PyValue::Kind::kGlobal);
    g->s = name;
    stack_.push_back(g);
  }
  Ref persistent(const PyValue& pid) {
    // ('storage', <storage class>, key, location, numel)
    if (pid.kind != PyValue::Kind::kTuple || pid.items.size() != 5 || pid.items[0]->s != "storage" ||
        pid.items[1]->kind != PyValue::Kind::kGlobal || pid.items[2]->kind != PyValue::Kind::kStr)
      fail("persistent id " + pid.describe() + " is not a torch storage reference");
    const auto it = storage_types().find(pid.items[1]->s);
    if (it == storage_types().end()) fail("persistent id names " + pid.items[1]->s + ", not a storage class");
    Ref s = make(PyValue::Kind::kStorage);
    s->s = pid.items[2]->s;
    s->dtype = it->second.first;
    s->i = pid.items[4]->i;
    return s;
  }
  Ref reduce(const PyValue& fn, const PyValue& args) {
    if (fn.kind != PyValue::Kind::kGlobal || args.kind != PyValue::Kind::kTuple)
      fail("REDUCE of " + fn.describe() + " is not supported");
    if (fn.s == "collections.OrderedDict") return make(PyValue::Kind::kDict);
    if (fn.s == "torch.device") {
      if (args.items.empty() || args.items[0]->kind != PyValue::Kind::kStr)
        fail("torch.device without a name");
      Ref v = make(PyValue::Kind::kStr);
      v->s = args.items[0]->s;
      return v;
    }
    if (fn.s == "torch._utils._rebuild_tensor_v2") {
      if (args.items.size() < 4 || args.items[0]->kind != PyValue::Kind::kStorage ||
          args.items[1]->kind != PyValue::Kind::kInt || args.items[2]->kind != PyValue::Kind::kTuple ||
          args.items[3]->kind != PyValue::Kind::kTuple)
        fail("_rebuild_tensor_v2 arguments are not (storage, offset, size, stride, ...)");
      Ref t = make(PyValue::Kind::kTensor);
      t->s = args.items[0]->s;
      t->dtype = args.items[0]->dtype;
      t->i = args.items[1]->i;
      for (const Ref& x : args.items[2]->items) {
        if (x->kind != PyValue::Kind::kInt) fail("tensor size holds " + x->describe() + ", not an int");
        t->shape.push_back(x->i);
      }
      for (const Ref& x : args.items[3]->items) {
        if (x->kind != PyValue::Kind::kInt) fail("tensor stride holds " + x->describe() + ", not an int");
        t->stride.push_back(x->i);
      }
      if (t->shape.size() != t->stride.size()) fail("tensor size and stride differ in length");
      return t;
    }
    fail("REDUCE of " + fn.s + " is not supported");
  }

  const std::string& b_;
  std::string src_;
  size_t pos_ = 0;
  std::vector<Ref> stack_;
  std::vector<size_t> marks_;
  std::map<uint64_t, Ref> memo_;
  // Every value made, kept alive until the end so that the raw pointers below are never reused.
  std::vector<Ref> all_;
  std::map<const PyValue*, int> depth_;  // nesting depth of containers that hold something
  std::set<const PyValue*> frozen_;      // values placed inside a container
};

}  // namespace

const PyValue* PyValue::get(const std::string& key) const {
  for (const auto& [k, v] : dict)
    if (k->kind == Kind::kStr && k->s == key) return v.get();
  return nullptr;
}

std::string PyValue::describe() const {
  switch (kind) {
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return i ? "True" : "False";
    case Kind::kInt:
      return "int " + std::to_string(i);
    case Kind::kFloat:
      return "float";
    case Kind::kStr:
      return "str '" + s + "'";
    case Kind::kBytes:
      return "bytes";
    case Kind::kList:
      return "list of " + std::to_string(items.size());
    case Kind::kTuple:
      return "tuple of " + std::to_string(items.size());
    case Kind::kDict:
      return "dict";
    case Kind::kStorage:
      return "storage " + dtype;
    case Kind::kGlobal:
      return "class " + s;
    case Kind::kTensor: {
      std::string out = "tensor " + dtype + " [";
      for (size_t k = 0; k < shape.size(); ++k) out += (k ? ", " : "") + std::to_string(shape[k]);
      return out + "]";
    }
  }
  return "?";
}

std::shared_ptr<PyValue> unpickle(const std::string& bytes, const std::string& source) {
  return Unpickler(bytes, source).run();
}

TorchFile::TorchFile(std::string path) : path_(std::move(path)), zip_(std::make_unique<ZipReader>(path_)) {
  for (const ZipEntry& e : zip_->entries()) {
    const std::string tail = "data.pkl";
    if (e.name.size() >= tail.size() && e.name.compare(e.name.size() - tail.size(), tail.size(), tail) == 0) {
      prefix_ = e.name.substr(0, e.name.size() - tail.size());
      root_ = unpickle(zip_->read(e.name), path_ + ":" + e.name);
      return;
    }
  }
  throw InputError(path_, "zip",
                   "no <name>/data.pkl member: not a torch.save file (or a legacy non-zip one)");
}

TorchFile::~TorchFile() = default;

std::vector<int64_t> TorchFile::tensor_values(const PyValue& t, std::vector<int64_t>& shape,
                                              const std::string& field) const {
  if (t.kind != PyValue::Kind::kTensor)
    throw InputError(path_, field, "expected a tensor, got " + t.describe());
  int width = 0;
  for (const auto& [name, type] : storage_types())
    if (type.first == t.dtype) width = type.second;
  if (t.dtype.rfind("float", 0) == 0 || t.dtype == "bfloat16")
    throw InputError(path_, field, "is " + t.describe() + ", expected an integer tensor");
  if (width == 0) throw InputError(path_, field, "unknown storage dtype " + t.dtype);
  std::string scratch;  // deflated storages only; stored ones are viewed in place in the mapped file
  const std::string_view bytes = zip_->view(prefix_ + "data/" + t.s, scratch);
  const int64_t storage_elems = static_cast<int64_t>(bytes.size()) / width;
  shape = t.shape;
  // Every product is checked: a size x stride that wraps around could otherwise land back in range and
  // read the wrong elements.
  int64_t n = 1, last = t.i;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] < 0 || t.stride[d] < 0) throw InputError(path_, field, "negative size or stride");
    n = checked_mul(n, shape[d], path_, field);
    if (shape[d] > 0)
      last = checked_add(last, checked_mul(shape[d] - 1, t.stride[d], path_, field), path_, field);
  }
  if (n > 0 && (t.i < 0 || last >= storage_elems))
    throw InputError(path_, field,
                     t.describe() + " reaches element " + std::to_string(last) + " of a storage holding " +
                         std::to_string(storage_elems) + ": truncated or mismatched storage");
  // Elements are copied out, so their count is bounded by the storage (stride-0 broadcast views, which
  // torch.save never writes for recorded counts, would otherwise claim any size).
  if (n > storage_elems)
    throw InputError(path_, field,
                     t.describe() + " has " + std::to_string(n) + " elements, more than its storage holds (" +
                         std::to_string(storage_elems) + ")");
  std::vector<int64_t> out(static_cast<size_t>(n));
  const bool is_signed = t.dtype != "uint8" && t.dtype != "bool";
  bool contiguous = true;  // C order: the common case, converted in one pass (little-endian host)
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1, want = 1; d >= 0; --d) {
    contiguous = contiguous && (shape[d] <= 1 || t.stride[d] == want);
    want *= shape[d];
  }
  if (contiguous && n > 0) {
    const char* base = bytes.data() + t.i * width;
    auto convert = [&](auto tag) {
      using T = decltype(tag);
      for (int64_t k = 0; k < n; ++k) {
        T v;
        std::memcpy(&v, base + k * static_cast<int64_t>(sizeof(T)), sizeof(T));
        out[static_cast<size_t>(k)] = static_cast<int64_t>(v);
      }
    };
    if (width == 8) convert(int64_t{});
    if (width == 4) convert(int32_t{});
    if (width == 2) convert(int16_t{});
    if (width == 1 && is_signed) convert(int8_t{});
    if (width == 1 && !is_signed) convert(uint8_t{});
    return out;
  }
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t k = 0; k < n; ++k) {
    int64_t off = t.i;
    for (size_t d = 0; d < shape.size(); ++d) off += idx[d] * t.stride[d];
    const unsigned char* p = reinterpret_cast<const unsigned char*>(bytes.data()) + off * width;
    uint64_t v = 0;
    for (int b = width - 1; b >= 0; --b) v = (v << 8) | p[b];
    if (is_signed && width < 8 && ((v >> (8 * width - 1)) & 1)) v |= ~uint64_t{0} << (8 * width);
    out[static_cast<size_t>(k)] = static_cast<int64_t>(v);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

}  // namespace rackep
