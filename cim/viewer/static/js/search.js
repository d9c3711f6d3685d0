// Search by unified code, name or address (/search/text) as you type; Enter or a click flies to the object.
import { get } from './api.js';
import { h } from './dom.js';

export class Search {
  constructor({ onPick, toast }) {
    this.input = document.getElementById('search-input');
    this.list = document.getElementById('search-results');
    this.onPick = onPick; // (feature) chosen
    this.toast = toast;
    this.results = [];
    this.query = null; // what `results` answer
    this.active = 0;
    this.timer = null;
    this.seq = 0;
    this.input.addEventListener('input', () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.search(), 200);
    });
    this.input.addEventListener('keydown', (e) => this.key(e));
    this.input.addEventListener('blur', () => setTimeout(() => { this.list.hidden = true; }, 200));
  }

  async search() {
    const q = this.input.value.trim();
    const seq = ++this.seq;
    if (!q) {
      this.list.hidden = true;
      return [];
    }
    let answer;
    try {
      answer = await get('/search/text', { q, limit: 10 });
    } catch (err) {
      this.toast(`search: ${err.message}`, true);
      return [];
    }
    if (seq !== this.seq) return this.results;
    this.results = answer.features;
    this.query = q;
    this.active = 0;
    this.render();
    return this.results;
  }

  render() {
    this.list.replaceChildren(...(this.results.length ? this.results.map((f, i) => {
      const p = f.properties;
      return h('li', { class: i === this.active ? 'active' : '', 'data-code': p.code, onmousedown: () => this.pick(f) },
        p.name || p.address || p.code,
        h('small', {}, `${p.code} · ${p.kind}${p.address && p.name ? ` · ${p.address}` : ''} (${p.matched})`));
    }) : [h('li', {}, 'nothing found')]));
    this.list.hidden = false;
  }

  key(e) {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      const n = this.results.length;
      if (n) this.active = (this.active + (e.key === 'ArrowDown' ? 1 : n - 1)) % n;
      this.render();
    } else if (e.key === 'Enter') {
      e.preventDefault();
      clearTimeout(this.timer);
      // Enter before the debounce fired searches first
      const current = this.query === this.input.value.trim();
      (current ? Promise.resolve(this.results) : this.search()).then((r) => {
        if (r.length) this.pick(r[this.active] || r[0]);
      });
    } else if (e.key === 'Escape') {
      this.list.hidden = true;
    }
  }

  pick(feature) {
    this.list.hidden = true;
    this.input.value = feature.properties.name || feature.properties.code;
    this.onPick(feature);
  }
}
