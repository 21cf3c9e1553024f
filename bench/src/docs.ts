/**
 * Writes the generated part of docs/benchmarks.md (between the `generated` markers; the hand-written
 * method and analysis around it are kept) and docs/benchmarks.svg from a full run's output.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { renderChart, subtitleOf } from './chart.js'
import type { Extras } from './extras.js'
import type { Goal, Summary } from './report.js'

const START = '<!-- generated:start (bench/src/docs.ts writes this part from bench/results/latest.json) -->'
const END = '<!-- generated:end -->'

interface Output {
  generatedAt: string
  machine: Record<string, string | number>
  method: Record<string, number>
  summaries: Summary[]
  goals: Goal[]
  extras: Extras
}

const f = (x: number | undefined, d = 2): string =>
  x !== undefined && Number.isFinite(x) ? x.toFixed(d) : '–'

export function renderResults(o: Output): string {
  const m = o.machine
  const k = o.method
  const L: string[] = []
  L.push(
    `Run of ${o.generatedAt.slice(0, 16).replace('T', ' ')} UTC. Machine: ${m['cores']} cores (${m['cpuModel']}),`,
  )
  L.push(`Node ${m['node']}, Redis ${m['redis']}; pinning: ${m['pinning']}.`)
  L.push(
    `${k['rounds']} rounds, ${k['durationS']} s per run after ${k['warmupS']} s of warm-up, ${k['connections']} connections, pipelining ${k['pipelining']}.`,
  )
  L.push('')
  L.push('![throughput relative to bare Fastify](benchmarks.svg)')
  L.push('')
  L.push('### Goals')
  L.push('')
  L.push('| goal | target | measured | met | margin |')
  L.push('| --- | --- | --- | --- | --- |')
  for (const g of o.goals) {
    L.push(
      `| ${g.goal} | ${g.target} | ${g.measured} | ${g.met === null ? 'not measured' : g.met ? 'yes' : '**no**'} | ${g.margin} |`,
    )
  }
  L.push('')
  L.push('### Throughput and cost per request')
  L.push('')
  L.push(
    '| configuration | x bare | CPU x bare | vs @fastify/rate-limit | vs rate-limiter-flexible | req/s | p50 / p99 ms (bare p99) | server CPU µs/req (bare) | Redis round trips/req | Redis commands executed/req | Redis CPU µs/req | 429 share |',
  )
  L.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
  for (const s of o.summaries) {
    if (!s.ok) {
      L.push(`| ${s.config} | failed: ${s.error ?? 'no numbers'} | | | | | | | | | | |`)
      continue
    }
    const frl = s.vsPeers[s.path === 'attack' ? 'frl-redis-attack' : 'frl-redis']
    const rlf = s.vsPeers[s.path === 'attack' ? 'rlf-redis-attack' : 'rlf-redis']
    const flag = s.pathOk ? '' : ' (path not as intended)'
    const fails =
      s.failFraction !== undefined && s.failFraction > 0.001
        ? ` (store failures ${f(s.failFraction * 100, 1)}%)`
        : ''
    L.push(
      `| ${s.config}${flag}${fails} | **${f(s.ratio)}** | ${f(s.cpuRatio)} | ${f(frl)} | ${f(rlf)} | ${s.rps} | ${s.p50Ms} / ${s.p99Ms} (${s.bareP99Ms}) | ${f(s.serverCpuUsPerReq, 1)} (${f(s.bareServerCpuUsPerReq, 1)}) | ${f(s.redisClientCmdsPerReq, 3)} | ${f(s.redisExecCmdsPerReq, 2)} | ${f(s.redisCpuUsPerReq, 1)} | ${f(s.blockedFraction * 100, 1)}% |`,
    )
  }
  L.push('')
  L.push(
    "*CPU x bare*: mean server CPU µs/req of the two bare neighbours / this configuration's, median over rounds: the throughput ratio a server with its core to itself would reach.",
  )
  L.push('')
  L.push('Per-round ratios (x bare):')
  L.push('')
  for (const s of o.summaries) if (s.ok) L.push(`- ${s.config}: ${s.ratios.map((r) => f(r)).join(', ')}`)
  const e = o.extras
  if (e.memory) {
    L.push('')
    L.push('### Redis memory per subject')
    L.push('')
    L.push(
      "`MEMORY USAGE` of one subject's counter keys (1 limit) after n admitted requests (decide script, limit 10000 per hour):",
    )
    L.push('')
    L.push('| algorithm | after | bytes |')
    L.push('| --- | --- | --- |')
    for (const r of e.memory) L.push(`| ${r.algorithm} | ${r.note.replace('after ', '')} | ${r.bytes} |`)
    L.push('')
    L.push(
      'Left in Redis after each throughput run (per subject; sliding-log holds one entry per request of the last window):',
    )
    L.push('')
    for (const s of o.summaries)
      if (s.ok && s.path !== 'none') L.push(`- ${s.config}: ${s.counterBytesPerSubject} bytes`)
  }
  if (e.ceiling) {
    L.push('')
    L.push('### Redis ceiling for the decide script')
    L.push('')
    L.push(`${e.ceiling.method}; ${e.ceiling.detail}.`)
    L.push('')
    L.push('| case | decisions/s |')
    L.push('| --- | --- |')
    for (const r of e.ceiling.rows) L.push(`| ${r.case} | ${r.opsPerSec} |`)
  }
  if (e.propagation) {
    const p = e.propagation
    L.push('')
    L.push('### Config-update propagation')
    L.push('')
    L.push(
      `${p.samples} samples (${p.samples / p.processes} updates x ${p.processes} processes): p50 ${f(p.p50Ms, 1)} ms, p99 ${f(p.p99Ms, 1)} ms, max ${f(p.maxMs, 1)} ms.`,
    )
  }
  if (e.profiles && e.profiles.length > 0) {
    L.push('')
    L.push('### CPU profile (self time per request, µs, by area)')
    L.push('')
    const areas = [...new Set(e.profiles.flatMap((p) => Object.keys(p.usPerReqByArea)))]
    L.push(`| area | ${e.profiles.map((p) => p.config).join(' | ')} |`)
    L.push(`| --- | ${e.profiles.map(() => '---').join(' | ')} |`)
    for (const a of areas)
      L.push(`| ${a} | ${e.profiles.map((p) => f(p.usPerReqByArea[a], 1)).join(' | ')} |`)
    L.push(
      `| **total** | ${e.profiles
        .map((p) =>
          f(
            Object.values(p.usPerReqByArea).reduce((x, y) => x + y, 0),
            1,
          ),
        )
        .join(' | ')} |`,
    )
    for (const p of e.profiles.filter((x) => x.config.startsWith('sluice'))) {
      L.push('')
      L.push(`Top self time, ${p.config} (% of busy samples):`)
      L.push('')
      for (const t of p.top.slice(0, 15)) L.push(`- ${t.selfPct}% \`${t.name}\``)
    }
  }
  if (e.errors) {
    L.push('')
    for (const [name, msg] of Object.entries(e.errors)) L.push(`- ${name}: not measured (${msg})`)
  }
  return L.join('\n')
}

export async function writeDocs(output: unknown, repoDir: string): Promise<void> {
  const o = output as Output
  const mdPath = join(repoDir, 'docs', 'benchmarks.md')
  let md: string
  try {
    md = await readFile(mdPath, 'utf8')
  } catch {
    md = `# Benchmarks\n\n## Results\n\n${START}\n${END}\n`
  }
  const a = md.indexOf(START)
  const b = md.indexOf(END)
  const body = `${START}\n\n${renderResults(o)}\n\n${END}`
  md = a >= 0 && b > a ? md.slice(0, a) + body + md.slice(b + END.length) : `${md}\n## Results\n\n${body}\n`
  await writeFile(mdPath, md)
  await writeFile(join(repoDir, 'docs', 'benchmarks.svg'), renderChart(o.summaries, subtitleOf(o)))
}

/** `node bench/dist/docs.js [results.json] [repoDir]`: regenerate the docs from a saved run. */
async function main(): Promise<void> {
  const { fileURLToPath } = await import('node:url')
  const input = process.argv[2] ?? fileURLToPath(new URL('../results/latest.json', import.meta.url))
  const repoDir = process.argv[3] ?? fileURLToPath(new URL('../../', import.meta.url))
  await writeDocs(JSON.parse(await readFile(input, 'utf8')), repoDir)
  console.log(`wrote ${join(repoDir, 'docs', 'benchmarks.md')} and benchmarks.svg`)
}

if (process.argv[1]?.endsWith('/docs.js')) {
  main().catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
}
