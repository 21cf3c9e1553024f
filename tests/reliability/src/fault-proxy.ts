/**
 * A TCP fault proxy for tests: it sits on a loopback port between a client (the limiter) and a
 * server (Redis) and can, at any moment,
 *
 * - add latency to every chunk, in both directions, keeping the byte order (`setLatency`);
 * - black-hole traffic: keep accepting connections, forward nothing, answer nothing (`blackhole`);
 *   like a network partition, bytes are held (sockets paused, TCP keeps them), not lost, and
 *   `heal()` delivers them late, in order;
 * - reset connections mid-command: the next client chunk is cut in half, the first half is
 *   forwarded, then both sides get a TCP RST (`resetOnNextCommand`); or reset all now (`resetAll`);
 * - refuse: close every new connection at once (`refuse`);
 * - heal: back to a transparent pipe (`heal`).
 *
 * Only `node:net`; no dependency. Every socket it opens is closed by `close()`.
 */
import { connect, createServer, type Server, type Socket } from 'node:net'

export type ProxyMode = 'pass' | 'blackhole' | 'refuse'

export interface FaultProxyOptions {
  /** Where to forward: the real server. */
  readonly targetHost?: string
  readonly targetPort: number
  /** Port to listen on (0: a free one). */
  readonly listenPort?: number
}

export interface FaultProxyStats {
  /** Connections accepted since start. */
  accepted: number
  /** Connections currently open (client side). */
  open: number
  /** Connections reset by a fault. */
  resets: number
  /** Bytes forwarded client -> server and server -> client. */
  bytesUp: number
  bytesDown: number
  /** Chunks held back while black-holing (delivered on heal). */
  chunksHeld: number
}

interface Pair {
  client: Socket
  server: Socket | undefined
  /** When the last delayed chunk of each direction is due, so later chunks never overtake it. */
  upDue: number
  downDue: number
  /** Deliveries held while black-holing, in order. */
  held: Array<() => void>
  /** Upstream connect deferred while black-holing. */
  connectLater: boolean
}

export class FaultProxy {
  readonly host = '127.0.0.1'
  private server: Server | undefined
  private readonly pairs = new Set<Pair>()
  private readonly timers = new Set<NodeJS.Timeout>()
  private mode: ProxyMode = 'pass'
  private latencyMs = 0
  private resetsArmed = 0
  readonly stats: FaultProxyStats = {
    accepted: 0,
    open: 0,
    resets: 0,
    bytesUp: 0,
    bytesDown: 0,
    chunksHeld: 0,
  }
  private listenPort: number

  constructor(private readonly options: FaultProxyOptions) {
    this.listenPort = options.listenPort ?? 0
  }

  /** The port clients connect to (after `start()`). */
  get port(): number {
    return this.listenPort
  }

  /** `redis://127.0.0.1:<port>`. */
  get url(): string {
    return `redis://${this.host}:${this.listenPort}`
  }

  get currentMode(): ProxyMode {
    return this.mode
  }

