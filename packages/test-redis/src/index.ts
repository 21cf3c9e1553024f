/**
 * Throwaway redis-server processes and Redis Clusters for Sluice's tests.
 *
 * Every server is started on a free loopback port in its own temporary directory, with
 * persistence off, and is killed when the test process exits (normally, on an uncaught
 * error, or on SIGINT/SIGTERM). Nothing here ever flushes or stops a server it did not
 * start: with `SLUICE_TEST_REDIS_URL` set, `startRedis()` hands out that server as is, and
 * tests keep apart by key prefix (see `uniquePrefix`).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis'

const execFileP = promisify(execFile)
const HOST = '127.0.0.1'

/** Processes started by this module, killed at exit. */
const live = new Set<ChildProcess>()
const tempDirs = new Set<string>()
let exitHooked = false

function hookExit(): void {
  if (exitHooked) return
  exitHooked = true
  const killAll = () => {
    for (const child of live) {
      try {
        child.kill('SIGKILL')
      } catch {
        // already gone
      }
    }
    live.clear()
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
    tempDirs.clear()
  }
  process.on('exit', killAll)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAll()
      process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1))
    })
  }
}

/** A unique string for key prefixes and appIds: `<name>-<random>`. */
export function uniquePrefix(name = 't'): string {
  return `${name}-${randomBytes(5).toString('hex')}`
}

/** A port the OS reports free on 127.0.0.1 (and whose cluster bus port, +10000, is free too). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer()
      srv.unref()
      srv.on('error', reject)
      srv.listen(0, HOST, () => {
        const addr = srv.address()
        const p = typeof addr === 'object' && addr ? addr.port : 0
        srv.close(() => resolve(p))
      })
    })
    if (port > 0 && port + 10000 < 65536 && (await isFree(port + 10000))) return port
  }
  throw new Error('test-redis: no free port found')
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer()
    srv.unref()
    srv.once('error', () => resolve(false))
    srv.listen(port, HOST, () => srv.close(() => resolve(true)))
  })
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function waitForPing(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let lastErr: unknown
  while (Date.now() < deadline) {
    const client = new Redis({
      host: HOST,
      port,
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectTimeout: 500,
    })
    client.on('error', () => {})
    try {
      await client.connect()
      const pong = await client.ping()
      client.disconnect()
      if (pong === 'PONG') return
    } catch (err) {
      lastErr = err
      client.disconnect()
    }
    await sleep(50)
  }
  throw new Error(`test-redis: redis-server on port ${port} not ready in ${timeoutMs} ms: ${String(lastErr)}`)
}

export interface StartRedisOptions {
  /** Always start a server of our own, even when SLUICE_TEST_REDIS_URL is set (needed for pause/kill). */
  own?: boolean
  /** Extra `redis-server` arguments, e.g. ['--maxmemory', '10mb']. */
  args?: string[]
  /** Start as a Redis Cluster node (`--cluster-enabled yes`). Used by startCluster. */
  clusterNode?: boolean
}

/** A standalone Redis for a test file. */
export interface TestRedis {
  readonly host: string
  readonly port: number
  /** `redis://127.0.0.1:<port>` (or SLUICE_TEST_REDIS_URL). */
  readonly url: string
  /** True when this module started the process (pause/kill/restart allowed). */
  readonly owned: boolean
  /** A new ioredis client to this server; closed by stop(). */
  client(options?: RedisOptions): Redis
  /** SIGSTOP the process: commands hang until resume(). */
  pause(): Promise<void>
  /** SIGCONT the process. */
  resume(): Promise<void>
  /** SIGKILL the process (the port stays reserved for restart()). */
  kill(): Promise<void>
  /** Start the server again on the same port, empty, and wait until it answers. */
  restart(): Promise<void>
  /** Kill the process (if owned), close the clients it handed out. Idempotent. */
  stop(): Promise<void>
}

class OwnedRedis implements TestRedis {
  readonly host = HOST
  readonly owned: boolean
  readonly url: string
  private child: ChildProcess | undefined
  private readonly dir: string
  private readonly clients = new Set<Redis>()
  private stopped = false

