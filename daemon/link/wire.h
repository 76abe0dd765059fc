// Little helpers to write and read the primitive types of link frames:
// unsigned LEB128 varints, zig-zag signed varints, length-prefixed byte
// strings. Pure code, no I/O. Readers never read past the end of their input
// and report the first problem as a Status.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace isthmus::link {

class WireWriter {
 public:
  explicit WireWriter(std::vector<uint8_t>& out) : out_(out) {}
  void u8(uint8_t v) { out_.push_back(v); }
  void uvarint(uint64_t v);
  void svarint(int64_t v) { uvarint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63)); }
  void bytes(std::string_view s);  // varint length + bytes
  void raw(const void* p, size_t n);

 private:
  std::vector<uint8_t>& out_;
};

class WireReader {
 public:
  explicit WireReader(std::span<const uint8_t> in) : in_(in) {}
  bool u8(uint8_t& v);
  bool uvarint(uint64_t& v);
  bool svarint(int64_t& v);
  // A length-prefixed string no longer than max_len (checked before copying).
  bool bytes(std::string& s, size_t max_len);
  bool bytes_view(std::string_view& s, size_t max_len);
  size_t remaining() const { return in_.size() - pos_; }
  bool done() const { return pos_ == in_.size(); }
  // Why the last read failed.
  const Status& error() const { return err_; }

 private:
  bool fail(Code c, const char* what);
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
  Status err_;
};

}  // namespace isthmus::link
