// vidray report: the gallery (paged, filterable by label), the videos table with per-video
// timelines, and the label-association picker. Data files are scripts that call
// vidray.put(key, data), so the report works from disk (file://) with no server.
"use strict";

const vidray = (() => {
  const store = new Map();
  const waiting = new Map();

  function put(key, data) {
    store.set(key, data);
    (waiting.get(key) || []).forEach((resolve) => resolve(data));
    waiting.delete(key);
  }

  // The data of `key`, loading data/<key>.js once when it is not there yet.
  function need(key) {
    if (store.has(key)) return Promise.resolve(store.get(key));
    return new Promise((resolve, reject) => {
      if (!waiting.has(key)) {
        waiting.set(key, []);
        const tag = document.createElement("script");
        tag.src = `data/${key}.js`;
        tag.onerror = () => reject(new Error(`could not load data/${key}.js`));
        document.head.appendChild(tag);
      }
      waiting.get(key).push(resolve);
    });
  }

  return { put, need, get: (key) => store.get(key) };
})();

const PAGE = 60;
const THUMBS_PER_FOLDER = 1000;
const TIMELINES_PER_FOLDER = 1000;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "onclick") node.addEventListener("click", v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function svgEl(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

const pad = (n, width) => String(n).padStart(width, "0");
const thumbSrc = (g) => `thumbs/${pad(Math.floor(g / THUMBS_PER_FOLDER), 4)}/${g}.jpg`;
const timelineKey = (v) => `timeline/${pad(Math.floor(v / TIMELINES_PER_FOLDER), 4)}/${v}`;
const clock = (s) => `${Math.floor(s / 60)}:${pad(Math.floor(s % 60), 2)}`;

// ---- gallery -------------------------------------------------------------------------------

const gallery = { frames: null, label: null, page: 0 };

async function showGallery() {
  const info = vidray.get("dataset");
  const grid = document.getElementById("grid");
  const positions = gallery.frames;
  const total = positions ? positions.length : info.gallery;
  const pages = Math.max(1, Math.ceil(total / PAGE));
  gallery.page = Math.min(Math.max(gallery.page, 0), pages - 1);
  const first = gallery.page * PAGE;
  const shown = [];
  for (let i = first; i < Math.min(total, first + PAGE); i++) shown.push(positions ? positions[i] : i);
  const chunks = [...new Set(shown.map((g) => Math.floor(g / info.chunk)))];
  await Promise.all(chunks.map((c) => vidray.need(`gallery/${pad(c, 5)}`)));
  const [videos] = await Promise.all([vidray.need("videos")]);
  grid.replaceChildren(
    ...shown.map((g) => card(g, vidray.get(`gallery/${pad(Math.floor(g / info.chunk), 5)}`)[g % info.chunk], videos))
  );
  const what = gallery.label === null ? "all frames" : `label “${gallery.label}”`;
  document.getElementById("page-info").textContent =
    `${what}: page ${gallery.page + 1} of ${pages} (${total.toLocaleString()} frames)`;
  document.getElementById("prev").disabled = gallery.page === 0;
  document.getElementById("next").disabled = gallery.page >= pages - 1;
}

function card(g, record, videos) {
  const [v, ts, labels, scores, words, hasThumb] = record;
  const video = videos[v];
  const chips = labels.map((label, i) =>
    el("button", { class: "chip", type: "button", title: `score ${scores[i] ?? ""}`, onclick: () => filterBy(label) }, label)
  );
  const image = hasThumb
    ? el("img", { src: thumbSrc(g), loading: "lazy", alt: labels.join(", ") || "frame" })
    : el("div", { class: "nothumb" }, "no image");
  const where = el("a", { href: "#videos", onclick: () => openTimeline(v) }, `${video[1]} @ ${clock(ts)}`);
  return el("figure", { class: "frame" }, image, el("figcaption", {}, el("div", { class: "chips" }, ...chips),
    el("div", { class: "words" }, words ? `“…${words}…”` : ""), el("div", { class: "where" }, where)));
}

async function filterBy(label) {
  const input = document.getElementById("label-filter");
  input.value = label || "";
  gallery.page = 0;
  if (!label) {
    gallery.label = null;
    gallery.frames = null;
    return showGallery();
  }
  const labels = await vidray.need("labels");
  const rank = labels.findIndex((row) => row[0] === label);
  gallery.label = label;
  gallery.frames = rank >= 0 && labels[rank][2] > 0 ? await vidray.need(`labels/${rank}`) : [];
  document.getElementById("gallery").scrollIntoView();
  return showGallery();
}

async function setupGallery() {
  const labels = await vidray.need("labels");
  document.getElementById("label-names").replaceChildren(
    ...labels.filter((row) => row[2] > 0).slice(0, 5000).map((row) => el("option", { value: row[0] }, `${row[2]} frames`))
  );
  const input = document.getElementById("label-filter");
  input.addEventListener("change", () => {
    input.blur(); // closes the suggestion list, which would otherwise swallow the next click
    filterBy(input.value.trim());
  });
  document.getElementById("clear-filter").addEventListener("click", () => filterBy(null));
  document.getElementById("prev").addEventListener("click", () => { gallery.page--; showGallery(); });
  document.getElementById("next").addEventListener("click", () => { gallery.page++; showGallery(); });
  await showGallery();
}

// ---- videos and timelines ------------------------------------------------------------------

const videoTable = { page: 0 };
const VIDEO_PAGE = 25;

async function showVideos() {
  const videos = await vidray.need("videos");
  const pages = Math.max(1, Math.ceil(videos.length / VIDEO_PAGE));
  videoTable.page = Math.min(Math.max(videoTable.page, 0), pages - 1);
  const first = videoTable.page * VIDEO_PAGE;
  const head = el("tr", {}, ...["video", "duration", "sampled", "kept", "merged", "labels", "license"].map((h) => el("th", {}, h)));
  const rows = videos.slice(first, first + VIDEO_PAGE).map((row, i) =>
    el("tr", {}, el("td", {}, el("a", { href: "#timeline", onclick: () => openTimeline(first + i) }, row[1])),
      ...[clock(row[3]), row[4], row[5], row[6], row[7], row[8] || "–"].map((c) => el("td", {}, String(c))))
  );
  const pager = el("div", { class: "pager" },
    el("button", { type: "button", onclick: () => { videoTable.page--; showVideos(); } }, "‹"),
    ` videos ${first + 1}–${Math.min(videos.length, first + VIDEO_PAGE)} of ${videos.length} `,
    el("button", { type: "button", onclick: () => { videoTable.page++; showVideos(); } }, "›"));
  document.getElementById("video-table").replaceChildren(el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)), pager);
}

