/**
 * The side-by-side benchmark: `node bench/dist/run.js [--quick] [--rounds N] [--duration S] [--only a,b]`.
 *
 * Every configuration is its own server process (server.ts) pinned to one core; the load generator
 * (load.ts, autocannon) and Redis share the other. Each round runs `bare X1 bare X2 … bare`, so each
 * configuration's throughput is divided by the mean of its two bare-Fastify neighbours: the machine's
 * speed drifts, only such paired ratios mean anything. Reported figures are medians over rounds.
 *
 * A full run writes bench/results/latest.json, docs/benchmarks.svg and the results section of
 * docs/benchmarks.md; `--quick` (CI) writes bench/results/tmp/quick.json only. The exit code is non-zero
 * only if a configuration failed to produce numbers.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { startRedis } from '@sluice/test-redis'
import { ALLOWED_APP_IDS, ATTACK_APP_ID, type BenchConfig, CONFIGS } from './configs.js'
import { type Extras, runExtras } from './extras.js'
import type { LoadRequest, LoadResult } from './load.js'
import { counterMemory, parseInfo, redisDelta, redisSnapshot } from './redis-stats.js'
import { evaluateGoals, formatTable, type Summary, summarize } from './report.js'
import { CAN_PIN, LOAD_CPU, pin, SERVER_CPU, waitExit, waitMessage } from './util.js'

export interface RunRecord {
  readonly config: string
  readonly round: number
  readonly seq: number
  readonly ok: boolean
  readonly error?: string
  readonly load?: LoadResult
  /** Server process CPU (user + system) per request, µs. */
  readonly serverCpuUsPerReq?: number
  /** Commands the server's ioredis clients sent per request (round trips). */
  readonly redisClientCmdsPerReq?: number
  /** Commands Redis executed per request, Lua inner calls included (INFO commandstats). */
  readonly redisExecCmdsPerReq?: number
  /** Redis CPU per request, µs (INFO cpu). */
  readonly redisCpuUsPerReq?: number
  readonly redisCalls?: Record<string, number>
  /** Counter keys in Redis after the run, and their MEMORY USAGE per subject (bytes). */
  /** Sluice only: `sluice_decisions_total` by outcome during the measured run. */
  readonly decisions?: Record<string, number>
  readonly counterKeys?: number
  readonly counterBytesPerSubject?: number
}

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    connections: { type: 'string' },
    only: { type: 'string' },
    'no-extras': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
})

const quick = args.quick === true
const rounds = Number(args.rounds ?? (quick ? 1 : 3))
const durationS = Number(args.duration ?? (quick ? 1 : 5))
const warmupS = Number(args.warmup ?? (quick ? 0 : 2))
const connections = Number(args.connections ?? 32)
const only = args.only?.split(',').filter((s) => s !== '')
const selected = CONFIGS.filter(
  (c) => c.name !== 'bare' && (only === undefined ? c.optional !== true : only.includes(c.name)),
)
const bare = CONFIGS.find((c) => c.name === 'bare')!

const here = fileURLToPath(new URL('.', import.meta.url))
const serverJs = fileURLToPath(new URL('./server.js', import.meta.url))
const loadJs = fileURLToPath(new URL('./load.js', import.meta.url))
const benchDir = fileURLToPath(new URL('../', import.meta.url))
const repoDir = fileURLToPath(new URL('../../', import.meta.url))

const children = new Set<ChildProcess>()
function track(child: ChildProcess): ChildProcess {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}
function killAll(): void {
  for (const c of children) c.kill('SIGKILL')
}
process.on('SIGINT', () => {
  killAll()
  process.exit(130)
})

