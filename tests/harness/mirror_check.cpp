#include "mirror_check.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <sstream>

namespace harness {

const std::vector<std::string>& publish_time_headers() {
  static const std::vector<std::string> h = {
      "Nats-Msg-Id",
      "Nats-Expected-Stream",
      "Nats-Expected-Last-Msg-Id",
      "Nats-Expected-Last-Sequence",
      "Nats-Expected-Last-Subject-Sequence",
      "Nats-Rollup",
  };
  return h;
}

Headers expected_replica_headers(const StoredMsg& leader, const std::string& leader_region,
                                 const std::string& epoch) {
  Headers out;
  for (const auto& [k, v] : leader.headers) {
    bool renamed = false;
    for (const auto& p : publish_time_headers()) renamed = renamed || k == p;
    out.emplace_back(renamed ? std::string(kOrigPrefix) + k : k, v);
  }
  out.emplace_back("Isthmus-Origin-Region", leader_region);
  out.emplace_back("Isthmus-Origin-Seq", std::to_string(leader.seq));
  out.emplace_back("Isthmus-Origin-Time", std::to_string(leader.time_ns));
  out.emplace_back("Isthmus-Epoch", epoch);
  return out;
}

namespace {
using Grouped = std::map<std::string, std::vector<std::string>>;
Grouped group(const Headers& h) {
  Grouped g;
  for (const auto& [k, v] : h) g[k].push_back(v);
  return g;
}
std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + ("\"" + v[i] + "\"");
  return "[" + s + "]";
}
std::string clip(const std::string& s) {
  return s.size() <= 80 ? s : s.substr(0, 80) + "...(" + std::to_string(s.size()) + " bytes)";
}
}  // namespace

std::string compare_replica_msg(const StoredMsg& leader, const StoredMsg& replica,
                                const std::string& leader_region, const std::string& epoch) {
  std::ostringstream os;
  if (leader.seq != replica.seq) os << " seq " << leader.seq << " vs " << replica.seq << ";";
  if (leader.subject != replica.subject)
    os << " subject \"" << leader.subject << "\" vs \"" << replica.subject << "\";";
  if (leader.payload != replica.payload)
    os << " payload \"" << clip(leader.payload) << "\" vs \"" << clip(replica.payload) << "\";";
  Grouped want = group(expected_replica_headers(leader, leader_region, epoch));
  Grouped have = group(replica.headers);
  // Isthmus guards each replica write with Nats-Expected-Last-Sequence
  // (JetStream stores it as published): seq - 1, or nats-server's own lower
  // count after a positioning purge (docs/architecture.md, "Alignment"); it
  // is absent on writes made while the guard is off. Never anything else.
  auto guard = have.find("Nats-Expected-Last-Sequence");
  if (guard != have.end() && guard->second.size() == 1) {
    const std::string& v = guard->second[0];
    bool digits = !v.empty() && v.size() <= 19 && v.find_first_not_of("0123456789") == std::string::npos;
    if (digits && std::stoull(v) <= replica.seq - 1) have.erase(guard);
  }
  for (const auto& [k, v] : want) {
    auto it = have.find(k);
    if (it == have.end())
      os << " header " << k << " missing (want " << join(v) << ");";
    else if (it->second != v)
      os << " header " << k << " " << join(it->second) << " want " << join(v) << ";";
  }
  for (const auto& [k, v] : have)
    if (want.find(k) == want.end()) os << " unexpected header " << k << " " << join(v) << ";";
  std::string s = os.str();
  if (s.empty()) return s;
  // Name the leader message the replica holds here, if it says so.
  std::string hint;
  auto origin = have.find("Isthmus-Origin-Seq");
  if (origin != have.end() && !origin->second.empty() && origin->second[0] != std::to_string(leader.seq))
    hint = " [replica holds leader seq " + origin->second[0] + ": misaligned]";
  else if (origin == have.end())
    hint = " [replica message has no Isthmus-Origin-Seq: not written by Isthmus?]";
  return "seq " + std::to_string(leader.seq) + ":" + hint + s;
}

std::string MirrorDiff::summary() const {
  std::ostringstream os;
  os << compared << " compared, " << mismatches << " problem(s)";
  for (const auto& p : problems) os << "\n  " << p;
  if (problems.size() < mismatches) os << "\n  ... " << (mismatches - problems.size()) << " more";
  return os.str();
}

MirrorDiff compare_streams(const std::vector<StoredMsg>& leader, const std::vector<StoredMsg>& replica,
                           const std::string& leader_region, const std::string& epoch, uint64_t up_to) {
  MirrorDiff d;
  auto add = [&](std::string p) {
    ++d.mismatches;
    if (d.problems.size() < 20) d.problems.push_back(std::move(p));
  };
  size_t i = 0, j = 0;
  while (true) {
    bool li = i < leader.size() && leader[i].seq <= up_to;
    bool rj = j < replica.size() && replica[j].seq <= up_to;
    if (!li && !rj) break;
    if (li && (!rj || leader[i].seq < replica[j].seq)) {
      add("seq " + std::to_string(leader[i].seq) + ": missing in replica");
      ++i;
    } else if (rj && (!li || replica[j].seq < leader[i].seq)) {
      add("seq " + std::to_string(replica[j].seq) + ": in replica but not in leader (subject " +
          replica[j].subject + ", headers " + to_string(replica[j].headers) + ")");
      ++j;
    } else {
      ++d.compared;
      std::string p = compare_replica_msg(leader[i], replica[j], leader_region, epoch);
      if (!p.empty()) add(std::move(p));
      ++i;
      ++j;
    }
  }
  return d;
}

std::string compare_stream_states(const StreamInfo& leader, const StreamInfo& replica) {
  std::ostringstream os;
  if (leader.first_seq != replica.first_seq)
    os << " first_seq " << replica.first_seq << " want " << leader.first_seq << ";";
  if (leader.last_seq != replica.last_seq)
    os << " last_seq " << replica.last_seq << " want " << leader.last_seq << ";";
  if (leader.messages != replica.messages)
    os << " messages " << replica.messages << " want " << leader.messages << ";";
  std::vector<uint64_t> extra, missing;
  std::set_difference(replica.deleted.begin(), replica.deleted.end(), leader.deleted.begin(), leader.deleted.end(),
                      std::back_inserter(extra));
  std::set_difference(leader.deleted.begin(), leader.deleted.end(), replica.deleted.begin(), replica.deleted.end(),
                      std::back_inserter(missing));
  auto list = [](const std::vector<uint64_t>& v) {
    std::string out;
    for (size_t i = 0; i < v.size() && i < 10; ++i) out += (i ? "," : "") + std::to_string(v[i]);
    if (v.size() > 10) out += ",... (" + std::to_string(v.size()) + ")";
    return out;
  };
  if (!missing.empty()) os << " deleted at the leader but held by the replica: " << list(missing) << ";";
  if (!extra.empty()) os << " deleted at the replica but held by the leader: " << list(extra) << ";";
  return os.str();
}

}  // namespace harness
