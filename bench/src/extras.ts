/**
 * Measurements beside the throughput rounds: Redis memory per subject per algorithm, Redis's own
 * ceiling for the decide script, config-update propagation across processes, and a CPU profile of
 * the Sluice plugin server.
 */
import { type ChildProcess, fork, spawnSync } from 'node:child_process'
import { mkdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { TestRedis } from '@sluice/test-redis'
import type { Redis } from 'ioredis'
import { ALLOWED_APP_IDS } from './configs.js'
import type { LoadRequest, LoadResult } from './load.js'
import type { RunRecord } from './run.js'
import {
  CAN_PIN,
  LOAD_CPU,
  median,
  pin,
  quantile,
  round,
  SERVER_CPU,
  sleep,
  waitExit,
  waitMessage,
} from './util.js'

export interface MemoryRow {
  readonly algorithm: string
  readonly note: string
  readonly bytes: number
}

export interface ProfileSummary {
  readonly config: string
  readonly requests: number
  readonly sampledMs: number
  /** Self time share by area (ioredis, fastify, sluice plugin, ...), percent of non-idle samples. */
  readonly byArea: Record<string, number>
  /** Self time by area per request, µs. */
  readonly usPerReqByArea: Record<string, number>
  /** Top functions by self time, percent of non-idle samples. */
  readonly top: { name: string; selfPct: number }[]
}

export interface Extras {
  memory?: MemoryRow[]
  ceiling?: { method: string; opsPerSec: number; detail: string; rows: { case: string; opsPerSec: number }[] }
  propagation?: { processes: number; samples: number; p50Ms: number; p99Ms: number; maxMs: number }
  profiles?: ProfileSummary[]
  errors?: Record<string, string>
}

export interface ExtrasContext {
  readonly quick: boolean
  /** Take CPU profiles of the Sluice servers. */
  readonly profile: boolean
  readonly redis: TestRedis
  readonly admin: Redis
  readonly serverJs: string
  readonly records: readonly RunRecord[]
  readonly track: (c: ChildProcess) => ChildProcess
  readonly benchDir: string
  readonly runLoad: (req: LoadRequest) => Promise<LoadResult>
}

type LimitSpecLike = {
  name: string
  algorithm: 'sliding-log' | 'sliding-window' | 'token-bucket' | 'fixed-window'
  limit: number
  windowMs: number
}
const ALGS = ['sliding-log', 'sliding-window', 'token-bucket', 'fixed-window'] as const

async function decideArgs(
  subject: string,
  limits: LimitSpecLike[],
): Promise<{ keys: string[]; argv: (string | number)[] }> {
  const { compilePolicy } = await import('@sluice/limiter-core')
  const p = compilePolicy(limits)
  return { keys: p.keySuffixes.map((s) => `rl:{${subject}}:${s}`), argv: [1, 0, ...p.argv] }
}

/** MEMORY USAGE of one subject's counter keys after n admitted requests, per algorithm (decide script). */
async function measureMemory(admin: Redis): Promise<MemoryRow[]> {
  const { SCRIPTS } = await import('@sluice/limiter-core')
  const script = SCRIPTS.decide
  const rows: MemoryRow[] = []
  await admin.flushall()
  for (const alg of ALGS) {
    for (const n of alg === 'sliding-log' ? [1, 100, 1000] : [1, 1000]) {
      const subject = `mem-${alg}-${n}`
      const { keys, argv } = await decideArgs(subject, [
        { name: 'm', algorithm: alg, limit: 10000, windowMs: 3_600_000 },
      ])
      const pipe = admin.pipeline()
      for (let i = 0; i < n; i++) pipe.eval(script.source, keys.length, ...keys, ...argv)
      await pipe.exec()
      let bytes = 0
      for (const k of await admin.keys(`rl:{${subject}}:*`))
        bytes += Number((await admin.memory('USAGE', k, 'SAMPLES', '0')) ?? 0)
      rows.push({ algorithm: `sluice ${alg}`, note: `after ${n} admitted`, bytes })
    }
  }
  await admin.flushall()
  return rows
}

/** redis-benchmark running EVALSHA of the generated decide script: the ceiling of one Redis core. */
async function measureCeiling(ctx: ExtrasContext): Promise<NonNullable<Extras['ceiling']>> {
  const { SCRIPTS } = await import('@sluice/limiter-core')
  const script = SCRIPTS.decide
  const sha = String(await ctx.admin.script('LOAD', script.source))
  if (sha !== script.sha1) throw new Error(`decide script sha mismatch: ${sha} != ${script.sha1}`)
  const n = ctx.quick ? 30000 : 300000
  const cases: { name: string; limits: LimitSpecLike[] }[] = [
    ...ALGS.map((a) => ({
      name: `${a}, 1 limit`,
      limits: [{ name: 'l1', algorithm: a, limit: 10000, windowMs: 1000 }],
    })),
    {
      name: 'sliding-log, 3 limits',
      limits: [
        { name: 'l1', algorithm: 'sliding-log', limit: 10000, windowMs: 1000 },
        { name: 'l2', algorithm: 'sliding-log', limit: 10000, windowMs: 10000 },
        { name: 'l3', algorithm: 'sliding-window', limit: 1e6, windowMs: 3_600_000 },
      ],
    },
  ]
  const rows: { case: string; opsPerSec: number }[] = []
  for (const c of ctx.quick ? cases.slice(0, 1) : cases) {
    await ctx.admin.flushall()
    await ctx.admin.script('LOAD', script.source)
    const { keys, argv } = await decideArgs('__SUBJ__', c.limits)
    const keyArgs = keys.map((k) => k.replace('__SUBJ__', 'b-__rand_int__'))
    const args = [
      '-h',
      ctx.redis.host,
      '-p',
      String(ctx.redis.port),
      '-n',
      String(n),
      '-c',
      '50',
      '-P',
      '16',
      '-r',
      '1000',
      '--csv',
    ]
    const cmd = ['EVALSHA', sha, String(keys.length), ...keyArgs, ...argv.map(String)]
    const bin = CAN_PIN ? 'taskset' : 'redis-benchmark'
    const pre = CAN_PIN ? ['-c', String(SERVER_CPU), 'redis-benchmark'] : []
    const out = spawnSync(bin, [...pre, ...args, ...cmd], { encoding: 'utf8', timeout: 120_000 })
    const line = out.stdout.split('\n').find((l) => l.startsWith('"EVALSHA'))
    const ops = Number(line?.split(',')[1]?.replaceAll('"', ''))
    if (!Number.isFinite(ops)) throw new Error(`redis-benchmark: ${out.stderr || out.stdout}`.slice(0, 300))
    rows.push({ case: c.name, opsPerSec: Math.round(ops) })
  }
  await ctx.admin.flushall()
  return {
    method: `redis-benchmark EVALSHA decide, -c 50 -P 16, 1000 random subjects, ${n} calls`,
    opsPerSec: rows[0]!.opsPerSec,
    detail: 'Redis on its own core; redis-benchmark on the other',
    rows,
  }
}

/** Config-update propagation: PUT via ConfigRepository, time until 3 resolver processes serve it. */
async function measurePropagation(ctx: ExtrasContext): Promise<NonNullable<Extras['propagation']>> {
  const { ConfigRepository } = await import('@sluice/limiter-core')
  const workerJs = fileURLToPath(new URL('./propagation-worker.js', import.meta.url))
  const appId = 'prop-app'
  const repo = new ConfigRepository(ctx.admin)
  const cfg = (limit: number) => ({
    limits: [{ name: 'p', algorithm: 'fixed-window', limit, windowMs: 1000 }],
  })
  await repo.put(appId, cfg(1))
  const workers = [0, 1, 2].map((i) => {
    const w = ctx.track(
      fork(workerJs, [ctx.redis.url, appId], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }),
    )
    pin(w.pid, i % 2 === 0 ? SERVER_CPU : LOAD_CPU)
    return w
  })
  const seen = new Map<string, number[]>()
  for (const w of workers) {
    w.on('message', (m: { type: string; etag?: string; at?: number }) => {
      if (m.type === 'seen' && m.etag !== undefined && m.at !== undefined) {
        const a = seen.get(m.etag) ?? []
        a.push(m.at)
        seen.set(m.etag, a)
      }
    })
  }
  try {
    await Promise.all(workers.map((w) => waitMessage(w, 'ready', 10_000)))
    await sleep(300)
    const samples: number[] = []
    const updates = ctx.quick ? 20 : 200
    for (let i = 0; i < updates; i++) {
      const t0 = Date.now()
      const { etag } = await repo.put(appId, cfg(2 + i))
      const deadline = Date.now() + 2000
      while ((seen.get(etag)?.length ?? 0) < workers.length && Date.now() < deadline) await sleep(2)
      const at = seen.get(etag) ?? []
      if (at.length < workers.length)
        throw new Error(`update ${i} reached ${at.length}/${workers.length} processes in 2 s`)
      for (const t of at) samples.push(t - t0)
      await sleep(10)
    }
    return {
      processes: workers.length,
      samples: samples.length,
      p50Ms: median(samples),
      p99Ms: quantile(samples, 0.99),
      maxMs: Math.max(...samples),
    }
  } finally {
    for (const w of workers) if (w.connected) w.send({ type: 'exit' })
    await Promise.all(workers.map((w) => waitExit(w, 3000)))
  }
}

