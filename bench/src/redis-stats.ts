import type { Redis } from 'ioredis'

/** Parse `INFO` text into key -> value. */
export function parseInfo(text: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const line of text.split('\r\n')) {
    if (line === '' || line.startsWith('#')) continue
    const i = line.indexOf(':')
    if (i > 0) out.set(line.slice(0, i), line.slice(i + 1))
  }
  return out
}

export interface RedisSnapshot {
  /** Command name -> calls (every execution, including calls made inside Lua scripts). */
  readonly calls: Record<string, number>
  /** used_cpu_user + used_cpu_sys, seconds. */
  readonly cpuS: number
}

export async function redisSnapshot(client: Redis): Promise<RedisSnapshot> {
  const stats = parseInfo(await client.info('commandstats'))
  const cpu = parseInfo(await client.info('cpu'))
  const calls: Record<string, number> = {}
  for (const [k, v] of stats) {
    const m = /^cmdstat_(.+)$/.exec(k)
    const c = /calls=(\d+)/.exec(v)
    if (m?.[1] !== undefined && c?.[1] !== undefined) calls[m[1]] = Number(c[1])
  }
  return { calls, cpuS: Number(cpu.get('used_cpu_user') ?? 0) + Number(cpu.get('used_cpu_sys') ?? 0) }
}

/** Commands the harness itself sends between two snapshots; left out of the deltas. */
const HARNESS = new Set(['info', 'flushall', 'config|resetstat'])

export interface RedisDelta {
  /** Command -> calls between the snapshots (harness commands left out). */
  readonly calls: Record<string, number>
  readonly totalCalls: number
  readonly cpuUs: number
}

export function redisDelta(a: RedisSnapshot, b: RedisSnapshot): RedisDelta {
  const calls: Record<string, number> = {}
  let totalCalls = 0
  for (const [k, v] of Object.entries(b.calls)) {
    if (HARNESS.has(k)) continue
    const d = v - (a.calls[k] ?? 0)
    if (d > 0) {
      calls[k] = d
      totalCalls += d
    }
  }
  return { calls, totalCalls, cpuUs: (b.cpuS - a.cpuS) * 1e6 }
}

/** Counter keys now in Redis (config keys left out) and their MEMORY USAGE, summed. */
export async function counterMemory(client: Redis): Promise<{ keys: number; bytes: number }> {
  let cursor = '0'
  let keys = 0
  let bytes = 0
  do {
    const [next, batch] = await client.scan(cursor, 'COUNT', 500)
    cursor = next
    for (const k of batch) {
      if (k.startsWith('rateLimitConfig:')) continue
      keys++
      if (keys <= 500) bytes += Number((await client.memory('USAGE', k, 'SAMPLES', '0')) ?? 0)
    }
  } while (cursor !== '0' && keys <= 500)
  return { keys, bytes }
}
