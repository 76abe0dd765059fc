// How the cnats connection (nats/client.h) reaches one URL of nats.urls:
// the TLS policy of its options, and a failed connect as text.
//
// TLS, like the data connection's (tls/client_session.h):
//  - a tls:// URL requires TLS: natsOptions_SetSecure, so a server that
//    offers none is refused ("tls:// URL, but the server offers no TLS")
//    instead of cnats' default, a plaintext connection that sends the
//    CONNECT (user info, JWT) in the clear;
//  - a nats:// URL to a server that requires TLS upgrades to TLS (cnats
//    does that itself);
//  - the server's certificate is checked against OpenSSL's default trust
//    store (cnats 3.4 loads it with SSL_CTX_set_default_verify_paths when it
//    makes its TLS context; SSL_CERT_FILE / SSL_CERT_DIR override it) and
//    against the URL's host: natsOptions_SetExpectedHostname with that
//    host. A name is compared with the certificate's DNS names (wildcards
//    as X509_check_host allows them), an IP address with its IP addresses
//    (libnats 3.4.1 over OpenSSL 3; tests/unit/nats/client_test.cpp);
//  - no client certificate.
//
// Pure functions over cnats options; the text of a failure reads cnats'
// last error of the calling thread, so call it on the thread that called
// natsConnection_Connect.
#pragma once

#include <nats/nats.h>

#include <string>

#include "nats/url.h"
#include "util/status.h"

namespace isthmus::nats {

// Sets the TLS options above for `url` on opts.
Status apply_tls_policy(natsOptions* opts, const NatsUrl& url);

// natsConnection_Connect's failure as one line: cnats' status, its detail
// without the source location, certificate refusals as "TLS: server
// certificate: <OpenSSL's verify error> (<cnats' detail>)", like the data
// connection's.
std::string connect_failure_text(natsStatus s);

}  // namespace isthmus::nats
