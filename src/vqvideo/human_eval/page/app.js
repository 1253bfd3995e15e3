// Rating page for the blind side-by-side evaluation (vqvideo export-pairs writes the pairs into index.html).
// Works from file:// and from any static server: no network requests besides the media files beside it.
// Everything shown is set with textContent (never innerHTML), so no value in the data can become markup.
"use strict";

(function () {
  const DATA = JSON.parse(document.getElementById("pairs-data").textContent);
  const PAIRS = DATA.pairs;
  const STORE = "vqvideo-human-eval:" + DATA.export_id + ":";
  const RATER_RE = /^[A-Za-z0-9_.@-]{1,64}$/;
  const CHOICES = ["left", "right", "same"];
  const $ = (id) => document.getElementById(id);

  let rater = null;     // current rater id
  let order = [];       // pair objects in this rater's order
  let ratings = [];     // [[pair_id, choice], ...] in the order given
  let generation = 0;   // bumps on every shown pair, so stale video events are ignored
  let useGif = false;

  document.title = DATA.title;
  $("title").textContent = DATA.title;

  // ----------------------------------------------------------------------------------- seeded order
  // cyrb53-style string hash -> mulberry32 PRNG -> Fisher-Yates: the same rater id always gets the same order.
  function hash32(str) {
    let h1 = 0xdeadbeef, h2 = 0x41c6ce57;
    for (let i = 0; i < str.length; i++) {
      const c = str.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 2654435761);
      h2 = Math.imul(h2 ^ c, 1597334677);
    }
    h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
    return h1 >>> 0;
  }
  function mulberry32(a) {
    return function () {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  function raterOrder(id) {
    const rand = mulberry32(hash32(DATA.export_id + "\n" + id));
    const out = PAIRS.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }

  // ----------------------------------------------------------------------------------- storage
  function save() {
    try {
      localStorage.setItem(STORE + "rater:" + rater, JSON.stringify({ ratings: ratings }));
      localStorage.setItem(STORE + "current", rater);
    } catch (e) { /* private mode or full storage: ratings still live in memory until downloaded */ }
  }
  function load(id) {
    try {
      const saved = JSON.parse(localStorage.getItem(STORE + "rater:" + id) || "null");
      const known = new Set(PAIRS.map((p) => p.id));
      if (saved && Array.isArray(saved.ratings)) {
        return saved.ratings.filter((r) => Array.isArray(r) && known.has(r[0]) && CHOICES.includes(r[1]));
      }
    } catch (e) { /* unreadable state: start afresh */ }
    return [];
  }

  // ----------------------------------------------------------------------------------- flow
  function start(id) {
    rater = id;
    order = raterOrder(id);
    ratings = load(id);
    save();
    $("start-panel").hidden = true;
    $("tools").hidden = false;
    $("rater-label").textContent = "Rater " + id;
    show();
  }

  function nextPair() {
    const done = new Set(ratings.map((r) => r[0]));
    return order.find((p) => !done.has(p.id)) || null;
  }

  function show() {
    const pair = nextPair();
    const n = ratings.length, total = PAIRS.length;
    $("progress").textContent = n + " of " + total + " rated";
    $("progress-bar").max = total;
    $("progress-bar").value = n;
    $("undo").disabled = n === 0;
    generation += 1;
    if (!pair) {
      stopMedia();
      $("rate-panel").hidden = true;
      $("done-panel").hidden = false;
      return;
    }
    $("rate-panel").hidden = false;
    $("done-panel").hidden = true;
    $("rate-panel").dataset.pair = pair.id;
    showMedia(pair, generation);
  }

  function choose(choice) {
    const pair = nextPair();
    if (!rater || !pair || !CHOICES.includes(choice)) return;
    ratings.push([pair.id, choice]);
    save();
    show();
  }

  function undo() {
    if (!rater || ratings.length === 0) return;
    ratings.pop();
    save();
    show();
  }

  // ----------------------------------------------------------------------------------- media
  // Both videos play once, and restart together when both have ended: they loop in step and cannot drift.
  function mediaUrl(id, ext) { return "media/" + encodeURIComponent(id) + "." + ext; }

  function stopMedia() {
    for (const side of ["left", "right"]) {
      const v = $(side + "-video");
      v.pause();
      v.removeAttribute("src");
      v.load();
      $(side + "-gif").removeAttribute("src");
    }
  }

  function showMedia(pair, gen) {
    const videos = [$("left-video"), $("right-video")];
    const ids = [pair.left, pair.right];
    if (useGif) {
      ["left", "right"].forEach((side, i) => {
        $(side + "-video").hidden = true;
        const img = $(side + "-gif");
        img.hidden = false;
        img.src = mediaUrl(ids[i], "gif");
      });
      return;
    }
    let ready = 0, ended = 0;
    const playBoth = () => {
      if (gen !== generation) return;
      ended = 0;
      for (const v of videos) { v.currentTime = 0; const p = v.play(); if (p) p.catch(() => {}); }
    };
    videos.forEach((v, i) => {
      v.onloadeddata = () => { if (gen === generation && ++ready === 2) playBoth(); };
      v.onended = () => { if (gen === generation && ++ended === 2) playBoth(); };
      v.onerror = () => { if (gen === generation && v.getAttribute("src")) { useGif = true; showMedia(pair, gen); } };
      v.src = mediaUrl(ids[i], "mp4");
      v.load();
    });
  }

  // ----------------------------------------------------------------------------------- download
  function csvField(s) { return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s; }

  function ratingsCsv() {
    const lines = ["rater_id,pair_id,choice"];
    for (const [pid, choice] of ratings) lines.push([rater, pid, choice].map(csvField).join(","));
    return lines.join("\n") + "\n";
  }

  function download() {
    if (!rater) return;
    const url = URL.createObjectURL(new Blob([ratingsCsv()], { type: "text/csv" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = "ratings.csv";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  // ----------------------------------------------------------------------------------- wiring
  $("start-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = $("rater").value.trim();
    if (!RATER_RE.test(id)) {
      $("start-error").textContent = "A rater id is 1-64 letters, digits or . _ - @ (no spaces).";
      return;
    }
    $("start-error").textContent = "";
    start(id);
  });
  for (const b of document.querySelectorAll(".choices button")) {
    b.addEventListener("click", () => choose(b.dataset.choice));
  }
  $("undo").addEventListener("click", undo);
  $("download").addEventListener("click", download);
  $("switch-rater").addEventListener("click", () => {
    try { localStorage.removeItem(STORE + "current"); } catch (e) { /* ignore */ }
    rater = null;
    generation += 1;
    stopMedia();
    for (const id of ["rate-panel", "done-panel", "tools"]) $(id).hidden = true;
    $("start-panel").hidden = false;
    $("rater").value = "";
    $("rater").focus();
  });
  const KEYS = { ArrowLeft: "left", "1": "left", ArrowDown: "same", "2": "same", ArrowRight: "right", "3": "right" };
  document.addEventListener("keydown", (e) => {
    if (!rater || e.repeat || e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.target && e.target.tagName === "INPUT") return;
    if (KEYS[e.key]) { e.preventDefault(); choose(KEYS[e.key]); }
    else if (e.key === "z" || e.key === "Z") { e.preventDefault(); undo(); }
  });

  // an H.264 MP4 is preferred (frame-synchronous looping); browsers without it get the GIFs
  useGif = !document.createElement("video").canPlayType('video/mp4; codecs="avc1.64001e"');

  // resume the last rater after a reload
  let last = null;
  try { last = localStorage.getItem(STORE + "current"); } catch (e) { /* no storage */ }
  if (last && RATER_RE.test(last)) { $("rater").value = last; start(last); }
  else $("rater").focus();
})();
