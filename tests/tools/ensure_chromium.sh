#!/bin/sh
# Make Debian's chromium available for the report-rendering test (tests/pipeline/test_report_html.py).
# Idempotent: does nothing when /usr/bin/chromium exists; installs only as root with apt-get;
# otherwise prints why and exits 0 (the test then skips with that reason).
set -e
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_chromium: /usr/bin/chromium missing and not root with apt-get; report render test will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; }; then
  echo "ensure_chromium: apt-get could not install chromium; report render test will skip" >&2
  exit 0
fi
echo "ensure_chromium: installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
