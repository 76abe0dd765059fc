#include "nats/pub_ack.h"

#include <charconv>
#include <nlohmann/json.hpp>

namespace isthmus::nats {

namespace {

// Reads a JSON unsigned integer at the value position after `key` (spaces
// allowed around the colon).
bool read_u64_after(std::string_view body, std::string_view key, uint64_t& out) {
  size_t p = body.find(key);
  if (p == std::string_view::npos) return false;
  p += key.size();
  while (p < body.size() && (body[p] == ' ' || body[p] == ':')) ++p;
  auto r = std::from_chars(body.data() + p, body.data() + body.size(), out);
  return r.ec == std::errc() && r.ptr != body.data() + p;
}

bool fast_path(std::string_view body, PubAck& out) {
  // Only the plain shape: no escapes, no error object, no duplicate flag.
  if (body.size() < 2 || body.front() != '{' || body.back() != '}') return false;
  if (body.find('\\') != std::string_view::npos || body.find("\"error\"") != std::string_view::npos ||
      body.find("\"duplicate\"") != std::string_view::npos) {
    return false;
  }
  constexpr std::string_view kStream = "\"stream\":\"";
  size_t s = body.find(kStream);
  if (s == std::string_view::npos) return false;
  s += kStream.size();
  size_t e = body.find('"', s);
  if (e == std::string_view::npos) return false;
  if (!read_u64_after(body.substr(e), "\"seq\"", out.seq)) return false;
  out.stream.assign(body.substr(s, e - s));
  return true;
}

}  // namespace

Result<PubAck> parse_pub_ack(std::string_view body) {
  PubAck a;
  if (fast_path(body, a)) return a;
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status(Code::kInvalid, "unparsable publish acknowledgement");
  if (j.contains("error")) {
    const auto& e = j["error"];
    if (e.is_object()) {
      a.err_code = e.value("err_code", 0);
      a.error = e.value("description", std::string());
    }
    if (a.error.empty()) a.error = "error";
    return a;
  }
  if (!j.contains("seq") || !j["seq"].is_number_unsigned()) {
    return Status(Code::kInvalid, "publish acknowledgement without a sequence");
  }
  a.seq = j["seq"].get<uint64_t>();
  a.stream = j.value("stream", std::string());
  a.duplicate = j.value("duplicate", false);
  return a;
}

bool wrong_last_sequence_of(std::string_view description, uint64_t& out) {
  constexpr std::string_view kPrefix = "wrong last sequence:";
  size_t p = description.find(kPrefix);
  if (p == std::string_view::npos) return false;
  p += kPrefix.size();
  while (p < description.size() && description[p] == ' ') ++p;
  auto r = std::from_chars(description.data() + p, description.data() + description.size(), out);
  return r.ec == std::errc() && r.ptr == description.data() + description.size();
}

}  // namespace isthmus::nats
