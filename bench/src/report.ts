import type { BenchConfig, BenchPath } from './configs.js'
import type { Extras } from './extras.js'
import type { RunRecord } from './run.js'
import { median, round } from './util.js'

export interface Summary {
  readonly config: string
  readonly limiter: BenchConfig['limiter']
  readonly path: BenchPath
  readonly description: string
  /** At least one round produced numbers. */
  readonly ok: boolean
  readonly error?: string
  readonly roundsOk: number
  /** Median over rounds of rps / mean(rps of the two bare neighbours). */
  readonly ratio: number
  readonly ratios: readonly number[]
  /**
   * Median over rounds of (mean server CPU µs/req of the two bare neighbours / this one's): the
   * throughput ratio a server with its core to itself would reach; steadier than `ratio` on a busy host.
   */
  readonly cpuRatio: number
  readonly rps: number
  readonly bareRps: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly bareP99Ms: number
  readonly serverCpuUsPerReq: number
  readonly bareServerCpuUsPerReq: number
  readonly redisClientCmdsPerReq: number
  readonly redisExecCmdsPerReq: number
  readonly redisCpuUsPerReq: number
  /** MEMORY USAGE of the counter keys left after a run, per subject (bytes). */
  readonly counterBytesPerSubject: number
  /** Sluice only: `sluice_decisions_total` by outcome, summed over the measured runs. */
  readonly outcomes?: Record<string, number>
  /** Sluice only: share of decisions that were store failures (fail_open / fail_closed / fail_local). */
  readonly failFraction?: number
  /** Fraction of responses that were 429. */
  readonly blockedFraction: number
  /** The path really exercised: allowed >= 99% 2xx, attack >= 99% 429. */
  readonly pathOk: boolean
  /** Median over rounds of (this ratio / the peer's ratio), per peer of the same path. */
  readonly vsPeers: Record<string, number>
}

const PEERS: Record<BenchPath, readonly string[]> = {
  none: [],
  allowed: ['frl-redis', 'rlf-redis'],
  attack: ['frl-redis-attack', 'rlf-redis-attack', 'rlf-redis-attack-blockcache'],
}

export function summarize(records: readonly RunRecord[], configs: readonly BenchConfig[]): Summary[] {
  const bySeq = new Map(records.map((r) => [r.seq, r]))
  const ratioOf = (r: RunRecord): number => {
    const a = bySeq.get(r.seq - 1)
    const b = bySeq.get(r.seq + 1)
    const near = [a, b].filter((x): x is RunRecord => x?.config === 'bare' && x.ok && x.load !== undefined)
    if (!r.ok || r.load === undefined || near.length === 0) return Number.NaN
    return r.load.rps / (near.reduce((s, x) => s + x.load!.rps, 0) / near.length)
  }
  const neighbours = (r: RunRecord): RunRecord[] =>
    [bySeq.get(r.seq - 1), bySeq.get(r.seq + 1)].filter(
      (x): x is RunRecord => x?.config === 'bare' && x.ok && x.load !== undefined,
    )
  const ratioByRound = new Map<string, Map<number, number>>()
  for (const r of records) {
    if (r.config === 'bare') continue
    const m = ratioByRound.get(r.config) ?? new Map<number, number>()
    ratioByRound.set(r.config, m)
    m.set(r.round, ratioOf(r))
  }
  return configs.map((c): Summary => {
    const mine = records.filter((r) => r.config === c.name)
    const good = mine.filter((r) => r.ok && r.load !== undefined)
    const bares = good.flatMap(neighbours)
    const ratios = good.map(ratioOf)
    const cpuRatios = good.map((r) => {
      const near = neighbours(r).filter((x) => x.serverCpuUsPerReq !== undefined)
      if (near.length === 0 || r.serverCpuUsPerReq === undefined) return Number.NaN
      return near.reduce((a, x) => a + x.serverCpuUsPerReq!, 0) / near.length / r.serverCpuUsPerReq
    })
    const vsPeers: Record<string, number> = {}
    for (const p of PEERS[c.path]) {
      if (p === c.name) continue
      const pm = ratioByRound.get(p)
      if (!pm) continue
      const xs = good.map((r) => ratioOf(r) / (pm.get(r.round) ?? Number.NaN))
      const m = median(xs)
      if (Number.isFinite(m)) vsPeers[p] = round(m, 3)
    }
    const med = (f: (r: RunRecord) => number | undefined, rs = good): number =>
      median(rs.map((r) => f(r) ?? Number.NaN))
    const blockedFraction = med((r) => r.load!.status429 / Math.max(1, r.load!.requests))
    const okFraction = med((r) => r.load!.ok2xx / Math.max(1, r.load!.requests))
    const firstError = mine.find((r) => !r.ok)?.error
    const outcomes: Record<string, number> = {}
    for (const r of good)
      for (const [k, v] of Object.entries(r.decisions ?? {})) outcomes[k] = (outcomes[k] ?? 0) + v
    const totalOutcomes = Object.values(outcomes).reduce((a, b) => a + b, 0)
    const failed = Object.entries(outcomes)
      .filter(([k]) => k.startsWith('fail_'))
      .reduce((a, [, v]) => a + v, 0)
    return {
      config: c.name,
      limiter: c.limiter,
      path: c.path,
      description: c.description,
      ok: good.length > 0,
      ...(firstError !== undefined ? { error: firstError } : {}),
      roundsOk: good.length,
      ratio: round(median(ratios), 3),
      ratios: ratios.map((x) => round(x, 3)),
      cpuRatio: round(median(cpuRatios), 3),
      rps: Math.round(med((r) => r.load!.rps)),
      bareRps: Math.round(med((r) => r.load!.rps, bares)),
      p50Ms: med((r) => r.load!.p50Ms),
      p99Ms: med((r) => r.load!.p99Ms),
      bareP99Ms: med((r) => r.load!.p99Ms, bares),
      serverCpuUsPerReq: round(
        med((r) => r.serverCpuUsPerReq),
        1,
      ),
      bareServerCpuUsPerReq: round(
        med((r) => r.serverCpuUsPerReq, bares),
        1,
      ),
      redisClientCmdsPerReq: round(
        med((r) => r.redisClientCmdsPerReq),
        4,
      ),
      redisExecCmdsPerReq: round(
        med((r) => r.redisExecCmdsPerReq),
        4,
      ),
      redisCpuUsPerReq: round(
        med((r) => r.redisCpuUsPerReq),
        2,
      ),
      counterBytesPerSubject: Math.round(med((r) => r.counterBytesPerSubject)),
      ...(totalOutcomes > 0 ? { outcomes, failFraction: round(failed / totalOutcomes, 4) } : {}),
      blockedFraction: round(blockedFraction, 4),
      pathOk: c.path === 'attack' ? blockedFraction >= 0.99 : okFraction >= 0.99,
      vsPeers,
    }
  })
}