async function openTimeline(v, scroll = true) {
  const [videos, data] = await Promise.all([vidray.need("videos"), vidray.need(timelineKey(v))]);
  const box = document.getElementById("timeline");
  const row = videos[v];
  const title = el("h3", {}, `${row[1]} — ${clock(data.duration)}`);
  const legend = el("p", { class: "note" },
    "words over time (keywords named); kept frames (dots, hollow when set aside as a duplicate of another video's frame) ",
    "with the span of sampled frames merged into each (bars, darker for more merged frames)");
  const thumbs = data.frames.filter((f) => f[4] >= 0).slice(0, 24).map((f) =>
    el("figure", { class: "mini" }, el("img", { src: thumbSrc(f[4]), loading: "lazy", alt: f[6].join(", ") || "frame" }),
      el("figcaption", {}, `${clock(f[0])} ${f[6].slice(0, 3).join(", ")}`)));
  box.replaceChildren(title, legend, drawTimeline(data), el("div", { class: "minis" }, ...thumbs));
  if (scroll) box.scrollIntoView();
}

function drawTimeline(data) {
  const width = 1100, left = 60, right = 20, height = 190;
  const end = Math.max(data.duration, ...data.frames.map((f) => f[2]), 1);
  const x = (t) => left + (t / end) * (width - left - right);
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, class: "timeline", role: "img" });
  const lane = (y, name) => {
    svg.append(svgEl("line", { x1: left, x2: width - right, y1: y, y2: y, class: "lane" }));
    const label = svgEl("text", { x: 4, y: y + 4, class: "lane-name" });
    label.textContent = name;
    svg.append(label);
  };
  lane(50, "words");
  lane(130, "frames");
  let lastText = -Infinity;
  for (const [t, word, lemma] of data.words) {
    svg.append(svgEl("line", { x1: x(t), x2: x(t), y1: lemma ? 30 : 42, y2: 58, class: lemma ? "keyword" : "word" }));
    if (lemma && x(t) > lastText + 44) {
      const text = svgEl("text", { x: x(t), y: 24, class: "keyword-name" });
      text.textContent = lemma;
      svg.append(text);
      lastText = x(t);
    }
  }
  for (const [t, start, stop, merged, g, setAside, labels] of data.frames) {
    const bar = svgEl("rect", { x: x(start), y: 112, width: Math.max(1.5, x(stop) - x(start) - 1), height: 12,
      class: "span", "fill-opacity": Math.min(0.9, 0.15 + 0.15 * merged) });
    const tip = svgEl("title");
    tip.textContent = `${clock(start)}–${clock(stop)}: ${merged} sampled frame(s) merged`;
    bar.append(tip);
    svg.append(bar);
    const dot = svgEl("circle", { cx: x(t), cy: 142, r: 4, class: setAside ? "frame aside" : "frame" });
    const dotTip = svgEl("title");
    dotTip.textContent = `${clock(t)} ${labels.join(", ")}${setAside ? " (duplicate of another video's frame)" : ""}`;
    dot.append(dotTip);
    if (g >= 0) dot.addEventListener("click", () => { gallery.frames = [g]; gallery.label = `frame at ${clock(t)}`; gallery.page = 0; showGallery(); document.getElementById("gallery").scrollIntoView(); });
    svg.append(dot);
  }
  for (let i = 0; i <= 10; i++) {
    const t = (end * i) / 10;
    const tick = svgEl("text", { x: x(t), y: 178, class: "tick" });
    tick.textContent = clock(t);
    svg.append(tick);
  }
  return svg;
}

// ---- associations --------------------------------------------------------------------------

function setupAssociations() {
  const select = document.getElementById("assoc-label");
  const associates = vidray.get("dataset").associates;
  const names = Object.keys(associates);
  select.replaceChildren(...names.map((name) => el("option", { value: name }, name)));
  const show = () => {
    const rows = (associates[select.value] || []).map(([label, pmi, n]) =>
      el("tr", {}, el("td", {}, el("button", { class: "chip", type: "button", onclick: () => filterBy(label) }, label)),
        el("td", {}, pmi.toFixed(2)), el("td", {}, String(n))));
    const head = el("tr", {}, el("th", {}, "label"), el("th", {}, "PMI"), el("th", {}, "frames together"));
    document.getElementById("assoc-table").replaceChildren(el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)));
  };
  select.addEventListener("change", show);
  if (names.length) show();
}

document.addEventListener("DOMContentLoaded", () => {
  if (!vidray.get("dataset")) return; // a model-only report has nothing to load
  setupAssociations();
  setupGallery().catch((err) => console.error(err));
  showVideos()
    .then(() => (vidray.get("videos").length ? openTimeline(0, false) : null)) // shown, not scrolled to
    .catch((err) => console.error(err));
});
