#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, only when missing.
# Usage: scripts/ensure-system-deps.sh COMMAND=PACKAGE ... PACKAGE ...
#   COMMAND=PACKAGE  installs PACKAGE when COMMAND is not on the PATH
#   PACKAGE          installs PACKAGE when dpkg does not list it (fonts, data)
set -euo pipefail
missing=()
for item in "$@"; do
  if [[ $item == *=* ]]; then
    cmd=${item%%=*}; pkg=${item#*=}
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
  else
    dpkg -s "$item" >/dev/null 2>&1 || missing+=("$item")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
echo "installing system packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
