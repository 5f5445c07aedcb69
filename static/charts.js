/* Overview charts on uPlot (vendored, static/vendor). The series come from /overview/charts.json,
   fetched once the page is shown; the labels from #chart-labels (server-rendered, translated). */
(function () {
  "use strict";
  const labelsTag = document.getElementById("chart-labels");
  const words = JSON.parse(labelsTag.textContent);
  const locale = words.locale === "de" ? "de-DE" : "en-GB";
  const money = new Intl.NumberFormat(locale, { style: "currency", currency: "EUR", maximumFractionDigits: 0 });
  const hours = new Intl.NumberFormat(locale, { maximumFractionDigits: 1 });
  const palette = ["#1f5fa8", "#4f9bd9", "#2f8f6b", "#e0a030", "#9a5fb4", "#c0c6cf"];

  function width(el) { return Math.max(320, el.clientWidth); }

  function categories(labels) {
    return {
      scale: "x", space: 30,
      values: (u, splits) => splits.map((i) => (Number.isInteger(i) && labels[i] !== undefined ? labels[i] : "")),
    };
  }

  function chart(el, labels, series, opts) {
    if (!el) return;
    if (!series.some((s) => s.values.some((v) => v))) {
      el.classList.add("chart-empty");
      el.textContent = words.empty;
      return;
    }
    const x = labels.map((_l, i) => i);
    const fmt = opts.money ? (v) => money.format(v) : (v) => hours.format(v);
    const u = new uPlot({
      width: width(el), height: 230, padding: [12, 12, 0, 0],
      scales: { x: { time: false, range: [-0.6, labels.length - 0.4] }, y: { range: (u, min, max) => [Math.min(0, min * 1.1), Math.max(1, max * 1.1)] } },
      axes: [{ ...categories(labels), rotate: opts.rotate || 0, size: opts.rotate ? 70 : 40 },
        { values: (u, splits) => splits.map(fmt), size: opts.money ? 80 : 50 }],
      legend: { show: true },
      cursor: { points: { show: false } },
      series: [{ label: opts.x || "", value: (u, i) => (i == null ? "" : labels[i]) }].concat(series.map((s) => ({
        label: s.label, stroke: s.color, fill: s.fill || s.color, width: s.line ? 2 : 0,
        paths: s.line ? undefined : uPlot.paths.bars({ size: [s.size || 0.6, 60], align: s.align || 0 }),
        points: { show: !!s.line },
        value: (u, v, si, i) => (i == null ? "" : fmt(s.shown ? s.shown[i] : v)),
      }))),
    }, [x].concat(series.map((s) => s.values)), el);
    window.addEventListener("resize", () => u.setSize({ width: width(el), height: 230 }));
  }

  function draw(data) {
  // revenue: stacked bars (cumulative values drawn from the top down, each legend shows its own)
  const rev = data.revenue;
  const names = Object.keys(rev.series);
  let running = rev.months.map(() => 0);
  const stacked = names.map((name, k) => {
    const own = rev.series[name];
    running = running.map((v, i) => v + own[i]);
    return { label: name === "others" ? words.others : name, values: running.slice(), shown: own, color: palette[k % palette.length] };
  });
  chart(document.getElementById("chart-revenue"), rev.months, stacked.reverse(), { money: true, x: words.month });

  const agents = data.agents;
  chart(document.getElementById("chart-agents"), agents.agents, [
    { label: words.booked, values: agents.booked, color: "#9bb8dc", size: 0.35, align: -1 },
    { label: words.billed, values: agents.billed, color: "#1f5fa8", size: 0.35, align: 1 },
  ], { x: words.agent, rotate: -35 });

  const cont = data.contingents;
  chart(document.getElementById("chart-contingents"), cont.periods, Object.keys(cont.series).map((code, k) => ({
    label: code, values: cont.series[code], color: palette[k % palette.length], fill: "transparent", line: true,
  })), { x: words.month });

  const wo = data.writeoffs;
  chart(document.getElementById("chart-writeoffs"), wo.months, [{ label: words.hours, values: wo.hours, color: "#c0843a" }], { x: words.month });
  }

  fetch(labelsTag.dataset.src, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then((answer) => {
      if (!answer.ok) throw new Error(`charts: HTTP ${answer.status}`);
      return answer.json();
    })
    .then(draw)
    .catch((error) => document.querySelectorAll(".chart").forEach((el) => {
      el.classList.add("chart-empty");
      el.textContent = words.failed + " (" + error.message + ")";
    }));
})();
