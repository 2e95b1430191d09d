/*
 * omnigate/sdk.h: everything a channel plugin needs. Include this, build a
 * shared object with `pkg-config --cflags --libs omnigate-sdk`, and put
 * OG_PLUGIN_DEFINE(&your_def) in one source file. See sdk/README.md.
 */
#ifndef OMNIGATE_SDK_H
#define OMNIGATE_SDK_H

#include <omnigate/og_common.h>
#include <omnigate/og_version.h>
#include <omnigate/og_errors.h>
#include <omnigate/og_types.h>
#include <omnigate/og_host.h>
#include <omnigate/og_log.h>
#include <omnigate/og_plugin.h>
#include <omnigate/og_event.h>
#include <omnigate/og_services.h>

#endif /* OMNIGATE_SDK_H */