  constructor(
    readonly port: number,
    private readonly args: string[],
    owned: boolean,
    url?: string,
  ) {
    this.owned = owned
    this.url = url ?? `redis://${HOST}:${port}`
    this.dir = owned ? mkdtempSync(join(tmpdir(), 'sluice-redis-')) : ''
    if (owned) tempDirs.add(this.dir)
  }

  async spawnAndWait(): Promise<void> {
    hookExit()
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        HOST,
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        this.dir,
        '--protected-mode',
        'no',
        '--loglevel',
        'warning',
        ...this.args,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    let stderr = ''
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    child.on('error', (err) => {
      stderr += String(err)
    })
    child.on('exit', () => live.delete(child))
    live.add(child)
    this.child = child
    try {
      await waitForPing(this.port)
    } catch (err) {
      throw new Error(`${(err as Error).message}${stderr ? `\nredis-server said: ${stderr.trim()}` : ''}`)
    }
  }

  client(options: RedisOptions = {}): Redis {
    // ioredis 6 option types reject their own RedisOptions under exactOptionalPropertyTypes.
    const c = new Redis(this.url, { maxRetriesPerRequest: 1, ...options } as never)
    c.on('error', () => {})
    this.clients.add(c)
    return c
  }

  private mustOwn(what: string): ChildProcess {
    if (!this.owned)
      throw new Error(`test-redis: ${what}() needs a server of our own: startRedis({ own: true })`)
    if (!this.child) throw new Error(`test-redis: ${what}(): the server is not running`)
    return this.child
  }

  async pause(): Promise<void> {
    this.mustOwn('pause').kill('SIGSTOP')
  }

  async resume(): Promise<void> {
    this.mustOwn('resume').kill('SIGCONT')
  }

  async kill(): Promise<void> {
    const child = this.mustOwn('kill')
    await killAndWait(child)
    this.child = undefined
  }

  async restart(): Promise<void> {
    if (!this.owned)
      throw new Error('test-redis: restart() needs a server of our own: startRedis({ own: true })')
    if (this.child) await this.kill()
    await this.spawnAndWait()
  }

  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    for (const c of this.clients) c.disconnect()
    this.clients.clear()
    if (this.child) await killAndWait(this.child)
    this.child = undefined
    if (this.owned) {
      rmSync(this.dir, { recursive: true, force: true })
      tempDirs.delete(this.dir)
    }
  }
}

function killAndWait(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      live.delete(child)
      resolve()
      return
    }
    child.once('exit', () => {
      live.delete(child)
      resolve()
    })
    child.kill('SIGCONT')
    child.kill('SIGKILL')
  })
}

/**
 * A standalone Redis: `SLUICE_TEST_REDIS_URL` when set (and `own` is not), else a new
 * redis-server on a free loopback port.
 */
export async function startRedis(options: StartRedisOptions = {}): Promise<TestRedis> {
  const external = process.env.SLUICE_TEST_REDIS_URL
  if (external && !options.own && !options.clusterNode) {
    const u = new URL(external)
    return new OwnedRedis(Number(u.port || 6379), [], false, external)
  }
  const args = [...(options.args ?? [])]
  if (options.clusterNode) {
    // No diskless-sync delay: a replica must have synced before startCluster returns, or a master
    // killed in the first seconds is never failed over.
    args.push('--cluster-enabled', 'yes', '--cluster-node-timeout', '2000', '--repl-diskless-sync-delay', '0')
  }
  let lastErr: unknown
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    const server = new OwnedRedis(port, args, true)
    try {
      await server.spawnAndWait()
      return server
    } catch (err) {
      // The port may have been taken between the probe and the bind; try another one.
      lastErr = err
      await server.stop()
    }
  }
  throw lastErr
}

export interface StartClusterOptions {
  /** Number of masters (>= 3). Default 3. */
  masters?: number
  /** Replicas per master. Default 0. */
  replicas?: number
}

