/**
 * Start the built gateway (`node apps/gateway/dist/main.js`) as a child process configured only by
 * env vars (contract section 2), wait until `/healthz` answers, and collect its JSON log lines.
 * `stop()` sends SIGTERM and waits (SIGKILL after a grace period). Every process started here is
 * killed when the test process exits.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { freePort } from '@sluice/test-redis'
import { parseMetrics, type Sample } from './metrics.js'

/** apps/gateway/dist/main.js (this file is at tests/reliability/{src,dist}/). */
export const GATEWAY_MAIN = fileURLToPath(new URL('../../../apps/gateway/dist/main.js', import.meta.url))

const live = new Set<ChildProcess>()
let hooked = false
function hookExit(): void {
  if (hooked) return
  hooked = true
  process.on('exit', () => {
    for (const c of live) c.kill('SIGKILL')
  })
}

export interface LogLine {
  readonly level?: number
  readonly event?: string
  readonly msg?: string
  readonly [k: string]: unknown
}

export interface GatewayProcess {
  readonly port: number
  readonly adminPort: number | null
  readonly origin: string
  readonly adminOrigin: string
  readonly pid: number
  /** Parsed JSON log lines (capped at `maxLogLines`, oldest kept) and the raw non-JSON ones. */
  readonly logs: LogLine[]
  readonly stderr: string[]
  /** Count of log lines per `event` (never capped). */
  readonly events: Map<string, number>
  /** Count of every log line (never capped). */
  readonly lineCount: () => number
  metrics(): Promise<Sample[]>
  metricsText(): Promise<string>
  stop(): Promise<number | null>
  /** True once the process has exited. */
  exited(): boolean
}

export interface StartGatewayOptions {
  readonly env: Record<string, string>
  /** Serve the admin API on a second port (ADMIN_PORT). */
  readonly adminPort?: boolean
  readonly maxLogLines?: number
  readonly readyTimeoutMs?: number
}

export async function startGateway(opts: StartGatewayOptions): Promise<GatewayProcess> {
  if (!existsSync(GATEWAY_MAIN)) {
    throw new Error(
      `${GATEWAY_MAIN} is missing: build first (pnpm turbo run build --filter=@sluice/gateway...)`,
    )
  }
  hookExit()
  const port = await freePort()
  const adminPort = opts.adminPort ? await freePort() : null
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'info',
    ...(adminPort !== null ? { ADMIN_PORT: String(adminPort) } : {}),
    ...opts.env,
  }
  const child = spawn(process.execPath, [GATEWAY_MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  live.add(child)
  let exitCode: number | null | undefined
  const exitedP = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => {
      exitCode = code
      live.delete(child)
      resolve(code)
    })
  })
  const logs: LogLine[] = []
  const stderr: string[] = []
  const events = new Map<string, number>()
  const maxLogLines = opts.maxLogLines ?? 20_000
  let lines = 0
  let buf = ''
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString()
    let nl = buf.indexOf('\n')
    while (nl >= 0) {
      const line = buf.slice(0, nl)
      buf = buf.slice(nl + 1)
      nl = buf.indexOf('\n')
      if (line.trim() === '') continue
      lines++
      try {
        const parsed = JSON.parse(line) as LogLine
        if (typeof parsed.event === 'string') events.set(parsed.event, (events.get(parsed.event) ?? 0) + 1)
        if (logs.length < maxLogLines) logs.push(parsed)
      } catch {
        if (stderr.length < 1000) stderr.push(line)
      }
    }
  })
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 1000) stderr.push(d.toString())
  })
  const origin = `http://127.0.0.1:${port}`
  const adminOrigin = adminPort !== null ? `http://127.0.0.1:${adminPort}` : origin
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 20_000)
  for (;;) {
    if (exitCode !== undefined) {
      throw new Error(`gateway exited with ${exitCode} at start: ${stderr.join('').slice(0, 2000)}`)
    }
    try {
      const r = await fetch(`${origin}/healthz`, { signal: AbortSignal.timeout(1000) })
      await r.arrayBuffer()
      if (r.status === 200) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`gateway not healthy in time: ${stderr.join('').slice(0, 2000)}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  const metricsText = async () => {
    const r = await fetch(`${origin}/metrics`, { signal: AbortSignal.timeout(10_000) })
    return r.text()
  }
  return {
    port,
    adminPort,
    origin,
    adminOrigin,
    pid: child.pid ?? -1,
    logs,
    stderr,
    events,
    lineCount: () => lines,
    metricsText,
    metrics: async () => parseMetrics(await metricsText()),
    exited: () => exitCode !== undefined,
    async stop() {
      if (exitCode !== undefined) return exitCode
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 8_000)
      const code = await exitedP
      clearTimeout(timer)
      return code
    },
  }
}
