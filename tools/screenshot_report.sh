#!/usr/bin/env bash
# Takes a PNG screenshot of a `--report` HTML page with headless Chromium (Debian package `chromium`; not needed to
# build or test rackep: `apt-get install chromium`). The page loads nothing from the network, and Chromium is
# started with a throw-away profile and its background networking off.
# Usage: tools/screenshot_report.sh REPORT.html OUT.png [WIDTH HEIGHT]
#   e.g. build/rackep simulate --report /tmp/sim.html && tools/screenshot_report.sh /tmp/sim.html docs/report-simulate.png
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,6p' "$0" >&2
  exit 2
fi
page="$(realpath "$1")"
out="$(realpath -m "$2")"
width="${3:-940}"
height="${4:-1400}"
browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
  echo "screenshot_report.sh: chromium not found (Debian: apt-get install chromium)" >&2
  exit 1
fi
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$profile" --hide-scrollbars \
  --window-size="$width,$height" --screenshot="$out" "file://$page" 2>"$profile/chromium.log" || {
  cat "$profile/chromium.log" >&2
  exit 1
}
test -s "$out"
echo "wrote $out"