function areaOf(url: string, fn: string): string {
  if (url === '') return fn.startsWith('(') ? fn : 'native'
  if (url.includes('/ioredis/') || url.includes('/@ioredis/') || url.includes('redis-parser'))
    return 'ioredis'
  if (url.includes('/limiter-core/')) return 'sluice limiter-core'
  if (url.includes('/fastify-limiter/')) return 'sluice fastify-limiter'
  if (url.includes('/apps/gateway/')) return 'sluice gateway'
  if (url.includes('/prom-client/') || url.includes('fastify-metrics')) return 'metrics (prom-client)'
  if (url.includes('/pino') || url.includes('sonic-boom')) return 'logging (pino)'
  if (
    url.includes('/fastify/') ||
    url.includes('/find-my-way/') ||
    url.includes('/light-my-request/') ||
    url.includes('fast-json-stringify') ||
    url.includes('/avvio/')
  )
    return 'fastify'
  if (url.startsWith('node:')) return 'node core'
  if (url.includes('/bench/')) return 'bench harness'
  return 'other deps'
}

async function analyzeProfile(
  file: string,
): Promise<Omit<ProfileSummary, 'config' | 'requests' | 'usPerReqByArea'>> {
  const prof = JSON.parse(await readFile(file, 'utf8')) as {
    nodes: {
      id: number
      callFrame: { functionName: string; url: string; lineNumber: number }
      hitCount?: number
    }[]
    startTime: number
    endTime: number
    samples: number[]
  }
  const total = prof.samples.length
  const us = (prof.endTime - prof.startTime) / Math.max(1, total)
  const byFn = new Map<string, number>()
  const byArea = new Map<string, number>()
  let busy = 0
  for (const n of prof.nodes) {
    const hits = n.hitCount ?? 0
    if (hits === 0) continue
    const { functionName, url, lineNumber } = n.callFrame
    if (functionName === '(idle)') continue
    busy += hits
    const area = areaOf(url, functionName)
    byArea.set(area, (byArea.get(area) ?? 0) + hits)
    const short = url
      .replace(/^.*node_modules\/(\.pnpm\/[^/]+\/node_modules\/)?/, '')
      .replace(/^file:\/\/.*\/(packages|apps|bench)\//, '$1/')
    const key = `${functionName || '(anonymous)'} ${short}:${lineNumber + 1}`
    byFn.set(key, (byFn.get(key) ?? 0) + hits)
  }
  const pct = (h: number): number => round((100 * h) / Math.max(1, busy), 1)
  return {
    sampledMs: Math.round((busy * us) / 1000),
    byArea: Object.fromEntries([...byArea].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, pct(v)])),
    top: [...byFn]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 20)
      .map(([name, h]) => ({ name, selfPct: pct(h) })),
  }
}

