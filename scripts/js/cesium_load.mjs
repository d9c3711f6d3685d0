#!/usr/bin/env node
// Load a 3D Tiles tileset in CesiumJS in headless Chromium and say whether it loaded cleanly.
//
//   node scripts/js/cesium_load.mjs --root DIR --tileset REL/PATH/tileset.json --screenshot OUT.png
//        [--timeout 120] [--all-tiles] [--globe] [--width 1280] [--height 960]
//
// A static HTTP server on 127.0.0.1 serves DIR under /tiles/ and node_modules/cesium/Build/Cesium under
// /cesium/, and a generated page creates a Cesium.Viewer with no imagery, no Ion (empty token), an
// ellipsoid terrain and every widget off, loads /tiles/REL/PATH/tileset.json, zooms to it and waits until
// every tile the view asks for has loaded (tileset.tilesLoaded held for a while once the camera settled).
// By default Cesium only loads what the view needs at maximumScreenSpaceError 16, so an external tileset
// or a finer level may never be requested; --all-tiles lowers maximumScreenSpaceError to 0.5 (and lifts
// the cache limit) so that every tile in view, down to the leaves, is loaded.
// The globe and the sky are hidden unless --globe is given: on SwiftShader they make every frame ~8x slower.
//
// Prints ONE JSON object on stdout:
//   {"ok", "tilesLoaded" (tileLoad events), "loadedByType" ({".glb": n, ".json": n, ...}), "tileFailed",
//    "pageErrors", "consoleErrors", "failedRequests", "externalRequests", "boundingSphere": {"center",
//    "radius"}, "cartographic": {"lon", "lat", "height"}, "statistics", "timedOut", "error",
//    "screenshot", "seconds": {"launch", "load", "total"}}
// and exits 1 when not ok (2 on a usage error). Any request leaving 127.0.0.1 is blocked and counted.
//
// Chromium: /usr/bin/chromium (Debian's package) unless CIM_CHROMIUM names another binary. WebGL 2 runs
// on SwiftShader (--use-angle=swiftshader --enable-unsafe-swiftshader), there is no GPU.
import { createRequire } from 'node:module';
import { createReadStream } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { CHROMIUM_ARGS, playwrightChromium } from './chromium.mjs';

const t0 = performance.now();
const require = createRequire(import.meta.url);

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.geojson': 'application/geo+json',
  '.wasm': 'application/wasm',
  '.glb': 'model/gltf-binary',
  '.gltf': 'model/gltf+json',
  '.b3dm': 'application/octet-stream',
  '.i3dm': 'application/octet-stream',
  '.pnts': 'application/octet-stream',
  '.cmpt': 'application/octet-stream',
  '.subtree': 'application/octet-stream',
  '.bin': 'application/octet-stream',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.ktx2': 'image/ktx2',
  '.svg': 'image/svg+xml',
  '.xml': 'application/xml',
  '.txt': 'text/plain; charset=utf-8',
};

function usage(msg) {
  process.stderr.write(`cesium_load: ${msg}\n` +
    'usage: node scripts/js/cesium_load.mjs --root DIR --tileset REL/PATH/tileset.json --screenshot OUT.png ' +
    '[--timeout 120] [--all-tiles] [--globe] [--width 1280] [--height 960]\n');
  process.exit(2);
}

function options() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        root: { type: 'string' },
        tileset: { type: 'string' },
        screenshot: { type: 'string' },
        timeout: { type: 'string', default: '120' },
        'all-tiles': { type: 'boolean', default: false },
        globe: { type: 'boolean', default: false },
        width: { type: 'string', default: '1280' },
        height: { type: 'string', default: '960' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    usage(err.message);
  }
  if (values.help) usage('help');
  for (const k of ['root', 'tileset', 'screenshot']) if (!values[k]) usage(`--${k} is required`);
  const timeout = Number(values.timeout);
  const width = Number(values.width);
  const height = Number(values.height);
  if (!(timeout > 0)) usage('--timeout must be a positive number of seconds');
  if (!(width >= 1024 && height >= 768)) usage('--width/--height must be at least 1024x768');
  return {
    root: path.resolve(values.root),
    tileset: values.tileset.replace(/^\/+/, ''),
    screenshot: path.resolve(values.screenshot),
    timeoutMs: timeout * 1000,
    allTiles: values['all-tiles'],
    globe: values.globe,
    width,
    height,
  };
}

