#!/bin/sh
# Serve the pixel at http://localhost:8080/pixel under lighttpd, in the
# foreground, with the shipped configuration (lighttpd/50-trackpixel.conf) and
# the embedded default: no cluster, documents go to demo/events.ndjson.
# Ctrl-C stops it.  Run it from the build directory after `make`:
#
#     lighttpd/demo.sh
#
# Only the paths of the shipped file are changed (the program, lighttpd's
# socket, the configuration file); everything else is what
# /etc/lighttpd/conf-available/50-trackpixel.conf would say.  The
# configuration file, demo/trackpixel.conf, names the output file and the
# spool directory.
#
# Environment: TRACKPIXEL_DEMO_PORT (8080), TRACKPIXEL_DEMO_DIR (./demo),
# TRACKPIXEL_BIN (./src/trackpixel).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
conf=$here/50-trackpixel.conf
port=${TRACKPIXEL_DEMO_PORT:-8080}
dir=${TRACKPIXEL_DEMO_DIR:-$(pwd)/demo}
bin=${TRACKPIXEL_BIN:-$(pwd)/src/trackpixel}

case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
if [ ! -x "$bin" ] || [ "$(basename "$bin")" != trackpixel ]; then
    echo "demo.sh: no program at $bin (run make first, or set TRACKPIXEL_BIN)" >&2
    exit 1
fi
command -v lighttpd >/dev/null 2>&1 || { echo "demo.sh: lighttpd is not installed" >&2; exit 1; }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
case $dir in *'#'*|*'"'*|*' '*)
    echo "demo.sh: $dir: choose a directory without spaces, quotes or #" >&2; exit 1 ;;
esac

# As root, lighttpd drops to www-data (as Debian's does): it must be able to
# reach the program and write the demo directory.
user=
if [ "$(id -u)" = 0 ] && id www-data >/dev/null 2>&1; then
    user=www-data
    chown www-data:www-data "$dir"
fi

# trackpixel's configuration file: readable by the worker's user, writable
# by its owner only (trackpixel refuses it otherwise).
rm -f "$dir/trackpixel.conf"
# The spool (the workers' statistics for /pixel/_metrics) stays in the demo's
# directory too.
(umask 077 && printf 'TRACKPIXEL_OUTPUT=%s\nTRACKPIXEL_SPOOL_DIR=%s\n' \
    "$dir/events.ndjson" "$dir/spool" > "$dir/trackpixel.conf")
if [ -n "$user" ]; then
    chgrp "$user" "$dir/trackpixel.conf"
    chmod 0640 "$dir/trackpixel.conf"
fi

sed -e "s#/usr/local/sbin#$(dirname "$bin")#g" \
    -e "s#/run/lighttpd/trackpixel.socket#$dir/trackpixel.socket#" \
    -e "s#/etc/trackpixel/trackpixel.conf#$dir/trackpixel.conf#" \
    "$conf" > "$dir/50-trackpixel.conf"

{
    echo "server.document-root = \"$dir\""
    echo "server.bind = \"localhost\""
    echo "server.port = $port"
    echo "server.modules += ( \"mod_fastcgi\" )"
    if [ -n "$user" ]; then
        echo "server.username = \"$user\""
        echo "server.groupname = \"$user\""
    fi
    echo "include \"$dir/50-trackpixel.conf\""
} > "$dir/lighttpd.conf"

echo "demo.sh: http://localhost:$port/pixel - documents go to $dir/events.ndjson - Ctrl-C stops" >&2
exec lighttpd -D -f "$dir/lighttpd.conf"