  async start(): Promise<this> {
    const server = createServer({ pauseOnConnect: false }, (client) => this.accept(client))
    this.server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.listenPort, this.host, () => {
        server.off('error', reject)
        const addr = server.address()
        if (typeof addr === 'object' && addr) this.listenPort = addr.port
        resolve()
      })
    })
    return this
  }

  /** Delay every chunk (both directions) by `ms`. 0: no delay. */
  setLatency(ms: number): void {
    this.latencyMs = Math.max(0, ms)
  }

  /** Accept and read, never forward nor answer (existing connections too), until `heal()`. */
  blackhole(): void {
    this.mode = 'blackhole'
  }

  /** Close every new connection at once (existing ones are reset). */
  refuse(): void {
    this.mode = 'refuse'
    this.resetAll()
  }

  /** Cut the next `count` client chunks in half: forward the first half, then RST both sides. */
  resetOnNextCommand(count = 1): void {
    this.resetsArmed += count
  }

  /** RST every open connection now. */
  resetAll(): void {
    for (const pair of [...this.pairs]) this.reset(pair)
  }

  /** Back to a transparent pipe: no latency, no black hole, no armed resets; held bytes are delivered. */
  heal(): void {
    this.mode = 'pass'
    this.latencyMs = 0
    this.resetsArmed = 0
    for (const pair of [...this.pairs]) {
      if (pair.connectLater) this.connectUpstream(pair)
      const held = pair.held.splice(0)
      for (const fn of held) fn()
      pair.client.resume()
      pair.server?.resume()
    }
  }

  /** Stop listening and destroy every connection. Idempotent. */
  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    for (const pair of [...this.pairs]) this.drop(pair)
    const server = this.server
    this.server = undefined
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  private accept(client: Socket): void {
    this.stats.accepted++
    client.setNoDelay(true)
    client.on('error', () => {})
    if (this.mode === 'refuse') {
      client.resetAndDestroy()
      return
    }
    const pair: Pair = { client, server: undefined, upDue: 0, downDue: 0, held: [], connectLater: false }
    this.pairs.add(pair)
    this.stats.open++
    client.on('close', () => this.drop(pair))
    client.on('data', (chunk: Buffer) => this.up(pair, chunk))
    if (this.mode === 'blackhole') {
      client.pause()
      pair.connectLater = true
      return
    }
    this.connectUpstream(pair)
  }

  private connectUpstream(pair: Pair): void {
    pair.connectLater = false
    const upstream = connect({ host: this.options.targetHost ?? '127.0.0.1', port: this.options.targetPort })
    upstream.setNoDelay(true)
    pair.server = upstream
    upstream.on('error', () => this.drop(pair))
    upstream.on('close', () => this.drop(pair))
    upstream.on('data', (chunk: Buffer) => this.down(pair, chunk))
  }

  /** Run `fn` now, or hold it (and stop reading) while black-holing. */
  private deliver(pair: Pair, fn: () => void): void {
    if (this.mode === 'blackhole') {
      this.stats.chunksHeld++
      pair.held.push(fn)
      pair.client.pause()
      pair.server?.pause()
      return
    }
    fn()
  }

  private up(pair: Pair, chunk: Buffer): void {
    if (this.resetsArmed > 0 && this.mode === 'pass') {
      this.resetsArmed--
      const half = chunk.subarray(0, Math.max(1, Math.floor(chunk.length / 2)))
      this.stats.bytesUp += half.length
      if (pair.server) pair.server.write(half, () => this.reset(pair))
      else this.reset(pair)
      return
    }
    this.later(pair, 'up', () =>
      this.deliver(pair, () => {
        this.stats.bytesUp += chunk.length
        if (pair.server && !pair.server.destroyed) pair.server.write(chunk)
      }),
    )
  }

  private down(pair: Pair, chunk: Buffer): void {
    this.later(pair, 'down', () =>
      this.deliver(pair, () => {
        this.stats.bytesDown += chunk.length
        if (!pair.client.destroyed) pair.client.write(chunk)
      }),
    )
  }

  private later(pair: Pair, dir: 'up' | 'down', fn: () => void): void {
    const now = Date.now()
    const key = dir === 'up' ? 'upDue' : 'downDue'
    if (this.latencyMs === 0 && pair[key] <= now) {
      fn()
      return
    }
    const due = Math.max(now + this.latencyMs, pair[key])
    pair[key] = due
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      if (this.pairs.has(pair)) fn()
    }, due - now)
    this.timers.add(timer)
  }

  private reset(pair: Pair): void {
    if (!this.pairs.has(pair)) return
    this.stats.resets++
    this.pairs.delete(pair)
    this.stats.open--
    if (!pair.client.destroyed) pair.client.resetAndDestroy()
    if (pair.server && !pair.server.destroyed) pair.server.resetAndDestroy()
  }

  private drop(pair: Pair): void {
    if (!this.pairs.has(pair)) return
    this.pairs.delete(pair)
    this.stats.open--
    pair.client.destroy()
    pair.server?.destroy()
  }
}

/** Start a fault proxy in front of `targetPort` on a free loopback port. */
export async function startFaultProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<FaultProxy> {
  return new FaultProxy({ targetPort, targetHost }).start()
}
