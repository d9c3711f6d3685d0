// Small SVG charts, no library: a sensor's recent history and a cut line's cross-section.

const NS = 'http://www.w3.org/2000/svg';

function el(name, attrs = {}, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function scale(lo, hi, a, b) {
  const span = hi - lo || 1;
  return (v) => a + ((v - lo) / span) * (b - a);
}

function fmt(v) {
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
}

/** History buckets [{time, avg, min, max}] as a min–max band and an average line, with limits as dashed lines. */
export function historyChart(buckets, { unit = '', limits = {} } = {}) {
  const W = 340, H = 130, L = 38, R = 6, T = 8, B = 18;
  const svg = el('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none' });
  const pts = buckets.filter((b) => b.avg !== null && b.avg !== undefined);
  if (!pts.length) {
    svg.append(el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no readings in this window'));
    return svg;
  }
  const t = pts.map((b) => Date.parse(b.time));
  const lims = Object.values(limits).filter((v) => typeof v === 'number');
  const lo = Math.min(...pts.map((b) => b.min ?? b.avg));
  const hi = Math.max(...pts.map((b) => b.max ?? b.avg));
  const near = lims.filter((v) => v >= lo - (hi - lo) && v <= hi + (hi - lo));
  const ymin = Math.min(lo, ...near), ymax = Math.max(hi, ...near);
  const x = scale(t[0], t[t.length - 1], L, W - R);
  const y = scale(ymin, ymax, H - B, T);
  const band = pts.map((b, i) => `${x(t[i])},${y(b.max ?? b.avg)}`).join(' ') + ' '
    + pts.map((b, i) => `${x(t[i])},${y(b.min ?? b.avg)}`).reverse().join(' ');
  svg.append(el('polygon', { points: band, fill: '#9ecae1', opacity: 0.6 }));
  svg.append(el('polyline', { points: pts.map((b, i) => `${x(t[i])},${y(b.avg)}`).join(' '), fill: 'none',
    stroke: '#08519c', 'stroke-width': 1.5 }));
  for (const [name, v] of Object.entries(limits)) {
    if (typeof v !== 'number' || v < ymin || v > ymax) continue;
    svg.append(el('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: '#c62828', 'stroke-dasharray': '4 3' }));
    svg.append(el('text', { x: W - R - 2, y: y(v) - 2, 'text-anchor': 'end' }, name.toUpperCase()));
  }
  svg.append(el('text', { x: 2, y: T + 8 }, `${fmt(ymax)} ${unit}`));
  svg.append(el('text', { x: 2, y: H - B }, `${fmt(ymin)}`));
  const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  svg.append(el('text', { x: L, y: H - 4 }, clock(t[0])));
  svg.append(el('text', { x: W - R, y: H - 4, 'text-anchor': 'end' }, clock(t[t.length - 1])));
  return svg;
}

/** A cross-section: ground line, pipes as circles at their chainage and centre height (size exaggerated). */
export function profileChart(result, onPick) {
  const W = 900, H = 220, L = 44, R = 10, T = 10, B = 22;
  const svg = el('svg', { class: 'profile', viewBox: `0 0 ${W} ${H}` });
  const gz = result.ground_z.filter((v) => v !== null);
  const zs = [...gz, ...result.pipes.flatMap((p) => [p.invert_z, p.crown_z])].filter((v) => v !== null);
  if (!zs.length) return svg;
  const zmin = Math.min(...zs) - 1, zmax = Math.max(...zs) + 1;
  const x = scale(0, result.length_m, L, W - R);
  const y = scale(zmin, zmax, H - B, T);
  const ground = result.ground_chainage.map((c, i) => [c, result.ground_z[i]]).filter(([, z]) => z !== null);
  const line = ground.map(([c, z]) => `${x(c)},${y(z)}`).join(' ');
  svg.append(el('polygon', { points: `${x(0)},${H - B} ${line} ${x(result.length_m)},${H - B}`, fill: '#e0d6c2' }));
  svg.append(el('polyline', { points: line, fill: 'none', stroke: '#7a5c2e', 'stroke-width': 1.5 }));
  const colors = { water: '#1f78b4', drainage: '#8c6d31', gas: '#e6ab02', power: '#e31a1c', telecom: '#33a02c' };
  for (const p of result.pipes) {
    const r = Math.max(3, Math.abs(y(p.crown_z) - y(p.invert_z)) / 2);
    const c = el('circle', { cx: x(p.chainage_m), cy: y(p.centre_z), r, fill: colors[p.network] || '#555',
      stroke: '#000', 'stroke-width': 0.5, 'data-code': p.code });
    c.append(el('title', {}, `${p.code} ${p.network} ${p.size || ''}: centre ${p.centre_z.toFixed(2)} m, `
      + `cover ${p.cover_m === null ? '?' : p.cover_m.toFixed(2)} m`));
    c.addEventListener('click', () => onPick(p.code));
    svg.append(c);
  }
  svg.append(el('text', { x: 2, y: T + 8 }, `${fmt(zmax)} m`));
  svg.append(el('text', { x: 2, y: H - B }, `${fmt(zmin)} m`));
  svg.append(el('text', { x: L, y: H - 6 }, '0 m'));
  svg.append(el('text', { x: W - R, y: H - 6, 'text-anchor': 'end' }, `${result.length_m.toFixed(0)} m`));
  return svg;
}
