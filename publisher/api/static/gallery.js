// dnft gallery: scrub a token's versions and receive new ones live (server-sent events).
// Every value from the API is untrusted (trait values come from the chain): it is only ever
// put into the page with textContent / attributes, never as HTML.
"use strict";
(() => {
  const main = document.getElementById("token");
  if (!main) return;
  const tokenId = main.dataset.token;
  if (!/^(0|[1-9][0-9]{0,77})$/.test(tokenId || "")) return;
  const SHA256 = /^[0-9a-f]{64}$/;
  const $ = (id) => document.getElementById(id);
  const art = $("art"), caption = $("caption"), traits = $("traits"), name = $("token-name");
  const scrub = $("scrub"), list = $("timeline"), status = $("live-status");
  const versions = new Map(); // version number -> entry from /tokens/{id}/versions
  let selected = Number(main.dataset.selected);
  let following = main.dataset.following === "true";

  const latest = () => Math.max(0, ...versions.keys());
  const el = (tag, text, cls) => {
    const node = document.createElement(tag);
    node.textContent = text;
    if (cls) node.className = cls;
    return node;
  };
  const when = (iso) => {
    const t = el("time", new Date(iso).toLocaleString());
    t.dateTime = iso;
    return t;
  };

  function item(v) {
    const a = document.createElement("a");
    a.href = "?version=" + v.version;
    a.dataset.version = String(v.version);
    a.append(el("span", "Version " + v.version, "v"), " ", when(v.created_at), " ",
      el("span", v.summary, "why"));
    const li = document.createElement("li");
    li.append(a);
    return li;
  }

  function renderTimeline() {
    const numbers = [...versions.keys()].sort((x, y) => x - y);
    list.replaceChildren(...numbers.map((n) => item(versions.get(n))));
  }

  function show(n) {
    const v = versions.get(n);
    if (!v || !SHA256.test(v.image_sha256)) return;
    selected = n;
    following = n === latest();
    art.src = "/images/" + v.image_sha256;
    art.alt = v.image_alt;
    name.textContent = v.name;
    caption.textContent = `Version ${n} of ${latest()}`;
    traits.replaceChildren(...Object.entries(v.traits).map(([key, value]) => {
      const row = document.createElement("div");
      row.append(el("dt", key), el("dd", value));
      return row;
    }));
    scrub.max = String(latest());
    scrub.value = String(n);
    scrub.setAttribute("aria-valuetext", `Version ${n}: ${v.summary}`);
    for (const a of list.querySelectorAll("a[data-version]")) {
      if (Number(a.dataset.version) === n) a.setAttribute("aria-current", "true");
      else a.removeAttribute("aria-current");
    }
    main.dataset.selected = String(n);
    history.replaceState(null, "", following ? location.pathname : `?version=${n}`);
  }

  function add(v) {
    if (!v || !Number.isInteger(v.version) || versions.has(v.version)) return false;
    versions.set(v.version, v);
    return true;
  }

  async function load() {
    let url = `/tokens/${tokenId}/versions?limit=500`;
    while (url) {
      const response = await fetch(url, { cache: "no-cache", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.json();
      body.versions.forEach(add);
      url = typeof body.next === "string" && body.next.startsWith("/tokens/") ? body.next : null;
    }
  }

  function listen() {
    const events = new EventSource(`/tokens/${tokenId}/events?after=${latest()}`);
    events.addEventListener("open", () => { main.dataset.live = "open"; });
    events.addEventListener("error", () => { main.dataset.live = "reconnecting"; });
    events.addEventListener("version", (message) => {
      let v;
      try { v = JSON.parse(message.data); } catch { return; }
      const wasFollowing = following;
      if (!add(v)) return;
      renderTimeline();
      status.textContent = `New version ${v.version}: ${v.summary}`;
      show(wasFollowing ? v.version : selected);
    });
  }

  list.addEventListener("click", (event) => {
    const a = event.target.closest("a[data-version]");
    if (!a || !versions.size) return;
    event.preventDefault();
    show(Number(a.dataset.version));
  });
  // Arrow keys, Home and End move through the timeline as they do on the slider.
  list.addEventListener("keydown", (event) => {
    const a = event.target.closest("a[data-version]");
    if (!a || !versions.size) return;
    const links = [...list.querySelectorAll("a[data-version]")];
    const i = links.indexOf(a);
    const to = { ArrowDown: i + 1, ArrowRight: i + 1, ArrowUp: i - 1, ArrowLeft: i - 1,
      Home: 0, End: links.length - 1 }[event.key];
    if (to === undefined) return;
    event.preventDefault();
    const target = links[Math.max(0, Math.min(links.length - 1, to))];
    show(Number(target.dataset.version));
    target.focus();
  });
  scrub.addEventListener("input", () => show(Number(scrub.value)));

  load()
    .then(() => {
      renderTimeline();
      show(following ? latest() : selected);
      main.dataset.ready = "true";
      listen();
    })
    .catch((error) => { status.textContent = `Could not load the versions: ${error.message}`; });
})();
