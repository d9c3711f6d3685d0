// The side panel of a clicked object: what it is (/objects/{code}), where it came from, its BIM properties, its
// sensors with live values and a chart of recent history, and its open alarms with acknowledgement.
import { apiKey, get, post } from './api.js';
import { h } from './dom.js';
import { historyChart } from './chart.js';

const HIDDEN = new Set(['links']);


function value(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(3).replace(/\.?0+$/, ''); // years stay 2001
  if (typeof v === 'object') return table(v);
  return String(v);
}

function table(obj) {
  const rows = Object.entries(obj).filter(([k]) => !HIDDEN.has(k));
  if (!rows.length) return h('em', {}, 'none');
  return h('table', {}, rows.map(([k, v]) => h('tr', {}, h('td', {}, k), h('td', {}, value(v)))));
}

const when = (t) => (t ? new Date(t).toLocaleString() : '—');

export class Panel {
  constructor({ onCode, onClose, toast, writes }) {
    this.box = document.getElementById('panel');
    this.body = document.getElementById('panel-body');
    this.onCode = onCode; // a code in the panel was clicked
    this.writes = writes; // whether the server takes writes at all (has API keys)
    this.toast = toast;
    this.code = null;
    this.token = 0;
    document.getElementById('panel-close').addEventListener('click', () => onClose());
  }

  link(code) {
    return h('a', { class: 'code', 'data-code': code, onclick: () => this.onCode(code) }, code);
  }

  close() {
    this.box.hidden = true;
    this.code = null;
  }

  async show(code) {
    const token = ++this.token;
    this.code = code;
    this.box.hidden = false;
    this.body.replaceChildren(h('p', {}, `loading ${code}…`));
    let o;
    try {
      o = await get(`/objects/${encodeURIComponent(code)}`);
    } catch (err) {
      if (token === this.token) this.body.replaceChildren(h('p', {}, `${code}: ${err.message}`));
      return;
    }
    if (token !== this.token) return;
    this.object = o;
    const parts = [
      h('h3', { id: 'panel-title' }, o.name || o.attributes?.address || o.kind),
      h('div', {}, h('span', { class: 'code', id: 'panel-code' }, o.code), ` · ${o.kind} · ${o.collection || o.layer}`),
      h('h4', {}, 'Object'),
      table({ layer: o.layer, status: o.status, base_z: o.base_z, top_z: o.top_z, lod: o.lod,
        geometry: o.geometry_type, valid_from: o.valid_from, valid_to: o.valid_to }),
    ];
    const attrs = { ...o.attributes };
    const psets = {};
    for (const [k, v] of Object.entries(attrs)) {
      if (v && typeof v === 'object' && !Array.isArray(v)) {
        psets[k] = v;
        delete attrs[k];
      }
    }
    parts.push(h('h4', {}, 'Attributes'), table(attrs));
    if (Object.keys(psets).length || Object.keys(o.property_sets || {}).length || o.bim_models?.length
      || o.containment?.parents?.length) {
      parts.push(h('h4', {}, 'BIM'), this.bim(o, psets));
    }
    if (o.service_connections?.length) {
      parts.push(h('h4', {}, 'Service connections'),
        h('div', {}, o.service_connections.map((c) => h('div', {}, this.link(c.code), ` ${c.network} ${c.node_type}`))));
    }
    parts.push(h('h4', {}, 'Lineage'), this.lineage(o.lineage));
    const sensorsBox = h('div', { id: 'panel-sensors' });
    const alarmsBox = h('div', { id: 'panel-alarms' });
    parts.push(h('h4', {}, `Sensors (${o.sensors?.length || 0})`), sensorsBox,
      h('h4', { id: 'panel-alarms-title' }, 'Active alarms'), alarmsBox);
    this.body.replaceChildren(...parts);
    this.renderAlarms(alarmsBox, o.alarms || []);
    await this.renderSensors(sensorsBox, o, token);
  }

  bim(o, psets) {
    const out = h('div');
    if (o.bim_models?.length) {
      out.append(h('div', {}, 'BIM models: ', o.bim_models.map((m) => h('span', {}, this.link(m.code), ` ${m.name || ''} `))));
    }
    const c = o.containment || {};
    if (c.parents?.length) {
      out.append(h('div', {}, 'In: ', c.parents.map((p) => h('span', {}, this.link(p.code), ` ${p.name || p.kind} `))));
    }
    if (c.building?.gis_building) out.append(h('div', {}, 'GIS building: ', this.link(c.building.gis_building)));
    if (c.children) out.append(h('div', {}, `${c.children} contained elements`));
    for (const [name, props] of Object.entries({ ...o.property_sets, ...psets })) {
      out.append(h('strong', {}, name), table(props));
    }
    return out;
  }

