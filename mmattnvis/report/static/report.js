/* mmattnvis report: gallery, filters, detail view, encoder attention on click.
 * Vanilla JS, no network: data files are <script> tags (file:// pages cannot fetch()).
 * window.MMATTNVIS exposes the state for tests and curious users. */
(function () {
  'use strict';
  var IDX = window.MMATTNVIS_INDEX;
  var records = {};
  var pending = {};
  var decoded = {};
  var state = {
    cls: '', score: 0, layer: '', method: '', visible: [], current: null, map: -1,
    detection: null, encoder: null, sampling: null, alpha: IDX.alpha, sort: null
  };
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    var k;
    for (k in attrs || {}) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'class') e.className = attrs[k];
      else if (k.slice(0, 2) === 'on') e.addEventListener(k.slice(2), attrs[k]);
      else if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) {
      if (c !== null && c !== undefined) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return e;
  }
  var SVG = 'http://www.w3.org/2000/svg';
  function svgEl(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function fmt(v) {
    if (v === null || v === undefined) return '—';
    if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(4);
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }
  function rgb(c) { return 'rgb(' + c[0] + ',' + c[1] + ',' + c[2] + ')'; }

  /* ----- hash routing: #i=<image>&m=<map name>, #tab=<tab> ----- */
  function parseHash() {
    var out = {};
    location.hash.replace(/^#/, '').split('&').forEach(function (kv) {
      if (!kv) return;
      var p = kv.split('=');
      out[decodeURIComponent(p[0])] = decodeURIComponent(p.slice(1).join('='));
    });
    return out;
  }
  function hashOf(params) {
    var parts = [];
    for (var k in params) if (params[k] !== null && params[k] !== undefined && params[k] !== '') parts.push(encodeURIComponent(k) + '=' + encodeURIComponent(params[k]));
    return '#' + parts.join('&');
  }
  function route() {
    var h = parseHash();
    if (h.i !== undefined && IDX.images[+h.i]) {
      openDetail(+h.i, h.m);
      return;
    }
    closeDetailView();
    var tab = h.tab || 'gallery';
    ['gallery', 'faithfulness', 'ablation', 'run'].forEach(function (t) {
      var v = $(t + '-view');
      if (v) v.hidden = t !== tab;
    });
    Array.prototype.forEach.call(document.querySelectorAll('#tabs .tab'), function (a) {
      a.classList.toggle('active', a.getAttribute('data-tab') === tab);
    });
  }

  /* ----- gallery and filters ----- */
  function matchDet(e, cls, score) {
    if (cls === '' && score <= 0) return true;
    return e.dets.some(function (d) { return (cls === '' || d[0] === cls) && d[1] >= score; });
  }
  function matchFacet(e, layer, method) {
    if (layer === '' && method === '') return true;
    return e.facets.some(function (f) {
      return (layer === '' || f[0] === layer) && (method === '' || f[1] === method);
    });
  }
  function matches(e, s) { return matchDet(e, s.cls, s.score) && matchFacet(e, s.layer, s.method); }
  function countWith(over) {
    var s = Object.assign({}, state, over);
    return IDX.images.filter(function (e) { return matches(e, s); }).length;
  }
  function fillSelect(sel, names, key) {
    var cur = state[key];
    sel.innerHTML = '';
    sel.appendChild(el('option', { value: '', text: 'all (' + countWith(obj(key, '')) + ')' }));
    names.forEach(function (n, i) {
      var o = el('option', { value: String(i), text: n + ' (' + countWith(obj(key, i)) + ')' });
      if (cur === i) o.selected = true;
      sel.appendChild(o);
    });
  }
  function obj(k, v) { var o = {}; o[k] = v; return o; }
  function applyFilters() {
    var cards = $('cards').children;
    state.visible = [];
    IDX.images.forEach(function (e, i) {
      var ok = matches(e, state);
      cards[i].hidden = !ok;
      if (ok) state.visible.push(i);
    });
    var c = $('count');
    c.textContent = state.visible.length + ' of ' + IDX.images.length + ' images';
    c.setAttribute('data-count', state.visible.length);
    fillSelect($('f-class'), IDX.classes, 'cls');
    fillSelect($('f-layer'), IDX.layers, 'layer');
    fillSelect($('f-method'), IDX.methods, 'method');
  }
  function buildGallery() {
    var box = $('cards');
    IDX.images.forEach(function (e, i) {
      var dets = e.dets.length;
      box.appendChild(el('a', { class: 'card', href: hashOf({ i: i }), 'data-index': i, title: e.name }, [
        el('img', { src: e.thumb, loading: 'lazy', alt: e.name }),
        el('span', { class: 'cap' }, [
          el('b', { text: e.name + (e.when ? ' · ' + e.when : '') }),
          el('span', { text: dets + ' det' + (dets === 1 ? '' : 's') + ' · ' + e.maps + ' map' + (e.maps === 1 ? '' : 's') +
            (e.interactive === 'encoder' ? ' · click: encoder' : e.interactive === 'sampling' ? ' · sampling points' : '') })
        ])
      ]));
    });
    function sel(id, key) {
      $(id).addEventListener('change', function () {
        state[key] = this.value === '' ? '' : +this.value;
        applyFilters();
      });
    }
    sel('f-class', 'cls');
    sel('f-layer', 'layer');
    sel('f-method', 'method');
    $('f-score').addEventListener('input', function () {
      state.score = +this.value;
      $('f-score-out').textContent = state.score.toFixed(2);
      applyFilters();
    });
    applyFilters();
  }

  /* ----- records, loaded on demand ----- */
  window.MMATTNVIS_RECORD = function (id, data) {
    records[id] = data;
    (pending[id] || []).forEach(function (f) { f(data); });
    delete pending[id];
  };
  function loadRecord(id, cb, onerror) {
    if (records[id]) { cb(records[id]); return; }
    if (pending[id]) { pending[id].push(cb); return; }
    pending[id] = [cb];
    var s = el('script', { src: 'data/' + id + '.js' });
    s.onerror = function () { delete pending[id]; onerror('cannot load data/' + id + '.js'); };
    document.head.appendChild(s);
  }

  /* ----- detail view ----- */
  function openDetail(i, mapName) {
    var e = IDX.images[i];
    $('detail').hidden = false;
    document.body.classList.add('noscroll');
    $('d-title').textContent = (i + 1) + ' / ' + IDX.images.length + ' · ' + e.name;
    if (state.current && state.current.index === i) { selectMapByName(mapName); return; }
    state.current = null;
    state.encoder = null;
    state.sampling = null;
    state.detection = null;
    $('d-body').innerHTML = '<p class="loading">loading…</p>';
    loadRecord(e.id, function (rec) {
      if (+parseHash().i !== i) return;
      state.current = rec;
      renderDetail(rec);
      selectMapByName(mapName);
    }, function (msg) { $('d-body').textContent = msg; });
  }
  function closeDetailView() {
    $('detail').hidden = true;
    document.body.classList.remove('noscroll');
    state.current = null;
  }
  function step(delta) {
    var cur = +parseHash().i;
    var order = state.visible.indexOf(cur) >= 0 ? state.visible : IDX.images.map(function (_, k) { return k; });
    var pos = order.indexOf(cur);
    var next = order[(pos + delta + order.length) % order.length];
    location.hash = hashOf({ i: next });
  }

  function makeStage(rec, cls, withHeat) {
    var stage = el('div', { class: 'stage ' + (cls || '') });
    stage.style.aspectRatio = rec.width + ' / ' + rec.height;
    stage.style.maxWidth = Math.max(rec.width, Math.min(960, 3 * rec.width)) + 'px';  // small images upscaled
    stage.appendChild(el('img', { class: 'base', src: rec.image, alt: rec.name, draggable: 'false' }));
    if (withHeat) stage.appendChild(el('canvas', { class: 'heat', width: rec.pixels[1], height: rec.pixels[0], hidden: '' }));
    return stage;
  }
  /* A stored map (grey PNG/JPEG data: URL, aligned with the image in Python) drawn on a canvas:
   * bilinear upscaling to the canvas size, then the colormap table. data: images keep the
   * canvas readable, where file:// images would taint it. */
  function paintHeat(canvas, map, done) {
    var img = new Image();
    var ticket = canvas.paintTicket = (canvas.paintTicket || 0) + 1;
    img.onload = function () {
      if (canvas.paintTicket !== ticket) return;  // a later map was asked for meanwhile
      var ctx = canvas.getContext('2d');
      ctx.imageSmoothingEnabled = true;
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
      var d = ctx.getImageData(0, 0, canvas.width, canvas.height), px = d.data, lut = IDX.lut;
      for (var i = 0; i < px.length; i += 4) {
        var c = lut[px[i]];
        px[i] = c[0]; px[i + 1] = c[1]; px[i + 2] = c[2]; px[i + 3] = 255;
      }
      ctx.putImageData(d, 0, 0);
      canvas.setAttribute('data-map', map.name);
      if (done) done();
    };
    img.src = map.data;
  }
  function boxesLayer(rec) {
    // boxes with labels placed in Python (render.labels.place_labels: they never overlap)
    var svg = svgEl('svg', { class: 'boxes', viewBox: '0 0 ' + rec.width + ' ' + rec.height, preserveAspectRatio: 'none' });
    var fs = rec.font;
    rec.detections.forEach(function (d) {
      var c = IDX.palette[d.label % IDX.palette.length];
      var g = svgEl('g', { 'data-rank': d.rank });
      g.appendChild(svgEl('rect', { class: 'box', x: d.bbox[0], y: d.bbox[1], width: d.bbox[2] - d.bbox[0], height: d.bbox[3] - d.bbox[1], stroke: rgb(c) }));
      var tb = d.text_box;
      g.appendChild(svgEl('rect', { class: 'tag', x: tb[0], y: tb[1], width: tb[2] - tb[0], height: tb[3] - tb[1], fill: rgb(c) }));
      var t = svgEl('text', { x: tb[0] + fs * 0.2, y: tb[1] + fs * 1.0, 'font-size': fs, fill: (c[0] + c[1] + c[2]) / 3 > 140 ? '#000' : '#fff' });
      t.textContent = d.cls + ' ' + d.score.toFixed(2);
      g.appendChild(t);
      svg.appendChild(g);
    });
    return svg;
  }
  // tiles are painted when they scroll into view (a DETR image can have thousands)
  var tileObserver = 'IntersectionObserver' in window ? new IntersectionObserver(function (entries) {
    entries.forEach(function (e) {
      if (!e.isIntersecting) return;
      tileObserver.unobserve(e.target);
      paintHeat(e.target, e.target.pendingMap);
    });
  }, { rootMargin: '300px' }) : null;
  function tile(rec, k, caption) {
    var m = rec.maps[k];
    var tw = 104, th = Math.max(1, Math.round(tw * rec.height / rec.width));
    var cv;
    if (m.points) {  // sampling points: drawn as points over the thumbnail
      cv = el('canvas', { class: 'pts', width: 2 * tw, height: 2 * th });
      drawPoints(cv, rec, m.points);
    } else {
      cv = el('canvas', { class: 'heat', width: tw, height: th });
      cv.pendingMap = m;
      if (tileObserver) tileObserver.observe(cv); else paintHeat(cv, m);
    }
    return el('button', { class: 'tile', 'data-k': k, title: m.name + (m.label ? ' — ' + m.label : ''), onclick: function () { selectMap(k, true); } }, [
      el('span', { class: 'tthumb', style: 'aspect-ratio: ' + rec.width + ' / ' + rec.height }, [
        el('img', { src: rec.image, loading: 'lazy', alt: '' }), cv
      ]),
      el('span', { class: 'tcap', text: caption || m.caption || m.label || m.name })
    ]);
  }

  function renderDetail(rec) {
    var body = $('d-body');
    body.innerHTML = '';
    var main = makeStage(rec, 'main', true);
    main.appendChild(el('canvas', { class: 'pts', width: rec.width, height: rec.height }));
    main.appendChild(boxesLayer(rec));
    if (rec.encoder) main.appendChild(el('div', { class: 'marker', hidden: '' }));
    main.addEventListener('click', function (ev) {
      var r = main.getBoundingClientRect();
      var x = (ev.clientX - r.left) / r.width * rec.width;
      var y = (ev.clientY - r.top) / r.height * rec.height;
      clickImage(rec, x, y);
    });
    var hint = rec.encoder ? 'Click on the image: encoder self-attention at that point, both directions.' :
      rec.sampling ? 'Click on a detection: the sampling points of its query.' : '';
    var left = el('div', { class: 'd-left' }, [
      el('div', { class: 'map-title', id: 'd-map-title' }),
      main,
      hint ? el('p', { class: 'hint', text: hint }) : null,
      rec.note ? el('p', { class: 'warn', text: 'Image: ' + rec.note + ' (grey placeholder)' }) : null,
      rec.left_out.length ? el('p', { class: 'warn', text: rec.left_out.join('; ') }) : null,
      rec.encoder ? encoderPanel(rec) : null,
      el('h3', { text: 'Map metadata' }),
      el('table', { class: 'data meta', id: 'd-meta' })
    ]);
    var right = el('div', { class: 'd-right' }, [detectionsTable(rec), mapsPanel(rec)]);
    if (rec.faithfulness.length) right.appendChild(faithPanel(rec));
    if (rec.settings.length) right.appendChild(settingsPanel(rec));
    right.appendChild(recordPanel(rec));
    body.appendChild(left);
    body.appendChild(right);
    setAlpha(state.alpha);
  }

  function recordPanel(rec) {
    // the record as a short table (the full record is in the results folder's JSON)
    var g = rec.geometry;
    var rows = [['image', rec.name], ['task', rec.task],
      ['size', g.ori_shape[1] + ' × ' + g.ori_shape[0] + ' (network input ' + g.input_shape[1] + ' × ' + g.input_shape[0] + ')']];
    Object.keys(rec.arrays).forEach(function (n) {
      rows.push([n, rec.arrays[n][1] + ' [' + rec.arrays[n][0].join(' × ') + ']']);
    });
    Object.keys(rec.info).forEach(function (k) {
      var v = rec.info[k];
      if (k === 'columns') return;
      var t = fmt(v);
      rows.push([k, t.length > 120 ? t.slice(0, 120) + '…' : t]);
    });
    var t = el('table', { class: 'data meta', id: 'd-record' });
    rows.forEach(function (r) { t.appendChild(el('tr', {}, [el('th', { text: r[0] }), el('td', { text: r[1] })])); });
    return el('div', {}, [el('h3', { text: 'Record' }), t]);
  }

  function detectionsTable(rec) {
    var t = el('table', { class: 'data dets', id: 'd-dets' });
    t.appendChild(el('tr', {}, ['rank', 'query', 'class', 'score', 'bbox'].map(function (h) { return el('th', { text: h }); })));
    rec.detections.forEach(function (d) {
      t.appendChild(el('tr', { 'data-rank': d.rank, onclick: function () { selectDetection(rec, d.rank); } }, [
        el('td', { text: d.rank }), el('td', { text: d.query }),
        el('td', {}, [el('span', { class: 'swatch', style: 'background:' + rgb(IDX.palette[d.label % IDX.palette.length]) }), d.cls]),
        el('td', { text: d.score.toFixed(3) }),
        el('td', { text: d.bbox.map(function (v) { return Math.round(v); }).join(', ') })
      ]));
    });
    return el('div', {}, [el('h3', { text: 'Detections (' + rec.detections.length + ')' }), t]);
  }

  function mapsPanel(rec) {
    var box = el('div', { class: 'maps' }, [el('h3', { text: 'Maps (' + rec.maps.length + ')' })]);
    box.appendChild(el('button', { class: 'plain', text: 'image only', onclick: function () { selectMap(-1, true); } }));
    rec.groups.forEach(function (g) {
      var sec = el('section', { class: 'group', 'data-kind': g.kind, 'data-detection': g.detection === null ? '' : g.detection }, [el('h4', { text: g.title })]);
      if (g.type === 'grid') {
        var t = el('table', { class: 'grid' });
        t.appendChild(el('tr', {}, [el('th', { text: 'layer \\ head' })].concat(g.cols.map(function (c) { return el('th', { text: c }); }))));
        g.rows.forEach(function (r, ri) {
          t.appendChild(el('tr', {}, [el('th', { text: r })].concat(g.cells[ri].map(function (k, ci) {
            return el('td', {}, [k === null ? null : tile(rec, k, (r === 'all' ? 'all' : 'L' + r) + ' ' + (g.cols[ci] === 'fused' ? 'fused' : 'H' + g.cols[ci]))]);
          }))));
        });
        sec.appendChild(el('div', { class: 'gridwrap' }, [t]));
      } else {
        sec.appendChild(el('div', { class: 'tiles' }, g.items.map(function (k) { return tile(rec, k); })));
      }
      box.appendChild(sec);
    });
    return box;
  }

  function faithPanel(rec) {
    var t = el('table', { class: 'data' });
    var cols = Object.keys(rec.faithfulness[0].values);
    t.appendChild(el('tr', {}, cols.map(function (c) { return el('th', { text: c }); })));
    rec.faithfulness.forEach(function (row) {
      t.appendChild(el('tr', { class: row.map ? 'link' : '', onclick: function () { if (row.map) selectMapByName(row.map, true); } },
        cols.map(function (c) { return el('td', { text: fmt(row.values[c]) }); })));
    });
    return el('div', {}, [el('h3', { text: 'Faithfulness' }), t]);
  }

  function settingsPanel(rec) {
    var box = el('div', { class: 'settings' }, [el('h3', { text: 'Detections per head setting' })]);
    rec.settings.forEach(function (s) {
      var t = el('table', { class: 'data', 'data-setting': s.name });
      t.appendChild(el('tr', {}, ['rank', 'class', 'score', 'bbox'].map(function (h) { return el('th', { text: h }); })));
      (s.detections || []).forEach(function (d) {
        t.appendChild(el('tr', {}, [el('td', { text: d.rank }), el('td', { text: d.class_name || ('class ' + d.label) }),
          el('td', { text: fmt(d.score) }), el('td', { text: (d.bbox || []).map(function (v) { return Math.round(v); }).join(', ') })]));
      });
      box.appendChild(el('h4', { text: s.name + ' — heads off: ' + fmt(s.heads_off) + ' — ' + (s.detections || []).length + ' detections' }));
      box.appendChild(t);
    });
    return box;
  }

  function selectMapByName(name, push) {
    var rec = state.current;
    if (!rec) return;
    var k = -1;
    if (name) rec.maps.forEach(function (m, j) { if (m.name === name) k = j; });
    selectMap(k, push);
  }
  function selectMap(k, push) {
    var rec = state.current;
    state.map = k;
    var heat = document.querySelector('#d-body .stage.main canvas.heat');
    var m = k >= 0 ? rec.maps[k] : null;
    heat.removeAttribute('data-map');
    if (m && m.points) {
      heat.hidden = true;
      showPoints(rec, m.points, typeof m.meta.detection === 'number' ? m.meta.detection : null, m.name);
    } else if (m) { paintHeat(heat, m, function () { heat.hidden = state.map !== k; }); } else { heat.hidden = true; }
    $('d-map-title').textContent = m ? m.name + (m.label ? ' — ' + m.label : '') : 'image and detections';
    Array.prototype.forEach.call(document.querySelectorAll('#d-body .tile'), function (t) {
      t.classList.toggle('selected', +t.getAttribute('data-k') === k);
    });
    var meta = $('d-meta');
    meta.innerHTML = '';
    if (m) {
      var rows = [['name', m.name], ['label', m.label], ['shape', m.shape.join(' × ')]];
      rows.push(m.points ? ['drawn', m.points.length + ' sampling points (circle area: weight, colour: level)'] :
        ['stored', m.stored.join(' × ') + ' (aligned with the image)']);
      for (var key in m.meta) rows.push([key, m.meta[key]]);
      rows.forEach(function (r) { meta.appendChild(el('tr', {}, [el('th', { text: r[0] }), el('td', { text: fmt(r[1]) })])); });
      if (typeof m.meta.detection === 'number') highlight(m.meta.detection);
    }
    if (push) history.replaceState(null, '', hashOf({ i: rec.index, m: m ? m.name : null }));
  }
  function highlight(rank) {
    state.detection = rank;
    Array.prototype.forEach.call(document.querySelectorAll('#d-body [data-rank]'), function (n) {
      n.classList.toggle('selected', +n.getAttribute('data-rank') === rank);
    });
  }
  function selectDetection(rec, rank) {
    highlight(rank);
    if (rec.sampling) drawSampling(rec, rank);
    var g = document.querySelector('#d-body section.group[data-detection="' + rank + '"]');
    if (g) g.scrollIntoView({ block: 'nearest' });
  }
  function setAlpha(a) {
    state.alpha = a;
    $('detail').style.setProperty('--alpha', a);
    $('d-alpha').value = a;
  }

  function clickImage(rec, x, y) {
    if (rec.encoder) showEncoder(rec, x, y);
    if (rec.sampling) {
      var best = null;
      rec.detections.forEach(function (d) {
        if (!rec.sampling[String(d.rank)]) return;
        var b = d.bbox;
        var inside = x >= b[0] && x <= b[2] && y >= b[1] && y <= b[3];
        var cx = (b[0] + b[2]) / 2, cy = (b[1] + b[3]) / 2;
        var key = inside ? [0, (b[2] - b[0]) * (b[3] - b[1])] : [1, (x - cx) * (x - cx) + (y - cy) * (y - cy)];
        if (!best || key[0] < best.key[0] || (key[0] === best.key[0] && key[1] < best.key[1])) best = { key: key, rank: d.rank };
      });
      if (best) { highlight(best.rank); drawSampling(rec, best.rank); }
    }
  }

  /* ----- deformable: sampling points of a query ----- */
  function drawSampling(rec, rank) {
    showPoints(rec, rec.sampling[String(rank)] || [], rank, null);
  }
  function showPoints(rec, pts, rank, mapName) {
    var cv = document.querySelector('#d-body .stage.main canvas.pts');
    drawPoints(cv, rec, pts);
    state.sampling = { rank: rank, points: pts, map: mapName };
    cv.setAttribute('data-rank', rank === null ? '' : rank);
    cv.setAttribute('data-points', pts.length);
  }
  // points x, y (original-image pixels), weight, level: circle area ~ weight, colour = level
  function drawPoints(cv, rec, pts) {
    var ctx = cv.getContext('2d');
    ctx.clearRect(0, 0, cv.width, cv.height);
    var wmax = 0;
    pts.forEach(function (p) { if (p[2] > wmax) wmax = p[2]; });
    wmax = wmax || 1;
    var sc = cv.width / rec.width;  // a tile's canvas is smaller than the image
    var maxR = Math.max(3, Math.min(cv.width, cv.height) / 40);
    ctx.lineWidth = Math.max(0.5, Math.min(1, sc * 2));
    pts.slice().sort(function (a, b) { return a[2] - b[2]; }).forEach(function (p) {
      if (p[0] === null || p[1] === null) return;
      var r = Math.max(1, maxR * Math.sqrt(Math.max(p[2], 0) / wmax));
      ctx.beginPath();
      ctx.arc(p[0] * sc, p[1] * sc, r, 0, 2 * Math.PI);
      ctx.fillStyle = rgb(IDX.level_colors[(p[3] | 0) % IDX.level_colors.length]);
      ctx.globalAlpha = 0.85;
      ctx.fill();
      ctx.globalAlpha = 1;
      ctx.strokeStyle = '#000';
      ctx.stroke();
    });
  }

  /* ----- DETR: encoder self-attention at a clicked point ----- */
  function b64bytes(s) {
    var bin = atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function encoderData(rec) {
    if (decoded[rec.id]) return decoded[rec.id];
    var q = b64bytes(rec.encoder.q);
    var sb = b64bytes(rec.encoder.s);
    var dv = new DataView(sb.buffer);
    var n = rec.encoder.grid[0] * rec.encoder.grid[1];
    var s = new Float64Array(n);
    for (var i = 0; i < n; i++) s[i] = dv.getFloat32(4 * i, true);
    decoded[rec.id] = { q: q, s: s, n: n };
    return decoded[rec.id];
  }
  function encoderPanel(rec) {
    var g = rec.geometry;
    var box = g.content_box, ow = g.ori_shape[1], oh = g.ori_shape[0];
    var cover = encoderCover(rec), W = cover[1], H = cover[0];
    // the encoder grid covers the network input; place it in original-image coordinates
    var X0 = (0 - box[0]) * ow / (box[2] - box[0]), X1 = (W - box[0]) * ow / (box[2] - box[0]);
    var Y0 = (0 - box[1]) * oh / (box[3] - box[1]), Y1 = (H - box[1]) * oh / (box[3] - box[1]);
    function pane(dir, caption) {
      var st = makeStage(rec, 'enc-stage', false);
      var cv = el('canvas', { class: 'enc', 'data-direction': dir, width: rec.encoder.grid[1], height: rec.encoder.grid[0] });
      cv.style.left = (X0 / ow * 100) + '%';
      cv.style.top = (Y0 / oh * 100) + '%';
      cv.style.width = ((X1 - X0) / ow * 100) + '%';
      cv.style.height = ((Y1 - Y0) / oh * 100) + '%';
      st.appendChild(cv);
      st.appendChild(el('div', { class: 'marker', hidden: '' }));
      st.addEventListener('click', function (ev) {
        var r = st.getBoundingClientRect();
        showEncoder(rec, (ev.clientX - r.left) / r.width * rec.width, (ev.clientY - r.top) / r.height * rec.height);
      });
      return el('figure', {}, [st, el('figcaption', { text: caption })]);
    }
    return el('div', { class: 'encoder', id: 'd-encoder' }, [
      el('h3', { text: 'Encoder self-attention (grid ' + rec.encoder.grid[0] + ' × ' + rec.encoder.grid[1] + ')' }),
      el('p', { class: 'readout', id: 'd-enc-readout', text: 'click a point on the image' }),
      el('div', { class: 'pair' }, [
        pane('to', 'what the point attends to (row)'),
        pane('from', 'what attends to the point (column)')
      ])
    ]);
  }
  function encoderCover(rec) {
    // input pixels (h, w) under the grid: cell j of a strided grid covers [s*j, s*(j+1))
    var e = rec.encoder;
    return e.stride ? [e.grid[0] * e.stride, e.grid[1] * e.stride] : rec.geometry.input_shape;
  }
  function tokenAt(rec, x, y) {
    var g = rec.geometry, b = g.content_box, cover = encoderCover(rec);
    var xi = b[0] + x * (b[2] - b[0]) / g.ori_shape[1];
    var yi = b[1] + y * (b[3] - b[1]) / g.ori_shape[0];
    var gh = rec.encoder.grid[0], gw = rec.encoder.grid[1];
    var col = Math.min(gw - 1, Math.max(0, Math.floor(xi * gw / cover[1])));
    var row = Math.min(gh - 1, Math.max(0, Math.floor(yi * gh / cover[0])));
    return [row, col];
  }
  function paint(cv, values) {
    var n = values.length, mn = Infinity, mx = -Infinity, i;
    for (i = 0; i < n; i++) { if (values[i] < mn) mn = values[i]; if (values[i] > mx) mx = values[i]; }
    var ctx = cv.getContext('2d');
    var img = ctx.createImageData(cv.width, cv.height);
    var idx = new Array(n);
    for (i = 0; i < n; i++) {
      var u = mx > mn ? Math.floor((values[i] - mn) / (mx - mn) * 255) : 0;
      u = Math.max(0, Math.min(255, u));
      idx[i] = u;
      var c = IDX.lut[u];
      img.data[4 * i] = c[0]; img.data[4 * i + 1] = c[1]; img.data[4 * i + 2] = c[2]; img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    return idx;
  }
  function showEncoder(rec, x, y) {
    var d = encoderData(rec);
    var rc = tokenAt(rec, x, y);
    var tok = rc[0] * rec.encoder.grid[1] + rc[1];
    var row = new Array(d.n), col = new Array(d.n);
    for (var j = 0; j < d.n; j++) {
      row[j] = d.q[tok * d.n + j] * d.s[tok] / 255;
      col[j] = d.q[j * d.n + tok] * d.s[j] / 255;
    }
    var cvs = document.querySelectorAll('#d-encoder canvas.enc');
    var idxTo = paint(cvs[0], row), idxFrom = paint(cvs[1], col);
    Array.prototype.forEach.call(document.querySelectorAll('#d-body .marker'), function (mk) {
      mk.hidden = false;
      mk.style.left = (x / rec.width * 100) + '%';
      mk.style.top = (y / rec.height * 100) + '%';
    });
    state.encoder = { point: [x, y], token: tok, cell: rc, row: row, col: col, idx_to: idxTo, idx_from: idxFrom };
    $('d-enc-readout').textContent = 'point (' + Math.round(x) + ', ' + Math.round(y) + ') → token ' + tok +
      ' (row ' + rc[0] + ', col ' + rc[1] + '); row max ' + Math.max.apply(null, row).toExponential(3) +
      ', column max ' + Math.max.apply(null, col).toExponential(3);
    $('d-encoder').setAttribute('data-token', tok);
  }

  /* ----- faithfulness and ablation tables ----- */
  function buildFaithTable() {
    var t = $('faith-table');
    if (!t || !IDX.faithfulness.length) return;
    var cols = ['image'];
    IDX.faithfulness.forEach(function (r) { Object.keys(r.values).forEach(function (k) { if (cols.indexOf(k) < 0) cols.push(k); }); });
    var rows = IDX.faithfulness.map(function (r) {
      var v = Object.assign({ image: r.name }, r.values);
      return { r: r, v: v };
    });
    function render() {
      t.innerHTML = '';
      t.appendChild(el('tr', {}, cols.map(function (c) {
        var mark = state.sort && state.sort.col === c ? (state.sort.dir > 0 ? ' ▲' : ' ▼') : '';
        return el('th', { 'data-col': c, text: c + mark, onclick: function () { sortBy(c); } });
      })));
      rows.forEach(function (row) {
        var link = row.r.map !== null ? hashOf({ i: row.r.image, m: row.r.map }) : null;
        t.appendChild(el('tr', { class: link ? 'link' : '', 'data-href': link, onclick: function () { if (link) location.hash = link; } },
          cols.map(function (c) { return el('td', { text: fmt(row.v[c]) }); })));
      });
      t.setAttribute('data-sort', state.sort ? state.sort.col + ':' + state.sort.dir : '');
    }
    function sortBy(c) {
      var dir = state.sort && state.sort.col === c ? -state.sort.dir : 1;
      state.sort = { col: c, dir: dir };
      rows.sort(function (a, b) {
        var x = a.v[c], y = b.v[c];
        var nx = x === null || x === undefined, ny = y === null || y === undefined;
        if (nx || ny) return nx === ny ? 0 : nx ? 1 : -1;  // empty cells last
        if (typeof x === 'number' && typeof y === 'number') return dir * (x - y);
        return dir * String(x).localeCompare(String(y), undefined, { numeric: true });
      });
      render();
    }
    render();
    buildFaithSummary(cols);
  }
  function buildFaithSummary(cols) {
    // mean of every numeric column per method (empty cells left out), as the runner's summary
    var t = $('faith-summary');
    var methods = [], acc = {};
    IDX.faithfulness.forEach(function (r) {
      var m = String(r.values.method);
      if (!acc[m]) { acc[m] = { n: 0, sum: {}, cnt: {} }; methods.push(m); }
      acc[m].n += 1;
      cols.forEach(function (c) {
        var v = r.values[c];
        if (typeof v === 'number' && ['detection', 'label', 'score', 'image'].indexOf(c) < 0) {
          acc[m].sum[c] = (acc[m].sum[c] || 0) + v;
          acc[m].cnt[c] = (acc[m].cnt[c] || 0) + 1;
        }
      });
    });
    var metric = cols.filter(function (c) { return methods.some(function (m) { return acc[m].cnt[c]; }); });
    t.appendChild(el('tr', {}, ['method', 'rows'].concat(metric).map(function (c) { return el('th', { text: c }); })));
    methods.forEach(function (m) {
      t.appendChild(el('tr', { 'data-method': m }, [el('td', { text: m }), el('td', { text: acc[m].n })].concat(metric.map(function (c) {
        return el('td', { text: acc[m].cnt[c] ? (acc[m].sum[c] / acc[m].cnt[c]).toFixed(4) : '—' });
      }))));
    });
  }
  function buildAblationTable() {
    var t = $('ablation-table');
    if (!t) return;
    var cols = ['name', 'heads_off', 'images', 'detections', 'mean_score'];
    t.appendChild(el('tr', {}, cols.map(function (c) { return el('th', { text: c }); })));
    IDX.ablation.forEach(function (s) {
      t.appendChild(el('tr', {}, cols.map(function (c) { return el('td', { text: fmt(s[c]) }); })));
    });
  }

  /* ----- keys and wiring ----- */
  document.addEventListener('keydown', function (ev) {
    if ($('detail').hidden) return;
    var tag = (ev.target.tagName || '').toLowerCase();
    if (tag === 'input' || tag === 'select' || tag === 'textarea') return;
    if (ev.key === 'ArrowLeft') { step(-1); ev.preventDefault(); }
    else if (ev.key === 'ArrowRight') { step(1); ev.preventDefault(); }
    else if (ev.key === 'Escape') { location.hash = ''; }
    else if ((ev.key === 'ArrowDown' || ev.key === 'ArrowUp') && state.current) {
      var n = state.current.maps.length;
      if (n) { selectMap(((state.map + (ev.key === 'ArrowDown' ? 1 : -1)) % n + n) % n, true); ev.preventDefault(); }
    }
  });
  $('d-prev').addEventListener('click', function () { step(-1); });
  $('d-next').addEventListener('click', function () { step(1); });
  $('d-close').addEventListener('click', function () { location.hash = ''; });
  $('d-alpha').addEventListener('input', function () { setAlpha(+this.value); });
  window.addEventListener('hashchange', route);

  buildGallery();
  buildFaithTable();
  buildAblationTable();
  setAlpha(IDX.alpha);
  route();
  window.MMATTNVIS = { index: IDX, records: records, state: state, tokenAt: tokenAt, showEncoder: showEncoder, ready: true };
  document.documentElement.setAttribute('data-ready', '1');
})();
