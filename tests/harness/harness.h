// The integration-test harness: include this one header.
#pragma once

#include "certs.h"
#include "http_client.h"
#include "isthmusd.h"
#include "jetstream.h"
#include "mirror_check.h"
#include "nats_server.h"
#include "process.h"
#include "proxied_pair.h"
#include "publisher.h"
#include "topology.h"
#include "util.h"
