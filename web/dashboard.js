// laserd dashboard: polls the JSON API of `laserd serve` (docs/dashboard.md) and
// draws the job list, the selected job's baseline, best intervention and
// layer × ρ heatmaps, and a matrix's singular-value spectrum.
//
// URL options: ?poll=<ms> (polling interval, default 2000), #job=<id> (the job
// shown), #token=<bearer token> (moved to sessionStorage and removed from the
// address bar; the token is sent as an Authorization header, never in a URL).
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const hash = new URLSearchParams(location.hash.slice(1));

  const state = {
    interval: Math.max(100, Number(params.get('poll')) || 2000),
    token: sessionStorage.getItem('laserd.token') || '',
    model: null,
    jobs: [],
    selected: hash.get('job') || null,
    userSelected: hash.has('job'),
    results: [],        // the selected job's results, by index
    summary: null,      // the last /results answer (state, progress, baseline, best)
    drawn: '',          // what the heatmaps show (to redraw only on change)
    jobsDrawn: '',      // likewise the job list, the job's panels, the spectrum
    jobDrawn: '',
    spectrumDrawn: '',
    spectrumKey: null,  // "type|layer" shown
    spectrumChosen: false,
    spectra: new Map(),
    spectrumLoading: new Set(),
  };
  if (hash.has('token')) {
    state.token = hash.get('token');
    sessionStorage.setItem('laserd.token', state.token);
    hash.delete('token');
    history.replaceState(null, '', location.pathname + location.search +
                         (hash.toString() ? '#' + hash.toString() : ''));
  }

  // ---------------------------------------------------------------- API
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }
  async function api(path) {
    const headers = {};
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    const r = await fetch(path, { headers, cache: 'no-store' });
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) {
      throw new ApiError(r.status, body && body.error ? body.error.message : `HTTP ${r.status}`);
    }
    return body;
  }

  // ---------------------------------------------------------- formatting
  const num = (v) => (v === undefined || v === null || v === '' ? 0 : Number(v));
  const fmtAcc = (v) => num(v).toFixed(2);
  const fmtLoss = (v) => num(v).toFixed(4);
  const fmtSigned = (v, digits) => (num(v) > 0 ? '+' : num(v) < 0 ? '−' : '±') +
    Math.abs(num(v)).toFixed(digits);
  const fmtRho = (v) => String(Number(num(v).toPrecision(4)));
  const shortState = (s) => (s || 'JOB_STATE_UNSPECIFIED').replace('JOB_STATE_', '').toLowerCase();
  const terminal = (s) => ['succeeded', 'failed', 'cancelled'].includes(shortState(s));
  function fmtDuration(d) {
    if (!d) return '';
    let s = Math.round(parseFloat(d));
    const h = Math.floor(s / 3600); s -= 3600 * h;
    const m = Math.floor(s / 60); s -= 60 * m;
    return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(s).padStart(2, '0')}s` : `${s}s`;
  }
  function setText(id, s) { $(id).textContent = s; }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function cell(tag, text, attrs) {
    const c = document.createElement(tag);
    if (text !== undefined) c.textContent = text;
    for (const [k, v] of Object.entries(attrs || {})) c.setAttribute(k, v);
    return c;
  }
  // The matrix an intervention edits: "moe.in[3]" for an expert's matrix
  // (Intervention.expert, mixture-of-experts models), else its type.
  function mname(iv) {
    return iv.expert !== undefined && iv.expert !== null ? `${iv.matrix_type}[${num(iv.expert)}]` : iv.matrix_type;
  }
  function describe(iv) {
    const parts = [mname(iv), `layer ${num(iv.layer)}`,
                   iv.rank_source === 'RANK_SOURCE_SUGGESTED' ? `ρ ${fmtRho(iv.rho)} (MP)` : `ρ ${fmtRho(iv.rho)}`];
    if (iv.rate !== undefined) parts.push(`rate ${iv.rate}`);
    parts.push(`k ${num(iv.rank)} of ${num(iv.max_rank)}`);
    parts.push(`‖W−Wₖ‖/‖W‖ ${num(iv.relative_error).toFixed(3)}`);
    return parts.join(' · ');
  }

  // ------------------------------------------------------------- errors
  function showError(e) {
    if (!e) { $('error').hidden = true; return; }
    $('error').hidden = false;
    $('error').textContent = e.message;
    if (e.status === 401 || e.status === 403) $('token-form').hidden = false;
  }
  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.token = $('token').value.trim();
    sessionStorage.setItem('laserd.token', state.token);
    $('token').value = '';
    state.spectra.clear();
    poll();
  });

  // ------------------------------------------------------------ job list
  function renderJobs() {
    const key = JSON.stringify([state.selected, state.jobs.map((j) => [j.id, j.state, j.progress])]);
    if (key === state.jobsDrawn) return;
    state.jobsDrawn = key;
    const tbody = document.querySelector('#jobs tbody');
    clear(tbody);
    $('no-jobs').hidden = state.jobs.length > 0;
    for (const j of state.jobs) {
      const p = j.progress || {};
      const tr = document.createElement('tr');
      tr.dataset.jobId = j.id;
      if (j.id === state.selected) tr.className = 'selected';
      const idc = cell('td'); idc.appendChild(cell('code', j.id)); tr.appendChild(idc);
      const st = shortState(j.state);
      const sc = cell('td'); sc.appendChild(cell('span', st, { class: `state ${st}` })); tr.appendChild(sc);
      const pc = cell('td');
      const wrap = cell('div', undefined, { class: 'progress-cell' });
      const bar = cell('div', undefined, { class: 'bar' });
      const fill = cell('div'); fill.style.width = `${(100 * num(p.fraction)).toFixed(1)}%`;
      bar.appendChild(fill); wrap.appendChild(bar);
      wrap.appendChild(cell('span', `${num(p.interventions_done)}/${num(p.interventions_total)}`,
                            { class: 'job-progress' }));
      pc.appendChild(wrap); tr.appendChild(pc);
      tr.appendChild(cell('td', p.best ? fmtAcc(p.best.metrics.validation.accuracy) : '–', { class: 'num' }));
      tr.appendChild(cell('td', j.create_time ? new Date(j.create_time).toLocaleString() : ''));
      tr.addEventListener('click', () => selectJob(j.id, true));
      tbody.appendChild(tr);
    }
  }

  function selectJob(id, byUser) {
    if (id === state.selected && !byUser) return;
    if (id !== state.selected) {
      state.selected = id;
      state.results = [];
      state.summary = null;
      state.drawn = '';
    }
    if (byUser) {
      state.userSelected = true;
      history.replaceState(null, '', `${location.pathname}${location.search}#job=${encodeURIComponent(id)}`);
      poll();
    }
  }

  // ------------------------------------------------------------ the job
  function selectedJob() { return state.jobs.find((j) => j.id === state.selected) || null; }

  // The heatmap grid the spec asks for (types, layers, ρ columns), united with
  // what the results hold.
  function planGrid(job, singles) {
    const spec = (job && job.spec) || {};
    const model = state.model;
    const all = model ? model.matrix_types.map((t) => t.matrix_type) : [];
    let types = [];
    const names = spec.matrix_types || [];
    if (names.length === 0) types = all.slice();
    // SweepSpec.experts narrows the expert matrices (moe.in[e], ...) to those experts.
    const experts = (spec.experts || []).map(num);
    const keepExpert = (t) => { const m = /\[(\d+)\]$/.exec(t); return !m || !experts.length || experts.includes(Number(m[1])); };
    for (const n of names) {
      if (n === 'all') types.push(...all);
      else if (n === 'mlp' || n === 'attn' || n === 'moe') types.push(...all.filter((t) => t.startsWith(n + '.')));
      else if (n === 'moe.in' || n === 'moe.up' || n === 'moe.out') types.push(...all.filter((t) => t.startsWith(n + '[')));
      else {
        const mt = model && model.matrix_types.find((t) => t.matrix_type === n || (t.aliases || []).includes(n));
        types.push(mt ? mt.matrix_type : n);
      }
    }
    types = types.filter(keepExpert);
    let layers = [];
    const L = model ? model.num_layers : 0;
    const sel = spec.layers || {};
    for (const i of sel.indices || []) layers.push(i);
    for (const r of sel.ranges || []) {
      const stop = r.stop !== undefined ? r.stop : L;
      for (let l = r.start || 0; l < stop; l += (r.step || 1)) layers.push(l);
    }
    if (!(sel.indices || []).length && !(sel.ranges || []).length) {
      for (let l = 0; l < L; ++l) layers.push(l);
    }
    const cols = [];
    if (spec.rho) for (const v of spec.rho.values || []) cols.push({ key: `rho:${v}`, label: fmtRho(v), order: v });
    if (spec.rate) for (const v of spec.rate.values || []) cols.push({ key: `rate:${v}`, label: fmtRho(1 - v / 10), order: 1 - v / 10 });
    if (spec.add_suggested_rank) cols.push({ key: 'mp', label: 'MP', order: 2 });
    for (const r of singles) {
      const iv = r.intervention;
      if (!types.includes(mname(iv))) types.push(mname(iv));
      if (!layers.includes(num(iv.layer))) layers.push(num(iv.layer));
      const k = colKey(iv);
      if (!cols.some((c) => c.key === k)) {
        cols.push({ key: k, label: k === 'mp' ? 'MP' : fmtRho(iv.rho), order: k === 'mp' ? 2 : num(iv.rho) });
      }
    }
    types = all.filter((t) => types.includes(t)).concat(types.filter((t) => !all.includes(t)));
    layers = [...new Set(layers)].sort((a, b) => a - b);
    cols.sort((a, b) => a.order - b.order);
    return { types, layers, columns: cols.filter((c, i) => cols.findIndex((d) => d.key === c.key) === i) };
  }
  function colKey(iv) {
    if (iv.rank_source === 'RANK_SOURCE_SUGGESTED') return 'mp';
    if (iv.rate !== undefined) return `rate:${iv.rate}`;
    return `rho:${iv.rho}`;
  }

  // The rows of a result's metrics table with its significance per split, if it has one.
  function withSig(result, rows) {
    const s = result.significance;
    if (!s) return rows;
    return rows.map((r) => Object.assign({}, r, { sig: Object.assign({ alpha: s.alpha, conf: s.confidence }, s[r.split] || {}) }));
  }

  function metricsTable(table, prefix, rows) {
    clear(table);
    const head = cell('tr');
    for (const h of ['', 'accuracy', 'log-loss', 'examples']) head.appendChild(cell('th', h));
    // Generation tasks also report the word-overlap F1 (docs/metrics.md).
    const f1 = rows.some((r) => r.metrics && r.metrics.f1 !== undefined);
    if (f1) head.appendChild(cell('th', 'F1'));
    if (rows.some((r) => r.delta)) { head.appendChild(cell('th', 'Δ acc.')); head.appendChild(cell('th', 'Δ log-loss')); }
    // Significance (Result.significance, docs/metrics.md): McNemar's exact p-value,
    // the bootstrap interval of the accuracy delta and the verdict at alpha.
    const sig = (rows.find((r) => r.sig) || {}).sig;
    if (sig) {
      for (const h of ['p (McNemar)', `${Math.round(100 * num(sig.conf))}% CI Δ acc.`, `α ${num(sig.alpha)}`]) {
        head.appendChild(cell('th', h));
      }
    }
    table.appendChild(head);
    for (const r of rows) {
      const m = r.metrics || {};
      const tr = cell('tr');
      tr.appendChild(cell('td', r.split));
      tr.appendChild(cell('td', fmtAcc(m.accuracy),
                          { id: `${prefix}-${r.split}-accuracy`, 'data-value': num(m.accuracy) }));
      tr.appendChild(cell('td', fmtLoss(m.log_loss),
                          { id: `${prefix}-${r.split}-log-loss`, 'data-value': num(m.log_loss) }));
      tr.appendChild(cell('td', `${num(m.correct)}/${num(m.examples)}`, { id: `${prefix}-${r.split}-examples` }));
      if (f1) tr.appendChild(cell('td', fmtAcc(m.f1), { id: `${prefix}-${r.split}-f1`, 'data-value': num(m.f1) }));
      if (r.delta) {
        const da = num(r.delta.accuracy), dl = num(r.delta.log_loss);
        tr.appendChild(cell('td', fmtSigned(da, 2), {
          class: `delta ${da > 0 ? 'better' : da < 0 ? 'worse' : ''}`,
          id: `${prefix}-${r.split}-delta-accuracy`, 'data-value': da }));
        tr.appendChild(cell('td', fmtSigned(dl, 4), {
          class: `delta ${dl < 0 ? 'better' : dl > 0 ? 'worse' : ''}`,
          id: `${prefix}-${r.split}-delta-log-loss`, 'data-value': dl }));
      }
      if (r.sig) {
        const p = num(r.sig.p_value), yes = r.sig.significant === true;
        tr.appendChild(cell('td', p.toPrecision(3), { class: 'num', id: `${prefix}-${r.split}-p-value`, 'data-value': p }));
        tr.appendChild(cell('td', `[${fmtSigned(r.sig.accuracy_ci_low, 2)}, ${fmtSigned(r.sig.accuracy_ci_high, 2)}]`,
                            { id: `${prefix}-${r.split}-ci-accuracy`, 'data-value': num(r.sig.accuracy_ci_low) }));
        tr.appendChild(cell('td', yes ? 'significant' : 'n.s.', {
          class: `delta ${yes && num(r.delta && r.delta.accuracy) > 0 ? 'better' : yes ? 'worse' : ''}`,
          id: `${prefix}-${r.split}-significant`, 'data-value': yes ? 1 : 0 }));
      }
      table.appendChild(tr);
    }
  }

  // The task and the rule that decides correctness (docs/metrics.md, "Match rules").
  function describeTask(spec) {
    const short = (v, prefix) => (typeof v === 'string' ? v.replace(prefix, '').toLowerCase() : '');
    const task = short(spec.task, 'TASK_KIND_') || 'unspecified';
    const gen = task === 'generation';
    const given = short(spec.match, 'MATCH_RULE_');
    const rule = given && given !== 'unspecified' ? given : gen ? 'contains' : 'greedy';
    let s = `task ${task === 'unspecified' ? 'per record' : task} · match ${rule}`;
    if (gen) {
      const g = spec.generation || {};
      const stops = g.stop_strings || [];
      s += ` (≤ ${num(g.max_new_tokens) || 16} new tokens` +
        (stops.length ? `, stop ${stops.map((x) => JSON.stringify(x)).join(' ')}` : '') +
        (g.match_prompt ? ', prompt included' : '') + ')';
    }
    return s;
  }

  function renderJob() {
    const job = selectedJob();
    const sum = state.summary;
    $('job-panel').hidden = !job;
    if (!job) return;
    const key = JSON.stringify([job, sum && [sum.state, sum.progress, sum.baseline, sum.best,
                                             sum.best_composition], state.results.length]);
    if (key === state.jobDrawn) return;
    state.jobDrawn = key;
    const st = shortState(sum ? sum.state : job.state);
    setText('job-id', job.id);
    $('job-state').textContent = st;
    $('job-state').className = `state ${st}`;
    const p = (sum && sum.progress) || job.progress || {};
    $('job-bar').style.width = `${(100 * num(p.fraction)).toFixed(1)}%`;
    const bits = [`${num(p.interventions_done)} of ${num(p.interventions_total)} interventions`,
                  `${(100 * num(p.fraction)).toFixed(0)}%`];
    if (p.phase && st === 'running') bits.push(p.phase.replace('JOB_PHASE_', '').toLowerCase());
    if (p.elapsed) bits.push(`elapsed ${fmtDuration(p.elapsed)}`);
    if (p.eta && st === 'running') bits.push(`ETA ${fmtDuration(p.eta)}`);
    if (num(p.interventions_per_second) > 0 && st === 'running') bits.push(`${num(p.interventions_per_second).toFixed(2)}/s`);
    setText('job-progress-text', bits.join(' · '));
    const spec = job.spec || {};
    const ds = spec.dataset ? (spec.dataset.path || `dataset ${spec.dataset.dataset_id}`) : '';
    const ranks = spec.rho ? `ρ ∈ {${(spec.rho.values || []).join(', ')}}` :
      spec.rate ? `rate ∈ {${(spec.rate.values || []).join(', ')}}` : '';
    setText('job-spec', [ds, describeTask(spec), `types ${(spec.matrix_types || []).join(', ') || 'all'}` +
      ((spec.experts || []).length ? ` experts ${spec.experts.join(', ')}` : ''), ranks,
                         `${num(job.validation_examples)} validation / ${num(job.test_examples)} test examples`]
      .filter(Boolean).join(' · '));
    $('job-error').hidden = !job.error;
    if (job.error) setText('job-error', `failed: ${job.error.message}`);

    const base = sum && sum.baseline;
    if (base) {
      metricsTable($('baseline'), 'baseline',
                   [{ split: 'validation', metrics: base.validation }, { split: 'test', metrics: base.test }]);
    } else {
      clear($('baseline'));
      $('baseline').appendChild(cell('tr')).appendChild(cell('td', 'not computed yet', { class: 'muted' }));
    }
    const best = sum && sum.best;
    if (best) {
      const iv = best.intervention;
      const what = $('best-what');
      what.textContent = describe(iv);
      Object.assign(what.dataset, { type: mname(iv), layer: num(iv.layer), rho: num(iv.rho), rank: num(iv.rank) });
      metricsTable($('best'), 'best', withSig(best, [
        { split: 'validation', metrics: best.metrics.validation, delta: best.validation_delta || {} },
        { split: 'test', metrics: best.metrics.test, delta: best.test_delta || {} }]));
    } else {
      setText('best-what', '–');
      clear($('best'));
    }
    const comp = sum && sum.best_composition;
    $('composition-card').hidden = !comp;
    if (comp) {
      const stack = (comp.stacked_on || []).concat([comp.intervention]);
      setText('composition-what', stack.map((iv) => `${mname(iv)}@${num(iv.layer)} ρ ${fmtRho(iv.rho)}`).join(' + '));
      metricsTable($('composition'), 'composition', withSig(comp, [
        { split: 'validation', metrics: comp.metrics.validation, delta: comp.validation_delta || {} },
        { split: 'test', metrics: comp.metrics.test, delta: comp.test_delta || {} }]));
    }
    renderHeatmaps(job);
  }

  function renderHeatmaps(job) {
    const sum = state.summary;
    const singles = state.results.filter((r) => r.kind === 'RESULT_KIND_SINGLE');
    const best = sum && sum.best;
    const key = `${job.id}|${singles.length}|${best ? best.index : ''}|${state.model ? 1 : 0}`;
    if (key === state.drawn) return;
    state.drawn = key;
    const box = $('heatmaps');
    clear(box);
    const grid = planGrid(job, singles);
    const base = sum && sum.baseline ? sum.baseline.validation : null;
    const accs = singles.map((r) => num(r.metrics.validation.accuracy));
    if (base) accs.push(num(base.accuracy));
    let lo = accs.length ? Math.min(...accs) : 0, hi = accs.length ? Math.max(...accs) : 100;
    if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
    const bound = Math.max(1e-6, ...singles.map((r) => Math.abs(num((r.validation_delta || {}).log_loss))));
    const accColor = Charts.sequential(lo, hi), lossColor = Charts.diverging(bound);
    const bestKey = best && best.kind === 'RESULT_KIND_SINGLE' ? mname(best.intervention) : null;
    for (const type of grid.types) {
      const acc = new Map(), loss = new Map();
      for (const r of singles) {
        const iv = r.intervention;
        if (mname(iv) !== type) continue;
        const k = `${num(iv.layer)}|${colKey(iv)}`;
        const v = r.metrics.validation, t = r.metrics.test, dv = r.validation_delta || {};
        const title = `${describe(iv)}\nvalidation: accuracy ${fmtAcc(v.accuracy)} (${fmtSigned(dv.accuracy, 2)}), ` +
          `log-loss ${fmtLoss(v.log_loss)} (${fmtSigned(dv.log_loss, 4)})\n` +
          `test: accuracy ${fmtAcc(t.accuracy)}, log-loss ${fmtLoss(t.log_loss)}`;
        const payload = { type, layer: num(iv.layer) };
        acc.set(k, { value: num(v.accuracy), title, payload });
        loss.set(k, { value: num(dv.log_loss), title, payload });
      }
      const bk = bestKey === type ? `${num(best.intervention.layer)}|${colKey(best.intervention)}` : null;
      const row = cell('div', undefined, { class: 'heatmap-row', 'data-type': type });
      row.appendChild(cell('h4', type));
      const pair = row.appendChild(cell('div', undefined, { class: 'heatmap-pair' }));
      const onClick = (p) => { state.spectrumChosen = true; showSpectrum(p.type, p.layer); };
      pair.appendChild(Charts.heatmap(grid, acc, {
        title: 'validation accuracy (%)', metric: 'accuracy', type, best: bk, onClick,
        color: accColor, format: (v) => v.toFixed(1), legend: [lo, hi, (v) => v.toFixed(1)] }));
      pair.appendChild(Charts.heatmap(grid, loss, {
        title: 'Δ validation log-loss vs baseline', metric: 'delta_log_loss', type, best: bk, onClick,
        color: lossColor, format: (v) => (Math.abs(v) < 0.005 ? 0 : v).toFixed(2),
        legend: [-bound, bound, (v) => fmtSigned(v, 3)] }));
      box.appendChild(row);
    }
  }

  // ----------------------------------------------------------- spectrum
  function fillSpectrumSelectors() {
    const ts = $('spectrum-type'), ls = $('spectrum-layer');
    if (ts.options.length || !state.model) return;
    for (const t of state.model.matrix_types) ts.appendChild(cell('option', t.matrix_type, { value: t.matrix_type }));
    for (let l = 0; l < state.model.num_layers; ++l) ls.appendChild(cell('option', String(l), { value: l }));
    const change = () => { state.spectrumChosen = true; showSpectrum(ts.value, Number(ls.value)); };
    ts.addEventListener('change', change);
    ls.addEventListener('change', change);
  }

  async function showSpectrum(type, layer) {
    const key = `${type}|${layer}`;
    state.spectrumKey = key;
    $('spectrum-type').value = type;
    $('spectrum-layer').value = String(layer);
    let sp = state.spectra.get(key);
    if (!sp) {
      if (state.spectrumLoading.has(key)) return;
      state.spectrumLoading.add(key);
      setText('spectrum-info', `computing the spectrum of ${type} layer ${layer}…`);
      try {
        sp = await api(`/api/spectrum?matrix_type=${encodeURIComponent(type)}&layer=${layer}`);
      } catch (e) {
        if (state.spectrumKey === key) setText('spectrum-info', `spectrum: ${e.message}`);
        return;
      } finally {
        state.spectrumLoading.delete(key);
      }
      state.spectra.set(key, sp);
    }
    if (state.spectrumKey === key) drawSpectrum(sp);
  }

  function drawSpectrum(sp) {
    const marks = [];
    const seen = new Set();
    for (const r of state.results) {
      const iv = r.intervention;
      if (r.kind !== 'RESULT_KIND_SINGLE' || mname(iv) !== sp.matrix_type || num(iv.layer) !== num(sp.layer)) continue;
      const k = num(iv.rank);
      if (seen.has(k)) continue;
      seen.add(k);
      marks.push({ rank: k, cls: 'sweep-rank', label: `swept: k ${k} (ρ ${fmtRho(iv.rho)})` });
    }
    const best = state.summary && state.summary.best;
    if (best && mname(best.intervention) === sp.matrix_type && num(best.intervention.layer) === num(sp.layer)) {
      marks.push({ rank: num(best.intervention.rank), cls: 'best-rank', label: `best: k ${num(best.intervention.rank)}` });
    }
    const key = JSON.stringify([sp.matrix_type, sp.layer, marks]);
    if (key === state.spectrumDrawn) return;
    state.spectrumDrawn = key;
    const box = $('spectrum');
    clear(box);
    box.appendChild(Charts.spectrum(sp, marks));
    const mp = sp.marchenko_pastur || {};
    const info = $('spectrum-info');
    clear(info);
    const add = (s, attrs) => info.appendChild(cell('span', s, attrs));
    add(`${sp.matrix_type} layer ${num(sp.layer)}: ${num(sp.rows)}×${num(sp.cols)}, max rank ${num(sp.max_rank)}, ` +
        `‖W‖_F ${num(sp.frobenius_norm).toPrecision(4)}. Marchenko–Pastur: σ ${num(mp.sigma).toPrecision(3)}, ` +
        `threshold ${num(mp.threshold).toPrecision(4)}, suggested k = `);
    add(String(num(mp.suggested_rank)), { id: 'spectrum-suggested-rank' });
    add(` (ρ ${fmtRho(mp.suggested_rho)}), ‖W−Wₖ‖/‖W‖ ${num(mp.relative_error).toFixed(3)}. ` +
        'Dotted: the ranks this job swept; black: its best.');
  }

  // -------------------------------------------------------------- polling
  async function refreshSelected() {
    const id = state.selected;
    for (;;) {
      const page = await api(`/api/jobs/${encodeURIComponent(id)}/results?page_token=${state.results.length}&page_size=10000`);
      if (id !== state.selected) return;
      for (const r of page.results) {
        if (num(r.index) === state.results.length) state.results.push(r);
      }
      state.summary = page;
      if (!page.next_page_token) break;
    }
    // The list shows the selected job as its panel does (the list was read first).
    const j = selectedJob();
    if (j && state.summary) {
      j.state = state.summary.state;
      j.progress = state.summary.progress;
      j.result_count = state.summary.result_count;
    }
  }

  let timer = null, busy = false;
  async function poll() {
    if (timer) { clearTimeout(timer); timer = null; }
    if (busy) return;
    busy = true;
    try {
      const st = await api('/api/status');
      $('server-status').textContent = st.serving
        ? 'serving'
        : st.store_error ? `job store cannot be written: ${st.store_error}` : 'loading model';
      $('server-status').className = `pill ${st.serving ? 'serving' : ''}`;
      setText('model-name', st.model || '');
      setText('rate', st.running_job ? `${num(st.interventions_per_second).toFixed(2)} interventions/s` : '');
      if (st.serving && !state.model) {
        state.model = await api('/api/model');
        fillSpectrumSelectors();
      }
      state.jobs = (await api('/api/jobs')).jobs || [];
      if (!state.userSelected || !state.jobs.some((j) => j.id === state.selected)) {
        const running = state.jobs.find((j) => shortState(j.state) === 'running');
        const pick = running || state.jobs[0];
        if (pick) selectJob(pick.id, false); else state.selected = null;
      }
      if (state.selected) await refreshSelected();
      renderJobs();
      renderJob();
      if (state.model && !state.spectrumChosen) {
        // Until the user picks one: the best intervention's matrix, else the first.
        const best = state.summary && state.summary.best;
        const [t, l] = best ? [mname(best.intervention), num(best.intervention.layer)]
          : [state.model.matrix_types[0].matrix_type, 0];
        if (`${t}|${l}` !== state.spectrumKey) showSpectrum(t, l);
        else if (state.spectra.has(state.spectrumKey)) drawSpectrum(state.spectra.get(state.spectrumKey));
      } else if (state.spectrumKey && state.spectra.has(state.spectrumKey)) {
        drawSpectrum(state.spectra.get(state.spectrumKey));  // new swept ranks
      }
      showError(null);
      document.body.dataset.polls = String(num(document.body.dataset.polls) + 1);
    } catch (e) {
      showError(e);
      $('server-status').textContent = e.status ? `HTTP ${e.status}` : 'unreachable';
      $('server-status').className = 'pill down';
    } finally {
      busy = false;
      timer = setTimeout(poll, state.interval);
    }
  }
  poll();
})();
