#!/usr/bin/env bash
# Install the system packages cim needs when they are missing (Debian/Ubuntu as root), else say what to
# install. Safe to re-run: it does nothing when everything is there.
set -euo pipefail

missing=()
have_postgis() {
  compgen -G "/usr/share/postgresql/*/extension/postgis.control" >/dev/null &&
    compgen -G "/usr/lib/postgresql/*/lib/postgis-3.so" >/dev/null
}
have_pg_server() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null; }

have_pg_server || missing+=(postgresql)
have_postgis || missing+=(postgresql-postgis)
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's package starts a cluster of its own on 5432; cim runs its own, so stop that one.
  if command -v pg_ctlcluster >/dev/null; then
    for c in $(pg_lsclusters -h 2>/dev/null | awk '{print $1"/"$2}'); do
      pg_ctlcluster "${c%/*}" "${c#*/}" stop >/dev/null 2>&1 || true
    done
  fi
  exit 0
fi

cat >&2 <<MSG
cim needs these system packages, which are missing: ${missing[*]}
  Debian/Ubuntu (as root):  apt-get install postgresql postgresql-postgis python3-venv
  Fedora/RHEL:              dnf install postgresql-server postgis python3
  macOS (Homebrew):         brew install postgresql@16 postgis python
Or point cim at an existing PostgreSQL 13+ server with PostGIS 3: export CIM_DATABASE_URL=postgresql://user@host/db
MSG
exit 1