async function main(): Promise<void> {
  pin(process.pid, LOAD_CPU)
  const redis = await startRedis({ own: true, args: ['--save', '', '--appendonly', 'no'] })
  const admin = redis.client()
  const server = parseInfo(await admin.info('server'))
  const redisPid = Number(server.get('process_id'))
  pin(redisPid, LOAD_CPU)
  const load = track(fork(loadJs, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  pin(load.pid, LOAD_CPU)
  await waitMessage(load, 'ready', 10_000)

  const runLoad = async (req: LoadRequest): Promise<LoadResult> => {
    const p = waitMessage<LoadResult>(load, 'result', (req.durationS + 30) * 1000)
    load.send({ type: 'run', ...req })
    return p
  }

  const records: RunRecord[] = []
  let seq = 0
  const runOne = async (config: BenchConfig, roundNo: number): Promise<RunRecord> => {
    const base = { config: config.name, round: roundNo, seq: seq++ }
    await admin.flushall()
    let stderr = ''
    const child = track(
      fork(serverJs, [config.name, redis.url], {
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
        env: { ...process.env, NODE_ENV: 'production' },
      }),
    )
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000)
    })
    pin(child.pid, SERVER_CPU)
    try {
      const { port } = await waitMessage<{ port: number }>(child, 'ready', 20_000)
      const req: LoadRequest = {
        url: `http://127.0.0.1:${port}`,
        durationS,
        connections,
        appIds: config.path === 'attack' ? [ATTACK_APP_ID] : ALLOWED_APP_IDS,
      }
      // Warm-up: JIT, connections, the config cache. Quick runs warm up with a fixed request count.
      await runLoad(warmupS > 0 ? { ...req, durationS: warmupS } : { ...req, amount: 3000 })
      const marked = waitMessage(child, 'marked', 5000)
      child.send({ type: 'mark' })
      await marked
      const before = await redisSnapshot(admin)
      const result = await runLoad(req)
      const after = await redisSnapshot(admin)
      const mem = await counterMemory(admin)
      const reported = waitMessage<{
        cpuUs: number
        redisCommands: number
        decisions: Record<string, number>
      }>(child, 'report', 5000)
      child.send({ type: 'report' })
      const rep = await reported
      const delta = redisDelta(before, after)
      // Per decision: the server also decided the requests in flight at the two marks (Sluice counts them).
      const decided = Object.values(rep.decisions).reduce((a, b) => a + b, 0)
      const n = Math.max(1, result.requests, decided)
      const ok = result.requests > 0 && result.errors + result.timeouts < result.requests * 0.01
      return {
        ...base,
        ok,
        ...(ok
          ? {}
          : { error: `requests=${result.requests} errors=${result.errors} timeouts=${result.timeouts}` }),
        load: result,
        serverCpuUsPerReq: rep.cpuUs / n,
        redisClientCmdsPerReq: rep.redisCommands / n,
        redisExecCmdsPerReq: delta.totalCalls / n,
        redisCpuUsPerReq: delta.cpuUs / n,
        redisCalls: delta.calls,
        ...(Object.keys(rep.decisions).length > 0 ? { decisions: rep.decisions } : {}),
        counterKeys: mem.keys,
        counterBytesPerSubject: Math.round(mem.bytes / req.appIds.length),
      }
    } catch (err) {
      const msg = stderr.trim().split('\n').slice(-3).join(' | ')
      return { ...base, ok: false, error: `${(err as Error).message}${msg ? `: ${msg}` : ''}` }
    } finally {
      if (child.connected) child.send({ type: 'close' })
      await waitExit(child, 3000)
    }
  }

  const log = (r: RunRecord): void => {
    const l = r.load
    const line = l
      ? `${Math.round(l.rps)} req/s p99 ${l.p99Ms} ms 429s ${l.status429} cmds/req ${r.redisClientCmdsPerReq?.toFixed(3)}`
      : `FAILED ${r.error}`
    console.log(`  [r${r.round} #${r.seq}] ${r.config.padEnd(28)} ${line}`)
  }

  const started = Date.now()
  console.log(
    `Sluice bench: ${rounds} round(s) x ${selected.length} configurations, ${durationS}s per run (+${warmupS > 0 ? `${warmupS}s` : '3000 requests'} warm-up), ${connections} connections, pinning ${CAN_PIN ? 'on' : 'off'}`,
  )
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? selected : [...selected].reverse()
    const push = async (c: BenchConfig): Promise<void> => {
      const rec = await runOne(c, r)
      records.push(rec)
      log(rec)
    }
    await push(bare)
    for (const c of order) {
      await push(c)
      await push(bare)
    }
  }

  let extras: Extras = {}
  if (args['no-extras'] !== true) {
    extras = await runExtras({
      quick,
      profile: !quick || args.profile === true,
      redis,
      admin,
      serverJs,
      records,
      track,
      benchDir,
      runLoad,
    })
  }

  load.send({ type: 'exit' })
  await waitExit(load, 2000)
  const redisVersion = server.get('redis_version') ?? 'unknown'
  await redis.stop()

  const summaries: Summary[] = summarize(records, selected)
  const goals = evaluateGoals(summaries, extras)
  const output = {
    generatedAt: new Date().toISOString(),
    quick,
    machine: {
      cores: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      node: process.version,
      redis: redisVersion,
      pinning: CAN_PIN ? `server on cpu ${SERVER_CPU}; load generator + Redis on cpu ${LOAD_CPU}` : 'none',
    },
    method: { rounds, durationS, warmupS, connections, pipelining: 1 },
    summaries,
    goals,
    extras,
    records,
    elapsedS: Math.round((Date.now() - started) / 1000),
  }
  console.log('')
  console.log(formatTable(summaries, goals, extras))
  const out =
    args.out ??
    (quick || only !== undefined ? `${benchDir}results/tmp/quick.json` : `${benchDir}results/latest.json`)
  await mkdir(dirname(resolve(out)), { recursive: true })
  await writeFile(out, `${JSON.stringify(output, null, 2)}\n`)
  console.log(`\nwrote ${out}`)
  if (!quick && only === undefined && args.out === undefined) {
    const { writeDocs } = await import('./docs.js')
    await writeDocs(output, repoDir)
    console.log('wrote docs/benchmarks.md (results section) and docs/benchmarks.svg')
  }
  void here
  const failed = summaries.filter((s) => !s.ok)
  if (failed.length > 0 || records.filter((r) => r.config === 'bare').every((r) => !r.ok)) {
    console.error(`\nno numbers for: ${failed.map((s) => s.config).join(', ') || 'bare'}`)
    process.exitCode = 1
  }
}

main().catch((err: unknown) => {
  console.error(err)
  killAll()
  process.exit(1)
})

export type BenchOutput = {
  machine: Record<string, string | number>
  method: Record<string, number>
  summaries: Summary[]
  goals: ReturnType<typeof evaluateGoals>
  extras: Extras
  generatedAt: string
}
