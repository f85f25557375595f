#!/usr/bin/env bash
# The screenshot of `evozero report` in README.md (docs/report.png): a tiny search, its
# HTML report, and headless Chromium's rendering of it (Debian: `apt-get install chromium`).
#   bash docs/report_screenshot.sh            # writes docs/report.png (about 30 s)
set -euo pipefail
cd "$(dirname "$0")/.."
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
  echo "needs a headless Chromium: apt-get install chromium" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
evozero evolve --suite tiny --budget 12 --seed 0 --out "$work/run" > /dev/null
evozero report "$work/run" -o "$work/report.html"
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,4200 \
  --screenshot="$PWD/docs/report.png" "file://$work/report.html" 2> /dev/null
echo "wrote docs/report.png"
