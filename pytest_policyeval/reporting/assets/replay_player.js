/* pytest-policyeval replay player.
 *
 * Draws the episodes embedded in the report: every element `.pe-replay[data-film]` holds one film
 * (reporting/film.py: zlib-compressed JSON in base64). pytest-html builds its result rows from
 * JavaScript and rebuilds them when rows are sorted, filtered or expanded, so players are attached
 * to whatever film elements appear, and those that leave the page are dropped. No network, no library.
 */
(() => {
  "use strict";

  const TEAM_COLORS = ["#d6453d", "#2f6fd6", "#2e9e4f", "#9b59b6"];
  const OBJECT_COLORS = { altar: "#e0a800" };
  const SPEEDS = [1, 2, 4, 8, 16];
  const PLAY_SECONDS = 30; // the default speed plays an episode in about this long
  const TICK_MS = 125; // 8 steps a second at 1x
  const HOLD_TICKS = 12; // pause on the last step before starting over
  const TRAIL = 8; // steps of path drawn behind each agent
  const players = new Set();

  async function decodeFilm(text) {
    const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return JSON.parse(await new Response(stream).text());
  }

  // A timeline of changes `[step, ...values]` expanded to the values at every step.
  function expand(changes, steps, initial) {
    const out = new Array(steps);
    let next = 0;
    let current = initial;
    for (let step = 0; step < steps; step++) {
      while (next < changes.length && changes[next][0] <= step) {
        current = changes[next].slice(1);
        next++;
      }
      out[step] = current;
    }
    return out;
  }

  function element(tag, attributes, text) {
    const node = document.createElement(tag);
    Object.entries(attributes || {}).forEach(([key, value]) => node.setAttribute(key, value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  class Player {
    constructor(root, film) {
      this.root = root;
      this.film = film;
      this.steps = Math.max(1, film.steps);
      this.step = 0;
      this.playing = true;
      const wanted = (this.steps * TICK_MS) / 1000 / PLAY_SECONDS;
      this.speed = SPEEDS.find((speed) => speed >= wanted) || SPEEDS[SPEEDS.length - 1];
      this.hold = 0;
      this.agents = film.agents.map((agent) => ({
        id: agent.id,
        team: agent.team,
        position: expand(agent.path, this.steps, agent.path.length ? agent.path[0].slice(1) : [0, 0]),
        reward: expand(agent.rewards, this.steps, [0]),
        frozen: expand(agent.frozen, this.steps, [0]),
        hits: new Set(agent.hits),
        underTest: agent.under_test !== false,
      }));
      this.mixed = this.agents.some((agent) => !agent.underTest);
      this.cell = Math.max(4, Math.min(24, Math.floor(360 / Math.max(film.width, film.height, 1))));
      this.build();
      this.draw();
    }

    build() {
      const { film, cell } = this;
      this.root.replaceChildren();
      this.root.append(element("div", { class: "pe-replay__title" }, film.title));
      this.canvas = element("canvas", {
        class: "pe-replay__canvas",
        width: film.width * cell,
        height: film.height * cell,
      });
      this.context = this.canvas.getContext("2d");
      this.root.append(this.canvas);

      const controls = element("div", { class: "pe-replay__controls" });
      const button = (action, label, title) => {
        const node = element("button", { type: "button", "data-action": action, title }, label);
        node.addEventListener("click", (event) => {
          event.stopPropagation();
          this.act(action);
        });
        controls.append(node);
        return node;
      };
      // Plain labels: media-control glyphs are missing from many fonts.
      button("restart", "|\u25C0", "first step");
      button("back", "\u25C0", "step back");
      this.playButton = button("toggle", "pause", "play / pause");
      button("forward", "\u25B6", "step forward");
      this.slider = element("input", { type: "range", min: 0, max: this.steps - 1, value: 0, "aria-label": "step" });
      this.slider.addEventListener("input", () => {
        this.pause();
        this.show(Number(this.slider.value));
      });
      controls.append(this.slider);
      this.speedSelect = element("select", { "aria-label": "speed" });
      SPEEDS.forEach((speed) => this.speedSelect.append(element("option", { value: speed }, `${speed}x`)));
      this.speedSelect.value = String(this.speed);
      this.speedSelect.addEventListener("change", () => (this.speed = Number(this.speedSelect.value)));
      controls.append(this.speedSelect);
      this.status = element("span", { class: "pe-replay__status" });
      controls.append(this.status);
      this.root.append(controls);
      // The legend names only what this film can show.
      const teams = [...new Set(this.agents.map((agent) => agent.team))].sort();
      const legend = element("div", { class: "pe-replay__legend" });
      teams.forEach((team) => {
        const swatch = element("span", { class: "pe-replay__swatch" });
        swatch.style.background = TEAM_COLORS[team % TEAM_COLORS.length];
        legend.append(swatch, ` team ${team} \u00B7 `);
      });
      const notes = [];
      if (this.mixed) notes.push("black ring: policy under test (others: npc)");
      if (film.objects.length) notes.push("\u25C6 goal");
      if (film.agents.some((agent) => agent.frozen.length > 1)) notes.push("grey: frozen");
      notes.push("yellow ring: scored", "squares: last steps");
      legend.append(notes.join(" \u00B7 "));
      this.root.append(legend);

      // Walls never change: drawn once, copied onto every frame.
      this.background = document.createElement("canvas");
      this.background.width = this.canvas.width;
      this.background.height = this.canvas.height;
      const bg = this.background.getContext("2d");
      bg.fillStyle = "#f4f1ea";
      bg.fillRect(0, 0, this.canvas.width, this.canvas.height);
      bg.fillStyle = "#3a3a3a";
      film.walls.forEach((cellIndex) => {
        const x = cellIndex % film.width;
        const y = Math.floor(cellIndex / film.width);
        bg.fillRect(x * cell, y * cell, cell, cell);
      });
    }

    act(action) {
      if (action === "toggle") return this.playing ? this.pause() : this.play();
      this.pause();
      if (action === "restart") this.show(0);
      if (action === "back") this.show(this.step - 1);
      if (action === "forward") this.show(this.step + 1);
    }

    play() {
      if (this.step >= this.steps - 1) this.show(0);
      this.playing = true;
      this.hold = 0;
      this.playButton.textContent = "pause";
    }

    pause() {
      this.playing = false;
      this.playButton.textContent = "play";
    }

    show(step) {
      this.step = Math.max(0, Math.min(this.steps - 1, step));
      this.draw();
    }

    tick() {
      if (!this.playing) return;
      if (this.step >= this.steps - 1) {
        if (++this.hold < HOLD_TICKS) return;
        this.hold = 0;
        this.show(0);
        return;
      }
      this.show(this.step + this.speed);
    }

    draw() {
      const { context: ctx, cell, film, step } = this;
      ctx.drawImage(this.background, 0, 0);
      film.objects.forEach(([kind, x, y, start, end]) => {
        if (step < start || step >= end) return;
        ctx.fillStyle = OBJECT_COLORS[kind] || "#8a6d3b";
        ctx.beginPath();
        ctx.moveTo((x + 0.5) * cell, y * cell + 1);
        ctx.lineTo((x + 1) * cell - 1, (y + 0.5) * cell);
        ctx.lineTo((x + 0.5) * cell, (y + 1) * cell - 1);
        ctx.lineTo(x * cell + 1, (y + 0.5) * cell);
        ctx.fill();
      });
      const radius = Math.max(2, cell * 0.38);
      this.agents.forEach((agent) => {
        const color = TEAM_COLORS[agent.team % TEAM_COLORS.length];
        ctx.fillStyle = color;
        ctx.globalAlpha = 0.18;
        for (let back = Math.max(0, step - TRAIL); back < step; back++) {
          const [tx, ty] = agent.position[back];
          ctx.fillRect((tx + 0.35) * cell, (ty + 0.35) * cell, cell * 0.3, cell * 0.3);
        }
        ctx.globalAlpha = 1;
        const [x, y] = agent.position[step];
        const cx = (x + 0.5) * cell;
        const cy = (y + 0.5) * cell;
        ctx.beginPath();
        ctx.arc(cx, cy, radius, 0, 2 * Math.PI);
        if (agent.frozen[step][0]) {
          ctx.fillStyle = "#bdbdbd";
          ctx.fill();
          ctx.lineWidth = Math.max(1, cell / 8);
          ctx.strokeStyle = color;
          ctx.stroke();
        } else {
          ctx.fill();
        }
        if (this.mixed && agent.underTest) {
          // In mixed episodes the policy under test's agents wear a black ring.
          ctx.beginPath();
          ctx.arc(cx, cy, radius + 1, 0, 2 * Math.PI);
          ctx.lineWidth = Math.max(1.5, cell / 10);
          ctx.strokeStyle = "#111";
          ctx.stroke();
        }
        if (agent.hits.has(step) || agent.hits.has(step - 1)) {
          ctx.beginPath();
          ctx.arc(cx, cy, radius + Math.max(2, cell * 0.2), 0, 2 * Math.PI);
          ctx.lineWidth = Math.max(2, cell / 6);
          ctx.strokeStyle = "#ffcc00";
          ctx.stroke();
        }
        if (cell >= 14) {
          ctx.fillStyle = "#fff";
          ctx.font = `${Math.floor(cell * 0.5)}px sans-serif`;
          ctx.textAlign = "center";
          ctx.textBaseline = "middle";
          ctx.fillText(String(agent.id), cx, cy);
        }
      });
      this.slider.value = step;
      this.root.dataset.step = step;
      const totals = new Map();
      this.agents.forEach((agent) => totals.set(agent.team, (totals.get(agent.team) || 0) + agent.reward[step][0]));
      const rewards = [...totals].map(([team, total]) => (totals.size > 1 ? `team ${team}: ${total}` : total));
      this.status.textContent = `step ${step + 1} / ${this.steps} \u00B7 reward ${rewards.join(", ")}`;
    }
  }

  async function attach(root) {
    root.dataset.peAttached = "1";
    try {
      if (typeof DecompressionStream === "undefined") throw new Error("this browser cannot inflate the replay");
      players.add(new Player(root, await decodeFilm(root.dataset.film)));
    } catch (error) {
      root.textContent = `replay could not be shown: ${error.message}`;
    }
  }

  function attachAll() {
    document.querySelectorAll(".pe-replay[data-film]:not([data-pe-attached])").forEach(attach);
  }

  setInterval(() => {
    players.forEach((player) => {
      if (!player.root.isConnected) players.delete(player);
      else if (player.canvas.offsetParent !== null) player.tick(); // only while shown
    });
  }, TICK_MS);

  new MutationObserver(attachAll).observe(document.documentElement, { childList: true, subtree: true });
  document.addEventListener("DOMContentLoaded", attachAll);
  attachAll();
})();
