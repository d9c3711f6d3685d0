// The pipe tools: burst isolation on a clicked pipe, an excavation pit drawn on the ground, and the cross-section of
// a cut line. Each asks the API's analysis, highlights its answer on the model and lists it in the tool box.
/* global Cesium */
import { get, post } from './api.js';
import { h } from './dom.js';
import { profileChart } from './chart.js';
import { ROLE_COLORS, ROLE_LABELS } from './paint.js';


const PROMPTS = {
  select: null,
  isolation: 'Click a pipe: where it bursts.',
  excavation: 'Click the pit\'s corners on the ground; double-click (or Finish) to close it.',
  profile: 'Click the two ends of the cut line on the ground.',
};

export class Tools {
  constructor({ viewer, painter, layers, pickCode, onCode, toast, geoidHeight }) {
    this.viewer = viewer;
    this.painter = painter;
    this.layers = layers;
    this.pickCode = pickCode; // window position → {code, info} of the feature there, or null
    this.onCode = onCode;
    this.toast = toast;
    this.geoidHeight = geoidHeight;
    this.pitDone = false; // the corners drawn are those of the last pit checked
    this.tool = 'select';
    this.points = [];
    this.answer = null; // the last analysis answer (GeoJSON with highlight, summary, result)
    this.box = document.getElementById('tool-box');
    this.body = document.getElementById('tool-body');
    this.drawing = viewer.entities.add({ id: 'cim-drawing', show: false });
    for (const b of document.querySelectorAll('#tools button')) {
      b.addEventListener('click', () => this.setTool(b.dataset.tool));
    }
  }

  setTool(name) {
    this.tool = name;
    this.pitDone = false;
    for (const b of document.querySelectorAll('#tools button')) b.classList.toggle('active', b.dataset.tool === name);
    this.points = [];
    this.redraw();
    if (PROMPTS[name]) this.show(h('h3', {}, document.querySelector(`#tools [data-tool=${name}]`).textContent),
      h('p', {}, PROMPTS[name]), name === 'excavation' ? this.pitForm() : null);
    else if (!this.answer) this.box.hidden = true;
  }

  show(...children) {
    this.body.replaceChildren(h('button', { style: 'float:right', onclick: () => this.clear() }, 'Clear'),
      ...children.filter((c) => c !== null && c !== undefined));
    this.box.hidden = false;
  }

  clear() {
    this.answer = null;
    this.points = [];
    this.redraw();
    this.painter.highlight({});
    this.box.hidden = true;
  }

  pitForm(depth = 3, margin = 1) {
    return h('div', {},
      h('label', {}, 'Depth (m) ', h('input', { id: 'pit-depth', type: 'number', value: depth, min: 0.1, max: 200, step: 0.1, style: 'width:60px' })),
      ' ',
      h('label', {}, 'Margin (m) ', h('input', { id: 'pit-margin', type: 'number', value: margin, min: 0, max: 100, step: 0.1, style: 'width:60px' })),
      ' ', h('button', { id: 'pit-finish', onclick: () => this.excavate() }, this.pitDone ? 'Check again' : 'Finish'),
      ' ', h('span', { id: 'pit-count' }, this.pitDone ? 'click the map for a new pit' : `${this.points.length} corners`));
  }

  /** The ground under a window position, as [lon, lat] degrees. */
  ground(position) {
    const { scene, camera } = this.viewer;
    let p = scene.globe.show ? scene.globe.pick(camera.getPickRay(position), scene) : undefined;
    if (!p) p = camera.pickEllipsoid(position);
    if (!p) return null;
    const c = Cesium.Cartographic.fromCartesian(p);
    return [Cesium.Math.toDegrees(c.longitude), Cesium.Math.toDegrees(c.latitude), c.height];
  }

  /** A click in the map while a tool is on; returns true when the tool took it. */
  click(position) {
    if (this.tool === 'isolation') {
      const hit = this.pickCode(position, (x) => ['pipes', 'nodes'].includes(x.info?.family));
      if (!hit) {
        const other = this.pickCode(position);
        this.toast(other ? `${other.code} is not part of a pipe network: click a pipe` : 'click a pipe', true);
        return true;
      }
      this.isolate(hit.code, hit.info.layer);
      return true;
    }
    if (this.tool === 'excavation' || this.tool === 'profile') {
      const g = this.ground(position);
      if (!g) return true;
      if ((this.tool === 'profile' && this.points.length >= 2) || this.pitDone) {
        this.points = []; // a new cut line, or a new pit
        this.pitDone = false;
      }
      this.points.push(g);
      this.redraw();
      if (this.tool === 'profile' && this.points.length === 2) this.profile();
      const count = document.getElementById('pit-count');
      if (count) count.textContent = `${this.points.length} corners`;
      return true;
    }
    return false;
  }

  doubleClick() {
    if (this.tool !== 'excavation') return;
    // the double-click's own two clicks put the last corner twice
    if (this.points.length > 1) {
      const [a, b] = this.points.slice(-2);
      if (Math.abs(a[0] - b[0]) < 1e-7 && Math.abs(a[1] - b[1]) < 1e-7) this.points.pop();
    }
    this.excavate();
  }

