#include "replication/foreign.h"

#include "nats/jsapi.h"
#include "util/rfc3339.h"

namespace isthmus::replication {

using Json = nlohmann::json;

namespace {

struct Stored {
  std::string subject;
  Headers headers;
  std::string payload;
  std::string time;
  int64_t time_ns = 0;
};

// Decodes a $JS.API.STREAM.MSG.GET "message" object.
Result<Stored> decode(const Json& m) {
  Stored s;
  s.subject = m.value("subject", std::string());
  s.time = m.value("time", std::string());
  if (auto t = util::parse_rfc3339_ns(s.time)) s.time_ns = *t;
  if (m.contains("hdrs") && m["hdrs"].is_string()) {
    std::string block;
    if (!nats::base64_decode(m["hdrs"].get<std::string>(), block) || !nats::parse_header_block(block, s.headers)) {
      return Status(Code::kInvalid, "unreadable headers");
    }
  }
  if (m.contains("data") && m["data"].is_string() && !nats::base64_decode(m["data"].get<std::string>(), s.payload)) {
    return Status(Code::kInvalid, "unreadable payload");
  }
  return s;
}

std::string header(const Headers& h, std::string_view key) {
  for (const auto& [k, v] : h) {
    if (k == key) return v;
  }
  return "";
}

}  // namespace

KeepAsideResult keep_aside(natsConnection* nc, const KeepAsideArgs& a) {
  KeepAsideResult r;
  r.scanned_to = a.from_seq > 0 ? a.from_seq - 1 : 0;
  const std::string side = side_stream_name(a.stream);
  bool side_ready = false;
  uint64_t examined = 0;
  for (uint64_t seq = std::max<uint64_t>(a.from_seq, 1); seq <= a.to_seq; ++seq) {
    if (a.max_scan > 0 && examined >= a.max_scan) break;
    ++examined;
    auto m = nats::msg_get(nc, a.stream, seq, a.timeout_ms);
    if (!m) {
      if (m.status().code() == Code::kNotFound) {
        r.scanned_to = seq;
        continue;
      }
      r.st = Status(m.status().code(), "reading sequence " + std::to_string(seq) + ": " + m.status().message());
      return r;
    }
    auto msg = decode(*m);
    if (!msg) {
      r.st = Status(Code::kInvalid, "sequence " + std::to_string(seq) + ": " + msg.status().message());
      return r;
    }
    std::string why = foreign_reason(msg->headers, seq, a.leader);
    if (why.empty()) {
      r.scanned_to = seq;
      continue;
    }
    ++r.found;
    if (r.first_found == 0) r.first_found = seq;
    r.last_found = seq;
    if (!side_ready) {
      auto si = nats::stream_info(nc, side, a.timeout_ms);
      if (!si && si.status().code() == Code::kNotFound) {
        si = nats::stream_create(nc, side_stream_config(a.stream, a.storage, a.replicas), a.timeout_ms);
      }
      if (!si) {
        r.st = Status(si.status().code(), "side stream " + side + ": " + si.status().message());
        return r;
      }
      side_ready = true;
    }
    // Already kept (an earlier run, perhaps cut short by a crash)?
    auto have = nats::msg_get_last_by_subject(nc, side, side_subject(a.stream, seq), a.timeout_ms);
    if (have) {
      auto h = decode(*have);
      if (h && header(h->headers, kHdrForeignTime) == std::to_string(msg->time_ns)) {
        ++r.kept;
        r.scanned_to = seq;
        continue;
      }
    } else if (have.status().code() != Code::kNotFound) {
      r.st = Status(have.status().code(), "side stream " + side + ": " + have.status().message());
      return r;
    }
    Headers hs = side_headers(msg->headers, a.stream, msg->subject, seq, msg->time_ns, msg->time, why);
    auto ack = nats::publish_sync(nc, side_subject(a.stream, seq), hs, msg->payload, a.timeout_ms);
    if (!ack) {
      r.st = Status(ack.status().code(), "keeping sequence " + std::to_string(seq) + " aside: " +
                                             ack.status().message());
      return r;
    }
    if (ack->value("stream", std::string()) != side) {
      r.st = Status(Code::kConflict, "sequence " + std::to_string(seq) + " was stored in " +
                                         ack->value("stream", std::string("?")) + ", not " + side);
      return r;
    }
    ++r.kept;
    ++r.copied;
    r.scanned_to = seq;
  }
  return r;
}

OwnWritesCheck check_own_writes(natsConnection* nc, const std::string& stream, const std::string& leader,
                                uint64_t from, uint64_t to, int64_t timeout_ms) {
  OwnWritesCheck r;
  for (uint64_t seq = std::max<uint64_t>(from, 1); seq <= to; ++seq) {
    auto m = nats::msg_get(nc, stream, seq, timeout_ms);
    if (!m) {
      if (m.status().code() == Code::kNotFound) continue;
      r.st = Status(m.status().code(), "reading sequence " + std::to_string(seq) + ": " + m.status().message());
      return r;
    }
    ++r.checked;
    auto msg = decode(*m);
    std::string why = msg ? foreign_reason(msg->headers, seq, leader) : msg.status().message();
    if (!why.empty()) {
      r.foreign_at = seq;
      r.why = why;
      return r;
    }
    if (!header(msg->headers, kHdrFiller).empty()) {
      auto d = nats::msg_delete(nc, stream, seq, timeout_ms);
      if (!d && d.status().code() != Code::kNotFound) {
        r.st = Status(d.status().code(), "deleting filler " + std::to_string(seq) + ": " + d.status().message());
        return r;
      }
      ++r.fillers_deleted;
    }
  }
  return r;
}

Result<TailWalk> foreign_tail_walk(natsConnection* nc, const std::string& stream, const std::string& leader,
                                   uint64_t first, uint64_t top, uint64_t max_steps, int64_t timeout_ms) {
  if (first == 0) first = 1;
  TailWalk w;
  uint64_t steps = 0;
  for (uint64_t seq = top; seq >= first && seq > 0; --seq) {
    if (max_steps > 0 && steps++ >= max_steps) {
      w.next = seq;
      return w;
    }
    auto m = nats::msg_get(nc, stream, seq, timeout_ms);
    if (!m) {
      if (m.status().code() == Code::kNotFound) continue;
      return m.status();
    }
    auto msg = decode(*m);
    // (From `leader` only: copies from an earlier leader of the stream,
    // below a switchover, are not known to be this leader's messages.)
    if (msg && foreign_reason(msg->headers, seq, leader).empty()) {
      w.done = true;
      w.start = seq + 1;
      return w;
    }
  }
  w.done = true;
  w.start = first;
  return w;
}


Status write_marker(natsConnection* nc, Json config, const Marker& m, bool seal, int64_t timeout_ms) {
  if (!config.is_object()) return Status(Code::kInvalid, "no stream configuration");
  config["description"] = with_marker(config.value("description", std::string()), m);
  if (seal) config["sealed"] = true;
  auto r = nats::stream_update(nc, config, timeout_ms);
  return r ? Status::ok() : r.status();
}

}  // namespace isthmus::replication
