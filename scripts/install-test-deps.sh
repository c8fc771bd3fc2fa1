#!/usr/bin/env bash
# Install the system packages the browser tests need: Chromium, its WebDriver, and Firefox ESR
# (driven through Marionette, which is built into Firefox: no geckodriver is needed).
# Safe to run repeatedly: it does nothing when every executable is already present.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver
FIREFOX=/usr/bin/firefox-esr

declare -A PACKAGE_OF=(
    ["$CHROMIUM"]=chromium
    ["$CHROMEDRIVER"]=chromium-driver
    ["$FIREFOX"]=firefox-esr
)

missing=()
for binary in "$CHROMIUM" "$CHROMEDRIVER" "$FIREFOX"; do
    if [[ ! -x "$binary" ]]; then
        echo "Missing: $binary"
        missing+=("${PACKAGE_OF[$binary]}")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "Chromium, chromedriver and Firefox ESR are already installed."
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

echo "Running: ${SUDO[*]:+${SUDO[*]} }apt-get update"
"${SUDO[@]}" apt-get update
echo "Running: ${SUDO[*]:+${SUDO[*]} }apt-get install -y ${missing[*]}"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"

for binary in "$CHROMIUM" "$CHROMEDRIVER" "$FIREFOX"; do
    if [[ ! -x "$binary" ]]; then
        echo "error: $binary is still missing after the install" >&2
        exit 1
    fi
done
echo "Installed: $("$CHROMIUM" --version 2>/dev/null || echo chromium)"
echo "Installed: $("$CHROMEDRIVER" --version 2>/dev/null || echo chromedriver)"
echo "Installed: $("$FIREFOX" --version 2>/dev/null || echo firefox-esr)"
