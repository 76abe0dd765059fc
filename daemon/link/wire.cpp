#include "link/wire.h"

#include <cstring>

namespace isthmus::link {

void WireWriter::uvarint(uint64_t v) {
  while (v >= 0x80) {
    out_.push_back(static_cast<uint8_t>(v) | 0x80);
    v >>= 7;
  }
  out_.push_back(static_cast<uint8_t>(v));
}

void WireWriter::bytes(std::string_view s) {
  uvarint(s.size());
  raw(s.data(), s.size());
}

void WireWriter::raw(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  out_.insert(out_.end(), b, b + n);
}

bool WireReader::fail(Code c, const char* what) {
  if (err_.is_ok()) err_ = Status(c, what);
  return false;
}

bool WireReader::u8(uint8_t& v) {
  if (pos_ >= in_.size()) return fail(Code::kTruncated, "truncated byte");
  v = in_[pos_++];
  return true;
}

bool WireReader::uvarint(uint64_t& v) {
  uint64_t r = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos_ >= in_.size()) return fail(Code::kTruncated, "truncated varint");
    uint8_t b = in_[pos_++];
    if (shift == 63 && b > 1) return fail(Code::kInvalid, "varint overflows 64 bits");
    r |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      v = r;
      return true;
    }
  }
  return fail(Code::kInvalid, "varint longer than 10 bytes");
}

bool WireReader::svarint(int64_t& v) {
  uint64_t u = 0;
  if (!uvarint(u)) return false;
  v = static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
  return true;
}

bool WireReader::bytes_view(std::string_view& s, size_t max_len) {
  uint64_t n = 0;
  if (!uvarint(n)) return false;
  if (n > max_len) return fail(Code::kTooLarge, "string longer than its limit");
  if (n > remaining()) return fail(Code::kTruncated, "truncated string");
  s = std::string_view(reinterpret_cast<const char*>(in_.data() + pos_), n);
  pos_ += n;
  return true;
}

bool WireReader::bytes(std::string& s, size_t max_len) {
  std::string_view v;
  if (!bytes_view(v, max_len)) return false;
  s.assign(v);
  return true;
}

}  // namespace isthmus::link