function cesiumBuildDir() {
  try {
    return path.join(path.dirname(require.resolve('cesium/package.json')), 'Build', 'Cesium');
  } catch {
    throw new Error('node_modules/cesium is missing: run `make setup` (npm ci) at the repository root');
  }
}

function pageHtml(config) {
  const cfg = JSON.stringify(config).replace(/</g, '\\u003c');
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>cim tileset check</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/cesium/Widgets/widgets.css">
<style>html,body,#c{width:100%;height:100%;margin:0;padding:0;overflow:hidden;background:#000}</style>
<script>window.CESIUM_BASE_URL = '/cesium/';</script>
<script src="/cesium/Cesium.js"></script>
</head><body><div id="c"></div>
<script>
const CFG = ${cfg};
const S = window.__cim = {
  done: false, phase: 'start', error: null, tileLoads: 0, loadedByType: {}, tileFailed: [],
  allTilesLoadedEvents: 0, initialTilesLoaded: false, frames: 0,
  boundingSphere: null, cartographic: null, statistics: null, t: {},
};
function phase(name) { S.phase = name; S.t[name] = +(performance.now() / 1000).toFixed(2); }
function nextFrame(scene) {
  return new Promise((resolve) => {
    const remove = scene.postRender.addEventListener(() => { remove(); resolve(); });
  });
}
function ext(url) {
  const p = String(url || '').split(/[?#]/)[0];
  const i = p.lastIndexOf('.');
  return i > p.lastIndexOf('/') ? p.slice(i).toLowerCase() : '(none)';
}
(async () => {
  phase('viewer');
  Cesium.Ion.defaultAccessToken = '';
  // Everything comes from one local server: let more requests be in flight than a browser would allow a
  // remote host (18), so a tileset of thousands of tiles does not load 18 at a time.
  Cesium.RequestScheduler.maximumRequestsPerServer = 64;
  Cesium.RequestScheduler.maximumRequests = 128;
  const viewer = new Cesium.Viewer('c', {
    baseLayer: false, baseLayerPicker: false, imageryProviderViewModels: [], terrainProviderViewModels: [],
    terrainProvider: new Cesium.EllipsoidTerrainProvider(),
    geocoder: false, homeButton: false, sceneModePicker: false, navigationHelpButton: false,
    animation: false, timeline: false, fullscreenButton: false, vrButton: false, infoBox: false,
    selectionIndicator: false, projectionPicker: false,
    requestRenderMode: false, msaaSamples: 1,
    contextOptions: { webgl: { preserveDrawingBuffer: true } },
  });
  const scene = viewer.scene;
  if (!CFG.globe) {
    // On SwiftShader the globe and the sky cost ~90% of a frame (~40 ms a frame without them, 300-500 ms
    // with them at 1280x960), and tiles are requested and processed frame by frame.
    scene.globe.show = false;
    scene.skyAtmosphere.show = false;
    scene.skyBox.show = false;
    scene.sun.show = false;
    scene.moon.show = false;
    scene.backgroundColor = Cesium.Color.fromCssColorString('#3b4252');
  }
  window.__viewer = viewer;
  scene.postRender.addEventListener(() => { S.frames++; });
  S.webgl2 = scene.context.webgl2;
  phase('fromUrl');
  const opts = CFG.allTiles
    ? { maximumScreenSpaceError: 0.5, cacheBytes: 4 * 1024 ** 3, maximumCacheOverflowBytes: 4 * 1024 ** 3 }
    : {};
  const tileset = await Cesium.Cesium3DTileset.fromUrl(CFG.url, opts);
  window.__tileset = tileset;
  tileset.tileLoad.addEventListener((tile) => {
    S.tileLoads++;
    const k = ext(tile.content && tile.content.url);
    S.loadedByType[k] = (S.loadedByType[k] || 0) + 1;
  });
  tileset.tileFailed.addEventListener((e) => { S.tileFailed.push({ url: e.url, message: e.message }); });
  tileset.allTilesLoaded.addEventListener(() => { S.allTilesLoadedEvents++; });
  tileset.initialTilesLoaded.addEventListener(() => { S.initialTilesLoaded = true; });
  scene.primitives.add(tileset);

  phase('zoom');
  const bs = tileset.boundingSphere;
  S.boundingSphere = { center: [bs.center.x, bs.center.y, bs.center.z], radius: bs.radius };
  const c = Cesium.Cartographic.fromCartesian(bs.center);
  S.cartographic = c
    ? { lon: Cesium.Math.toDegrees(c.longitude), lat: Cesium.Math.toDegrees(c.latitude), height: c.height }
    : null;
  // Range 0: Cesium picks the distance at which the whole bounding sphere is in view.
  await viewer.zoomTo(tileset, new Cesium.HeadingPitchRange(Cesium.Math.toRadians(20), Cesium.Math.toRadians(-35), 0));

  // The camera has arrived. tilesLoaded is also true *before* the first request of a new view goes out
  // (and for a frame between an external tileset's json and the tiles it leads to), so require it to hold
  // over a run of frames and some wall time after the camera stopped moving, and initialTilesLoaded to
  // have fired (it does not when there was nothing to load: then give up waiting for it after 3 s).
  phase('loading');
  const settleFrames = 10, settleMs = 750, noEventMs = 3000;
  let stableSince = null, stableFrames = 0;
  for (;;) {
    await nextFrame(scene);
    if (tileset.tilesLoaded) {
      stableFrames++;
      stableSince ??= performance.now();
      const held = performance.now() - stableSince;
      if (stableFrames >= settleFrames && held >= settleMs && (S.initialTilesLoaded || held >= noEventMs)) break;
    } else {
      stableFrames = 0;
      stableSince = null;
    }
  }
  const st = tileset.statistics || tileset._statistics || {};
  S.statistics = {
    visited: st.visited, selected: st.selected, numberOfTilesWithContentReady: st.numberOfTilesWithContentReady,
    numberOfLoadedTilesTotal: st.numberOfLoadedTilesTotal, geometryByteLength: st.geometryByteLength,
    texturesByteLength: st.texturesByteLength, maximumScreenSpaceError: tileset.maximumScreenSpaceError,
  };
  phase('loaded');
  S.done = true;
})().catch((err) => {
  S.error = String((err && (err.stack || err.message)) || err);
  S.done = true;
});
</script></body></html>`;
}

function startServer(tilesRoot, cesiumRoot, html, serverErrors) {
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    let pathname;
    try {
      pathname = decodeURIComponent(url.pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    if (pathname === '/' || pathname === '/index.html') {
      res.writeHead(200, { 'Content-Type': MIME['.html'], 'Cache-Control': 'no-store' });
      res.end(html);
      return;
    }
    let base, rel;
    if (pathname.startsWith('/tiles/')) [base, rel] = [tilesRoot, pathname.slice('/tiles/'.length)];
    else if (pathname.startsWith('/cesium/')) [base, rel] = [cesiumRoot, pathname.slice('/cesium/'.length)];
    const file = base && path.resolve(base, rel);
    if (!file || (file !== base && !file.startsWith(base + path.sep))) {
      res.writeHead(404).end();
      return;
    }
    let st;
    try {
      st = await stat(file);
    } catch {
      st = null;
    }
    if (!st || !st.isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {
      'Content-Type': MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
      'Content-Length': st.size,
      'Cache-Control': 'no-store',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    createReadStream(file)
      .on('error', (err) => { serverErrors.push(`${pathname}: ${err.message}`); res.destroy(err); })
      .pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

async function main() {
  const opt = options();
  const result = {
    ok: false, tilesLoaded: 0, loadedByType: {}, tileFailed: [], pageErrors: [], consoleErrors: [],
    failedRequests: [], externalRequests: [], boundingSphere: null, cartographic: null, statistics: null,
    timedOut: false, error: null, screenshot: null, seconds: {},
  };
  const rootStat = await stat(opt.root).catch(() => null);
  if (!rootStat?.isDirectory()) usage(`--root ${opt.root} is not a directory`);
  const tilesetFile = path.resolve(opt.root, opt.tileset);
  if (!(await stat(tilesetFile).catch(() => null))?.isFile()) usage(`no tileset at ${tilesetFile}`);

  const cesiumRoot = cesiumBuildDir();
  const { chromium, executablePath } = await playwrightChromium();

  const url = '/tiles/' + opt.tileset.split('/').map(encodeURIComponent).join('/');
  const serverErrors = [];
  const server = await startServer(opt.root, cesiumRoot, pageHtml({ url, allTiles: opt.allTiles, globe: opt.globe }), serverErrors);
  const origin = `http://127.0.0.1:${server.address().port}`;
  const deadline = performance.now() + opt.timeoutMs;

  let browser;
  try {
    browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
    const page = await browser.newPage({ viewport: { width: opt.width, height: opt.height }, deviceScaleFactor: 1 });
    result.seconds.launch = +((performance.now() - t0) / 1000).toFixed(2);

    await page.route('**/*', (route) => {
      const u = route.request().url();
      if (u.startsWith(origin + '/') || u.startsWith('data:') || u.startsWith('blob:')) return route.continue();
      result.externalRequests.push(u);
      return route.abort('blockedbyclient');
    });
    page.on('pageerror', (err) => result.pageErrors.push(String(err?.stack || err)));
    page.on('console', (msg) => {
      if (msg.type() === 'error') {
        const loc = msg.location();
        result.consoleErrors.push(loc?.url ? `${msg.text()} (${loc.url}:${loc.lineNumber})` : msg.text());
      }
    });
    page.on('requestfailed', (req) => {
      if (result.externalRequests.includes(req.url())) return; // counted there already
      result.failedRequests.push({ url: req.url(), status: null, error: req.failure()?.errorText ?? 'failed' });
    });
    page.on('response', (res) => {
      if (res.status() >= 400) result.failedRequests.push({ url: res.url(), status: res.status(), error: res.statusText() });
    });

    const tLoad = performance.now();
    await page.goto(origin + '/index.html', { waitUntil: 'load', timeout: Math.max(1000, deadline - performance.now()) });
    try {
      await page.waitForFunction(() => window.__cim && window.__cim.done, null, {
        timeout: Math.max(1000, deadline - performance.now()),
        polling: 200,
      });
    } catch (err) {
      if (err?.name !== 'TimeoutError') throw err;
      result.timedOut = true;
    }
    result.seconds.load = +((performance.now() - tLoad) / 1000).toFixed(2);
    const state = await page.evaluate(() => window.__cim);
    Object.assign(result, {
      tilesLoaded: state.tileLoads,
      loadedByType: state.loadedByType,
      tileFailed: state.tileFailed,
      boundingSphere: state.boundingSphere,
      cartographic: state.cartographic,
      statistics: state.statistics,
      webgl2: state.webgl2,
      frames: state.frames,
      allTilesLoadedEvents: state.allTilesLoadedEvents,
      initialTilesLoaded: state.initialTilesLoaded,
      phase: state.phase,
      pageSeconds: state.t,
    });
    if (state.error) result.error = state.error;
    else if (result.timedOut) result.error = `timed out after ${opt.timeoutMs / 1000} s in phase ${state.phase}`;

    await mkdir(path.dirname(opt.screenshot), { recursive: true });
    await page.screenshot({ path: opt.screenshot, timeout: 60_000 });
    result.screenshot = opt.screenshot;
  } catch (err) {
    result.error = String(err?.stack || err);
  } finally {
    if (browser) await browser.close().catch(() => {});
    server.close();
  }
  for (const e of serverErrors) result.failedRequests.push({ url: e, status: null, error: 'server' });
  result.ok = !result.error && !result.timedOut && result.tilesLoaded > 0 && result.tileFailed.length === 0 &&
    result.pageErrors.length === 0 && result.consoleErrors.length === 0 && result.failedRequests.length === 0 &&
    result.externalRequests.length === 0 && result.screenshot !== null;
  result.seconds.total = +((performance.now() - t0) / 1000).toFixed(2);
  process.stdout.write(JSON.stringify(result) + '\n');
  return result.ok ? 0 : 1;
}

main().then(
  (code) => { process.exitCode = code; },
  (err) => {
    process.stdout.write(JSON.stringify({ ok: false, error: String(err?.message ?? err) }) + '\n');
    process.exitCode = 1;
  },
);
