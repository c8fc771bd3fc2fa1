#!/usr/bin/env bash
# Install the system packages the browser tests need: Chromium and its WebDriver.
# Safe to run repeatedly: it does nothing when both executables are already present.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver

if [[ -x "$CHROMIUM" && -x "$CHROMEDRIVER" ]]; then
    echo "Chromium ($CHROMIUM) and chromedriver ($CHROMEDRIVER) are already installed."
    exit 0
fi

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "error: installing packages needs root, and sudo is not available" >&2
        exit 1
    fi
fi

[[ -x "$CHROMIUM" ]] || echo "Missing: $CHROMIUM"
[[ -x "$CHROMEDRIVER" ]] || echo "Missing: $CHROMEDRIVER"
echo "Running: ${SUDO[*]:+${SUDO[*]} }apt-get update"
"${SUDO[@]}" apt-get update
echo "Running: ${SUDO[*]:+${SUDO[*]} }apt-get install -y chromium chromium-driver"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver

for binary in "$CHROMIUM" "$CHROMEDRIVER"; do
    if [[ ! -x "$binary" ]]; then
        echo "error: $binary is still missing after the install" >&2
        exit 1
    fi
done
echo "Installed: $("$CHROMIUM" --version 2>/dev/null || echo chromium)"
echo "Installed: $("$CHROMEDRIVER" --version 2>/dev/null || echo chromedriver)"
