/** A hand-made SVG line chart (no dependency): one panel per series, sharing the x axis (seconds). */

export interface Series {
  readonly title: string
  readonly unit: string
  readonly points: readonly (readonly [number, number])[]
  /** A horizontal line drawn at the bound the soak asserts, if any. */
  readonly bound?: number
  readonly color: string
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

function niceMax(v: number): number {
  if (v <= 0) return 1
  const p = 10 ** Math.floor(Math.log10(v))
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p
  return 10 * p
}

export function chart(title: string, series: readonly Series[], width = 760): string {
  const panelH = 150
  const top = 40
  const left = 70
  const right = 20
  const gap = 40
  const plotW = width - left - right
  const height = top + series.length * (panelH + gap) + 10
  const xMax = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p[0])))
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`,
  ]
  series.forEach((s, i) => {
    const y0 = top + i * (panelH + gap)
    const yMax = niceMax(Math.max(s.bound ?? 0, ...s.points.map((p) => p[1])) * 1.05)
    const X = (x: number) => left + (x / xMax) * plotW
    const Y = (y: number) => y0 + panelH - (y / yMax) * panelH
    out.push(`<text x="${left}" y="${y0 - 6}" font-weight="bold">${esc(`${s.title} (${s.unit})`)}</text>`)
    out.push(`<rect x="${left}" y="${y0}" width="${plotW}" height="${panelH}" fill="none" stroke="#999"/>`)
    for (let k = 0; k <= 4; k++) {
      const v = (yMax * k) / 4
      out.push(`<line x1="${left}" x2="${left + plotW}" y1="${Y(v)}" y2="${Y(v)}" stroke="#eee"/>`)
      out.push(`<text x="${left - 6}" y="${Y(v) + 4}" text-anchor="end">${Number(v.toPrecision(3))}</text>`)
    }
    for (let k = 0; k <= 5; k++) {
      const x = (xMax * k) / 5
      out.push(`<text x="${X(x)}" y="${y0 + panelH + 14}" text-anchor="middle">${Math.round(x)} s</text>`)
    }
    if (s.bound !== undefined) {
      out.push(
        `<line x1="${left}" x2="${left + plotW}" y1="${Y(s.bound)}" y2="${Y(s.bound)}" stroke="#c00" stroke-dasharray="6 4"/>`,
        `<text x="${left + plotW - 4}" y="${Y(s.bound) - 4}" text-anchor="end" fill="#c00">bound ${s.bound}</text>`,
      )
    }
    const d = s.points
      .map((p, j) => `${j === 0 ? 'M' : 'L'}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`)
      .join(' ')
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.5"/>`)
  })
  out.push('</svg>')
  return `${out.join('\n')}\n`
}
