// Errors as values. A Status is cheap when OK (no allocation); an error
// carries a code and a human-readable message. Never thrown.
// Thread-safety: plain value type.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace isthmus {

enum class Code {
  kOk = 0,
  kInvalid,       // malformed input, bad argument
  kTooLarge,      // a declared size beyond a configured limit
  kTruncated,     // input ended early
  kCorrupt,       // checksum mismatch, inconsistent data
  kUnsupported,   // a valid but unsupported feature
  kNotFound,
  kConflict,      // state does not match what was expected
  kIo,            // OS or network error
  kTimeout,
  kUnavailable,   // a dependency is down
  kInternal,
};

const char* code_name(Code c);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string msg) : code_(code), msg_(std::move(msg)) {}
  static Status ok() { return {}; }

  bool is_ok() const { return code_ == Code::kOk; }
  explicit operator bool() const { return is_ok(); }
  Code code() const { return code_; }
  const std::string& message() const { return msg_; }
  std::string to_string() const;

 private:
  Code code_ = Code::kOk;
  std::string msg_;
};

// Result<T>: either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status st) : v_(std::move(st)) {}   // NOLINT: implicit by design
  bool is_ok() const { return v_.index() == 0; }
  explicit operator bool() const { return is_ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() { return std::get<0>(v_); }
  const Status& status() const {
    static const Status kOk;
    return is_ok() ? kOk : std::get<1>(v_);
  }

 private:
  std::variant<T, Status> v_;
};

}  // namespace isthmus
