// The colour of every drawn feature, by unified code: the selection, then an analysis's highlight, then the worst
// live state of the object's sensors; a layer's opacity on top. Tiles come and go as the camera moves, so the
// features are registered as their tiles load and forgotten as they unload.
/* global Cesium */

export const ROLE_COLORS = {
  target: '#ff00ff',
  valve_to_close: '#e6194b',
  valve_failed: '#000000',
  valve_closed: '#808080',
  isolated_pipe: '#f58231',
  isolated_node: '#f58231',
  cut_off_pipe: '#ffe119',
  cut_off_node: '#ffe119',
  affected_building: '#911eb4',
  hit: '#e6194b',
  too_close: '#f58231',
  crossed: '#00b8d9',
};

export const ROLE_LABELS = {
  target: 'burst pipe', valve_to_close: 'valve to close', valve_failed: 'valve failing to close',
  valve_closed: 'valve already closed', isolated_pipe: 'isolated pipe / node', cut_off_pipe: 'cut off downstream',
  affected_building: 'building without supply', hit: 'pipe hit by the pit', too_close: 'pipe within the margin',
  crossed: 'pipe on the cut line',
};

// live severity (3 HH/LL, 2 H/L/rate, 1 stale), or the status when no alarm is open
export const LIVE_COLORS = { 3: '#d7191c', 2: '#fd8d3c', 1: '#9e9ac8', offline: '#7f7f7f', ok: '#66bd63' };
export const SELECTED = '#ffd700';

/** The colour of a live state {status, severity} (a sensor's, or the worst of an object's sensors), or null. */
export function liveColor(state) {
  if (!state) return null;
  if (state.severity > 0) return LIVE_COLORS[Math.min(state.severity, 3)];
  if (state.status === 'offline') return LIVE_COLORS.offline;
  if (state.status === 'ok' || state.status === 'alarm') return LIVE_COLORS.ok;
  return null;
}

const css = (c) => Cesium.Color.fromCssColorString(c);

export class Painter {
  constructor(scene) {
    this.scene = scene;
    this.features = new Map(); // code → Set of Cesium3DTileFeature
    this.live = new Map(); // object code → {status, severity}
    this.roles = new Map(); // code → highlight role
    this.opacity = new Map(); // tileset → alpha
    this.selected = null;
    this.colorCache = new Map();
  }

  color(name) {
    if (!this.colorCache.has(name)) this.colorCache.set(name, css(name));
    return this.colorCache.get(name);
  }

  /** The CSS colour a code is drawn in, or null (its own colours). */
  tint(code) {
    if (code === this.selected) return SELECTED;
    const role = this.roles.get(code);
    if (role) return ROLE_COLORS[role];
    return liveColor(this.live.get(code));
  }

  apply(feature, code) {
    const tint = this.tint(code);
    // what is selected or highlighted shows whole even in a faded layer
    const alpha = code === this.selected || this.roles.has(code) ? 1 : this.opacity.get(feature.tileset) ?? 1;
    const c = tint ? this.color(tint).withAlpha(alpha) : Cesium.Color.WHITE.withAlpha(alpha);
    feature.color = c;
  }

  watch(tileset) {
    // MIX keeps a feature's own colours where its colour is white and tints it strongly elsewhere
    tileset.colorBlendMode = Cesium.Cesium3DTileColorBlendMode.MIX;
    tileset.colorBlendAmount = 0.9;
    tileset.tileLoad.addEventListener((tile) => this.eachFeature(tile.content, (f, code) => {
      let set = this.features.get(code);
      if (!set) this.features.set(code, (set = new Set()));
      set.add(f);
      this.apply(f, code);
    }));
    tileset.tileUnload.addEventListener((tile) => this.eachFeature(tile.content, (f, code) => {
      const set = this.features.get(code);
      if (set) {
        set.delete(f);
        if (!set.size) this.features.delete(code);
      }
    }));
  }

  eachFeature(content, fn) {
    if (!content) return;
    if (content.innerContents) {
      for (const inner of content.innerContents) this.eachFeature(inner, fn);
      return;
    }
    const n = content.featuresLength || 0;
    for (let i = 0; i < n; i++) {
      const f = content.getFeature(i);
      const code = f.getProperty('code');
      if (code) fn(f, code);
    }
  }

  repaint(codes) {
    for (const code of codes) {
      const set = this.features.get(code);
      if (set) for (const f of set) this.apply(f, code);
    }
    this.scene.requestRender();
  }

  setOpacity(tileset, alpha) {
    this.opacity.set(tileset, alpha);
    for (const [code, set] of this.features) for (const f of set) if (f.tileset === tileset) this.apply(f, code);
    this.scene.requestRender();
  }

  select(code) {
    const before = this.selected;
    this.selected = code;
    this.repaint([before, code].filter(Boolean));
  }

  /** Highlight an analysis's answer: {role: [codes]}; the first role a code has wins. */
  highlight(roles) {
    const before = [...this.roles.keys()];
    this.roles.clear();
    for (const [role, codes] of Object.entries(roles || {})) {
      if (!ROLE_COLORS[role]) continue;
      for (const code of codes) if (!this.roles.has(code)) this.roles.set(code, role);
    }
    this.repaint([...before, ...this.roles.keys()]);
  }

  setLive(code, state) {
    if (state) this.live.set(code, state);
    else this.live.delete(code);
    this.repaint([code]);
  }

  /** What a test or a curious user can ask: the colour applied to the loaded features of a code. */
  drawnColors(code) {
    return [...(this.features.get(code) || [])].map((f) => f.color.toCssHexString());
  }
}
