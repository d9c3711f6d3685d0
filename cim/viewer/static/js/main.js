// The viewer's start: the configuration from /viewer/config.json, a Cesium viewer with no ion and no internet, the
// ground, the tilesets, live states, and the click, search and tool wiring. `window.cim` exposes the pieces (for
// the console and the browser tests).
/* global Cesium */
import { apiKey, get, setApiKey } from './api.js';
import { h } from './dom.js';
import { baseMap, groundTerrain, Underground } from './ground.js';
import { Layers } from './layers.js';
import { Live } from './live.js';
import { LIVE_COLORS, Painter, ROLE_COLORS, ROLE_LABELS, SELECTED } from './paint.js';
import { Panel } from './panel.js';
import { Search } from './search.js';
import { Tools } from './tools.js';

Cesium.Ion.defaultAccessToken = '';
const errors = [];

function toast(message, isError = false) {
  const t = document.getElementById('toast');
  t.textContent = message;
  t.className = isError ? 'error' : '';
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, isError ? 6000 : 3000);
  if (isError) errors.push(message);
}

function createViewer(terrainProvider) {
  const viewer = new Cesium.Viewer('cesium', {
    baseLayer: false, // no internet imagery: the base map comes from the model (ground.js)
    terrainProvider,
    animation: false, timeline: false, geocoder: false, baseLayerPicker: false, homeButton: false,
    sceneModePicker: false, navigationHelpButton: false, fullscreenButton: false, infoBox: false,
    selectionIndicator: false, vrButton: false,
    requestRenderMode: true, // draw only when something changes: idle pages cost nothing
    maximumRenderTimeChange: Infinity,
    skyBox: false,
    skyAtmosphere: false,
    contextOptions: { webgl: { preserveDrawingBuffer: true } }, // screenshots of the canvas
  });
  const { scene } = viewer;
  scene.globe.baseColor = Cesium.Color.fromCssColorString('#cfd6c4');
  scene.globe.depthTestAgainstTerrain = true;
  scene.globe.showGroundAtmosphere = false;
  scene.fog.enabled = false;
  scene.backgroundColor = Cesium.Color.fromCssColorString('#dfe8ef');
  viewer.cesiumWidget.screenSpaceEventHandler.removeInputAction(Cesium.ScreenSpaceEventType.LEFT_DOUBLE_CLICK);
  return viewer;
}

/** The camera on a bounding sphere, looking down at `pitch` (radians). */
function look(viewer, lon, lat, height, radius, { pitch = -0.7, duration = 1.2 } = {}) {
  const sphere = new Cesium.BoundingSphere(Cesium.Cartesian3.fromDegrees(lon, lat, height), Math.max(radius, 5));
  return new Promise((resolve) => {
    viewer.camera.flyToBoundingSphere(sphere, {
      offset: new Cesium.HeadingPitchRange(0, pitch, Math.max(radius * 2.5, 40)),
      duration,
      complete: () => resolve(true),
      cancel: () => resolve(false),
    });
  });
}

function legend() {
  const items = [
    ['selected', SELECTED],
    ...Object.entries(ROLE_LABELS).map(([role, label]) => [label, ROLE_COLORS[role]]),
    ['alarm HH/LL', LIVE_COLORS[3]], ['alarm H/L/rate', LIVE_COLORS[2]], ['stale', LIVE_COLORS[1]],
    ['offline', LIVE_COLORS.offline], ['sensors OK', LIVE_COLORS.ok],
  ];
  document.getElementById('legend-list').replaceChildren(
    ...items.map(([label, color]) => h('li', {}, h('span', { class: 'swatch', style: `background:${color}` }), label)));
}

