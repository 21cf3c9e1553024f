/**
 * Hand-written SVG bar chart of a benchmark run: throughput of every configuration as a ratio of
 * bare Fastify (median of per-round paired ratios), with the goal lines.
 * `node bench/dist/chart.js [results.json] [out.svg]` (defaults: bench/results/latest.json, docs/benchmarks.svg).
 */
import { readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { Summary } from './report.js'

const COLORS: Record<Summary['limiter'], string> = {
  bare: '#9e9e9e',
  'fastify-rate-limit': '#8d6e63',
  'rate-limiter-flexible': '#78909c',
  'sluice-plugin': '#1e88e5',
  'sluice-gateway': '#3949ab',
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

export function renderChart(summaries: readonly Summary[], subtitle: string): string {
  const rows = summaries.filter((s) => s.ok && Number.isFinite(s.ratio))
  const groups: { title: string; rows: Summary[]; goal: number }[] = [
    {
      title: 'Allowed path (limits far above the load)',
      rows: rows.filter((s) => s.path === 'allowed'),
      goal: 0.8,
    },
    {
      title: 'Under attack (almost every request blocked)',
      rows: rows.filter((s) => s.path === 'attack'),
      goal: 0.9,
    },
  ]
  const labelW = 250
  const barW = 520
  const rowH = 22
  const maxRatio =
    Math.max(1.2, ...rows.map((s) => Math.max(s.ratio, Number.isFinite(s.cpuRatio) ? s.cpuRatio : 0))) * 1.05
  const x = (r: number): number => labelW + (r / maxRatio) * barW
  const parts: string[] = []
  let y = 58
  for (const g of groups) {
    if (g.rows.length === 0) continue
    parts.push(`<text x="10" y="${y}" font-weight="bold">${esc(g.title)}</text>`)
    y += 10
    const top = y
    for (const s of g.rows) {
      const w = Math.max(1, x(s.ratio) - labelW)
      parts.push(`<text x="${labelW - 8}" y="${y + 15}" text-anchor="end">${esc(s.config)}</text>`)
      parts.push(
        `<rect x="${labelW}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${COLORS[s.limiter]}"><title>${esc(s.description)}: ${s.ratio.toFixed(2)}x bare</title></rect>`,
      )
      const cw = Number.isFinite(s.cpuRatio) ? Math.max(1, x(s.cpuRatio) - labelW) : 0
      if (cw > 0) {
        parts.push(
          `<rect x="${labelW}" y="${y + rowH - 5}" width="${cw.toFixed(1)}" height="3" fill="#212121"><title>CPU-cost ratio ${s.cpuRatio.toFixed(2)}x</title></rect>`,
        )
      }
      const label = `${s.ratio.toFixed(2)}x${cw > 0 ? ` (CPU ${s.cpuRatio.toFixed(2)}x)` : ''}`
      parts.push(`<text x="${(labelW + Math.max(w, cw) + 5).toFixed(1)}" y="${y + 15}">${label}</text>`)
      y += rowH
    }
    for (const [r, color, dash] of [
      [1, '#424242', ''],
      [g.goal, '#e53935', ' stroke-dasharray="4 3"'],
    ] as const) {
      parts.push(
        `<line x1="${x(r).toFixed(1)}" y1="${top}" x2="${x(r).toFixed(1)}" y2="${y}" stroke="${color}"${dash}/>`,
      )
    }
    parts.push(
      `<text x="${x(g.goal).toFixed(1)}" y="${y + 12}" text-anchor="middle" fill="#e53935" font-size="11">goal ${g.goal.toFixed(2)}x</text>`,
    )
    y += 34
  }
  const legend = Object.entries(COLORS)
    .map(
      ([k, c], i) =>
        `<rect x="${10 + i * 165}" y="${y}" width="12" height="12" fill="${c}"/><text x="${26 + i * 165}" y="${y + 11}" font-size="11">${esc(k)}</text>`,
    )
    .join('')
  y += 18
  parts.push(
    `<text x="10" y="${y + 10}" font-size="11" fill="#555">bar: paired throughput ratio; thin black line: CPU-cost ratio (bare server CPU µs/req / this one's)</text>`,
  )
  y += 22
  const width = labelW + barW + 140
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">Sluice benchmark: throughput relative to bare Fastify (same run, paired)</text>`,
    `<text x="10" y="38" font-size="11" fill="#555">${esc(subtitle)}</text>`,
    ...parts,
    legend,
    '</svg>',
    '',
  ].join('\n')
}

export function subtitleOf(output: {
  machine: Record<string, string | number>
  method: Record<string, number>
}): string {
  const m = output.machine
  const k = output.method
  return `${m['cores']} cores, Node ${m['node']}, Redis ${m['redis']}; median of ${k['rounds']} rounds x ${k['durationS']} s, ${k['connections']} connections`
}

async function main(): Promise<void> {
  const input = process.argv[2] ?? fileURLToPath(new URL('../results/latest.json', import.meta.url))
  const out = process.argv[3] ?? fileURLToPath(new URL('../../docs/benchmarks.svg', import.meta.url))
  const data = JSON.parse(await readFile(input, 'utf8')) as {
    summaries: Summary[]
    machine: Record<string, string | number>
    method: Record<string, number>
  }
  await writeFile(out, renderChart(data.summaries, subtitleOf(data)))
  console.log(`wrote ${out}`)
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
}
