// Why a link closed. Every close carries exactly one reason; it is logged
// once and shown in the API (last close reason per peer).
#pragma once

namespace isthmus::link {

enum class CloseReason {
  kNone = 0,
  kPeerClosed,         // the peer closed the TCP connection (EOF)
  kPeerGoAway,         // the peer said goodbye with a reason
  kShutdown,           // we are shutting down
  kIoError,            // socket error (reset, refused, ...)
  kConnectFailed,      // dial did not succeed
  kHandshakeTimeout,   // no valid hello within the handshake deadline
  kProtocolError,      // malformed frame, unexpected frame, bad hello
  kFrameTooLarge,      // a frame declared a length beyond max_frame_bytes
  kVersionMismatch,    // peer speaks another protocol version
  kUnknownPeer,        // hello named a region we do not know
  kWrongDirection,     // the peer dialed although the rule says we dial
  kDuplicate,          // a link to that peer already exists
  kStale,              // nothing received for stale_after
  kReplaced,           // a newer connection to the same peer replaced this one
  kTlsHandshakeFailed, // TLS handshake failed (no certificate, TLS < 1.3, garbage, ...)
  kCertRejected,       // the peer's certificate failed verification (expired, unknown CA, ...)
  kNameMismatch,       // the certificate does not name the expected region, or the HELLO
                       // names another region than the certificate
  kPinMismatch,        // the certificate's public key does not match the configured pin
  kCompressionMismatch,// the two ends disagree on S2 compression (seen in the HELLO)
  kSendStalled,        // bytes waited to be written and none could be for stale_after
                       // (the peer stopped reading, or the path is stuck one way)
  kPeerRemoved,        // the peer was removed from this region's configuration (reload)
};

const char* close_reason_name(CloseReason r);

}  // namespace isthmus::link
