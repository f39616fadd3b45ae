#!/bin/sh
# Make Debian's strace available for the SIGKILL-at-commit crash tests (tests/reliability/test_crash_safety.py).
# Idempotent: does nothing when strace exists; installs only as root with apt-get; otherwise prints why and
# exits 0 (those tests then skip with that reason).
set -e
if command -v strace >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_strace: strace missing and not root with apt-get; the crash-at-commit tests will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends strace >/dev/null; }; then
  echo "ensure_strace: apt-get could not install strace; the crash-at-commit tests will skip" >&2
  exit 0
fi
echo "ensure_strace: installed $(strace -V 2>/dev/null | head -1)"
