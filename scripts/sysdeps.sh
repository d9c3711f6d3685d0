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
# The tiler's tests: gltf-validator and CesiumJS run under node, CesiumJS in headless Chromium; the tiler
# takes the EGM96 geoid grid (orthometric -> ellipsoidal heights) from proj-data.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
[ -x /usr/bin/chromium ] || [ -n "${CIM_CHROMIUM:-}" ] || missing+=(chromium)
[ -f /usr/share/proj/egm96_15.gtx ] || missing+=(proj-data)
# Live IoT: the project's own MQTT broker (not needed when CIM_MQTT_URL names one)
[ -n "${CIM_MQTT_URL:-}" ] || command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)

# Debian bookworm's own nodejs is 18; the JS tools' packages want 20+ (npm ci only warns about that).
warn_old_node() {
  local major
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  [ "$major" -ge 20 ] || echo "warning: node $(node --version 2>/dev/null) is older than 20, which cesium and playwright-core want" >&2
}

if [ ${#missing[@]} -eq 0 ]; then
  warn_old_node
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
  warn_old_node
  exit 0
fi

cat >&2 <<MSG
cim needs these system packages, which are missing: ${missing[*]}
  Debian/Ubuntu (as root):  apt-get install postgresql postgresql-postgis python3-venv nodejs npm chromium proj-data mosquitto
  Fedora/RHEL:              dnf install postgresql-server postgis python3 nodejs npm chromium mosquitto
  macOS (Homebrew):         brew install postgresql@16 postgis python node mosquitto && brew install --cask chromium
Or point cim at an existing PostgreSQL 13+ server with PostGIS 3: export CIM_DATABASE_URL=postgresql://user@host/db
and at an existing MQTT broker: export CIM_MQTT_URL=mqtt://host:1883 (see docs/iot.md for its settings).
The JS test tools want Node.js 20+ and Chromium (elsewhere than /usr/bin/chromium: export CIM_CHROMIUM=/path/to/it).
The tiler wants the EGM96 geoid grid egm96_15.gtx (Debian: proj-data) in the PROJ data directory; elsewhere put
https://cdn.proj.org/us_nga_egm96_15.tif there instead.
MSG
exit 1
