# cim — the two commands of the README are `make demo` and `make test`; everything else hangs off them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CIM    := $(BIN)/cim
SAMPLE := sample_data/build
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test setup sysdeps venv sample import-sample tiles serve db-up db-down broker-up broker-down lint bench-import bench-ifc bench-pipes bench-tiles bench-scale bench-api bench-iot clean

demo: setup db-up sample import-sample tiles  ## set everything up, import the sample district, build its tiles, serve the API with live sensors
	@$(CIM) info
	@$(MAKE) --no-print-directory serve

test: setup  ## the whole test suite against a real local PostGIS
	$(BIN)/pytest -q

setup: sysdeps venv js

sysdeps:
	@bash scripts/sysdeps.sh

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

.PHONY: js
js: node_modules/.package-lock.json  ## the tiler tests' JS tools (gltf-validator, CesiumJS, playwright-core)

node_modules/.package-lock.json: package-lock.json | sysdeps
	npm ci --no-audit --no-fund
	@touch $@

db-up: setup
	@$(CIM) db up
	@$(CIM) db init --crs EPSG:4547

db-down:
	@$(CIM) db down

broker-up: setup
	@$(CIM) iot broker up

broker-down:
	@$(CIM) iot broker down

sample: setup  ## generate the synthetic district (deterministic) into sample_data/build/
	@$(CIM) sample generate --out $(SAMPLE)

import-sample:
	@$(CIM) import dem $(SAMPLE)/dem.tif
	@$(CIM) import gis $(SAMPLE)/district.gpkg --layer buildings
	@$(CIM) import gis $(SAMPLE)/district.gpkg --layer roads
	@$(CIM) import gis $(SAMPLE)/district.gpkg --layer river
	@$(CIM) import cityjson $(SAMPLE)/landmarks.city.json --layer landmarks
	@$(CIM) import ifc $(SAMPLE)/bim.ifc
	@for n in water drainage gas; do $(CIM) import pipes $(SAMPLE)/pipes.gpkg --network $$n || exit 1; done
	@$(CIM) import cityjson $(SAMPLE)/utility_tunnel.city.json --layer tunnels
	@$(CIM) import sensors $(SAMPLE)/sensors.geojson

tiles:  ## 3D Tiles of every layer of the model into tiles/ (only the tiles whose objects changed)
	@$(CIM) tile --out tiles

serve:  ## the API (OGC API - Features, 3D queries, analyses, IoT, /tiles) with the broker, ingester and simulator, until Ctrl-C
	@$(CIM) serve --live

lint: setup
	$(BIN)/ruff check cim tests bench scripts

bench-import: setup db-up  ## 100,000 synthetic footprints: buildings/s and peak memory
	$(BIN)/python bench/bench_import.py

bench-ifc: setup db-up  ## IFC import of a 1,000+ element building against a bare ifcopenshell iterator pass
	$(BIN)/python bench/bench_ifc.py

bench-pipes: setup db-up  ## valve segments of a 16,000-pipe network beside WNTR, and isolation query latency
	$(BIN)/python bench/bench_pipes.py

bench-tiles: setup db-up  ## 100,000 LOD1 buildings from PostGIS to 3D Tiles, beside py3dtiles' PostGIS export
	$(BIN)/python bench/bench_tiles.py

bench-scale: setup db-up  ## 1,000,000 synthetic buildings tiled on a Dask cluster of 1, 2 and 4 workers: scaling, s per million
	$(BIN)/python bench/bench_scale.py

bench-api: setup db-up  ## items?bbox=…&limit=100 under 20 connections (wrk): requests/s, p50/p99, beside tipg 1.6.1
	$(BIN)/python bench/bench_api.py

bench-iot: setup db-up  ## MQTT → database beside the raw broker rate, HTTP batch ingest, publish → WebSocket latency p95
	$(BIN)/python bench/bench_iot.py

clean:
	rm -rf $(SAMPLE) bench/results
