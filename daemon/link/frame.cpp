#include "link/frame.h"

#include <cstring>

#include "link/wire.h"

namespace isthmus::link {

const char* frame_type_name(FrameType t) {
  switch (t) {
    case FrameType::kHello: return "hello";
    case FrameType::kStreamReq: return "stream_req";
    case FrameType::kStreamInfo: return "stream_info";
    case FrameType::kSubscribe: return "subscribe";
    case FrameType::kData: return "data";
    case FrameType::kAck: return "ack";
    case FrameType::kState: return "state";
    case FrameType::kStop: return "stop";
    case FrameType::kHeartbeat: return "heartbeat";
    case FrameType::kGoAway: return "goaway";
    case FrameType::kDeleted: return "deleted";
    case FrameType::kLagReport: return "lag_report";
  }
  return "unknown";
}

size_t Message::wire_size() const {
  size_t n = 24 + subject.size() + payload.size();
  for (const auto& [k, v] : headers) n += k.size() + v.size() + 4;
  return n;
}

namespace {

// Writes the header placeholder, runs body(), patches the length.
template <typename F>
void frame(FrameType t, std::vector<uint8_t>& out, F body) {
  size_t start = out.size();
  out.resize(start + kFrameHeaderBytes);
  out[start + 4] = static_cast<uint8_t>(t);
  WireWriter w(out);
  body(w);
  uint32_t len = static_cast<uint32_t>(out.size() - start - 4);
  out[start + 0] = static_cast<uint8_t>(len >> 24);
  out[start + 1] = static_cast<uint8_t>(len >> 16);
  out[start + 2] = static_cast<uint8_t>(len >> 8);
  out[start + 3] = static_cast<uint8_t>(len);
}

Status finish(WireReader& r, bool ok, const char* what) {
  if (!ok) {
    return Status(r.error().code(), std::string(what) + ": " + r.error().message());
  }
  if (!r.done()) return Status(Code::kInvalid, std::string(what) + ": trailing bytes");
  return Status::ok();
}

}  // namespace

void encode(const Hello& f, std::vector<uint8_t>& out) {
  frame(FrameType::kHello, out, [&](WireWriter& w) {
    w.uvarint(kHelloMagic);
    w.uvarint(f.version);
    w.bytes(f.region);
    w.uvarint(f.epoch);
    w.uvarint(f.flags);
  });
}

Status decode(std::span<const uint8_t> body, Hello& f) {
  WireReader r(body);
  uint64_t magic = 0, version = 0, flags = 0;
  bool ok = r.uvarint(magic) && r.uvarint(version) && r.bytes(f.region, kMaxNameBytes) &&
            r.uvarint(f.epoch) && r.uvarint(flags);
  Status st = finish(r, ok, "hello");
  if (!st) return st;
  if (magic != kHelloMagic) return Status(Code::kInvalid, "hello: bad magic");
  if (version > 0xffff || flags > 0xffffffffu) return Status(Code::kInvalid, "hello: field out of range");
  f.version = static_cast<uint16_t>(version);
  f.flags = static_cast<uint32_t>(flags);
  return Status::ok();
}

void encode(const StreamReq& f, std::vector<uint8_t>& out) {
  frame(FrameType::kStreamReq, out, [&](WireWriter& w) { w.bytes(f.stream); });
}

Status decode(std::span<const uint8_t> body, StreamReq& f) {
  WireReader r(body);
  bool ok = r.bytes(f.stream, kMaxNameBytes);
  return finish(r, ok, "stream_req");
}

void encode(const StreamInfo& f, std::vector<uint8_t>& out) {
  frame(FrameType::kStreamInfo, out, [&](WireWriter& w) {
    w.bytes(f.stream);
    w.bytes(f.error);
    w.uvarint(f.first_seq);
    w.uvarint(f.last_seq);
    w.bytes(f.config_json);
  });
}

Status decode(std::span<const uint8_t> body, StreamInfo& f) {
  WireReader r(body);
  bool ok = r.bytes(f.stream, kMaxNameBytes) && r.bytes(f.error, 4096) &&
            r.uvarint(f.first_seq) && r.uvarint(f.last_seq) &&
            r.bytes(f.config_json, body.size());
  return finish(r, ok, "stream_info");
}

void encode(const Subscribe& f, std::vector<uint8_t>& out) {
  frame(FrameType::kSubscribe, out, [&](WireWriter& w) {
    w.bytes(f.stream);
    w.uvarint(f.from_seq);
    w.uvarint(f.epoch);
    w.uvarint(f.sub_id);
  });
}

Status decode(std::span<const uint8_t> body, Subscribe& f) {
  WireReader r(body);
  bool ok = r.bytes(f.stream, kMaxNameBytes) && r.uvarint(f.from_seq) && r.uvarint(f.epoch) &&
            r.uvarint(f.sub_id);
  return finish(r, ok, "subscribe");
}

void encode(const Data& f, std::vector<uint8_t>& out) {
  frame(FrameType::kData, out, [&](WireWriter& w) {
    w.bytes(f.stream);
    w.uvarint(f.epoch);
    w.uvarint(f.sub_id);
    w.uvarint(f.leader_last_seq);
    w.uvarint(f.msgs.size());
    for (const auto& m : f.msgs) {
      w.uvarint(m.seq);
      w.svarint(m.time_ns);
      w.bytes(m.subject);
      w.uvarint(m.headers.size());
      for (const auto& [k, v] : m.headers) {
        w.bytes(k);
        w.bytes(v);
      }
      w.bytes(m.payload);
    }
  });
}

Status decode(std::span<const uint8_t> body, Data& f) {
  WireReader r(body);
  uint64_t count = 0;
  bool ok = r.bytes(f.stream, kMaxNameBytes) && r.uvarint(f.epoch) && r.uvarint(f.sub_id) &&
            r.uvarint(f.leader_last_seq) && r.uvarint(count);
  if (!ok) return finish(r, ok, "data");
  // Each message takes at least 5 bytes: never reserve more than the body allows.
  if (count > r.remaining() / 5 + 1) return Status(Code::kInvalid, "data: message count exceeds body");
  f.msgs.clear();
  f.msgs.reserve(count);
  for (uint64_t i = 0; i < count && ok; ++i) {
    Message m;
    uint64_t nh = 0;
    ok = r.uvarint(m.seq) && r.svarint(m.time_ns) && r.bytes(m.subject, kMaxSubjectBytes) &&
         r.uvarint(nh);
    if (!ok) break;
    if (nh > kMaxHeaders) return Status(Code::kTooLarge, "data: too many headers");
    m.headers.reserve(nh);
    for (uint64_t h = 0; h < nh && ok; ++h) {
      std::string k, v;
      ok = r.bytes(k, body.size()) && r.bytes(v, body.size());
      if (ok) m.headers.emplace_back(std::move(k), std::move(v));
    }
    ok = ok && r.bytes(m.payload, body.size());
    if (ok) f.msgs.push_back(std::move(m));
  }
  return finish(r, ok, "data");
}

void encode(const Ack& f, std::vector<uint8_t>& out) {
  frame(FrameType::kAck, out, [&](WireWriter& w) {
    w.bytes(f.stream);
    w.uvarint(f.stored_seq);
    w.svarint(f.stored_time_ns);
  });
}

Status decode(std::span<const uint8_t> body, Ack& f) {
  WireReader r(body);
  bool ok = r.bytes(f.stream, kMaxNameBytes) && r.uvarint(f.stored_seq) && r.svarint(f.stored_time_ns);
  return finish(r, ok, "ack");
}

void encode(const State& f, std::vector<uint8_t>& out) {
  frame(FrameType::kState, out, [&](WireWriter& w) {
    w.bytes(f.stream);
    w.uvarint(f.first_seq);
    w.uvarint(f.last_seq);
    w.svarint(f.last_time_ns);
  });
}

Status decode(std::span<const uint8_t> body, State& f) {
  WireReader r(body);
  bool ok = r.bytes(f.stream, kMaxNameBytes) && r.uvarint(f.first_seq) && r.uvarint(f.last_seq) &&
            r.svarint(f.last_time_ns);
  return finish(r, ok, "state");
}

void encode(const Stop& f, std::vector<uint8_t>& out) {
  frame(FrameType::kStop, out, [&](WireWriter& w) {
    w.bytes(f.stream);
    w.bytes(f.reason);
  });
}

Status decode(std::span<const uint8_t> body, Stop& f) {
  WireReader r(body);
  bool ok = r.bytes(f.stream, kMaxNameBytes) && r.bytes(f.reason, 4096);
  return finish(r, ok, "stop");
}

void encode(const Heartbeat& f, std::vector<uint8_t>& out) {
  frame(FrameType::kHeartbeat, out, [&](WireWriter& w) {
    w.svarint(f.send_ns);
    w.svarint(f.echo_send_ns);
    w.svarint(f.echo_recv_ns);
  });
}

Status decode(std::span<const uint8_t> body, Heartbeat& f) {
  WireReader r(body);
  bool ok = r.svarint(f.send_ns) && r.svarint(f.echo_send_ns) && r.svarint(f.echo_recv_ns);
  return finish(r, ok, "heartbeat");
}

void encode(const GoAway& f, std::vector<uint8_t>& out) {
  frame(FrameType::kGoAway, out, [&](WireWriter& w) { w.bytes(f.reason); });
}

Status decode(std::span<const uint8_t> body, GoAway& f) {
  WireReader r(body);
  bool ok = r.bytes(f.reason, 4096);
  return finish(r, ok, "goaway");
}

// Sequences travel as deltas from the previous one (the first from 0), so a
// run of consecutive deletes costs one byte each.
void encode(const Deleted& f, std::vector<uint8_t>& out) {
  frame(FrameType::kDeleted, out, [&](WireWriter& w) {
    w.bytes(f.stream);
    w.uvarint(f.first_seq);
    w.uvarint(f.seqs.size());
    uint64_t prev = 0;
    for (uint64_t s : f.seqs) {
      w.uvarint(s - prev);
      prev = s;
    }
  });
}

Status decode(std::span<const uint8_t> body, Deleted& f) {
  WireReader r(body);
  uint64_t count = 0;
  bool ok = r.bytes(f.stream, kMaxNameBytes) && r.uvarint(f.first_seq) && r.uvarint(count);
  if (!ok) return finish(r, ok, "deleted");
  if (count > kMaxDeletedPerFrame) return Status(Code::kTooLarge, "deleted: more than 16384 sequences");
  if (count > r.remaining()) return Status(Code::kInvalid, "deleted: sequence count exceeds body");
  f.seqs.clear();
  f.seqs.reserve(count);
  uint64_t prev = 0;
  for (uint64_t i = 0; i < count && ok; ++i) {
    uint64_t d = 0;
    ok = r.uvarint(d);
    if (!ok) break;
    if (d == 0 || d > UINT64_MAX - prev) return Status(Code::kInvalid, "deleted: sequences not ascending");
    prev += d;
    f.seqs.push_back(prev);
  }
  return finish(r, ok, "deleted");
}

Status FrameReader::feed(std::span<const uint8_t> bytes, const OnFrame& on_frame) {
  // Fast path: parse whole frames straight from the input when nothing is
  // buffered; buffer only an incomplete tail.
  std::span<const uint8_t> in = bytes;
  std::vector<uint8_t> joined;
  if (!buf_.empty()) {
    buf_.insert(buf_.end(), bytes.begin(), bytes.end());
    joined.swap(buf_);
    in = joined;
  }
  size_t pos = 0;
  while (in.size() - pos >= 4) {
    const uint8_t* p = in.data() + pos;
    uint32_t len = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
    if (len < 1) return Status(Code::kInvalid, "frame with zero length");
    if (len > max_) {
      return Status(Code::kTooLarge, "frame of " + std::to_string(len) + " bytes exceeds limit of " +
                                         std::to_string(max_));
    }
    if (in.size() - pos - 4 < len) break;
    auto type = static_cast<FrameType>(p[4]);
    Status st = on_frame(type, in.subspan(pos + kFrameHeaderBytes, len - 1));
    if (!st) return st;
    pos += 4 + len;
    if (paused_) {
      paused_ = false;
      break;
    }
  }
  if (pos == 0 && !joined.empty()) {
    buf_.swap(joined);  // nothing consumed: keep the joined buffer, do not copy it again
  } else {
    buf_.assign(in.begin() + static_cast<std::ptrdiff_t>(pos), in.end());
  }
  return Status::ok();
}


void encode(const LagReport& f, std::vector<uint8_t>& out) {
  frame(FrameType::kLagReport, out, [&](WireWriter& w) {
    w.bytes(f.stream);
    w.uvarint(f.applied_seq);
    w.uvarint(f.flags);
    w.svarint(f.time_lag_ns);
    w.svarint(f.p50_ns);
    w.svarint(f.p95_ns);
    w.svarint(f.p99_ns);
    w.uvarint(f.window_samples);
    w.svarint(f.newest_applied_origin_ns);
    w.svarint(f.newest_applied_age_ns);
    w.svarint(f.clock_offset_ns);
    w.svarint(f.clock_offset_error_ns);
    w.uvarint(f.sync_done);
    w.uvarint(f.sync_to_go);
    w.uvarint(f.sync_rate_milli);
    w.svarint(f.sync_eta_ms);
  });
}

Status decode(std::span<const uint8_t> body, LagReport& f) {
  WireReader r(body);
  uint64_t flags = 0;
  bool ok = r.bytes(f.stream, kMaxNameBytes) && r.uvarint(f.applied_seq) && r.uvarint(flags) &&
            r.svarint(f.time_lag_ns) && r.svarint(f.p50_ns) && r.svarint(f.p95_ns) && r.svarint(f.p99_ns) &&
            r.uvarint(f.window_samples) && r.svarint(f.newest_applied_origin_ns) &&
            r.svarint(f.newest_applied_age_ns) && r.svarint(f.clock_offset_ns) &&
            r.svarint(f.clock_offset_error_ns) && r.uvarint(f.sync_done) && r.uvarint(f.sync_to_go) &&
            r.uvarint(f.sync_rate_milli) && r.svarint(f.sync_eta_ms);
  Status st = finish(r, ok, "lag_report");
  if (!st) return st;
  if (flags > 0xffffffffu) return Status(Code::kInvalid, "lag_report: flags out of range");
  f.flags = static_cast<uint32_t>(flags);
  return Status::ok();
}

}  // namespace isthmus::link