export interface Goal {
  readonly goal: string
  readonly target: string
  readonly measured: string
  /** null: not measured (configuration missing or failed). */
  readonly met: boolean | null
  readonly margin: string
}

export function evaluateGoals(summaries: readonly Summary[], extras: Extras): Goal[] {
  const get = (n: string): Summary | undefined => summaries.find((s) => s.config === n && s.ok)
  const goals: Goal[] = []
  const missing = (goal: string, target: string): Goal => ({
    goal,
    target,
    measured: 'not measured',
    met: null,
    margin: '',
  })
  const sl = get('sluice-sliding-log')
  {
    const goal = 'allowed path, 1 limit (sliding-log), throughput vs bare'
    if (sl) {
      goals.push({
        goal,
        target: '>= 0.80x',
        measured: `${sl.ratio.toFixed(2)}x`,
        met: sl.ratio >= 0.8,
        margin: `${sl.ratio >= 0.8 ? '+' : ''}${((sl.ratio - 0.8) * 100).toFixed(0)} points`,
      })
    } else goals.push(missing(goal, '>= 0.80x'))
  }
  for (const peer of ['frl-redis', 'rlf-redis']) {
    const goal = `allowed path, 1 limit (sliding-log), ahead of ${peer}`
    const v = sl?.vsPeers[peer]
    if (sl && v !== undefined) {
      goals.push({
        goal,
        target: '> 1.00x',
        measured: `${v.toFixed(2)}x`,
        met: v > 1,
        margin: `${v > 1 ? '+' : ''}${((v - 1) * 100).toFixed(0)}%`,
      })
    } else goals.push(missing(goal, '> 1.00x'))
  }
  const sl3 = get('sluice-sliding-log-3')
  {
    const goal = '3 limits: same Redis round trips per request as 1 limit'
    if (sl && sl3) {
      const d = sl3.redisClientCmdsPerReq - sl.redisClientCmdsPerReq
      goals.push({
        goal,
        target: 'equal',
        measured: `${sl3.redisClientCmdsPerReq.toFixed(3)} vs ${sl.redisClientCmdsPerReq.toFixed(3)}`,
        met: Math.abs(d) <= 0.01,
        margin: `${d >= 0 ? '+' : ''}${d.toFixed(3)} per request; throughput ${sl3.ratio.toFixed(2)}x vs ${sl.ratio.toFixed(2)}x`,
      })
    } else goals.push(missing(goal, 'equal'))
  }
  const atk = get('sluice-sliding-log-attack')
  {
    const goal = 'under attack (sliding-log), throughput vs bare'
    if (atk) {
      goals.push({
        goal,
        target: '>= 0.90x',
        measured: `${atk.ratio.toFixed(2)}x`,
        met: atk.ratio >= 0.9,
        margin: `${atk.ratio >= 0.9 ? '+' : ''}${((atk.ratio - 0.9) * 100).toFixed(0)} points`,
      })
    } else goals.push(missing(goal, '>= 0.90x'))
  }
  {
    const goal = 'under attack: Redis commands per blocked request'
    if (atk) {
      const v = atk.redisClientCmdsPerReq / Math.max(1e-9, atk.blockedFraction)
      goals.push({
        goal,
        target: '<= 0.05',
        measured: v.toFixed(4),
        met: v <= 0.05,
        margin:
          v <= 0.05 ? `${(0.05 / Math.max(v, 1e-6)).toFixed(0)}x under` : `${(v / 0.05).toFixed(1)}x over`,
      })
    } else goals.push(missing(goal, '<= 0.05'))
  }
  {
    const goal = 'config-update propagation p99 (3 processes)'
    const p = extras.propagation
    if (p) {
      goals.push({
        goal,
        target: '<= 50 ms',
        measured: `${p.p99Ms.toFixed(1)} ms (p50 ${p.p50Ms.toFixed(1)} ms)`,
        met: p.p99Ms <= 50,
        margin: `${(50 - p.p99Ms).toFixed(1)} ms ${p.p99Ms <= 50 ? 'to spare' : 'over'}`,
      })
    } else goals.push(missing(goal, '<= 50 ms'))
  }
  return goals
}

