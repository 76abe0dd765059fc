#include "jetstream.h"

#include <nats/nats.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "util.h"

using nlohmann::json;

namespace harness {

namespace {

std::string nats_error(const std::string& what, natsStatus s) {
  std::string msg = what + ": " + natsStatus_GetText(s);
  const char* last = nats_GetLastError(nullptr);
  if (last != nullptr && *last != '\0' && std::strcmp(last, natsStatus_GetText(s)) != 0)
    msg += std::string(" (") + last + ")";
  return msg;
}

void check(natsStatus s, const std::string& what) {
  if (s != NATS_OK) throw std::runtime_error(nats_error(what, s));
}

struct MsgPtr {
  natsMsg* m = nullptr;
  ~MsgPtr() {
    if (m != nullptr) natsMsg_Destroy(m);
  }
};

struct SubPtr {
  natsSubscription* s = nullptr;
  ~SubPtr() {
    if (s != nullptr) {
      natsSubscription_Unsubscribe(s);
      natsSubscription_Destroy(s);
    }
  }
};

std::string payload_of(natsMsg* m) {
  const char* d = natsMsg_GetData(m);
  int n = natsMsg_GetDataLength(m);
  return (d != nullptr && n > 0) ? std::string(d, static_cast<size_t>(n)) : std::string();
}

int64_t to_ms(std::chrono::milliseconds t) { return static_cast<int64_t>(t.count()); }

std::string api_error_text(const json& j) {
  const json& e = j.at("error");
  std::string s = "JetStream error";
  if (e.contains("code")) s += " " + e["code"].dump();
  if (e.contains("err_code")) s += "/" + e["err_code"].dump();
  if (e.contains("description")) s += ": " + e["description"].get<std::string>();
  return s;
}

// Parses a publish ack (or error) payload.
PubAck parse_ack(natsMsg* m, const std::string& subject) {
  if (natsMsg_IsNoResponders(m)) throw std::runtime_error("publish to " + subject + ": no responders (no stream holds that subject)");
  std::string data = payload_of(m);
  json j = json::parse(data, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw std::runtime_error("publish to " + subject + ": unparsable ack: " + data);
  if (j.contains("error")) throw std::runtime_error("publish to " + subject + ": " + api_error_text(j));
  PubAck a;
  a.stream = j.value("stream", "");
  a.seq = j.value("seq", uint64_t{0});
  a.duplicate = j.value("duplicate", false);
  if (a.seq == 0) throw std::runtime_error("publish to " + subject + ": ack without seq: " + data);
  return a;
}

natsMsg* make_msg(const OutMsg& o, const char* reply) {
  natsMsg* m = nullptr;
  check(natsMsg_Create(&m, o.subject.c_str(), reply, o.payload.data(),
                       static_cast<int>(o.payload.size())),
        "natsMsg_Create " + o.subject);
  for (const auto& [k, v] : o.headers) {
    natsStatus s = natsMsgHeader_Add(m, k.c_str(), v.c_str());
    if (s != NATS_OK) {
      natsMsg_Destroy(m);
      check(s, "natsMsgHeader_Add " + k);
    }
  }
  return m;
}

// "<prefix>.<n>" -> n
bool reply_index(natsMsg* m, size_t& idx) {
  const char* subj = natsMsg_GetSubject(m);
  if (subj == nullptr) return false;
  const char* dot = std::strrchr(subj, '.');
  if (dot == nullptr) return false;
  char* end = nullptr;
  unsigned long long v = std::strtoull(dot + 1, &end, 10);
  if (end == dot + 1 || *end != '\0') return false;
  idx = static_cast<size_t>(v);
  return true;
}

std::string new_inbox() {
  natsInbox* inbox = nullptr;
  check(natsInbox_Create(&inbox), "natsInbox_Create");
  std::string s(inbox);
  natsInbox_Destroy(inbox);
  return s;
}

// Runs n pipelined request/replies over one inbox subscription:
// send(i, reply_subject) publishes request i; on_reply(i, msg) consumes its
// reply. At most `window` outstanding.
template <typename Send, typename OnReply>
void pipeline(natsConnection* nc, size_t n, size_t window, std::chrono::milliseconds timeout,
              const std::string& what, Send send, OnReply on_reply) {
  if (n == 0) return;
  if (window == 0) window = 1;
  const std::string prefix = new_inbox();
  SubPtr sub;
  check(natsConnection_SubscribeSync(&sub.s, nc, (prefix + ".*").c_str()), what + ": subscribe");
  check(natsSubscription_SetPendingLimits(sub.s, 10'000'000, 1 << 30), what + ": pending limits");
  std::vector<bool> done(n, false);
  size_t sent = 0, received = 0;
  const auto deadline = Clock::now() + timeout;
  auto receive_one = [&](int64_t wait_ms) -> bool {
    MsgPtr r;
    natsStatus s = natsSubscription_NextMsg(&r.m, sub.s, wait_ms);
    if (s == NATS_TIMEOUT) return false;
    check(s, what + ": next reply");
    size_t idx;
    if (!reply_index(r.m, idx) || idx >= n || done[idx]) return true;  // stray
    done[idx] = true;
    ++received;
    on_reply(idx, r.m);
    return true;
  };
  while (received < n) {
    while (sent < n && sent - received < window) {
      std::string reply = prefix + "." + std::to_string(sent);
      send(sent, reply.c_str());
      ++sent;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0)
      throw std::runtime_error(what + ": timed out with " + std::to_string(n - received) +
                               " of " + std::to_string(n) + " replies missing (" +
                               std::to_string(sent) + " sent)");
    receive_one(std::min<int64_t>(to_ms(left), 1000));
  }
}

}  // namespace

// ---------------------------------------------------------------- decoders

std::string base64_decode(const std::string& in) {
  static const auto table = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(a[i])] = static_cast<int8_t>(i);
    return t;
  }();
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (char c : in) {
    if (c == '=') {
      ++pad;
      continue;
    }
    if (c == '\r' || c == '\n') continue;
    int v = table[static_cast<unsigned char>(c)];
    if (v < 0 || pad > 0) throw std::runtime_error("base64: invalid character");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  if (pad > 2 || bits >= 6) throw std::runtime_error("base64: bad length");
  return out;
}

Headers parse_header_block(const std::string& block) {
  Headers h;
  if (block.empty()) return h;
  if (block.rfind("NATS/1.0", 0) != 0)
    throw std::runtime_error("header block does not start with NATS/1.0");
  size_t pos = block.find("\r\n");
  if (pos == std::string::npos) return h;
  pos += 2;
  while (pos < block.size()) {
    size_t eol = block.find("\r\n", pos);
    if (eol == std::string::npos) eol = block.size();
    if (eol == pos) break;  // blank line ends the block
    std::string line = block.substr(pos, eol - pos);
    size_t colon = line.find(':');
    if (colon == std::string::npos) throw std::runtime_error("header line without ':': " + line);
    std::string v = line.substr(colon + 1);
    size_t b = v.find_first_not_of(" \t");
    v = b == std::string::npos ? "" : v.substr(b);
    h.emplace_back(line.substr(0, colon), v);
    pos = eol + 2;
  }
  return h;
}

int64_t parse_rfc3339_ns(const std::string& t) {
  int Y, M, D, h, m, s;
  int consumed = 0;
  if (std::sscanf(t.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &s, &consumed) != 6)
    throw std::runtime_error("bad RFC 3339 time: " + t);
  size_t pos = static_cast<size_t>(consumed);
  int64_t frac = 0;
  if (pos < t.size() && t[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < t.size() && std::isdigit(static_cast<unsigned char>(t[pos]))) {
      if (digits < 9) {
        frac = frac * 10 + (t[pos] - '0');
        ++digits;
      }
      ++pos;
    }
    for (; digits < 9; ++digits) frac *= 10;
  }
  int64_t offset_s = 0;
  if (pos < t.size() && (t[pos] == '+' || t[pos] == '-')) {
    int oh = 0, om = 0;
    if (std::sscanf(t.c_str() + pos + 1, "%2d:%2d", &oh, &om) != 2)
      throw std::runtime_error("bad RFC 3339 offset: " + t);
    offset_s = (oh * 3600 + om * 60) * (t[pos] == '+' ? 1 : -1);
  } else if (pos >= t.size() || (t[pos] != 'Z' && t[pos] != 'z')) {
    throw std::runtime_error("bad RFC 3339 zone: " + t);
  }
  std::tm tm{};
  tm.tm_year = Y - 1900;
  tm.tm_mon = M - 1;
  tm.tm_mday = D;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = s;
  int64_t secs = static_cast<int64_t>(::timegm(&tm)) - offset_s;
  return secs * 1'000'000'000 + frac;
}

std::string to_string(const Headers& h) {
  std::string s;
  for (const auto& [k, v] : h) {
    if (!s.empty()) s += "; ";
    s += k + ": " + v;
  }
  return s;
}

std::optional<StoredMsg> parse_msg_get(const std::string& reply) {
  json j = json::parse(reply, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw std::runtime_error("MSG.GET: unparsable reply: " + reply);
  if (j.contains("error")) {
    if (j["error"].value("code", 0) == 404) return std::nullopt;
    throw std::runtime_error("MSG.GET: " + api_error_text(j));
  }
  const json& m = j.at("message");
  StoredMsg out;
  out.seq = m.at("seq").get<uint64_t>();
  out.subject = m.at("subject").get<std::string>();
  if (m.contains("hdrs") && m["hdrs"].is_string())
    out.headers = parse_header_block(base64_decode(m["hdrs"].get<std::string>()));
  if (m.contains("data") && m["data"].is_string()) out.payload = base64_decode(m["data"].get<std::string>());
  out.time = m.value("time", "");
  if (!out.time.empty()) out.time_ns = parse_rfc3339_ns(out.time);
  return out;
}

// ---------------------------------------------------------------- client

JetStream::JetStream(const std::string& url, ms connect_timeout, const ClientOptions& options) : url_(url) {
  natsOptions* opts = nullptr;
  check(natsOptions_Create(&opts), "natsOptions_Create");
  struct OptsGuard {
    natsOptions* o;
    ~OptsGuard() { natsOptions_Destroy(o); }
  } guard{opts};
  check(natsOptions_SetURL(opts, url.c_str()), "natsOptions_SetURL");
  check(natsOptions_SetTimeout(opts, to_ms(connect_timeout)), "natsOptions_SetTimeout");
  check(natsOptions_SetAllowReconnect(opts, true), "natsOptions_SetAllowReconnect");
  check(natsOptions_SetMaxReconnect(opts, -1), "natsOptions_SetMaxReconnect");
  check(natsOptions_SetReconnectWait(opts, 100), "natsOptions_SetReconnectWait");
  check(natsOptions_SetMaxPendingMsgs(opts, 1'000'000), "natsOptions_SetMaxPendingMsgs");
  if (!options.ca_file.empty())
    check(natsOptions_LoadCATrustedCertificates(opts, options.ca_file.c_str()), "load CA " + options.ca_file);
  if (!options.credentials.empty())
    check(natsOptions_SetUserCredentialsFromFiles(opts, options.credentials.c_str(), nullptr),
          "credentials " + options.credentials);
  natsStatus s = natsConnection_Connect(&nc_, opts);
  if (s != NATS_OK) {
    nc_ = nullptr;
    throw std::runtime_error(nats_error("connect " + url, s));
  }
}

JetStream::~JetStream() {
  if (nc_ != nullptr) {
    natsConnection_Close(nc_);
    natsConnection_Destroy(nc_);
  }
}

std::string JetStream::request_raw(const std::string& subject, const std::string& body, ms timeout) {
  MsgPtr reply;
  natsStatus s = natsConnection_Request(&reply.m, nc_, subject.c_str(), body.data(),
                                        static_cast<int>(body.size()), to_ms(timeout));
  check(s, "request " + subject);
  return payload_of(reply.m);
}

json JetStream::api_any(const std::string& subject, const json& body, ms timeout) {
  std::string b = body.is_null() ? std::string() : body.dump();
  std::string r = request_raw(subject, b, timeout);
  json j = json::parse(r, nullptr, false);
  if (j.is_discarded()) throw std::runtime_error(subject + ": unparsable reply: " + r);
  return j;
}

json JetStream::api(const std::string& subject, const json& body, ms timeout) {
  json j = api_any(subject, body, timeout);
  if (j.is_object() && j.contains("error")) throw std::runtime_error(subject + ": " + api_error_text(j));
  return j;
}

void JetStream::create_stream(const json& config) {
  api("$JS.API.STREAM.CREATE." + config.at("name").get<std::string>(), config);
}

std::optional<StreamInfo> JetStream::stream_info(const std::string& stream, bool deleted_details) {
  json j = api_any("$JS.API.STREAM.INFO." + stream,
                   deleted_details ? json{{"deleted_details", true}} : json(nullptr));
  if (j.contains("error")) {
    if (j["error"].value("code", 0) == 404) return std::nullopt;
    throw std::runtime_error("stream info " + stream + ": " + api_error_text(j));
  }
  StreamInfo i;
  const json& st = j.at("state");
  i.first_seq = st.value("first_seq", uint64_t{0});
  i.last_seq = st.value("last_seq", uint64_t{0});
  i.messages = st.value("messages", uint64_t{0});
  i.num_deleted = st.value("num_deleted", uint64_t{0});
  if (st.contains("deleted") && st["deleted"].is_array()) {
    for (const auto& x : st["deleted"]) i.deleted.push_back(x.get<uint64_t>());
    std::sort(i.deleted.begin(), i.deleted.end());
  }
  i.raw = std::move(j);
  return i;
}

StreamInfo JetStream::require_stream_info(const std::string& stream, bool deleted_details) {
  auto i = stream_info(stream, deleted_details);
  if (!i) throw std::runtime_error("stream " + stream + " not found at " + url_);
  return *i;
}

void JetStream::purge(const std::string& stream, std::optional<uint64_t> below_seq) {
  json body = json::object();
  if (below_seq) body["seq"] = *below_seq;
  api("$JS.API.STREAM.PURGE." + stream, body);
}

void JetStream::delete_msg(const std::string& stream, uint64_t seq) {
  api("$JS.API.STREAM.MSG.DELETE." + stream, json{{"seq", seq}});
}

PubAck JetStream::publish(const OutMsg& msg, ms timeout) {
  MsgPtr req;
  req.m = make_msg(msg, nullptr);
  MsgPtr reply;
  natsStatus s = natsConnection_RequestMsg(&reply.m, nc_, req.m, to_ms(timeout));
  if (s == NATS_NO_RESPONDERS)
    throw std::runtime_error("publish to " + msg.subject + ": no responders (no stream holds that subject)");
  check(s, "publish to " + msg.subject);
  return parse_ack(reply.m, msg.subject);
}

std::vector<PubAck> JetStream::publish_bulk(const std::vector<OutMsg>& msgs, size_t max_in_flight,
                                            ms timeout) {
  std::vector<PubAck> acks(msgs.size());
  pipeline(
      nc_, msgs.size(), max_in_flight, timeout, "bulk publish",
      [&](size_t i, const char* reply) {
        MsgPtr m;
        m.m = make_msg(msgs[i], reply);
        check(natsConnection_PublishMsg(nc_, m.m), "publish " + msgs[i].subject);
      },
      [&](size_t i, natsMsg* r) {
        try {
          acks[i] = parse_ack(r, msgs[i].subject);
        } catch (const std::exception& e) {
          throw std::runtime_error("message " + std::to_string(i) + ": " + e.what());
        }
      });
  return acks;
}

std::optional<StoredMsg> JetStream::get_msg(const std::string& stream, uint64_t seq, ms timeout) {
  std::string body = json{{"seq", seq}}.dump();
  return parse_msg_get(request_raw("$JS.API.STREAM.MSG.GET." + stream, body, timeout));
}

std::vector<StoredMsg> JetStream::read_stream(const std::string& stream, size_t window, ms timeout) {
  StreamInfo info = require_stream_info(stream);
  if (info.messages == 0 || info.last_seq < info.first_seq) return {};
  return read_range(stream, info.first_seq, info.last_seq, window, timeout);
}

std::vector<StoredMsg> JetStream::read_range(const std::string& stream, uint64_t from, uint64_t to,
                                             size_t window, ms timeout) {
  if (to < from) return {};
  const size_t n = static_cast<size_t>(to - from + 1);
  std::vector<std::optional<StoredMsg>> got(n);
  const std::string subject = "$JS.API.STREAM.MSG.GET." + stream;
  pipeline(
      nc_, n, window, timeout, "read " + stream,
      [&](size_t i, const char* reply) {
        std::string body = "{\"seq\":" + std::to_string(from + i) + "}";
        check(natsConnection_PublishRequest(nc_, subject.c_str(), reply, body.data(),
                                            static_cast<int>(body.size())),
              "request " + subject);
      },
      [&](size_t i, natsMsg* r) {
        if (natsMsg_IsNoResponders(r)) throw std::runtime_error(subject + ": no responders");
        got[i] = parse_msg_get(payload_of(r));
        if (got[i] && got[i]->seq != from + i)
          throw std::runtime_error(subject + ": asked for " + std::to_string(from + i) + ", got " +
                                   std::to_string(got[i]->seq));
      });
  std::vector<StoredMsg> out;
  out.reserve(n);
  for (auto& g : got)
    if (g) out.push_back(std::move(*g));
  return out;
}

}  // namespace harness