export interface ClusterNode {
  readonly host: string
  readonly port: number
}

/** A Redis Cluster for a test file. */
export interface TestCluster {
  readonly nodes: readonly ClusterNode[]
  /** `127.0.0.1:p1,127.0.0.1:p2,…` (the REDIS_CLUSTER_NODES format). */
  readonly seeds: string
  /** The node servers, in `nodes` order (for pause/kill of one node). */
  readonly servers: readonly TestRedis[]
  /** A new ioredis Cluster client; closed by stop(). */
  client(options?: ClusterOptions): Cluster
  stop(): Promise<void>
}

/** Start a Redis Cluster (`redis-cli --cluster create`) and wait until every node reports `cluster_state:ok`. */
export async function startCluster(options: StartClusterOptions = {}): Promise<TestCluster> {
  const masters = options.masters ?? 3
  const replicas = options.replicas ?? 0
  if (masters < 3) throw new Error('test-redis: a Redis Cluster needs at least 3 masters')
  const count = masters * (replicas + 1)
  const servers: TestRedis[] = []
  const clients = new Set<Cluster>()
  const stop = async () => {
    for (const c of clients) c.disconnect()
    clients.clear()
    await Promise.all(servers.map((s) => s.stop()))
  }
  try {
    for (let i = 0; i < count; i++) servers.push(await startRedis({ clusterNode: true }))
    const addrs = servers.map((s) => `${HOST}:${s.port}`)
    await execFileP(
      'redis-cli',
      ['--cluster', 'create', ...addrs, '--cluster-replicas', String(replicas), '--cluster-yes'],
      { timeout: 30_000 },
    )
    await waitForClusterOk(servers, replicas)
  } catch (err) {
    await stop()
    throw err
  }
  const nodes = servers.map((s) => ({ host: HOST, port: s.port }))
  return {
    nodes,
    seeds: nodes.map((n) => `${n.host}:${n.port}`).join(','),
    servers,
    client(opts: ClusterOptions = {}) {
      const c = new Cluster(nodes, { ...opts } as never)
      c.on('error', () => {})
      clients.add(c)
      return c
    },
    stop,
  }
}

async function waitForClusterOk(servers: TestRedis[], replicas: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  const clients = servers.map((s) => s.client({ maxRetriesPerRequest: 0 }))
  try {
    while (Date.now() < deadline) {
      const infos = await Promise.all(clients.map((c) => c.cluster('INFO') as Promise<string>))
      const ok = infos.every((info) => info.includes('cluster_state:ok'))
      let replicasOk = true
      if (ok && replicas > 0) {
        // Every replica connected AND synced (master_link_status:up), so failover can happen.
        const repl = await Promise.all(clients.map((c) => c.info('replication')))
        const synced = repl.filter((i) => i.includes('role:slave') && i.includes('master_link_status:up'))
        replicasOk = synced.length === servers.length - servers.length / (replicas + 1)
      }
      if (ok && replicasOk) {
        // Every node must also agree on the slot map, or clients may be sent MOVED loops.
        const slotViews = await Promise.all(
          clients.map(async (c) => JSON.stringify(((await c.cluster('SLOTS')) as unknown[]).length)),
        )
        if (new Set(slotViews).size === 1) return
      }
      await sleep(100)
    }
    throw new Error(`test-redis: cluster not ok within ${timeoutMs} ms`)
  } finally {
    for (const c of clients) c.disconnect()
  }
}

/** Resolve when an ioredis client (Redis or Cluster) is `ready`; reject after `timeoutMs`. */
export function waitReady(client: Redis | Cluster, timeoutMs = 10_000): Promise<void> {
  if (client.status === 'ready') return Promise.resolve()
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady)
      reject(new Error(`test-redis: client not ready within ${timeoutMs} ms (status ${client.status})`))
    }, timeoutMs)
    const onReady = () => {
      clearTimeout(timer)
      resolve()
    }
    client.once('ready', onReady)
  })
}