  redraw() {
    const e = this.drawing;
    e.polyline = undefined;
    e.polygon = undefined;
    if (!this.points.length) {
      e.show = false;
      return;
    }
    const flat = this.points.flatMap(([lon, lat]) => [lon, lat]);
    const color = Cesium.Color.fromCssColorString('#ff6f00');
    if (this.tool === 'excavation' && this.points.length >= 3) {
      e.polygon = { hierarchy: Cesium.Cartesian3.fromDegreesArray(flat), material: color.withAlpha(0.35),
        classificationType: Cesium.ClassificationType.TERRAIN };
    }
    e.polyline = { positions: Cesium.Cartesian3.fromDegreesArray(this.tool === 'excavation' && this.points.length >= 3
      ? [...flat, flat[0], flat[1]] : flat), width: 3, material: color, clampToGround: true };
    e.show = true;
    this.viewer.scene.requestRender();
  }

  async run(label, request) {
    this.show(h('p', {}, `${label}…`));
    try {
      this.answer = await request();
    } catch (err) {
      this.show(h('h3', {}, label), h('p', { class: 'status-alarm' }, err.message));
      return null;
    }
    this.painter.highlight(this.answer.highlight);
    return this.answer;
  }

  list(role, codes, limit = 60) {
    if (!codes?.length) return null;
    const items = codes.slice(0, limit).map((c) => h('li', {}, h('a', { class: 'code', 'data-code': c, onclick: () => this.onCode(c) }, c)));
    return h('div', { 'data-role': role },
      h('strong', {}, h('span', { class: 'swatch', style: `background:${ROLE_COLORS[role]}` }), ` ${ROLE_LABELS[role] || role}: ${codes.length}`),
      h('ul', {}, items), codes.length > limit ? h('small', {}, `… and ${codes.length - limit} more`) : null);
  }

  summary(s) {
    return h('p', { class: 'hint' }, Object.entries(s || {}).map(([k, v]) => `${k.replaceAll('_', ' ')}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(' · '));
  }

  async isolate(code, layer) {
    const a = await this.run(`Burst isolation of ${code}`, () => get('/analysis/isolation', { target: code, layer, 'plan-b': false }));
    if (!a) return;
    this.frame(a.features);
    const r = a.highlight;
    this.show(h('h3', {}, `Burst on ${r.target?.[0] || code} (${layer})`), this.summary(a.summary),
      this.list('valve_to_close', r.valve_to_close), this.list('valve_failed', r.valve_failed),
      this.list('affected_building', r.affected_building), this.list('isolated_pipe', r.isolated_pipe, 30),
      this.list('cut_off_pipe', r.cut_off_pipe, 30));
  }

  /** The camera on an answer's features (GeoJSON in CRS84, orthometric heights). */
  frame(features) {
    const points = [];
    const add = (c) => (typeof c[0] === 'number'
      ? points.push(Cesium.Cartesian3.fromDegrees(c[0], c[1], (c[2] ?? 0) + this.geoidHeight)) : c.forEach(add));
    for (const f of features || []) if (f.geometry) add(f.geometry.coordinates);
    if (!points.length) return;
    const sphere = Cesium.BoundingSphere.fromPoints(points);
    this.viewer.camera.flyToBoundingSphere(sphere, {
      offset: new Cesium.HeadingPitchRange(0, -1.2, Math.max(sphere.radius * 2.5, 60)), duration: 1,
    });
  }

  async excavate() {
    if (this.points.length < 3) {
      this.toast('a pit needs three corners or more', true);
      return;
    }
    const ring = [...this.points.map(([lon, lat]) => [lon, lat]), [this.points[0][0], this.points[0][1]]];
    const depth = Number(document.getElementById('pit-depth')?.value || 3);
    const margin = Number(document.getElementById('pit-margin')?.value || 1);
    const a = await this.run('Excavation check', () => post('/analysis/excavation',
      { polygon: { type: 'Polygon', coordinates: [ring] }, depth, margin }));
    if (!a) return;
    this.pitDone = true; // the next click starts a new pit; the form checks this one again at another depth
    this.show(h('h3', {}, `Pit ${depth} m deep, ${margin} m margin`), this.pitForm(depth, margin), this.summary(a.summary),
      this.list('hit', a.highlight.hit), this.list('too_close', a.highlight.too_close),
      !a.highlight.hit?.length && !a.highlight.too_close?.length ? h('p', {}, 'No pipe is hit or too close.') : null);
  }

  async profile() {
    const line = this.points.flatMap(([lon, lat]) => [lon.toFixed(8), lat.toFixed(8)]).join(',');
    const a = await this.run('Cross-section', () => get('/analysis/profile', { line }));
    if (!a) return;
    this.show(h('h3', {}, 'Cross-section'), this.summary(a.summary), profileChart(a.result, (c) => this.onCode(c)),
      this.list('crossed', a.highlight.crossed));
  }
}
