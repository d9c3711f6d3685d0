// One Cesium 3D Tiles layer per tileset `cim tile` wrote, and the panel that shows, hides and fades them.
/* global Cesium */
import { headers } from './api.js';

export class Layers {
  constructor(viewer, painter, underground) {
    this.viewer = viewer;
    this.painter = painter;
    this.underground = underground;
    this.byId = new Map(); // layer id → {info, tileset}
    this.failed = [];
  }

  async load(config) {
    const list = document.getElementById('layer-list');
    list.replaceChildren();
    await Promise.all(config.layers.map(async (info) => {
      try {
        const resource = new Cesium.Resource({ url: info.url, headers: headers() });
        const tileset = await Cesium.Cesium3DTileset.fromUrl(resource, {
          // pipes and nodes are thin: refine them sooner, or a street's pipes thin out a hundred metres away
          maximumScreenSpaceError: ['pipes', 'nodes'].includes(info.family) ? 2 : 8,
          show: info.show,
        });
        tileset.cimLayer = info;
        this.painter.watch(tileset);
        this.viewer.scene.primitives.add(tileset);
        this.byId.set(info.id, { info, tileset });
      } catch (err) {
        this.failed.push(`${info.id}: ${err.message || err}`);
      }
    }));
    for (const info of config.layers) {
      const entry = this.byId.get(info.id);
      if (entry) list.append(this.row(info, entry.tileset));
    }
    this.groundRow(config.ground);
  }

  row(info, tileset) {
    const li = document.createElement('li');
    li.dataset.layer = info.id;
    const box = Object.assign(document.createElement('input'), { type: 'checkbox', checked: tileset.show });
    box.setAttribute('aria-label', `show ${info.title}`);
    box.addEventListener('change', () => {
      tileset.show = box.checked;
      this.viewer.scene.requestRender();
    });
    const label = document.createElement('span');
    label.textContent = info.title;
    if (info.count != null) {
      const n = document.createElement('small');
      n.textContent = ` ${info.count.toLocaleString()}`;
      label.append(n);
    }
    const range = Object.assign(document.createElement('input'), { type: 'range', min: 0, max: 100, value: 100 });
    range.setAttribute('aria-label', `opacity of ${info.title}`);
    range.addEventListener('input', () => this.painter.setOpacity(tileset, range.value / 100));
    li.append(box, label, range);
    return li;
  }

  groundRow(ground) {
    const row = document.getElementById('ground-row');
    row.replaceChildren();
    const div = document.createElement('div');
    div.dataset.layer = 'ground';
    const box = Object.assign(document.createElement('input'), { type: 'checkbox', checked: true });
    box.setAttribute('aria-label', 'show the ground');
    const label = document.createElement('span');
    label.innerHTML = ground ? 'Ground <small>DEM + base map</small>' : 'Ground <small>(no DEM: flat)</small>';
    const range = Object.assign(document.createElement('input'), { type: 'range', min: 0, max: 100, value: 100 });
    range.setAttribute('aria-label', 'opacity of the ground');
    const update = () => this.underground.set(box.checked ? range.value / 100 : 0);
    box.addEventListener('change', update);
    range.addEventListener('input', update);
    div.append(box, label, range);
    row.append(div);
  }

  tilesets() {
    return [...this.byId.values()].map((e) => e.tileset);
  }

  /** The layer entry drawing a tileset (for a picked feature). */
  of(tileset) {
    return tileset?.cimLayer;
  }

  setShow(id, show) {
    const entry = this.byId.get(id);
    if (!entry) return;
    entry.tileset.show = show;
    const box = document.querySelector(`#layer-list li[data-layer="${id}"] input[type=checkbox]`);
    if (box) box.checked = show;
    this.viewer.scene.requestRender();
  }

  /** Whether every shown tileset has loaded what the view needs. */
  settled() {
    return this.tilesets().every((t) => !t.show || t.tilesLoaded);
  }
}
