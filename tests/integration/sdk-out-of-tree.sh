#!/bin/sh
# The out-of-tree proof: install omnigate into a staging prefix, copy the
# example plugin somewhere else, build it with nothing but
# `pkg-config --cflags --libs omnigate-sdk`, run its own CUnit test through
# the installed test host, then have the installed daemon load it and pass
# events through it. The core is not rebuilt.
set -u
build=${OG_TOP_BUILDDIR:?}
src=${OG_TOP_SRCDIR:?}
make_cmd=${MAKE:-make}
san=${OG_SANITIZERS:-}
tmp=$(mktemp -d)
chmod 755 "$tmp"
pid=
pass=0
fail=0
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2> /dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
ok()  { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }

# 1. Install into a staging root.
if $make_cmd -C "$build" install DESTDIR="$tmp/root" > "$tmp/install.log" 2>&1
then ok; else bad "make install failed"; tail -20 "$tmp/install.log"; finish; fi
pc=$(find "$tmp/root" -name omnigate-sdk.pc | head -1)
prefix=$(sed -n 's/^prefix=//p' "$pc")
[ -n "$pc" ] && ok || { bad "omnigate-sdk.pc not installed"; finish; }
# Relocate the staged .pc files to the staging root.
for f in "$(dirname "$pc")"/omnigate-*.pc; do
    sed -i "s|^prefix=.*|prefix=$tmp/root$prefix|" "$f"
done
export PKG_CONFIG_PATH="$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
pkg-config --exists omnigate-sdk && ok || bad "pkg-config cannot find omnigate-sdk"
echo "SDK flags: $(pkg-config --cflags --libs omnigate-sdk)"

# 2. Build the example outside the source tree.
mkdir "$tmp/ext"
cp "$src/sdk/examples/dropdir/dropdir.c" "$src/sdk/examples/dropdir/test_dropdir.c" \
   "$src/sdk/examples/dropdir/Makefile" "$tmp/ext/"
if $make_cmd -C "$tmp/ext" all test_dropdir CFLAGS="-O2 -Wall -Wextra -Werror $san" \
       LDFLAGS="$san" > "$tmp/ext.log" 2>&1; then ok
else bad "out-of-tree build failed"; cat "$tmp/ext.log"; finish; fi
syms=$(nm -D --defined-only "$tmp/ext/dropdir.so" | awk '{print $3}' | tr '\n' ' ')
[ "$syms" = "og_plugin_entry " ] && ok || bad "dropdir.so exports: $syms"

# 3. Its own CUnit test through the installed test host.
if (cd "$tmp/ext" && ./test_dropdir ./dropdir.so) > "$tmp/unit.log" 2>&1; then ok
else bad "example's CUnit test failed"; cat "$tmp/unit.log"; fi

# 4. The installed daemon loads it and passes events through it.
mkdir -p "$tmp/plugins" "$tmp/conf/channels.d" "$tmp/conf/routes.d" \
         "$tmp/in" "$tmp/out"
install -m 0755 "$tmp/ext/dropdir.so" "$tmp/plugins/dropdir.so"
cat > "$tmp/conf/omnigate.conf" <<CONF
[http]
public_listen = 127.0.0.1:0
admin_listen = unix:$tmp/admin.sock
[daemon]
plugin_dir = $tmp/plugins
state_dir = $tmp/state
shutdown_timeout = 2s
CONF
printf '[channel]\nplugin = dropdir\n[config]\ninbox = %s\npoll_interval = 20ms\n' \
    "$tmp/in" > "$tmp/conf/channels.d/shop.conf"
printf '[channel]\nplugin = dropdir\n[config]\noutbox = %s\n' \
    "$tmp/out" > "$tmp/conf/channels.d/crm.conf"
printf '[route all]\nmatch = *\nto = crm\n' > "$tmp/conf/routes.d/all.conf"
daemon="$tmp/root$prefix/sbin/omnigated"
"$daemon" -c "$tmp/conf" --check-config > "$tmp/check.log" 2>&1 && ok ||
    { bad "--check-config refused the config"; cat "$tmp/check.log"; }
"$daemon" -c "$tmp/conf" > "$tmp/daemon.log" 2>&1 &
pid=$!
printf 'order.placed\nprops.sku = A-1\n' > "$tmp/in/1.evt.tmp"
mv "$tmp/in/1.evt.tmp" "$tmp/in/1.evt"
i=0
while [ "$(ls "$tmp/out" | grep -c '\.msgpack$')" -lt 1 ] && [ $i -lt 250 ]; do
    sleep 0.02; i=$((i + 1))
done
[ "$(ls "$tmp/out" | grep -c '\.msgpack$')" -eq 1 ] && ok ||
    { bad "the event did not pass through the daemon"; cat "$tmp/daemon.log"; }
grep -q 'A-1' "$tmp"/out/*.msgpack 2> /dev/null && ok || bad "payload lost"
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
[ $rc -eq 0 ] && ok || { bad "daemon exit code $rc"; cat "$tmp/daemon.log"; }
finish
