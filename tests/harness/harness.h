// The integration-test harness: include this one header.
#pragma once

#include "bare_nats_server.h"
#include "certs.h"
#include "fake_nats_server.h"
#include "http_client.h"
#include "isthmusd.h"
#include "jetstream.h"
#include "mirror_check.h"
#include "nats_server.h"
#include "operator_auth.h"
#include "process.h"
#include "proxied_pair.h"
#include "publisher.h"
#include "seed_streams.h"
#include "topology.h"
#include "util.h"
