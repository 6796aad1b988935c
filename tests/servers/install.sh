#!/usr/bin/env bash
# Install the database servers the sink tests run against (Debian packages).
# Nothing is started here: the tests start each server on loopback in a
# temporary directory and stop it afterwards.
set -euo pipefail
need=()
command -v influxd >/dev/null 2>&1 || need+=(influxdb)
command -v victoria-metrics >/dev/null 2>&1 || need+=(victoria-metrics)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# the TLS tests of the sink make a self-signed certificate with it
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# the run registry tests (MariaDB/MySQL, what the collaboration's run catalogue runs on)
{ [ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null 2>&1; } || need+=(mariadb-server)
# ... and PostgreSQL (the server binaries live in /usr/lib/postgresql/<major>/bin)
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "tests/servers/install.sh: need root to install ${need[*]} (apt-get)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# The packages' own service start is not wanted (no init system here, and the
# tests use their own data directories and ports).
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
