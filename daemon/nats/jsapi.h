// JetStream API calls over the raw JSON API ($JS.API.*). Every function here
// BLOCKS for up to `timeout_ms`: call them on the NATS worker thread only
// (Client::run), never on the loop thread.
#pragma once

#include <nats/nats.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "util/status.h"

namespace isthmus::nats {

using Json = nlohmann::json;

// Sends a request to `subject` with a JSON body (or empty) and returns the
// parsed response. A response carrying {"error":{...}} becomes a Status
// whose message holds the description and err_code. kNotFound is used for
// "stream not found" (err_code 10059) and "no message found" (10037).
Result<Json> api_request(natsConnection* nc, const std::string& subject, const std::string& body,
                         int64_t timeout_ms);

// Whether the server answers a PING within timeout_ms (at most 1 s is
// waited). After a request timed out: true when the server answers the
// daemon otherwise (the request alone went unanswered: a clustered stream
// without a leader, a refused subject), false when it is silent altogether.
bool answers_ping(natsConnection* nc, int64_t timeout_ms);

Result<Json> stream_info(natsConnection* nc, const std::string& stream, int64_t timeout_ms);
// With deleted_details the state carries "deleted": the sequences missing
// between first_seq and last_seq.
Result<Json> stream_info(natsConnection* nc, const std::string& stream, bool deleted_details,
                         int64_t timeout_ms);
// One page of $JS.API.STREAM.LIST from `offset`: {"total", "offset",
// "limit", "streams": [stream info, as STREAM.INFO answers without deleted
// details, ...]} (nats-server 2.9 pages at 256).
Result<Json> stream_list(natsConnection* nc, uint64_t offset, int64_t timeout_ms);
Result<Json> stream_create(natsConnection* nc, const Json& config, int64_t timeout_ms);
Result<Json> stream_update(natsConnection* nc, const Json& config, int64_t timeout_ms);
// Purge everything below `seq` (on an empty stream: the next message gets seq).
Result<Json> stream_purge_to(natsConnection* nc, const std::string& stream, uint64_t seq, int64_t timeout_ms);
Result<Json> msg_delete(natsConnection* nc, const std::string& stream, uint64_t seq, int64_t timeout_ms);
// The stored message at seq: {"subject","seq","hdrs"(base64),"data"(base64),"time"}.
Result<Json> msg_get(natsConnection* nc, const std::string& stream, uint64_t seq, int64_t timeout_ms);
Status stream_delete(natsConnection* nc, const std::string& stream, int64_t timeout_ms);
// The last stored message on `subject` (same shape as msg_get); kNotFound if none.
Result<Json> msg_get_last_by_subject(natsConnection* nc, const std::string& stream, const std::string& subject,
                                     int64_t timeout_ms);
// Publishes one message with headers and waits for the JetStream
// acknowledgement ({"stream","seq"[,"duplicate"]}); an error ack or no
// responders is an error Status.
Result<Json> publish_sync(natsConnection* nc, const std::string& subject,
                          const std::vector<std::pair<std::string, std::string>>& headers,
                          const std::string& payload, int64_t timeout_ms);
// The first stored message at or above seq (any subject): MSG.GET with
// {"seq": seq, "next_by_subj": ">"}, which nats-server 2.9.10 answers for a
// deleted seq with the next message (checked). kNotFound when none.
Result<Json> msg_get_next(natsConnection* nc, const std::string& stream, uint64_t seq, int64_t timeout_ms);
// Creates an ephemeral consumer; returns the consumer info (its "name").
Result<Json> consumer_create(natsConnection* nc, const std::string& stream, const Json& config,
                             int64_t timeout_ms);
// Creates (or finds, if identical) the durable consumer config["durable_name"].
Result<Json> durable_create(natsConnection* nc, const std::string& stream, const Json& config,
                            int64_t timeout_ms);
Result<Json> consumer_info(natsConnection* nc, const std::string& stream, const std::string& name,
                           int64_t timeout_ms);
// Names of every consumer of the stream (all pages).
Result<std::vector<std::string>> consumer_names(natsConnection* nc, const std::string& stream,
                                                int64_t timeout_ms);
Status consumer_delete(natsConnection* nc, const std::string& stream, const std::string& name,
                       int64_t timeout_ms);

// Base64 (standard alphabet, padding optional) decode; false on bad input.
bool base64_decode(const std::string& in, std::string& out);
// Parses a NATS header block ("NATS/1.0\r\nK: V\r\n\r\n") into ordered pairs;
// malformed lines are left out (wire::parse_headers); false only for a
// block that is not one.
bool parse_header_block(const std::string& block,
                        std::vector<std::pair<std::string, std::string>>& out);

}  // namespace isthmus::nats