  lineage(l) {
    if (!l) return h('em', {}, 'unknown');
    const i = l.import || {};
    const rows = { importer: i.importer, source_file: i.source_file, source_id: i.source_id, source_crs: i.source_crs,
      imported_at: when(i.imported_at), batch: i.batch, sha256: i.source_sha256?.slice(0, 16) };
    const out = h('div', {}, table(rows));
    if (l.edits?.length) out.append(h('div', {}, `${l.edits.length} edit(s), last ${when(l.edits.at(-1).at || l.edits.at(-1).time)}`));
    return out;
  }

  async renderSensors(box, o, token) {
    const sensors = o.sensors || [];
    if (!sensors.length) {
      box.append(h('em', {}, 'none'));
      return;
    }
    for (const s of sensors) {
      box.append(h('div', { class: 'sensor', 'data-sensor': s.code },
        this.link(s.code), ` ${s.kind} `,
        h('strong', { class: `status-${s.status}`, 'data-value': s.code }, s.value === null ? '—' : `${value(s.value)} ${s.unit || ''}`),
        ' ', h('span', { 'data-status': s.code }, s.status), ' · ', h('span', { 'data-time': s.code }, when(s.time))));
    }
    let history;
    try {
      const end = new Date();
      history = await get(`/objects/${encodeURIComponent(o.code)}/history`,
        { start: new Date(end - 6 * 3600e3).toISOString(), end: end.toISOString() });
    } catch (err) {
      box.append(h('p', {}, `history: ${err.message}`));
      return;
    }
    if (token !== this.token) return;
    for (const series of history.sensors) {
      let limits = {};
      try {
        const sensor = await get(`/iot/sensors/${encodeURIComponent(series.sensor)}`);
        const rules = (sensor.properties || sensor).rules || {};
        limits = Object.fromEntries(['hh', 'h', 'l', 'll'].filter((k) => k in rules).map((k) => [k, rules[k]]));
      } catch { /* limits are a nicety */ }
      if (token !== this.token) return;
      box.append(h('div', { class: 'hint' }, `${series.sensor}: ${series.property} (${history.bucket} buckets, last 6 h)`),
        historyChart(series.buckets, { unit: series.unit, limits }));
    }
  }

  renderAlarms(box, alarms) {
    box.replaceChildren();
    const title = this.body.querySelector('#panel-alarms-title');
    if (title) title.textContent = `Active alarms (${alarms.length})`;
    if (!alarms.length) {
      box.append(h('em', {}, 'none'));
      return;
    }
    for (const a of alarms) {
      const div = h('div', { class: `alarm sev-${a.severity}`, 'data-alarm': a.id },
        h('strong', {}, `${a.rule} `), a.message || '', h('br'),
        h('small', {}, `${a.state} since ${when(a.raised_at)}`,
          a.acknowledged_at ? ` · acknowledged by ${a.acknowledged_by || '?'} ${when(a.acknowledged_at)}` : ''));
      if (a.state === 'active') {
        const button = h('button', { class: 'ack', onclick: () => this.acknowledge(a, div) }, 'Acknowledge');
        if (!this.writes) {
          button.disabled = true;
          button.title = 'this server takes no writes: it has no API key configured (CIM_API_KEYS)';
        }
        div.append(h('br'), button);
      }
      box.append(div);
    }
  }

  async acknowledge(alarm, div) {
    if (!apiKey()) {
      document.getElementById('key-box').open = true;
      document.getElementById('api-key').focus();
      this.toast('Acknowledging needs an API key: enter it under "API key" in the layer panel.', true);
      return;
    }
    try {
      const done = await post(`/iot/alarms/${alarm.id}/ack`);
      div.querySelector('button.ack')?.remove();
      div.querySelector('small').textContent = `acknowledged by ${done.acknowledged_by || 'you'} ${when(done.acknowledged_at)}`;
      div.classList.add('acknowledged');
    } catch (err) {
      this.toast(`acknowledge: ${err.message}`, true);
    }
  }

  /** A live message for the object on show: new values in place, alarms re-read when one changes. */
  update(msg) {
    if (!this.code || !this.object) return;
    if (!(msg.objects || []).includes(this.code) && msg.sensor !== this.code) return;
    if (msg.type === 'state') {
      const cell = this.body.querySelector(`[data-value="${msg.sensor}"]`);
      if (cell) {
        cell.textContent = `${value(msg.value)} ${msg.unit || ''}`;
        cell.className = `status-${msg.status}`;
        const status = this.body.querySelector(`[data-status="${msg.sensor}"]`);
        const time = this.body.querySelector(`[data-time="${msg.sensor}"]`);
        if (status) status.textContent = msg.status;
        if (time) time.textContent = when(msg.time);
      }
    } else if (msg.type === 'alarm') {
      get(`/objects/${encodeURIComponent(this.code)}`).then((o) => {
        const box = this.body.querySelector('#panel-alarms');
        if (box && o.code === this.code) this.renderAlarms(box, o.alarms || []);
      }).catch(() => {});
    }
  }
}
