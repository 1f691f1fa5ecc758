#!/usr/bin/env bash
# Install the Debian packages the voice tests use, if any is missing:
#   espeak-ng  - speaks test sentences (and is the last-resort offline TTS voice)
#   sox        - pads/converts the spoken WAVs
#   chromium, chromium-driver - headless browser that feeds a WAV as the microphone
# Idempotent and fast when everything is present (no apt call at all). Skips with a
# message, exit 0, when not root or when apt-get is not there: the tests that need
# these binaries then skip with a reason instead of failing.
set -euo pipefail

PACKAGES=(espeak-ng sox chromium chromium-driver)

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for pkg in "${PACKAGES[@]}"; do
    installed "$pkg" || missing+=("$pkg")
  done
else
  missing=("${PACKAGES[@]}")
fi

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: no apt-get here; install these yourself for the voice tests: ${missing[*]}" >&2
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: not root; run: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# Another process (a colleague's script, unattended-upgrades) may hold the dpkg lock: wait for it.
APT=(apt-get -o DPkg::Lock::Timeout=300 -qq)

# Refresh the package lists only when they cannot serve the install: none downloaded yet,
# or a package has no install candidate. A stale list that 404s gets one refresh and a retry.
needs_update=false
if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
  needs_update=true
else
  for pkg in "${missing[@]}"; do
    if ! apt-cache policy "$pkg" 2>/dev/null | grep -q "Candidate: [^(]"; then
      needs_update=true
      break
    fi
  done
fi

echo "system-deps: installing ${missing[*]}" >&2
if [ "$needs_update" = true ]; then
  "${APT[@]}" update
fi
if ! "${APT[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null; then
  if [ "$needs_update" = true ]; then
    exit 1
  fi
  echo "system-deps: install failed; refreshing package lists and retrying once" >&2
  "${APT[@]}" update
  "${APT[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "system-deps: done" >&2