const pad = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length))
const lpad = (s: string, n: number): string => (s.length >= n ? s : ' '.repeat(n - s.length) + s)
const fmt = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : '-')

export function formatTable(summaries: readonly Summary[], goals: readonly Goal[], extras: Extras): string {
  const lines: string[] = []
  const head = [
    pad('configuration', 28),
    lpad('x bare', 7),
    lpad('cpu x', 6),
    lpad('req/s', 7),
    lpad('p50', 5),
    lpad('p99', 5),
    lpad('cpu µs', 7),
    lpad('rt/req', 7),
    lpad('cmd/req', 8),
    lpad('redis µs', 9),
    lpad('429%', 6),
    '  vs peers',
  ]
  lines.push(head.join(' '))
  for (const s of summaries) {
    if (!s.ok) {
      lines.push(`${pad(s.config, 28)} FAILED: ${s.error ?? 'no numbers'}`)
      continue
    }
    const peers =
      Object.entries(s.vsPeers)
        .map(([k, v]) => `${k} ${v.toFixed(2)}x`)
        .join(', ') +
      (s.failFraction !== undefined && s.failFraction > 0.001
        ? ` [store failures ${(s.failFraction * 100).toFixed(1)}%]`
        : '')
    lines.push(
      [
        pad(s.config + (s.pathOk ? '' : ' (!)'), 28),
        lpad(fmt(s.ratio), 7),
        lpad(fmt(s.cpuRatio), 6),
        lpad(String(s.rps), 7),
        lpad(String(s.p50Ms), 5),
        lpad(String(s.p99Ms), 5),
        lpad(fmt(s.serverCpuUsPerReq, 1), 7),
        lpad(fmt(s.redisClientCmdsPerReq, 3), 7),
        lpad(fmt(s.redisExecCmdsPerReq, 2), 8),
        lpad(fmt(s.redisCpuUsPerReq, 1), 9),
        lpad(fmt(s.blockedFraction * 100, 1), 6),
        `  ${peers}`,
      ].join(' '),
    )
  }
  lines.push('x bare: median over rounds of req/s / mean of the two neighbouring bare-Fastify runs.')
  lines.push('cpu x: bare server CPU µs/req / this one (the ratio a dedicated core would give; steadier).')
  lines.push('cpu µs: server CPU per request; rt/req: Redis commands sent per request (round trips);')
  lines.push('cmd/req: commands Redis executed per request incl. inside Lua; (!) path not as intended.')
  lines.push('')
  lines.push('Goals:')
  for (const g of goals) {
    const mark = g.met === null ? '  n/a' : g.met ? '  met' : 'MISSED'
    lines.push(`  [${mark}] ${g.goal}: ${g.measured} (target ${g.target}) ${g.margin}`)
  }
  if (extras.memory) {
    lines.push('')
    lines.push('Redis memory per subject (MEMORY USAGE, bytes):')
    for (const m of extras.memory) lines.push(`  ${pad(m.algorithm, 26)} ${m.note}: ${m.bytes}`)
  }
  if (extras.ceiling) {
    const c = extras.ceiling
    lines.push('')
    lines.push(
      `Redis ceiling, decide script (${c.method}): ${Math.round(c.opsPerSec)} decisions/s on one Redis core`,
    )
  }
  if (extras.errors && Object.keys(extras.errors).length > 0) {
    lines.push('')
    for (const [k, v] of Object.entries(extras.errors)) lines.push(`  extra ${k} not measured: ${v}`)
  }
  return lines.join('\n')
}