async function profileConfig(
  ctx: ExtrasContext,
  name: string,
  appIds: readonly string[],
): Promise<ProfileSummary> {
  const dir = join(ctx.benchDir, 'results', 'tmp')
  await mkdir(dir, { recursive: true })
  const file = join(dir, `${name}.cpuprofile`)
  await rm(file, { force: true })
  await ctx.admin.flushall()
  const child = ctx.track(
    fork(ctx.serverJs, [name, ctx.redis.url], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      env: { ...process.env, NODE_ENV: 'production' },
    }),
  )
  pin(child.pid, SERVER_CPU)
  let requests = 0
  try {
    const { port } = await waitMessage<{ port: number }>(child, 'ready', 20_000)
    const req = { url: `http://127.0.0.1:${port}`, durationS: ctx.quick ? 1 : 5, connections: 32, appIds }
    await ctx.runLoad(ctx.quick ? { ...req, amount: 3000 } : { ...req, durationS: 2 })
    const started = waitMessage(child, 'profiling', 5000)
    child.send({ type: 'profile-start' })
    await started
    requests = (await ctx.runLoad(req)).requests
    const stopped = waitMessage(child, 'profiled', 10_000)
    child.send({ type: 'profile-stop', file })
    await stopped
  } finally {
    if (child.connected) child.send({ type: 'close' })
    await waitExit(child, 5000)
  }
  const a = await analyzeProfile(file)
  return {
    config: name,
    requests,
    ...a,
    usPerReqByArea: Object.fromEntries(
      Object.entries(a.byArea).map(([k, pct]) => [
        k,
        round((pct / 100) * ((a.sampledMs * 1000) / Math.max(1, requests)), 1),
      ]),
    ),
  }
}

export async function runExtras(ctx: ExtrasContext): Promise<Extras> {
  const extras: Extras = {}
  const errors: Record<string, string> = {}
  const attempt = async (name: string, f: () => Promise<void>): Promise<void> => {
    try {
      await f()
    } catch (err) {
      errors[name] = (err as Error).message.split('\n')[0] ?? String(err)
    }
  }
  await attempt('memory', async () => {
    extras.memory = await measureMemory(ctx.admin)
  })
  await attempt('ceiling', async () => {
    extras.ceiling = await measureCeiling(ctx)
  })
  await attempt('propagation', async () => {
    extras.propagation = await measurePropagation(ctx)
  })
  if (ctx.profile) {
    extras.profiles = []
    for (const [name, ids] of [
      ['bare', ALLOWED_APP_IDS],
      ['frl-redis', ALLOWED_APP_IDS],
      ['sluice-sliding-log', ALLOWED_APP_IDS],
      ['sluice-sliding-log-attack', ['attacker']],
      ['gateway', ALLOWED_APP_IDS],
      ['gateway-attack', ['attacker']],
    ] as const) {
      await attempt(`profile ${name}`, async () => {
        extras.profiles!.push(await profileConfig(ctx, name, ids))
      })
    }
  }
  if (Object.keys(errors).length > 0) extras.errors = errors
  return extras
}
