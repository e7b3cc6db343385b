// uPlot charts: a scalar's history (line, steps on x) and a batch's objective plots (points).
// uPlot is loaded as a classic script (vendor/uPlot.iife.min.js) and is the global `uPlot`.

import { fmtValue } from "./dom.js";

const HEIGHT = 220;
const LINE = "#2563eb";
const POINT = "#7c3aed";
const BEST = "#16a34a";

const axisValues = (u, splits) => splits.map((v) => fmtValue(v));
// Steps and trial numbers are whole: their axis ticks never fall between them.
const WHOLE_INCRS = [1, 2, 5].flatMap((m) => [1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8]
  .map((p) => m * p)).sort((a, b) => a - b);
const wholeAxis = { values: axisValues, incrs: WHOLE_INCRS };

/**
 * Point the legend at the last point while the cursor is off the plot, so "loss: 0.125" shows
 * the latest value instead of an empty "loss:" (uPlot leaves it blank without a cursor).
 */
function legendAtLast(u) {
  const n = u.data[0] ? u.data[0].length : 0;
  if (u.cursor.idx === null || u.cursor.idx === undefined) {
    u.setLegend({ idx: n ? n - 1 : null }, false);
  }
}

function makePlot(el, opts, data, showLast) {
  const width = Math.max(240, el.clientWidth || 400);
  const hooks = showLast ? { ready: [legendAtLast], setCursor: [legendAtLast],
    setData: [legendAtLast] } : {};
  const plot = new uPlot({ width, height: HEIGHT, legend: { live: true }, hooks, ...opts },
    data, el);
  const observer = new ResizeObserver(() => {
    const w = Math.max(240, el.clientWidth);
    if (w !== plot.width) plot.setSize({ width: w, height: HEIGHT });
  });
  observer.observe(el);
  return {
    setData: (d) => plot.setData(d),
    destroy: () => { observer.disconnect(); plot.destroy(); },
  };
}

/** Sort a step/value history by step (event files can come in any order). */
export function sortedSeries(steps, values) {
  const idx = steps.map((_, i) => i).sort((a, b) => steps[a] - steps[b]);
  return [idx.map((i) => steps[i]), idx.map((i) => values[i])];
}

/** A scalar's history as a line; returns {setData(series), destroy()}. */
export function scalarPlot(el, series) {
  const plot = makePlot(el, {
    scales: { x: { time: false } },
    series: [{ label: "step" },
      { label: series.tag, stroke: LINE, width: 1.5, points: { show: false },
        value: (u, v) => fmtValue(v) }],
    axes: [wholeAxis, { values: axisValues, size: 60 }],
  }, sortedSeries(series.steps, series.values), true);
  return {
    setData: (s) => plot.setData(sortedSeries(s.steps, s.values)),
    destroy: plot.destroy,
  };
}

/** The best objective so far at each trial (minimum, or maximum when maximizing). */
export function bestSoFar(values, maximize) {
  let best = null;
  return values.map((v) => {
    if (v !== null && (best === null || (maximize ? v > best : v < best))) best = v;
    return best;
  });
}

/**
 * An x range that keeps points off the plot's edges (half a point would be cut), and gives a
 * flag with one value a range around it instead of uPlot's arbitrary 0..100.
 */
export function paddedRange(min, max) {
  if (min === null || max === null) return [0, 1];
  if (min === max) {
    const d = min === 0 ? 1 : Math.abs(min) * 0.5;
    return [min - d, max + d];
  }
  const pad = (max - min) * 0.05;
  return [min - pad, max + pad];
}

/** Objective by trial number: each trial a point, and the best so far as a stepped line. */
export function objectivePlot(el, trials, objective) {
  const xs = trials.map((t) => t.number);
  const ys = trials.map((t) => t.objective);
  return makePlot(el, {
    scales: { x: { time: false, range: (u, min, max) => [min - 0.5, max + 0.5] } },
    series: [{ label: "trial" },
      { label: objective.column, stroke: POINT, fill: POINT, paths: () => null,
        points: { show: true, size: 7, fill: POINT }, value: (u, v) => fmtValue(v) },
      { label: objective.maximize ? "best (max)" : "best (min)", stroke: BEST, width: 1.5,
        paths: uPlot.paths.stepped({ align: 1 }), points: { show: false },
        value: (u, v) => fmtValue(v) }],
    axes: [wholeAxis, { values: axisValues, size: 60 }],
  }, [xs, ys, bestSoFar(ys, objective.maximize)], true);
}

/**
 * The x coordinates of a flag's values: numbers as they are; anything else (strings, booleans,
 * a mix) as indexes into the sorted distinct values, with those values as the axis labels.
 */
export function flagAxis(values) {
  const present = values.filter((v) => v !== null && v !== undefined);
  if (present.every((v) => typeof v === "number")) return { xs: values, labels: null };
  const labels = [...new Set(present.map((v) => fmtValue(v)))].sort();
  return { xs: values.map((v) => (v === null || v === undefined ? null
    : labels.indexOf(fmtValue(v)))), labels };
}

/** Objective against one flag's value, points only. */
export function flagPlot(el, flag, trials, objective) {
  const axis = flagAxis(trials.map((t) => (t.run.flags || {})[flag]));
  const pairs = trials.map((t, i) => [axis.xs[i], t.objective])
    .filter(([x, y]) => x !== null && y !== null).sort((a, b) => a[0] - b[0]);
  const xAxis = axis.labels
    ? { splits: () => axis.labels.map((_, i) => i),
      values: (u, splits) => splits.map((v) => axis.labels[v] ?? "") }
    : { values: axisValues };
  const xScale = axis.labels
    ? { time: false, range: () => [-0.5, Math.max(0.5, axis.labels.length - 0.5)] }
    // From the data, not uPlot's arguments: uPlot widens a single value's range first.
    : { time: false, range: () => paddedRange(pairs.length ? pairs[0][0] : null,
      pairs.length ? pairs[pairs.length - 1][0] : null) };
  return makePlot(el, {
    scales: { x: xScale },
    series: [{ label: flag, value: (u, v) => (axis.labels ? axis.labels[v] ?? "" : fmtValue(v)) },
      { label: objective.column, stroke: POINT, fill: POINT, paths: () => null,
        points: { show: true, size: 7, fill: POINT }, value: (u, v) => fmtValue(v) }],
    axes: [xAxis, { values: axisValues, size: 60 }],
  }, [pairs.map((p) => p[0]), pairs.map((p) => p[1])]);
}