async function main() {
  const keyInput = document.getElementById('api-key');
  keyInput.value = apiKey();
  keyInput.addEventListener('change', () => setApiKey(keyInput.value.trim()));

  let config;
  try {
    config = await get('/viewer/config.json');
  } catch (err) {
    toast(`cannot start: ${err.message}`, true);
    if (err.status === 401) document.getElementById('key-box').open = true;
    throw err;
  }
  document.getElementById('model-name').textContent = config.model;
  document.title = `${config.model} · cim viewer`;

  const viewer = createViewer(await groundTerrain(config.ground));
  await baseMap(viewer, config.ground);
  const painter = new Painter(viewer.scene);
  const underground = new Underground(viewer);
  const layers = new Layers(viewer, painter, underground);
  await layers.load(config);
  for (const f of layers.failed) toast(`layer ${f}`, true);
  legend();

  const [west, south, east, north] = config.home.rectangle;
  const homeRect = Cesium.Rectangle.fromDegrees(west, south, east, north);
  const homeCentre = Cesium.Rectangle.center(homeRect);
  const homeRadius = Cesium.Cartesian3.distance(Cesium.Cartesian3.fromDegrees(west, south),
    Cesium.Cartesian3.fromDegrees(east, north)) / 2;
  const home = (duration = 1.2) => look(viewer, Cesium.Math.toDegrees(homeCentre.longitude),
    Cesium.Math.toDegrees(homeCentre.latitude), 0, homeRadius * 0.8, { pitch: -0.8, duration });
  await home(0);

  const undergroundBox = document.getElementById('underground');
  const SURFACE = ['buildings', 'landmarks', 'bim', 'roads', 'river'];
  let shownBefore = null; // the surface layers' show state before going underground
  const goUnderground = (on) => {
    undergroundBox.checked = on;
    underground.set(underground.opacity, on);
    // what stands or lies on the ground would hide the pipes again (and take the clicks meant for them)
    if (on && !shownBefore) {
      shownBefore = Object.fromEntries(SURFACE.map((id) => [id, layers.byId.get(id)?.tileset.show]));
      for (const id of SURFACE) layers.setShow(id, false);
    } else if (!on && shownBefore) {
      for (const id of SURFACE) layers.setShow(id, shownBefore[id] ?? true);
      shownBefore = null;
    }
  };
  undergroundBox.addEventListener('change', () => goUnderground(undergroundBox.checked));
  const buried = (collection) => {
    const info = config.layers.find((l) => l.id === collection);
    return !!info && (['pipes', 'nodes'].includes(info.family) || info.id === 'tunnels');
  };

  /** Fly to a search answer's bounding sphere; underground when the object is. */
  const flyToFound = (f, options = {}) => {
    if (buried(f.properties.collection)) goUnderground(true);
    const v = f.properties.view;
    return look(viewer, v.lon, v.lat, v.height, v.radius, options);
  };
  const flyTo = async (code, options = {}) => {
    const found = await get('/search/text', { q: code, limit: 1 });
    const f = found.features.find((x) => x.properties.code === code);
    if (!f) throw new Error(`${code}: not found`);
    return flyToFound(f, options);
  };

  const panel = new Panel({ onCode: (code) => select(code, { fly: true }), onClose: () => select(null), toast,
    writes: config.writes });
  const select = (code, { fly = false } = {}) => {
    painter.select(code);
    if (!code) {
      panel.close();
      return;
    }
    panel.show(code);
    if (fly) flyTo(code).catch((err) => toast(err.message, true));
  };

  const identify = (picked) => {
    if (picked?.id?.sensor) return { code: picked.id.sensor, info: { family: 'sensors' } };
    if (picked instanceof Cesium.Cesium3DTileFeature) {
      const code = picked.getProperty('code');
      return code ? { code, info: layers.of(picked.tileset) } : null;
    }
    return null;
  };
  /** The unified code of what is drawn at a window position (a tile feature or a sensor point); with `wanted`,
   *  the first such object down the line of sight (a sensor point may sit on the pipe asked for). */
  const pickCode = (position, wanted) => {
    if (!wanted) return identify(viewer.scene.pick(position));
    for (const picked of viewer.scene.drillPick(position, 8)) {
      const hit = identify(picked);
      if (hit && wanted(hit)) return hit;
    }
    return null;
  };

  const tools = new Tools({ viewer, painter, layers, pickCode, onCode: (code) => select(code, { fly: true }), toast,
    geoidHeight: config.geoid_height });
  const live = new Live(viewer, painter, config.geoid_height, (msg) => panel.update(msg));
  const search = new Search({ toast, onPick: (f) => {
    select(f.properties.code);
    flyToFound(f);
  } });

  const handler = new Cesium.ScreenSpaceEventHandler(viewer.scene.canvas);
  handler.setInputAction((e) => {
    if (tools.click(e.position)) return;
    const hit = pickCode(e.position);
    select(hit ? hit.code : null);
  }, Cesium.ScreenSpaceEventType.LEFT_CLICK);
  handler.setInputAction(() => tools.doubleClick(), Cesium.ScreenSpaceEventType.LEFT_DOUBLE_CLICK);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !e.target.matches('input:not([type=checkbox]):not([type=range]), textarea')) {
      select(null);
      tools.setTool('select');
    }
  });
  document.getElementById('home').addEventListener('click', () => home());

  try {
    await live.start();
  } catch (err) {
    toast(`live states: ${err.message}`, true);
  }

  window.cim = {
    config, viewer, painter, layers, live, tools, panel, search, errors,
    selected: () => painter.selected,
    highlighted: () => {
      const out = {};
      for (const [code, role] of painter.roles) (out[role] ||= []).push(code);
      return out;
    },
    tint: (code) => painter.tint(code),
    drawnColors: (code) => painter.drawnColors(code),
    settled: () => layers.settled() && (!viewer.scene.globe.show || viewer.scene.globe.tilesLoaded),
    /** Window coordinates of a point given in the API's terms (lon, lat, orthometric height). */
    screenOf: (lon, lat, height) => {
      const p = Cesium.SceneTransforms.worldToWindowCoordinates(viewer.scene,
        Cesium.Cartesian3.fromDegrees(lon, lat, height + config.geoid_height));
      return p ? { x: p.x, y: p.y } : null;
    },
    look: (lon, lat, height, radius, options) => look(viewer, lon, lat, height + config.geoid_height, radius, options),
    flyTo,
    select,
    home,
  };
}

window.cimReady = main();
