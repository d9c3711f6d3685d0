// Live sensor states: the current ones from /iot/states, then every change over the /iot/ws WebSocket (reconnecting).
// Each sensor is a point coloured by its state; each object it observes takes the worst state of its sensors.
/* global Cesium */
import { get, wsUrl } from './api.js';
import { liveColor } from './paint.js';

const RANK = { alarm: 3, offline: 2, ok: 1, unknown: 0 };

export class Live {
  constructor(viewer, painter, geoidHeight, onChange) {
    this.viewer = viewer;
    this.painter = painter;
    this.geoidHeight = geoidHeight;
    this.onChange = onChange; // (message) after each applied state or alarm
    this.sensors = new Map(); // sensor code → {status, severity, objects, value, unit, time, point}
    this.points = viewer.scene.primitives.add(new Cesium.PointPrimitiveCollection());
    this.received = 0;
    this.socket = null;
    this.status = document.getElementById('live-status');
    this.closed = false;
    this.retries = 0;
  }

  async start() {
    const states = await get('/iot/states');
    for (const f of states.features) this.put(f.properties.sensor, f.properties, f.geometry);
    this.refreshObjects([...this.sensors.values()].flatMap((s) => s.objects));
    this.connect();
  }

  async resync() {
    try {
      const states = await get('/iot/states');
      for (const f of states.features) this.put(f.properties.sensor, f.properties, f.geometry);
      this.refreshObjects([...this.sensors.values()].flatMap((s) => s.objects));
      this.viewer.scene.requestRender();
    } catch { /* the next reconnect tries again */ }
  }

  put(code, p, geometry) {
    let s = this.sensors.get(code);
    if (!s) {
      s = { objects: p.objects || [] };
      this.sensors.set(code, s);
      if (geometry) {
        const [lon, lat, h] = geometry.coordinates;
        s.point = this.points.add({
          id: { sensor: code },
          position: Cesium.Cartesian3.fromDegrees(lon, lat, (h ?? 0) + this.geoidHeight + 0.5),
          pixelSize: 8,
          outlineColor: Cesium.Color.WHITE,
          outlineWidth: 1.5,
          // a sensor underground (in a pipe, a tunnel) stays visible through the ground
          disableDepthTestDistance: 5000,
        });
      }
    }
    Object.assign(s, { status: p.status, severity: p.severity ?? 0, value: p.value, unit: p.unit, time: p.time,
      kind: p.kind });
    if (p.objects) s.objects = p.objects;
    if (s.point) s.point.color = Cesium.Color.fromCssColorString(liveColor(s) || '#bdbdbd'); // grey: no reading yet
    return s;
  }

  /** Each object's worst state over its sensors, handed to the painter. */
  refreshObjects(codes) {
    const worst = new Map();
    const wanted = new Set(codes);
    for (const s of this.sensors.values()) {
      for (const o of s.objects) {
        if (!wanted.has(o)) continue;
        const w = worst.get(o);
        if (!w || s.severity > w.severity || (s.severity === w.severity && RANK[s.status] > RANK[w.status])) {
          worst.set(o, { status: s.status, severity: s.severity });
        }
      }
    }
    for (const o of wanted) this.painter.setLive(o, worst.get(o));
  }

  connect() {
    if (this.closed) return;
    const ws = new WebSocket(wsUrl('/iot/ws'));
    this.socket = ws;
    ws.onopen = () => {
      this.status.textContent = 'live';
      this.status.className = 'up';
      if (this.retries > 0) this.resync(); // what changed while the socket was down
      this.retries = 0;
    };
    ws.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      this.received += 1;
      if (msg.type === 'state') {
        const s = this.put(msg.sensor, msg, msg.lon !== undefined ? { coordinates: [msg.lon, msg.lat, null] } : null);
        this.refreshObjects(s.objects);
        this.viewer.scene.requestRender();
      }
      this.onChange(msg);
    };
    ws.onclose = () => {
      this.status.textContent = 'live: reconnecting';
      this.status.className = '';
      this.retries += 1;
      if (!this.closed) setTimeout(() => this.connect(), Math.min(30000, 1000 * 2 ** Math.min(this.retries, 5)));
    };
    ws.onerror = () => ws.close();
  }
}
