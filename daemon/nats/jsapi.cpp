#include "nats/jsapi.h"

#include <algorithm>

#include "nats/wire.h"

namespace isthmus::nats {

Result<Json> api_request(natsConnection* nc, const std::string& subject, const std::string& body,
                         int64_t timeout_ms) {
  if (nc == nullptr) return Status(Code::kUnavailable, "not connected to NATS");
  natsMsg* reply = nullptr;
  natsStatus s = natsConnection_Request(&reply, nc, subject.c_str(), body.data(),
                                        static_cast<int>(body.size()), timeout_ms);
  if (s == NATS_NO_RESPONDERS) {
    return Status(Code::kUnavailable, subject + ": no responders (is JetStream enabled?)");
  }
  if (s == NATS_TIMEOUT) return Status(Code::kTimeout, subject + ": timeout");
  if (s != NATS_OK) return Status(Code::kUnavailable, subject + ": " + natsStatus_GetText(s));
  std::string data(natsMsg_GetData(reply), static_cast<size_t>(natsMsg_GetDataLength(reply)));
  natsMsg_Destroy(reply);
  Json j = Json::parse(data, nullptr, false);
  if (j.is_discarded()) return Status(Code::kInvalid, subject + ": unparsable response");
  if (j.contains("error") && j["error"].is_object()) {
    const auto& e = j["error"];
    int code = e.value("err_code", 0);
    std::string desc = e.value("description", std::string("error"));
    Code c = Code::kConflict;
    if (code == 10059 || code == 10037 || code == 10014 || e.value("code", 0) == 404) c = Code::kNotFound;
    return Status(c, desc + " (err_code " + std::to_string(code) + ")");
  }
  return j;
}

bool answers_ping(natsConnection* nc, int64_t timeout_ms) {
  return nc != nullptr && natsConnection_FlushTimeout(nc, std::min<int64_t>(timeout_ms, 1000)) == NATS_OK;
}

Result<Json> stream_info(natsConnection* nc, const std::string& stream, int64_t timeout_ms) {
  return api_request(nc, "$JS.API.STREAM.INFO." + stream, "", timeout_ms);
}

Result<Json> stream_info(natsConnection* nc, const std::string& stream, bool deleted_details,
                         int64_t timeout_ms) {
  if (!deleted_details) return stream_info(nc, stream, timeout_ms);
  Json b = {{"deleted_details", true}};
  return api_request(nc, "$JS.API.STREAM.INFO." + stream, b.dump(), timeout_ms);
}

Result<Json> stream_list(natsConnection* nc, uint64_t offset, int64_t timeout_ms) {
  Json b = {{"offset", offset}};
  return api_request(nc, "$JS.API.STREAM.LIST", b.dump(), timeout_ms);
}

Result<Json> stream_update(natsConnection* nc, const Json& config, int64_t timeout_ms) {
  return api_request(nc, "$JS.API.STREAM.UPDATE." + config.value("name", std::string()), config.dump(),
                     timeout_ms);
}

Result<Json> stream_create(natsConnection* nc, const Json& config, int64_t timeout_ms) {
  return api_request(nc, "$JS.API.STREAM.CREATE." + config.value("name", std::string()), config.dump(),
                     timeout_ms);
}

Result<Json> stream_purge_to(natsConnection* nc, const std::string& stream, uint64_t seq, int64_t timeout_ms) {
  Json b = {{"seq", seq}};
  return api_request(nc, "$JS.API.STREAM.PURGE." + stream, b.dump(), timeout_ms);
}

Result<Json> msg_delete(natsConnection* nc, const std::string& stream, uint64_t seq, int64_t timeout_ms) {
  Json b = {{"seq", seq}, {"no_erase", true}};
  auto r = api_request(nc, "$JS.API.STREAM.MSG.DELETE." + stream, b.dump(), timeout_ms);
  // The stream does not hold it (checked on 2.9.10): already deleted
  // (10043 "sequence N not found"), below the first sequence (10057 "no
  // message found") or above the last (10057 "stream store EOF").
  if (!r && r.status().code() == Code::kConflict) {
    const std::string& m = r.status().message();
    if (m.find("(err_code 10043)") != std::string::npos ||
        (m.find("(err_code 10057)") != std::string::npos &&
         (m.find("no message found") != std::string::npos || m.find("stream store EOF") != std::string::npos))) {
      return Status(Code::kNotFound, m);
    }
  }
  return r;
}

Result<Json> msg_get(natsConnection* nc, const std::string& stream, uint64_t seq, int64_t timeout_ms) {
  Json b = {{"seq", seq}};
  auto r = api_request(nc, "$JS.API.STREAM.MSG.GET." + stream, b.dump(), timeout_ms);
  if (!r) return r;
  if (!r->contains("message")) return Status(Code::kInvalid, "msg get: no message in response");
  return (*r)["message"];
}

Status stream_delete(natsConnection* nc, const std::string& stream, int64_t timeout_ms) {
  auto r = api_request(nc, "$JS.API.STREAM.DELETE." + stream, "", timeout_ms);
  return r ? Status::ok() : r.status();
}

Result<Json> msg_get_last_by_subject(natsConnection* nc, const std::string& stream, const std::string& subject,
                                     int64_t timeout_ms) {
  Json b = {{"last_by_subj", subject}};
  auto r = api_request(nc, "$JS.API.STREAM.MSG.GET." + stream, b.dump(), timeout_ms);
  if (!r) return r;
  if (!r->contains("message")) return Status(Code::kInvalid, "msg get: no message in response");
  return (*r)["message"];
}

Result<Json> msg_get_next(natsConnection* nc, const std::string& stream, uint64_t seq, int64_t timeout_ms) {
  Json b = {{"seq", seq}, {"next_by_subj", ">"}};
  auto r = api_request(nc, "$JS.API.STREAM.MSG.GET." + stream, b.dump(), timeout_ms);
  if (!r) return r;
  if (!r->contains("message")) return Status(Code::kInvalid, "msg get: no message in response");
  return (*r)["message"];
}

Result<Json> publish_sync(natsConnection* nc, const std::string& subject,
                          const std::vector<std::pair<std::string, std::string>>& headers,
                          const std::string& payload, int64_t timeout_ms) {
  if (nc == nullptr) return Status(Code::kUnavailable, "not connected to NATS");
  natsMsg* msg = nullptr;
  natsStatus s = natsMsg_Create(&msg, subject.c_str(), nullptr, payload.data(), static_cast<int>(payload.size()));
  for (size_t i = 0; s == NATS_OK && i < headers.size(); ++i) {
    s = natsMsgHeader_Add(msg, headers[i].first.c_str(), headers[i].second.c_str());
  }
  natsMsg* reply = nullptr;
  if (s == NATS_OK) s = natsConnection_RequestMsg(&reply, nc, msg, timeout_ms);
  natsMsg_Destroy(msg);
  if (s == NATS_NO_RESPONDERS) return Status(Code::kUnavailable, subject + ": no stream holds this subject");
  if (s == NATS_TIMEOUT) return Status(Code::kTimeout, subject + ": timeout");
  if (s != NATS_OK) return Status(Code::kUnavailable, subject + ": " + natsStatus_GetText(s));
  std::string data(natsMsg_GetData(reply), static_cast<size_t>(natsMsg_GetDataLength(reply)));
  natsMsg_Destroy(reply);
  Json j = Json::parse(data, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status(Code::kInvalid, subject + ": unparsable acknowledgement");
  if (j.contains("error") && j["error"].is_object()) {
    return Status(Code::kConflict, subject + ": " + j["error"].value("description", std::string("error")) +
                                       " (err_code " + std::to_string(j["error"].value("err_code", 0)) + ")");
  }
  return j;
}

Result<Json> consumer_create(natsConnection* nc, const std::string& stream, const Json& config,
                             int64_t timeout_ms) {
  Json b = {{"stream_name", stream}, {"config", config}};
  return api_request(nc, "$JS.API.CONSUMER.CREATE." + stream, b.dump(), timeout_ms);
}

Result<Json> durable_create(natsConnection* nc, const std::string& stream, const Json& config,
                            int64_t timeout_ms) {
  Json b = {{"stream_name", stream}, {"config", config}};
  return api_request(nc, "$JS.API.CONSUMER.DURABLE.CREATE." + stream + "." + config.value("durable_name", std::string()),
                     b.dump(), timeout_ms);
}

Result<Json> consumer_info(natsConnection* nc, const std::string& stream, const std::string& name,
                           int64_t timeout_ms) {
  return api_request(nc, "$JS.API.CONSUMER.INFO." + stream + "." + name, "", timeout_ms);
}

Result<std::vector<std::string>> consumer_names(natsConnection* nc, const std::string& stream,
                                                int64_t timeout_ms) {
  std::vector<std::string> out;
  for (int page = 0; page < 1000; ++page) {
    Json b = {{"offset", out.size()}};
    auto r = api_request(nc, "$JS.API.CONSUMER.NAMES." + stream, b.dump(), timeout_ms);
    if (!r) return r.status();
    size_t got = 0;
    if (r->contains("consumers") && (*r)["consumers"].is_array()) {
      for (const auto& n : (*r)["consumers"]) {
        if (n.is_string()) {
          out.push_back(n.get<std::string>());
          ++got;
        }
      }
    }
    uint64_t total = r->value("total", uint64_t{0});
    if (got == 0 || out.size() >= total) break;
  }
  return out;
}

Status consumer_delete(natsConnection* nc, const std::string& stream, const std::string& name,
                       int64_t timeout_ms) {
  auto r = api_request(nc, "$JS.API.CONSUMER.DELETE." + stream + "." + name, "", timeout_ms);
  return r ? Status::ok() : r.status();
}

bool base64_decode(const std::string& in, std::string& out) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  out.clear();
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    if (c == '\n' || c == '\r') continue;
    int v = val(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return true;
}

bool parse_header_block(const std::string& block, std::vector<std::pair<std::string, std::string>>& out) {
  out.clear();
  // Lenient like the data path: a malformed line (a foreign client may
  // write one) is left out, the rest is read.
  auto hv = wire::parse_headers(block, [&out](std::string_view k, std::string_view v) { out.emplace_back(k, v); });
  return static_cast<bool>(hv);
}

}  // namespace isthmus::nats
