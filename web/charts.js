// laserd dashboard: the charts (plain SVG). Pure drawing functions; the data
// and the polling are in dashboard.js.
'use strict';

const Charts = (() => {
  const NS = 'http://www.w3.org/2000/svg';

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }
  function text(parent, x, y, s, attrs) {
    const t = el('text', Object.assign({ x, y }, attrs || {}), parent);
    t.textContent = s;
    return t;
  }

  // Colour scales. Sequential (viridis stops) for accuracy; diverging
  // blue-white-red for deltas.
  const VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
                   [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]];
  function lerpStops(stops, t) {
    t = Math.min(1, Math.max(0, t));
    const p = t * (stops.length - 1);
    const i = Math.min(stops.length - 2, Math.floor(p));
    const f = p - i;
    const c = stops[i].map((a, j) => Math.round(a + f * (stops[i + 1][j] - a)));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  }
  function sequential(lo, hi) {
    return (v) => lerpStops(VIRIDIS, hi > lo ? (v - lo) / (hi - lo) : 0.5);
  }
  const DIVERGING = [[33, 102, 172], [103, 169, 207], [209, 229, 240], [247, 247, 247],
                     [253, 219, 199], [239, 138, 98], [178, 24, 43]];
  function diverging(bound) {
    return (v) => lerpStops(DIVERGING, bound > 0 ? 0.5 + 0.5 * v / bound : 0.5);
  }
  // Black or white text, whichever reads on `rgb`.
  function inkOn(rgb) {
    const [r, g, b] = rgb.match(/\d+/g).map(Number);
    return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? '#111' : '#fff';
  }

  // A layer × column heatmap.
  //   grid: {layers: [int], columns: [{key, label}]}
  //   cells: Map "layer|key" -> {value, title, payload}
  //   opts: {title, color(v), format(v), metric, type, best: "layer|key" or null,
  //          onClick(payload), legend: [lo, hi, fmt]}
  function heatmap(grid, cells, opts) {
    const cols = grid.columns, rows = grid.layers;
    const cw = Math.max(16, Math.min(44, Math.floor(400 / Math.max(1, cols.length))));
    const ch = Math.max(12, Math.min(26, Math.floor(420 / Math.max(1, rows.length))));
    const left = 44, top = 34, legendH = 34;
    // Wide enough for the grid and the title (12px bold: about 7px a character).
    const width = Math.max(left + cols.length * cw + 12, left + 7 * opts.title.length);
    const height = top + rows.length * ch + legendH + 8;
    const svg = el('svg', {
      width, height, viewBox: `0 0 ${width} ${height}`, class: 'heatmap',
      'data-metric': opts.metric, 'data-type': opts.type, role: 'img',
      'aria-label': `${opts.title}, ${opts.type}`,
    });
    text(svg, left, 13, opts.title, { class: 'title' });
    // Column labels (ρ) above, layer labels at the left.
    cols.forEach((c, j) => {
      text(svg, left + j * cw + cw / 2, top - 6, c.label,
           { class: 'axis-label', 'text-anchor': 'middle' });
    });
    text(svg, 4, top - 6, 'layer', { class: 'axis-label' });
    const showValues = cw >= 34 && ch >= 14;
    rows.forEach((layer, i) => {
      const y = top + i * ch;
      text(svg, left - 6, y + ch / 2 + 4, String(layer), { class: 'axis-label', 'text-anchor': 'end' });
      cols.forEach((c, j) => {
        const x = left + j * cw;
        const key = `${layer}|${c.key}`;
        const cell = cells.get(key);
        const r = el('rect', { x, y, width: cw, height: ch, 'data-layer': layer, 'data-col': c.key }, svg);
        if (cell) {
          const fill = opts.color(cell.value);
          r.setAttribute('class', 'cell filled');
          r.setAttribute('fill', fill);
          r.setAttribute('data-value', String(cell.value));
          el('title', {}, r).textContent = cell.title;
          r.addEventListener('click', () => opts.onClick && opts.onClick(cell.payload));
          if (showValues) {
            text(svg, x + cw / 2, y + ch / 2 + 3.5, opts.format(cell.value),
                 { class: 'cell-value', 'text-anchor': 'middle', fill: inkOn(fill) });
          }
        } else {
          r.setAttribute('class', 'cell empty');
          el('title', {}, r).textContent = `layer ${layer}, ${c.label}: no result yet`;
        }
      });
    });
    if (opts.best && cells.has(opts.best)) {
      const [layer, key] = opts.best.split('|');
      const i = rows.indexOf(Number(layer)), j = cols.findIndex((c) => c.key === key);
      if (i >= 0 && j >= 0) {
        el('rect', { x: left + j * cw + 1, y: top + i * ch + 1, width: cw - 2, height: ch - 2,
                     class: 'best-outline' }, svg);
      }
    }
    // Legend: a colour ramp from lo to hi.
    const [lo, hi, fmt] = opts.legend;
    const ly = top + rows.length * ch + 12, lw = Math.max(90, Math.min(200, cols.length * cw));
    const steps = 24;
    for (let s = 0; s < steps; ++s) {
      const v = lo + (hi - lo) * (s + 0.5) / steps;
      el('rect', { x: left + s * lw / steps, y: ly, width: lw / steps + 0.5, height: 8,
                   fill: opts.color(v) }, svg);
    }
    text(svg, left, ly + 20, fmt(lo), { class: 'axis-label' });
    text(svg, left + lw, ly + 20, fmt(hi), { class: 'axis-label', 'text-anchor': 'end' });
    return svg;
  }

  // Singular values (log scale) against their index, the Marchenko–Pastur
  // threshold, the suggested rank, and optional marks at other ranks.
  //   sp: Spectrum message (JSON); marks: [{rank, cls, label}]
  function spectrum(sp, marks) {
    const s = (sp.singular_values || []).map(Number);
    const mp = sp.marchenko_pastur || {};
    const k = Number(mp.suggested_rank || 0);
    const thr = Number(mp.threshold || 0);
    const W = 640, H = 300, L = 58, R = 16, T = 16, B = 40;
    const svg = el('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, id: 'spectrum-plot',
                            'data-suggested-rank': k, 'data-count': s.length, role: 'img',
                            'aria-label': `singular values of ${sp.matrix_type} layer ${sp.layer}` });
    if (s.length === 0) return svg;
    const positive = s.filter((v) => v > 0);
    const ymin = Math.min(...positive, thr > 0 ? thr : Infinity) * 0.8;
    const ymax = Math.max(...positive) * 1.25;
    const lg = (v) => Math.log10(Math.max(v, ymin));
    const X = (i) => L + (W - L - R) * (s.length === 1 ? 0.5 : (i - 1) / (s.length - 1));
    const Y = (v) => T + (H - T - B) * (lg(ymax) - lg(v)) / (lg(ymax) - lg(ymin));
    // Axes and decade grid lines.
    // Decades, and 2 and 5 times them when the range spans less than two.
    const d0 = Math.floor(Math.log10(ymin)), d1 = Math.ceil(Math.log10(ymax));
    const mults = d1 - d0 <= 2 ? [1, 2, 5] : [1];
    for (let d = d0; d <= d1; ++d) {
      for (const m of mults) {
        const v = m * 10 ** d;
        if (v < ymin || v > ymax) continue;
        const y = Y(v);
        el('line', { x1: L, x2: W - R, y1: y, y2: y, class: 'grid' }, svg);
        text(svg, L - 6, y + 4, d >= -3 && d <= 4 ? String(Number(v.toPrecision(1))) : v.toExponential(0),
             { class: 'axis-label', 'text-anchor': 'end' });
      }
    }
    el('line', { x1: L, x2: L, y1: T, y2: H - B, stroke: '#888' }, svg);
    el('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: '#888' }, svg);
    const ticks = [1, Math.round(s.length / 4), Math.round(s.length / 2),
                   Math.round(3 * s.length / 4), s.length].filter((v, i, a) => v >= 1 && a.indexOf(v) === i);
    for (const t of ticks) {
      text(svg, X(t), H - B + 14, String(t), { class: 'axis-label', 'text-anchor': 'middle' });
    }
    text(svg, (L + W - R) / 2, H - 6, 'index i (rank)', { class: 'axis-label', 'text-anchor': 'middle' });
    text(svg, 12, T + (H - T - B) / 2, 'σᵢ', { class: 'axis-label', 'text-anchor': 'middle' });
    // The spectrum.
    const pts = s.map((v, i) => `${X(i + 1).toFixed(1)},${Y(v).toFixed(1)}`).join(' ');
    el('polyline', { points: pts, class: 'spectrum-line' }, svg);
    // Other ranks (the sweep's k values, the best intervention).
    for (const m of marks || []) {
      if (m.rank < 1 || m.rank > s.length) continue;
      const l = el('line', { x1: X(m.rank), x2: X(m.rank), y1: T, y2: H - B, class: m.cls }, svg);
      el('title', {}, l).textContent = m.label;
    }
    // Marchenko–Pastur threshold and suggested rank.
    if (thr > 0) {
      el('line', { x1: L, x2: W - R, y1: Y(thr), y2: Y(thr), class: 'threshold', id: 'mp-threshold' }, svg);
      text(svg, W - R - 4, Y(thr) - 4, `MP threshold ${thr.toPrecision(3)}`,
           { class: 'axis-label', 'text-anchor': 'end' });
    }
    if (k >= 1) {
      el('line', { x1: X(k), x2: X(k), y1: T, y2: H - B, class: 'suggested', id: 'suggested-rank-marker',
                   'data-rank': k }, svg);
      const right = X(k) < (L + W) / 2;
      text(svg, X(k) + (right ? 4 : -4), T + 12, `suggested k = ${k}`,
           { class: 'axis-label', 'text-anchor': right ? 'start' : 'end', fill: '#c0392b' });
    }
    return svg;
  }

  return { heatmap, spectrum, sequential, diverging };
})();
