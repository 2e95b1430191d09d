#!/bin/sh
# API hygiene, curl style:
#  - every installed SDK header compiles alone as C99 (pedantic) and C++;
#  - every public identifier in the SDK starts with og_ / OG_;
#  - sdk/symbols lists exactly the public functions the headers declare;
#  - every built plugin exports only og_plugin_entry.
set -u
src=${OG_TOP_SRCDIR:-..}
build=${OG_TOP_BUILDDIR:-.}
cc=${CC:-cc}
inc="-I$src/sdk/include -I$build/sdk/include"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
pass=0

ok()   { pass=$((pass + 1)); }
bad()  { echo "FAIL: $*"; fail=$((fail + 1)); }

headers=$(cd "$src/sdk/include/omnigate" && ls *.h; echo og_version.h)
for h in $headers; do
    printf '#include <omnigate/%s>\nint og_test_dummy;\n' "$h" > "$tmp/t.c"
    if $cc -std=c99 -pedantic -Wall -Wextra -Werror -Wno-unused-function \
          $inc -c "$tmp/t.c" -o "$tmp/t.o" 2> "$tmp/err"; then ok
    else bad "$h does not compile alone as C99"; cat "$tmp/err"; fi
    if command -v g++ > /dev/null; then
        cp "$tmp/t.c" "$tmp/t.cc"
        if g++ -std=c++11 -Wall -Wextra -Werror $inc -c "$tmp/t.cc" \
              -o "$tmp/t.o" 2> "$tmp/err"; then ok
        else bad "$h does not compile alone as C++"; cat "$tmp/err"; fi
    fi
done

# Public names: functions and types declared by the headers.
cat "$src"/sdk/include/omnigate/*.h "$build/sdk/include/omnigate/og_version.h" |
    sed -n -E 's/^(static inline )?[a-z_][a-z_0-9 ]*[ *]+([a-z_0-9]+)\(.*/\2/p' |
    grep -v '^$' | sort -u > "$tmp/funcs"
if [ -s "$tmp/funcs" ]; then ok; else bad "no functions found in headers"; fi
if grep -v -E '^og_' "$tmp/funcs" > "$tmp/badnames"; then
    bad "SDK functions without the og_ prefix: $(tr '\n' ' ' < "$tmp/badnames")"
else ok; fi
grep -h -o -E '^typedef .* ([a-zA-Z_0-9]+);' "$src"/sdk/include/omnigate/*.h |
    sed -E 's/.* \**([a-zA-Z_0-9]+);$/\1/' | sort -u > "$tmp/types"
if grep -v -E '^og_[a-z_0-9]+_t$' "$tmp/types" > "$tmp/badtypes"; then
    bad "SDK types not named og_*_t: $(tr '\n' ' ' < "$tmp/badtypes")"
else ok; fi
grep -h -o -E '^#define [A-Za-z_0-9]+' "$src"/sdk/include/omnigate/*.h |
    awk '{print $2}' | grep -v -E '^(OG_|OMNIGATE_)' > "$tmp/badmacros"
if [ -s "$tmp/badmacros" ]; then
    bad "SDK macros without OG_: $(tr '\n' ' ' < "$tmp/badmacros")"
else ok; fi

# The symbol ledger: first column of each non-comment line.
grep -v -E '^(#|$)|exported by plugins' "$src/sdk/symbols" | awk '{print $1}' |
    grep -E '^og_[a-z_0-9]+$' | grep -v -E '_t$' | sort -u > "$tmp/ledger"
if diff -u "$tmp/ledger" "$tmp/funcs" > "$tmp/diff"; then ok
else bad "sdk/symbols does not match the headers' functions"; cat "$tmp/diff"; fi

# Every public function is named in a comment of the headers.
for f in $(cat "$tmp/funcs"); do
    if grep -h -E '^ ?(/\*|\*)' "$src"/sdk/include/omnigate/*.h |
          grep -q -w "$f"; then ok
    else bad "$f is not documented"; fi
done

# Plugins export only the entry symbol.
for so in "$build"/tests/plugins/.libs/good.so \
          "$build"/sdk/examples/dropdir/.libs/dropdir.so; do
    syms=$(nm -D --defined-only "$so" | awk '{print $3}' | tr '\n' ' ')
    if [ "$syms" = "og_plugin_entry " ]; then ok
    else bad "$so exports: $syms"; fi
    if nm -D --undefined-only "$so" | grep -q -E ' og_| og__'; then
        bad "$so has undefined references to og_ symbols"
    else ok; fi
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
